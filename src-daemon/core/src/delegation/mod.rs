//! Delegation to sub-agents: an agent hands a sub-agent a broker-signed
//! token for less than it has, and the sub-agent presents it in `hello`.
//!
//! ```text
//! user:alice ── grant ──▶ agent:planner            (depth 0, the grant)
//!                            │ delegation.create
//!                            ▼
//!                         agent:researcher          (depth 1, token jti1)
//!                            │ delegation.create
//!                            ▼
//!                         agent:fetcher             (depth 2, token jti2, vk_parent = jti1)
//!                            │ delegation.create  + a person's approval
//!                            ▼
//!                         agent:summarizer          (depth 3, the limit)
//! ```
//!
//! Each step can only shrink: scopes a subset of the issuer's, the same
//! provider, an expiry no later than the issuer's, depth at most 3 (or the
//! configured limit). The tokens are single-audience (this broker's agent
//! socket), bound to the first binary that presents them, and useless
//! upstream (they are our JWS, not the provider's token).
//!
//! Revocation is by row: every token has a row keyed by `jti` pointing at
//! its parent and at the root grant. A token is good only while its own
//! row and every ancestor's row are unrevoked, the root grant still
//! covers it, and every agent in the chain is active; all of that is
//! checked at `hello` and again at every `token.get`, so revoking or
//! suspending anything above takes effect at the next request.

pub mod jws;
pub mod keys;
pub mod verify;

use valetkey_ipc::{ErrorCode, RpcError};

use crate::error::BrokerError;
use crate::store::Store;
use crate::store::{ACTIVE, DEPRECATED};

/// This broker's identity as issuer and audience: a random id made once
/// and kept in the database, so tokens of another broker (another user, a
/// reinstalled one) are refused.
pub fn audience(store: &Store) -> Result<String, BrokerError> {
    let id = store.meta_or_init("broker_id", || {
        let mut b = [0u8; 16];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
        b.iter().map(|x| format!("{x:02x}")).collect()
    })?;
    Ok(format!("urn:valetkey:broker:{id}"))
}

/// `delegation_invalid` with a reason.
pub fn invalid(reason: &str, message: impl Into<String>) -> BrokerError {
    RpcError::new(ErrorCode::DelegationInvalid, message)
        .with("reason", reason)
        .into()
}

/// Refuses a suspended or deprecated agent with its own code.
pub fn check_status(name: &str, status: &str) -> Result<(), BrokerError> {
    match status {
        ACTIVE => Ok(()),
        DEPRECATED => Err(RpcError::new(
            ErrorCode::AgentDeprecated,
            format!("agent {name:?} is deprecated: it keeps no grants and gets nothing new (`valetkey agents resume {name}` brings it back)"),
        )
        .into()),
        _ => Err(RpcError::new(
            ErrorCode::AgentSuspended,
            format!("agent {name:?} is suspended; it gets nothing until the user resumes it (`valetkey agents resume {name}`)"),
        )
        .into()),
    }
}

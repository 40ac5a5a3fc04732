//! The daemon's internal error, and its one mapping onto wire error codes.
//!
//! Handlers return [`BrokerError`]; the dispatcher turns it into the
//! JSON-RPC error the agent sees. Every message says what to do next, and
//! none ever carries a secret (the inner errors are built to exclude them).

use valetkey_ipc::{ErrorCode, RpcError};

use crate::keychain::KeychainError;
use crate::oauth::UpstreamError;
use crate::store::StoreError;

/// Anything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A fully formed protocol error.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The keychain failed.
    #[error(transparent)]
    Keychain(#[from] KeychainError),
    /// The provider failed.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl BrokerError {
    /// Shorthand for a protocol error.
    pub fn rpc(code: ErrorCode, message: impl Into<String>) -> Self {
        BrokerError::Rpc(RpcError::new(code, message))
    }

    /// The stable name of the code this error maps to (see the `From`
    /// impl below), for audit records.
    pub fn code_name(&self) -> &str {
        let code = match self {
            BrokerError::Rpc(r) => return r.name(),
            BrokerError::Keychain(KeychainError::Locked) => ErrorCode::KeychainLocked,
            BrokerError::Keychain(_) => ErrorCode::KeychainUnavailable,
            BrokerError::Upstream(UpstreamError::InvalidGrant { .. }) => {
                ErrorCode::ProviderLoginRequired
            }
            BrokerError::Upstream(UpstreamError::Unavailable { .. }) => {
                ErrorCode::ProviderUnavailable
            }
            BrokerError::Upstream(_) => ErrorCode::ProviderRejected,
            BrokerError::Store(_) => ErrorCode::StateUnavailable,
        };
        code.name()
    }
}

impl From<BrokerError> for RpcError {
    fn from(e: BrokerError) -> RpcError {
        let msg = e.to_string();
        match e {
            BrokerError::Rpc(r) => r,
            BrokerError::Keychain(KeychainError::Locked) => RpcError::new(ErrorCode::KeychainLocked, msg),
            BrokerError::Keychain(_) => RpcError::new(ErrorCode::KeychainUnavailable, msg),
            BrokerError::Upstream(UpstreamError::InvalidGrant { provider, .. }) => {
                RpcError::new(ErrorCode::ProviderLoginRequired, msg).with("provider", provider)
            }
            BrokerError::Upstream(UpstreamError::Unavailable { provider, .. }) => {
                RpcError::new(ErrorCode::ProviderUnavailable, msg).with("provider", provider)
            }
            BrokerError::Upstream(UpstreamError::Rejected { provider, error, .. }) => {
                RpcError::new(ErrorCode::ProviderRejected, msg)
                    .with("provider", provider)
                    .with("oauth_error", error)
            }
            BrokerError::Upstream(UpstreamError::Config { provider, .. }) => {
                RpcError::new(ErrorCode::ProviderRejected, msg).with("provider", provider)
            }
            BrokerError::Store(_) => RpcError::new(
                ErrorCode::StateUnavailable,
                format!("{msg}; nothing was issued. Check disk space and permissions of the data directory"),
            ),
        }
    }
}

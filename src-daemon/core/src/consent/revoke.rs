//! One-click revocation: drop the grants, drop the agent's cached tokens,
//! close its connections, deny its pending prompts, and, where the
//! provider is configured for it, revoke its live access tokens upstream
//! (RFC 7009).
//!
//! Local effects come first and are synchronous, so the agent's next
//! request is refused no matter how slow the provider is. Every delegation
//! below what is revoked dies with it, and its sub-agents' cached tokens
//! and connections go too.

use valetkey_ipc::control::{Event, RevokeResult, RevokeTarget};
use valetkey_ipc::{ErrorCode, RpcError};

use crate::broker::Shared;
use crate::error::BrokerError;
use crate::store::{GrantFilter, SUSPENDED};
use crate::tokens::TokenService;

fn not_found(what: String) -> BrokerError {
    BrokerError::Rpc(RpcError::new(
        ErrorCode::NotFound,
        format!("{what}; `valetkey grant list` shows what exists"),
    ))
}

/// Drops the cached tokens and closes the connections of the sub-agents
/// whose delegations just died; returns (tokens, connections).
pub fn cut_subagents(d: &Shared, names: &[String]) -> (u32, u32) {
    let (mut tokens, mut conns) = (0, 0);
    let mut seen = std::collections::HashSet::new();
    for n in names {
        if !seen.insert(n) {
            continue;
        }
        if let Ok(Some(a)) = d.store.agent_by_name(n) {
            tokens += d.tokens.cache.take(Some(a.id), None).len() as u32;
            conns += d
                .live
                .close(Some(a.id), crate::live::Cut::DelegationRevoked);
        }
    }
    (tokens, conns)
}

/// Revokes `target`.
pub async fn revoke(d: &Shared, target: RevokeTarget) -> Result<RevokeResult, BrokerError> {
    let result = match &target {
        RevokeTarget::Delegation { jti } => revoke_delegation(d, jti)?,
        RevokeTarget::Grant { id } => {
            let names = d
                .store
                .revoke_delegations_of_grants(&[*id], "grant revoked")?;
            revoke_grants(d, &target, None, GrantFilter::Id(*id), &names).await?
        }
        RevokeTarget::Agent { name } => {
            let a = d
                .store
                .agent_by_name(name)?
                .ok_or_else(|| not_found(format!("no agent named {name:?}")))?;
            d.store.set_agent_status(a.id, SUSPENDED)?;
            let names = d
                .store
                .revoke_delegations_of_agent(a.id, name, "agent revoked")?;
            revoke_grants(d, &target, Some(a.id), GrantFilter::Agent(a.id), &names).await?
        }
        RevokeTarget::All => {
            let names = d.store.revoke_all_delegations("everything revoked")?;
            revoke_grants(d, &target, None, GrantFilter::All, &names).await?
        }
    };
    tracing::info!(?target, ?result, "revoked");
    d.events.emit(
        &d.store,
        Event::Revoked {
            target: target.clone(),
            result: result.clone(),
        },
    );
    Ok(result)
}

/// One delegation token and everything below it.
fn revoke_delegation(d: &Shared, jti: &str) -> Result<RevokeResult, BrokerError> {
    if d.store.delegation(jti)?.is_none() {
        return Err(not_found(format!("no delegation with jti {jti:?}")));
    }
    let names = d.store.revoke_delegation_tree(jti, "revoked by the user")?;
    let (tokens, closed) = cut_subagents(d, &names);
    Ok(RevokeResult {
        tokens_dropped: tokens,
        connections_closed: closed,
        ..Default::default()
    })
}

/// Grants matching `filter`, with everything hanging off them.
async fn revoke_grants(
    d: &Shared,
    target: &RevokeTarget,
    agent_id: Option<i64>,
    filter: GrantFilter,
    sub_names: &[String],
) -> Result<RevokeResult, BrokerError> {
    let removed = d.store.delete_grants(filter)?;
    // One grant: its agent's tokens for its provider only.
    let (agent_id, provider) = match (target, removed.first()) {
        (RevokeTarget::Grant { id }, None) => {
            return Err(not_found(format!("no grant with id {id}")))
        }
        (RevokeTarget::Grant { .. }, Some(g)) => (Some(g.agent_id), Some(g.provider.clone())),
        _ => (agent_id, None),
    };
    let tokens = d.tokens.cache.take(agent_id, provider.as_deref());
    let (sub_tokens, sub_closed) = cut_subagents(d, sub_names);
    // Revoking an agent suspends it; revoking grants leaves it active.
    let why = match target {
        RevokeTarget::Agent { .. } => crate::live::Cut::Suspended,
        _ => crate::live::Cut::GrantRevoked,
    };
    let closed = d.live.close(agent_id, why) + sub_closed;
    super::flow::deny_pending(d, agent_id);
    for g in &removed {
        d.events.emit(
            &d.store,
            Event::GrantChanged {
                agent: g.agent_name.clone(),
                grant_id: g.id,
                change: "removed".into(),
            },
        );
    }
    let mut upstream = 0;
    for (key, tok) in &tokens {
        let Some(p) = d.provider(&key.provider) else {
            continue;
        };
        if !p.revoke_agent_tokens {
            continue;
        }
        let secret = TokenService::client_secret(&*d.keychain, &p)
            .await
            .ok()
            .flatten();
        match d
            .upstream
            .revoke_access_token(&p, &tok.token, secret.as_ref())
            .await
        {
            Ok(true) => upstream += 1,
            Ok(false) => {
                tracing::info!(provider = %p.name, "provider has no revocation endpoint")
            }
            Err(e) => {
                tracing::warn!(provider = %p.name, error = %e, "upstream revocation failed; the token stays valid there until it expires")
            }
        }
    }
    Ok(RevokeResult {
        grants_removed: removed.len() as u32,
        tokens_dropped: tokens.len() as u32 + sub_tokens,
        tokens_revoked_upstream: upstream,
        connections_closed: closed,
    })
}

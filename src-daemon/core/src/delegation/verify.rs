//! Whether a delegation token still stands: checked at `hello` when a
//! sub-agent presents it, and again at every `token.get`.

use valetkey_ipc::methods::DelegationInfo;
use valetkey_ipc::{ErrorCode, RpcError};

use super::{audience, invalid, jws, keys};
use crate::broker::Shared;
use crate::error::BrokerError;
use crate::store::ACTIVE;

/// The longest any token lives, in seconds (keys stay published that long
/// after they are retired).
pub fn max_ttl_secs(d: &Shared) -> i64 {
    d.config.delegation.max_ttl.as_secs() as i64
}

fn revoked(message: impl Into<String>) -> BrokerError {
    RpcError::new(ErrorCode::DelegationRevoked, message).into()
}

/// Checks a token presented in `hello` by agent `name` running `sha256`.
pub fn verify_hello(
    d: &Shared,
    token: &str,
    name: &str,
    sha256: &str,
) -> Result<DelegationInfo, BrokerError> {
    let ttl = max_ttl_secs(d);
    let claims = jws::verify(token, |kid| keys::public_key(&d.store, kid, ttl)).map_err(|e| {
        invalid(
            e.reason(),
            format!("{e}; ask the parent agent for a new token"),
        )
    })?;
    let now = d.clock.now();
    if claims.aud != audience(&d.store)? {
        return Err(invalid("audience", "the token was issued for another broker; it is only good on the socket of the valetkeyd that signed it"));
    }
    if claims.exp <= now {
        return Err(invalid(
            "expired",
            "the delegation token expired; ask the parent agent for a new one",
        ));
    }
    if claims.nbf > now + 60 {
        return Err(invalid(
            "not_yet_valid",
            "the delegation token is not valid yet (check the clock)",
        ));
    }
    if claims.sub != format!("agent:{name}") {
        return Err(invalid(
            "subject",
            format!(
                "the token was issued to {}, but this connection says it is agent:{name}; each sub-agent must present its own token",
                claims.sub
            ),
        ));
    }
    let row = d.store.delegation(&claims.jti)?.ok_or_else(|| {
        invalid(
            "unknown",
            "this broker has no record of the token; ask the parent agent for a new one",
        )
    })?;
    let scopes =
        crate::scope::ScopeSet::new(claims.scope.split_whitespace().map(str::to_owned)).into_vec();
    if row.provider != claims.vk_provider
        || row.scopes != scopes
        || row.depth != claims.vk_depth
        || row.root_grant_id != claims.vk_grant
        || row.parent_jti != claims.vk_parent
    {
        return Err(invalid(
            "claims",
            "the token's claims do not match what the broker issued",
        ));
    }
    if !d.store.bind_delegation(&claims.jti, sha256)? {
        return Err(invalid(
            "binding",
            "the token is bound to the binary that first presented it; this is a different binary",
        ));
    }
    let del = DelegationInfo {
        jti: claims.jti.clone(),
        depth: claims.vk_depth,
        max_depth: claims.vk_max_depth,
        chain: claims.chain(),
        provider: claims.vk_provider,
        scopes,
        expires_at: claims.exp.max(0) as u64,
        root_grant_id: claims.vk_grant,
    };
    check_live(d, &del)?;
    Ok(del)
}

/// Whether the token and its whole chain still stand: no row revoked or
/// expired, every agent in the chain active, the root grant live and still
/// covering the scopes.
pub fn check_live(d: &Shared, del: &DelegationInfo) -> Result<(), BrokerError> {
    let now = d.clock.now();
    if del.expires_at as i64 <= now {
        return Err(invalid(
            "expired",
            "the delegation token expired; ask the parent agent for a new one",
        ));
    }
    let chain = d.store.delegation_chain(&del.jti)?;
    if chain.first().map(|r| r.jti.as_str()) != Some(del.jti.as_str()) {
        return Err(invalid("unknown", "this broker has no record of the token"));
    }
    let mut root_issuer = None;
    for row in &chain {
        if let Some(t) = row.revoked_at {
            let whose = if row.jti == del.jti {
                "this token"
            } else {
                "an ancestor's token"
            };
            return Err(RpcError::new(
                ErrorCode::DelegationRevoked,
                format!(
                    "{whose} was revoked ({}) at {}; everything below it stopped working",
                    row.revoked_reason.as_deref().unwrap_or("revoked"),
                    crate::timefmt::when(Some(t))
                ),
            )
            .with("jti", &row.jti)
            .into());
        }
        if row.expires_at <= now {
            return Err(revoked(
                "an ancestor's token expired, so this one ended too",
            ));
        }
        match d.store.agent_status(row.issuer_agent_id)?.as_deref() {
            Some(ACTIVE) => {}
            Some(s) => {
                return Err(revoked(format!(
                    "an agent above this one in the chain is {s}; its delegations stopped working"
                )))
            }
            None => return Err(revoked("an agent above this one in the chain was removed")),
        }
        if row.parent_jti.is_none() {
            root_issuer = Some(row.issuer_agent_id);
        }
    }
    let grant = d.store.live_grant_by_id(del.root_grant_id)?;
    match (grant, root_issuer) {
        (Some(g), Some(root))
            if g.agent_id == root
                && g.provider == del.provider
                && del.scopes.iter().all(|s| g.scopes.contains(s)) => {}
        _ => {
            return Err(revoked(
                "the grant this delegation derives from was revoked, expired or narrowed; the root agent must get access again",
            ))
        }
    }
    Ok(())
}

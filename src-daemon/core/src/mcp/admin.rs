//! `mcp.add`, `mcp.list` and `mcp.remove`: the daemon's side of
//! `valetkey mcp`. Adding records what the CLI discovered (checked again
//! here, as a config section would be); removing revokes every grant for
//! the server, logs out of it and forgets it.

use std::sync::Arc;

use valetkey_ipc::control::{
    LogoutParams, McpAddParams, McpListResult, McpRemoveParams, McpRemoveResult, McpServerStatus,
    RevokeTarget,
};
use valetkey_ipc::ErrorCode;

use super::provider_of;
use crate::broker::Shared;
use crate::config::Provider;
use crate::error::BrokerError;

fn invalid(m: impl Into<String>) -> BrokerError {
    BrokerError::rpc(ErrorCode::InvalidParams, m)
}

/// `mcp.add`.
pub fn add(d: &Shared, p: McpAddParams) -> Result<McpServerStatus, BrokerError> {
    let name = p.server.name.clone();
    if d.config.providers.contains_key(&name) {
        return Err(invalid(format!(
            "{name:?} is a provider in {}; give the MCP server another name",
            d.config.path.display()
        )));
    }
    let old = d.mcp.get(&name);
    if old.is_some() && !p.replace {
        return Err(invalid(format!(
            "an MCP server named {name:?} exists; pass --replace to replace it, or `valetkey mcp remove {name}` first"
        )));
    }
    let provider =
        Arc::new(provider_of(&p.server).map_err(|e| invalid(format!("MCP server {name:?}: {e}")))?);
    let added_at = d.store.put_mcp_server(&p.server)?;
    d.mcp.put(provider.clone(), added_at);
    d.tokens.forget_provider(&name);
    let mut rec = crate::audit::by_user("mcp.add", None);
    rec.provider = Some(name.clone());
    rec.granted = p.server.scopes.clone();
    rec.outcome = if old.is_some() { "replaced" } else { "added" }.into();
    rec.detail = Some(format!(
        "{} (resource {}, issuer {}, client {:?})",
        p.server.url, p.server.resource, p.server.issuer, p.server.registration
    ));
    crate::record::record(d, rec)?;
    tracing::info!(%name, url = %p.server.url, "MCP server added");
    status_of(d, &provider, added_at)
}

fn status_of(d: &Shared, p: &Provider, added_at: i64) -> Result<McpServerStatus, BrokerError> {
    let server = p
        .mcp
        .as_deref()
        .cloned()
        .ok_or_else(|| invalid(format!("{} is not an MCP server", p.name)))?;
    let st = d.store.provider_state(&p.name)?;
    let mut agents: Vec<String> = d
        .store
        .list_grants(None, false)?
        .into_iter()
        .filter(|g| g.provider == p.name)
        .map(|g| g.agent_name)
        .collect();
    agents.dedup();
    Ok(McpServerStatus {
        server,
        added_at,
        logged_in_at: st.logged_in_at,
        login_scopes: st.login_scopes.clone(),
        login_required: st.login_required,
        agents,
    })
}

/// `mcp.list`.
pub fn list(d: &Shared) -> Result<McpListResult, BrokerError> {
    let servers = d
        .mcp
        .all()
        .iter()
        .map(|(p, at)| status_of(d, p, *at))
        .collect::<Result<_, _>>()?;
    Ok(McpListResult { servers })
}

/// `mcp.remove`: grants first (so no agent is served meanwhile), then
/// the login, then the record.
pub async fn remove(d: &Shared, p: McpRemoveParams) -> Result<McpRemoveResult, BrokerError> {
    if d.mcp.get(&p.name).is_none() {
        return Err(BrokerError::rpc(
            ErrorCode::UnknownProvider,
            format!(
                "no MCP server named {:?}; `valetkey mcp list` shows them",
                p.name
            ),
        ));
    }
    let ids: Vec<i64> = d
        .store
        .list_grants(None, true)?
        .into_iter()
        .filter(|g| g.provider == p.name)
        .map(|g| g.id)
        .collect();
    let mut grants_revoked = 0;
    for id in ids {
        let r = crate::consent::revoke::revoke(d, RevokeTarget::Grant { id }).await?;
        grants_revoked += r.grants_removed;
    }
    let out = crate::logins::logout(
        d,
        LogoutParams {
            provider: p.name.clone(),
        },
    )
    .await?;
    d.store.delete_mcp_server(&p.name)?;
    d.mcp.remove(&p.name);
    let mut rec = crate::audit::by_user("mcp.remove", None);
    rec.provider = Some(p.name.clone());
    rec.outcome = "removed".into();
    crate::record::record_best_effort(d, rec);
    tracing::info!(name = %p.name, grants_revoked, "MCP server removed");
    Ok(McpRemoveResult {
        upstream: out.upstream,
        error: out.error,
        grants_revoked,
    })
}

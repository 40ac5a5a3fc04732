//! `providers.list`: what agents can ask for, and whether it can work now.

use valetkey_ipc::methods::{ProviderSummary, ProvidersListResult};

use crate::broker::Shared;
use crate::error::BrokerError;

/// Handles `providers.list`; `handshake_of` names the one MCP server whose
/// recorded handshake goes in (each can be kilobytes, and frames are capped).
pub fn handle(d: &Shared, handshake_of: Option<&str>) -> Result<ProvidersListResult, BrokerError> {
    let mut providers = Vec::new();
    for p in d.providers() {
        let st = d.store.provider_state(&p.name)?;
        providers.push(ProviderSummary {
            name: p.name.clone(),
            issuer: p
                .issuer
                .as_ref()
                .or(p.endpoints.token.as_ref())
                .map(|u| u.to_string())
                .unwrap_or_default(),
            logged_in: st.logged_in_at.is_some() && !st.login_required,
            login_required: st.login_required || st.logged_in_at.is_none(),
            allowed_scopes: p.allowed_scopes.clone(),
            narrows_on_refresh: p.narrows_on_refresh,
            login_scopes: st.login_scopes.clone(),
            mcp_url: p.mcp.as_ref().map(|m| m.url.clone()),
            mcp_handshake: p
                .mcp
                .as_ref()
                .filter(|_| handshake_of == Some(p.name.as_str()))
                .and_then(|m| m.handshake.clone()),
        });
    }
    Ok(ProvidersListResult { providers })
}

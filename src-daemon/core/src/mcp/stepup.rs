//! Step-up: an MCP server answered `403` with `insufficient_scope` and the
//! scopes it needs (MCP authorization, "Scope Challenge Handling"); the
//! user allowed them on a consent card. The login's refresh token may not
//! hold them, and only a new authorization can add scopes to it, so the
//! daemon logs in again (authorization code, PKCE, loopback redirect,
//! `resource`), opening the browser as `valetkey login` does. The server's
//! record then asks for the wider scopes at every later login.

use std::sync::Arc;

use valetkey_ipc::ErrorCode;

use super::provider_of;
use crate::broker::Shared;
use crate::config::Provider;
use crate::error::BrokerError;
use crate::keychain::Item;
use crate::oauth::login::{login_loopback, LoginOptions};
use crate::oauth::HttpUpstream;
use crate::tokens::TokenService;

fn failed(p: &Provider, why: String) -> BrokerError {
    BrokerError::rpc(
        ErrorCode::ProviderLoginRequired,
        format!(
            "{} needs a new login for the wider scopes, which failed: {why}; run `valetkey login {}`",
            p.display_name, p.name
        ),
    )
}

/// Makes sure the login of MCP server `p` holds `scopes`, logging in
/// again (once, whoever else waits) if it does not.
pub async fn ensure_login(d: &Shared, p: &Provider, scopes: &[String]) -> Result<(), BrokerError> {
    let lock = d.mcp.login_lock(&p.name);
    let _one = lock.lock().await;
    let st = d.store.provider_state(&p.name)?;
    if st.logged_in_at.is_some() && scopes.iter().all(|s| st.login_scopes.contains(s)) {
        return Ok(());
    }
    let mut server = p
        .mcp
        .as_deref()
        .cloned()
        .ok_or_else(|| failed(p, "it is not an MCP server".into()))?;
    for s in scopes {
        if !server.scopes.contains(s) {
            server.scopes.push(s.clone());
        }
    }
    let wider = provider_of(&server).map_err(|e| failed(p, e))?;
    let secret = TokenService::client_secret(&*d.keychain, &wider).await?;
    let opts = LoginOptions {
        open_browser: true,
        login_hint: None,
        timeout: d.config.consent.timeout,
    };
    tracing::info!(server = %p.name, scopes = %server.scopes.join(" "), "step-up: logging in again with wider scopes");
    let tokens = login_loopback(&HttpUpstream::new(), &wider, secret.as_ref(), &opts)
        .await
        .map_err(|e| failed(p, e.to_string()))?;
    let rt = tokens
        .refresh_token
        .ok_or_else(|| failed(p, "the authorization server gave no refresh token".into()))?;
    d.keychain
        .set(Item::RefreshToken(&wider.keychain_key), &rt)
        .await?;
    let granted = tokens.scopes.unwrap_or_else(|| server.scopes.clone());
    d.store.update_mcp_server(&server)?;
    let added_at = d.mcp.added_at(&p.name).unwrap_or_else(|| d.clock.now());
    d.mcp.put(Arc::new(wider), added_at);
    d.store.record_login(&p.name, &granted)?;
    d.tokens.forget_provider(&p.name);
    let mut rec = crate::audit::by_user("mcp.stepup", None);
    rec.provider = Some(p.name.clone());
    rec.granted = granted;
    rec.outcome = "logged_in".into();
    crate::record::record(d, rec)?;
    Ok(())
}

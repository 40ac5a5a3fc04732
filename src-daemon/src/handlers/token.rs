//! `token.get`: the checks, in order, that stand between an agent and a
//! token. Each refusal has its own code and says how to fix it:
//!
//! 1. params: valid scopes (`invalid_params`);
//! 2. the provider exists (`unknown_provider`) and allows the scopes and
//!    resource (`scope_not_allowed`);
//! 3. the provider has a working login (`provider_login_required`);
//! 4. a live grant binds this agent and this binary to the provider
//!    (`consent_required`) and covers every scope (`scope_not_granted`);
//! 5. the provider can narrow, or the user accepted full-scope tokens
//!    (`scope_not_allowed`);
//! 6. then the token service: cache or one single-flight refresh.

use valetkey_ipc::methods::{validate_scopes, TokenGetParams, TokenGetResult};
use valetkey_ipc::{AccessToken, ErrorCode, RpcError};

use crate::error::BrokerError;
use crate::server::Session;
use crate::state::Daemon;
use crate::tokens::service::{Deps, Request};

fn missing<'a>(want: &'a [String], have: &[String]) -> Vec<&'a str> {
    want.iter()
        .filter(|s| !have.contains(s))
        .map(String::as_str)
        .collect()
}

/// Handles `token.get`.
pub async fn handle(
    d: &Daemon,
    s: &Session,
    p: TokenGetParams,
) -> Result<TokenGetResult, BrokerError> {
    let (agent_id, agent) = s
        .agent
        .as_ref()
        .ok_or_else(|| BrokerError::rpc(ErrorCode::HelloRequired, "call hello first"))?;
    validate_scopes(&p.scopes).map_err(|m| BrokerError::rpc(ErrorCode::InvalidParams, m))?;
    let mut scopes = p.scopes.clone();
    scopes.sort();
    scopes.dedup();

    let provider = d.config.provider(&p.provider).ok_or_else(|| {
        let known: Vec<&str> = d.config.providers.keys().map(String::as_str).collect();
        RpcError::new(
            ErrorCode::UnknownProvider,
            format!(
                "no provider named {:?} is configured (configured: {}); add it to {}",
                p.provider,
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                },
                d.config.path.display()
            ),
        )
        .with("provider", &p.provider)
    })?;
    let not_allowed = missing(&scopes, &provider.allowed_scopes);
    if !not_allowed.is_empty() {
        return Err(RpcError::new(
            ErrorCode::ScopeNotAllowed,
            format!(
                "{} does not allow agents to have {}; allowed: {}",
                provider.name,
                not_allowed.join(" "),
                provider.allowed_scopes.join(" ")
            ),
        )
        .with("not_allowed", &not_allowed)
        .into());
    }
    if let Some(r) = &p.resource {
        if provider.resource.as_deref() != Some(r.as_str()) {
            return Err(BrokerError::rpc(
                ErrorCode::ScopeNotAllowed,
                format!("resource {r:?} is not configured for {}; omit it or set resource in the provider config", provider.name),
            ));
        }
    }
    let resource = p.resource.as_deref().or(provider.resource.as_deref());

    let state = d.store.provider_state(&provider.name)?;
    let login_needed = |why: &str| {
        BrokerError::Rpc(
            RpcError::new(
                ErrorCode::ProviderLoginRequired,
                format!("{why}; run `valetkey login {}`", provider.name),
            )
            .with("provider", &provider.name),
        )
    };
    if state.logged_in_at.is_none() {
        return Err(login_needed(&format!(
            "nobody is logged in to {}",
            provider.name
        )));
    }
    if state.login_required {
        return Err(login_needed(&format!(
            "{} rejected the stored login (expired or revoked)",
            provider.name
        )));
    }

    let grant = d
        .store
        .live_grant(*agent_id, &provider.name, &s.identity.sha256)?;
    let Some(grant) = grant else {
        let reason = if d.store.has_any_grant(*agent_id, &provider.name)? {
            "binary_changed_or_expired"
        } else {
            "no_grant"
        };
        return Err(RpcError::new(
            ErrorCode::ConsentRequired,
            format!(
                "agent {:?} (binary {}) has no live grant for {}; the user can allow it with `valetkey grant add {} {} {}`",
                agent.name,
                &s.identity.sha256[..12.min(s.identity.sha256.len())],
                provider.name,
                agent.name,
                provider.name,
                scopes.join(" ")
            ),
        )
        .with("reason", reason)
        .with("provider", &provider.name)
        .with("scopes", &scopes)
        .into());
    };
    let not_granted = missing(&scopes, &grant.scopes);
    if !not_granted.is_empty() {
        return Err(RpcError::new(
            ErrorCode::ScopeNotGranted,
            format!(
                "agent {:?} was granted {} on {}, not {}; ask for less, or have the user widen the grant",
                agent.name,
                grant.scopes.join(" "),
                provider.name,
                not_granted.join(" ")
            ),
        )
        .with("missing", &not_granted)
        .with("granted", &grant.scopes)
        .into());
    }
    let not_in_login = missing(&scopes, &state.login_scopes);
    if !state.login_scopes.is_empty() && !not_in_login.is_empty() {
        return Err(login_needed(&format!(
            "the login to {} does not include {}",
            provider.name,
            not_in_login.join(" ")
        )));
    }
    if !provider.narrows_on_refresh && !provider.allow_full_scope {
        let full: Vec<String> = {
            let mut f: Vec<String> = state
                .login_scopes
                .iter()
                .filter(|s| provider.allowed_scopes.contains(s))
                .cloned()
                .collect();
            f.sort();
            f
        };
        if full != scopes {
            return Err(BrokerError::rpc(
                ErrorCode::ScopeNotAllowed,
                format!(
                    "{} cannot narrow tokens on refresh, so the token would carry {}; set allow_full_scope = true for it in the config to accept that",
                    provider.name,
                    full.join(" ")
                ),
            ));
        }
    }

    let deps = Deps {
        store: &d.store,
        keychain: &d.keychain,
        upstream: &d.upstream,
    };
    let req = Request {
        scopes: &scopes,
        resource,
        generation: state.generation,
    };
    let (tok, cached) = d.tokens.get(&deps, provider, &req).await?;
    let now = crate::store::now();
    if !cached || grant.last_used_at.is_none_or(|t| now - t >= 60) {
        d.store.touch_grant(grant.id)?;
    }
    tracing::info!(provider = %provider.name, scopes = %scopes.join(" "), cached, "token issued");
    Ok(TokenGetResult {
        access_token: AccessToken::new(tok.token.expose().to_owned()),
        token_type: tok.token_type.clone(),
        expires_at: tok.expires_at,
        scopes: tok.scopes.clone(),
        resource: resource.map(str::to_owned),
        provider: provider.name.clone(),
    })
}

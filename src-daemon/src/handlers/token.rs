//! `token.get`: the checks, in order, that stand between an agent and a
//! token. Each refusal has its own code and says how to fix it:
//!
//! 1. params: valid scopes (`invalid_params`);
//! 2. the provider exists (`unknown_provider`) and allows the scopes and
//!    resource (`scope_not_allowed`);
//! 3. issuing is not paused (`issuing_paused`);
//! 4. the provider has a working login (`provider_login_required`);
//! 5. a live grant binds this agent and this binary to the provider and
//!    covers every scope (`scope_not_granted`); without one, a suspended
//!    agent is refused (`agent_suspended`), a remembered denial refuses at
//!    once (`consent_denied`), else the user is asked
//!    (see [`crate::consent::flow`]) and the agent waits or gets
//!    `consent_required` with a consent id;
//! 6. the provider can narrow, or the user accepted full-scope tokens
//!    (`scope_not_allowed`);
//! 7. then the token service: cache or one single-flight refresh.

use valetkey_ipc::control::Event;
use valetkey_ipc::methods::{validate_scopes, ConsentWaitParams, TokenGetParams, TokenGetResult};
use valetkey_ipc::{AccessToken, ErrorCode, RpcError};

use crate::config::Provider;
use crate::consent::flow::{self, Ask};
use crate::error::BrokerError;
use crate::server::Session;
use crate::state::Daemon;
use crate::store::ProviderState;
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

    if d.paused() {
        return Err(BrokerError::rpc(
            ErrorCode::IssuingPaused,
            "the user paused all issuing; nothing is handed out until they resume (tray menu, or `valetkey resume`)",
        ));
    }
    let state = login_state(d, provider)?;

    let grant = d
        .store
        .live_grant(*agent_id, &provider.name, &s.identity.sha256)?;
    let (scopes, grant_id, last_used) = match grant {
        Some(grant) => {
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
            (scopes, Some(grant.id), grant.last_used_at)
        }
        None => {
            // Checked only here, off the hot path: revoking an agent deletes
            // all its grants, so a suspended agent never has a live one
            // (and `valetkey grant add` lifts the suspension).
            if d.store.agent_suspended(*agent_id)? {
                return Err(RpcError::new(
                    ErrorCode::AgentSuspended,
                    format!(
                        "agent {:?} was revoked by the user; it gets nothing until they reinstate it (`valetkey reinstate {}`)",
                        agent.name, agent.name
                    ),
                )
                .into());
            }
            if d.store
                .denied(*agent_id, &provider.name, &s.identity.sha256)?
            {
                return Err(RpcError::new(
                    ErrorCode::ConsentDenied,
                    format!(
                        "the user denied {:?} access to {} and asked to remember it; `valetkey reinstate {}` forgets that",
                        agent.name, provider.name, agent.name
                    ),
                )
                .with("remembered", true)
                .into());
            }
            let allowed = flow::ask(
                d,
                s,
                Ask {
                    provider,
                    scopes: &scopes,
                    resource,
                    duration_secs: p.duration_secs,
                    wait: p.wait.unwrap_or(true),
                },
            )
            .await?;
            // The user may have narrowed; the token carries what was allowed.
            (allowed, None, None)
        }
    };
    issue(
        d, s, provider, &state, &scopes, resource, grant_id, last_used,
    )
    .await
}

/// Handles `consent.wait`: waits for a consent `token.get` opened with
/// `wait: false`, then issues what the user allowed.
pub async fn handle_wait(
    d: &Daemon,
    s: &Session,
    p: ConsentWaitParams,
) -> Result<TokenGetResult, BrokerError> {
    let (scopes, req) = flow::wait_by_id(d, s, &p.consent_id).await?;
    let provider = d.config.provider(&req.provider).ok_or_else(|| {
        BrokerError::rpc(
            ErrorCode::UnknownProvider,
            format!("provider {} is no longer configured", req.provider),
        )
    })?;
    let state = login_state(d, provider)?;
    issue(
        d,
        s,
        provider,
        &state,
        &scopes,
        req.resource.as_deref(),
        None,
        None,
    )
    .await
}

fn login_needed(provider: &Provider, why: &str) -> BrokerError {
    BrokerError::Rpc(
        RpcError::new(
            ErrorCode::ProviderLoginRequired,
            format!("{why}; run `valetkey login {}`", provider.name),
        )
        .with("provider", &provider.name),
    )
}

fn login_state(d: &Daemon, provider: &Provider) -> Result<ProviderState, BrokerError> {
    let state = d.store.provider_state(&provider.name)?;
    if state.logged_in_at.is_none() {
        return Err(login_needed(
            provider,
            &format!("nobody is logged in to {}", provider.name),
        ));
    }
    if state.login_required {
        return Err(login_needed(
            provider,
            &format!(
                "{} rejected the stored login (expired or revoked)",
                provider.name
            ),
        ));
    }
    Ok(state)
}

/// The last step: scopes are allowed; check the login covers them and get
/// the token.
#[allow(clippy::too_many_arguments)]
async fn issue(
    d: &Daemon,
    s: &Session,
    provider: &Provider,
    state: &ProviderState,
    scopes: &[String],
    resource: Option<&str>,
    grant_id: Option<i64>,
    last_used: Option<i64>,
) -> Result<TokenGetResult, BrokerError> {
    let (agent_id, agent) = s
        .agent
        .as_ref()
        .ok_or_else(|| BrokerError::rpc(ErrorCode::HelloRequired, "call hello first"))?;
    let scopes = scopes.to_vec();
    let not_in_login = missing(&scopes, &state.login_scopes);
    if !state.login_scopes.is_empty() && !not_in_login.is_empty() {
        return Err(login_needed(
            provider,
            &format!(
                "the login to {} does not include {}",
                provider.name,
                not_in_login.join(" ")
            ),
        ));
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
        agent_id: *agent_id,
        scopes: &scopes,
        resource,
        generation: state.generation,
    };
    let (tok, cached) = d.tokens.get(&deps, provider, &req).await?;
    let now = crate::store::now();
    // Keep the hot path free of writes: record use at most once a minute.
    if !cached || last_used.is_none_or(|t| now - t >= 60) {
        if let Some(g) = grant_id {
            d.store.touch_grant(g)?;
        }
        d.events.emit(
            &d.store,
            Event::TokenIssued {
                agent: agent.name.clone(),
                provider: provider.name.clone(),
                scopes: tok.scopes.clone(),
            },
        );
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

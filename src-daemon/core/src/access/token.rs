//! `token.get`: the checks, in order, that stand between an agent and a
//! token. Each refusal has its own code and says how to fix it:
//!
//! 1. params: valid scopes (`invalid_params`);
//! 2. the provider exists (`unknown_provider`) and allows the scopes and
//!    resource (`scope_not_allowed`);
//! 3. issuing is not paused (`issuing_paused`);
//! 4. the provider has a working login (`provider_login_required`);
//! 5. the agent is active (`agent_suspended`, `agent_deprecated`);
//! 6. a sub-agent: its delegation covers the provider and scopes
//!    (`scope_not_granted`) and its whole chain still stands
//!    (`delegation_revoked`); otherwise a live grant binds this agent and
//!    binary to the provider and covers every scope (`scope_not_granted`),
//!    or a remembered denial refuses at once (`consent_denied`);
//! 7. the policy ([`crate::policy`]): `policy_denied`, or a person must
//!    approve this very request (even with a grant);
//! 8. without a grant the user is asked (see [`crate::consent::flow`]) and
//!    the agent waits or gets `consent_required` with a consent id;
//! 9. the provider can narrow, or the user accepted full-scope tokens
//!    (`scope_not_allowed`);
//! 10. then the token service: cache or one single-flight refresh.
//!
//! Every outcome, with the policy decision, is written to the audit log.

use std::sync::Arc;
use valetkey_ipc::control::{ConsentKind, Event};

use valetkey_ipc::methods::{validate_scopes, ConsentWaitParams, TokenGetParams};
use valetkey_ipc::{ErrorCode, RpcError};

use crate::access::gate::{self, Asking, Trace};
use crate::broker::Shared;
use crate::caller::Caller;
use crate::config::Provider;
use crate::consent::flow::{self, Ask};
use crate::error::BrokerError;
use crate::policy::InputRequest;
use crate::scope::{missing, ScopeSet};
use crate::store::ProviderState;
use crate::tokens::service::Request;
use crate::tokens::CachedToken;

/// A token handed out, and the cached token's id.
type Issued = Handed;

/// A token handed out. It serializes exactly as
/// [`TokenGetResult`](valetkey_ipc::methods::TokenGetResult), straight
/// from the cached token: its bytes leave their zeroizing buffer only for
/// the reply frame, with no copy in between.
#[derive(Debug, Clone)]
pub struct Handed(pub Arc<CachedToken>);

impl serde::Serialize for Handed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let t = &self.0;
        let mut st = s.serialize_struct("TokenGetResult", 6)?;
        st.serialize_field("access_token", t.token.expose())?;
        st.serialize_field("token_type", &t.token_type)?;
        st.serialize_field("expires_at", &t.expires_at)?;
        st.serialize_field("scopes", &t.scopes)?;
        match &t.resource {
            Some(r) => st.serialize_field("resource", r)?,
            None => st.skip_field("resource")?,
        }
        st.serialize_field("provider", &t.provider)?;
        st.end()
    }
}

/// Handles `token.get`, and records the outcome.
pub async fn handle(d: &Shared, s: &Caller, p: TokenGetParams) -> Result<Handed, BrokerError> {
    let mut t = Trace::default();
    let r = get(d, s, &p, None, &mut t).await;
    audit_outcome(d, s, &p, &t, r)
}

/// Records the outcome before the answer goes out. A repeat hand-out of a
/// token this connection already got is counted, not written (see
/// [`crate::audit::reuse`]); everything else is written durably first, and
/// a hand-out that cannot be recorded is refused (fail closed).
fn audit_outcome(
    d: &Shared,
    s: &Caller,
    p: &TokenGetParams,
    t: &Trace,
    r: Result<Issued, BrokerError>,
) -> Result<Handed, BrokerError> {
    if let Ok(res) = &r {
        if t.consent_id.is_none() && d.reuse.repeat(res.0.id, s.session, d.clock.now()) {
            counted(d, s, t, &res.0);
            return r;
        }
    }
    let r = r.map_err(RpcError::from);
    let mut rec = crate::audit::about(s, "token.get");
    rec.provider = Some(p.provider.clone());
    rec.scopes = p.scopes.clone();
    t.fill(&mut rec);
    rec.outcome = match &r {
        Ok(res) => {
            rec.granted = res.0.scopes.clone();
            "issued".into()
        }
        Err(e) => format!("refused:{}", e.name()),
    };
    let written = crate::observe::record(d, rec)?;
    let res = r.map_err(BrokerError::Rpc)?;
    d.reuse.first(res.0.id, s.session, written);
    Ok(res)
}

/// A repeat, as the monitor sees it.
fn counted(d: &Shared, s: &Caller, t: &Trace, res: &CachedToken) {
    let Some((_, agent)) = &s.agent else { return };
    crate::observe::repeat(
        d,
        &crate::observe::Repeat {
            agent: &agent.name,
            provider: &res.provider,
            scopes: &res.scopes,
            action: t.action.as_deref(),
            resource_owner: t.resource_owner.as_deref(),
            depth: s.delegation.as_ref().map_or(0, |del| del.depth),
        },
    );
}

fn greeted(s: &Caller) -> Result<(i64, &valetkey_ipc::methods::AgentInfo), BrokerError> {
    s.agent
        .as_ref()
        .map(|(id, a)| (*id, a))
        .ok_or_else(|| BrokerError::rpc(ErrorCode::HelloRequired, "call hello first"))
}

fn not_granted(who: &str, provider: &str, have: &[String], missing: &[&str]) -> BrokerError {
    RpcError::new(
        ErrorCode::ScopeNotGranted,
        format!(
            "{who} was granted {} on {provider}, not {}; ask for less, or have the user widen the grant",
            have.join(" "),
            missing.join(" ")
        ),
    )
    .with("missing", missing)
    .with("granted", have)
    .into()
}

/// The checks, in order; `approved` carries a person's approval from
/// `consent.wait`.
async fn get(
    d: &Shared,
    s: &Caller,
    p: &TokenGetParams,
    approved: Option<(String, Vec<String>)>,
    t: &mut Trace,
) -> Result<Issued, BrokerError> {
    let (agent_id, agent) = greeted(s)?;
    validate_scopes(&p.scopes).map_err(|m| BrokerError::rpc(ErrorCode::InvalidParams, m))?;
    if let Some(c) = &p.context {
        c.validate()
            .map_err(|m| BrokerError::rpc(ErrorCode::InvalidParams, m))?;
    }
    let scopes = ScopeSet::new(p.scopes.iter().cloned());

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
    let not_allowed = scopes.missing_from(&provider.allowed_scopes);
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
    let row = d.store.agent_by_id(agent_id)?.ok_or_else(|| {
        BrokerError::rpc(
            ErrorCode::AgentSuspended,
            "this agent was removed from the registry; reconnect and say hello again",
        )
    })?;
    crate::delegation::check_status(&row.name, &row.status)?;
    let rate = d.rates.hit(agent_id, d.clock.now());
    let asking = |kind| Asking {
        provider,
        resource,
        duration_secs: p.duration_secs,
        wait: p.wait.unwrap_or(true),
        kind,
        delegation: None,
        approved: approved.clone(),
    };
    let input = |scopes, depth, max_depth, chain, expires_at| InputRequest {
        method: "token.get",
        provider: &provider.name,
        provider_sensitivity: provider.sensitivity,
        scopes,
        indicator: resource,
        context: p.context.as_ref(),
        delegating_to: None,
        depth,
        max_depth,
        chain,
        expires_at,
        exe: &s.identity.exe,
        sha256: &s.identity.sha256,
        rate_last_minute: rate,
        approval: None,
        now_ns: d.clock.now_ns(),
    };

    if let Some(del) = &s.delegation {
        // A sub-agent: what its token allows, while the chain stands.
        if provider.name != del.provider {
            return Err(not_granted(
                &format!("sub-agent {:?}", agent.name),
                &del.provider,
                &del.scopes,
                &[&provider.name],
            ));
        }
        let not_granted_ = scopes.missing_from(&del.scopes);
        if !not_granted_.is_empty() {
            return Err(not_granted(
                &format!("sub-agent {:?}", agent.name),
                &provider.name,
                &del.scopes,
                &not_granted_,
            ));
        }
        crate::delegation::verify::check_live(d, del)?;
        let approval = gate::run(
            d,
            s,
            &row,
            input(
                &scopes,
                del.depth,
                del.max_depth,
                &del.chain,
                del.expires_at as i64,
            ),
            asking(ConsentKind::Approval),
            t,
        )
        .await?;
        let scopes = approval.unwrap_or_else(|| scopes.into_vec());
        // No grant row of its own: report use only when a token was fetched.
        let now = d.clock.now();
        return issue(d, s, provider, &state, &scopes, resource, None, Some(now)).await;
    }

    let grant = d
        .store
        .live_grant(agent_id, &provider.name, &s.identity.sha256)?;
    if let Some(g) = &grant {
        let not_granted_ = scopes.missing_from(&g.scopes);
        if !not_granted_.is_empty() {
            return Err(not_granted(
                &format!("agent {:?}", agent.name),
                &provider.name,
                &g.scopes,
                &not_granted_,
            ));
        }
    } else if d
        .store
        .denied(agent_id, &provider.name, &s.identity.sha256)?
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
    let own_chain = s.chain();
    let expires_at = grant
        .as_ref()
        .and_then(|g| g.expires_at)
        .unwrap_or_else(|| d.clock.now() + 3600);
    let approval = gate::run(
        d,
        s,
        &row,
        input(
            &scopes,
            0,
            d.config.delegation.max_depth,
            &own_chain,
            expires_at,
        ),
        asking(ConsentKind::Approval),
        t,
    )
    .await?;
    let (scopes, grant_id, last_used) = match (approval, grant) {
        // A person approved this very request: that is its consent.
        (Some(allowed), g) => (
            allowed,
            g.as_ref().map(|g| g.id),
            g.and_then(|g| g.last_used_at),
        ),
        (None, Some(g)) => (scopes.into_vec(), Some(g.id), g.last_used_at),
        (None, None) => {
            let (consent_id, allowed) = flow::ask(
                d,
                s,
                Ask {
                    provider,
                    scopes: &scopes,
                    resource,
                    duration_secs: p.duration_secs,
                    wait: p.wait.unwrap_or(true),
                    kind: ConsentKind::Access,
                    reasons: vec![],
                    delegation: None,
                },
            )
            .await?;
            t.consent_id = Some(consent_id);
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
    d: &Shared,
    s: &Caller,
    p: ConsentWaitParams,
) -> Result<Handed, BrokerError> {
    let (scopes, req) = flow::wait_by_id(d, s, &p.consent_id).await?;
    let params = TokenGetParams {
        provider: req.provider.clone(),
        scopes: scopes.clone(),
        resource: req.resource.clone(),
        wait: Some(false),
        duration_secs: None,
        context: None,
    };
    match req.kind {
        ConsentKind::Delegation => {
            return Err(BrokerError::rpc(
                ErrorCode::InvalidParams,
                "consent.wait hands out access tokens; for a delegation, call delegation.create again to receive the token",
            ))
        }
        ConsentKind::Approval => {
            let mut t = Trace::default();
            let r = get(d, s, &params, Some((req.id.clone(), scopes)), &mut t).await;
            return audit_outcome(d, s, &params, &t, r);
        }
        ConsentKind::Access => {}
    }
    let provider = d.config.provider(&req.provider).ok_or_else(|| {
        BrokerError::rpc(
            ErrorCode::UnknownProvider,
            format!("provider {} is no longer configured", req.provider),
        )
    })?;
    let state = login_state(d, provider)?;
    let r = issue(
        d,
        s,
        provider,
        &state,
        &scopes,
        req.resource.as_deref(),
        None,
        None,
    )
    .await;
    audit_outcome(d, s, &params, &Trace::default(), r)
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

fn login_state(
    d: &Shared,
    provider: &Provider,
) -> Result<std::sync::Arc<ProviderState>, BrokerError> {
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
    d: &Shared,
    s: &Caller,
    provider: &Provider,
    state: &ProviderState,
    scopes: &[String],
    resource: Option<&str>,
    grant_id: Option<i64>,
    last_used: Option<i64>,
) -> Result<Issued, BrokerError> {
    let (agent_id, agent) = s
        .agent
        .as_ref()
        .ok_or_else(|| BrokerError::rpc(ErrorCode::HelloRequired, "call hello first"))?;
    let not_in_login = missing(scopes, &state.login_scopes);
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

    let req = Request {
        agent_id: *agent_id,
        scopes,
        resource,
        generation: state.generation,
        now: d.clock.now().max(0) as u64,
    };
    let (tok, cached) = d.tokens.get(&d.store, provider, &req).await?;
    let now = d.clock.now();
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
    // The audit record (target valetkey::audit) already says this at info;
    // a fresh token is worth a second line, a cache hit is not.
    if cached {
        tracing::debug!(provider = %provider.name, scopes = %scopes.join(" "), "token issued from cache");
    } else {
        tracing::info!(provider = %provider.name, scopes = %scopes.join(" "), "token issued");
    }
    Ok(Handed(tok))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use valetkey_ipc::methods::TokenGetResult;
    use valetkey_ipc::AccessToken;

    #[test]
    fn a_hand_out_is_the_wire_result_byte_for_byte() {
        for resource in [None, Some("https://api.example")] {
            let tok = CachedToken {
                id: 1,
                token: Secret::new("tok\"en".into()),
                token_type: "Bearer".into(),
                expires_at: 1_772_445_600,
                scopes: vec!["a".into(), "b".into()],
                generation: 1,
                provider: "p".into(),
                resource: resource.map(str::to_owned),
            };
            let wire = TokenGetResult {
                access_token: AccessToken::new("tok\"en".into()),
                token_type: "Bearer".into(),
                expires_at: 1_772_445_600,
                scopes: vec!["a".into(), "b".into()],
                resource: resource.map(str::to_owned),
                provider: "p".into(),
            };
            assert_eq!(
                serde_json::to_string(&Handed(Arc::new(tok))).expect("json"),
                serde_json::to_string(&wire).expect("json")
            );
        }
    }
}

//! `token.get`: the steps, in order, that stand between an agent and a
//! token, each a function below. Each refusal has its own code and says
//! how to fix it:
//!
//! 1. `resolve`: valid params (`invalid_params`), a configured provider
//!    (`unknown_provider`) that allows the scopes and resource
//!    (`scope_not_allowed`);
//! 2. `ready`: issuing is not paused (`issuing_paused`), the provider has
//!    a working login (`provider_login_required`), the agent is active
//!    (`agent_suspended`, `agent_deprecated`);
//! 3. `authorize`: a sub-agent's delegation covers the provider and
//!    scopes (`scope_not_granted`) and its whole chain still stands
//!    (`delegation_revoked`); otherwise a live grant binds this agent and
//!    binary to the provider and covers every scope (`scope_not_granted`),
//!    or a remembered denial refuses at once (`consent_denied`);
//! 4. `Policy::run` ([`crate::policy`]): `policy_denied`, or a person
//!    must approve this very request (even with a grant);
//! 5. `consent`: without a grant the user is asked (see
//!    [`crate::consent::flow`]) and the agent waits or gets
//!    `consent_required` with a consent id;
//! 6. `issue`: the login covers the scopes, in full for a provider that
//!    cannot narrow (`scope_not_allowed`), then the token service: cache
//!    or one single-flight refresh.
//!
//! Every outcome, with the policy decision, is written to the audit log.
//! The caller is [`Greeted`]: dispatch refused it already if it had not
//! said hello. The in-process tests of these steps are in
//! `crate::inproc::token_get`.

use std::sync::Arc;
use valetkey_ipc::control::{ConsentKind, Event};

use valetkey_ipc::methods::{validate_scopes, ConsentWaitParams, TokenGetParams};
use valetkey_ipc::{ErrorCode, RpcError};

use crate::access::gate::{self, Asking, Trace};
use crate::broker::Shared;
use crate::caller::Greeted;
use crate::config::Provider;
use crate::consent::flow::{self, Ask};
use crate::error::BrokerError;
use crate::policy::InputRequest;
use crate::scope::{missing, ScopeSet};
use crate::store::{AgentRow, GrantRow, ProviderState};
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
pub async fn handle(d: &Shared, s: Greeted<'_>, p: TokenGetParams) -> Result<Handed, BrokerError> {
    let mut t = Trace::default();
    let r = get(d, s, &p, None, Held::ByAgent, &mut t).await;
    audit_outcome(d, s, &p, &t, r)
}

/// Who will hold the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// The agent: it must carry no more than was asked for.
    ByAgent,
    /// The egress proxy, which writes it into requests its rules allow
    /// and never lets it into the box: a provider that cannot narrow may
    /// give its full token.
    InDaemon,
}

/// A token for the egress proxy to write into a box's request: the steps
/// of `token.get`, recorded the same way. With `wait` false a person is
/// not waited for (a pending consent is `consent_required`); `approved`
/// is a one-time approval given earlier for this box (a placeholder's).
/// Returns the token and the consent it was given on, if any.
pub async fn for_proxy(
    d: &Shared,
    s: Greeted<'_>,
    provider: &str,
    scopes: &[String],
    wait: bool,
    approved: Option<(String, Vec<String>)>,
    mcp: Option<Arc<valetkey_ipc::policy::PolicyMcp>>,
) -> Result<(Handed, Option<String>), BrokerError> {
    let p = TokenGetParams {
        provider: provider.into(),
        scopes: scopes.to_vec(),
        resource: None,
        wait: Some(wait),
        duration_secs: None,
        context: None,
    };
    let mut t = Trace {
        mcp,
        ..Trace::default()
    };
    let r = get(d, s, &p, approved, Held::InDaemon, &mut t).await;
    let consent = t.consent_id.clone();
    audit_outcome(d, s, &p, &t, r).map(|h| (h, consent))
}

/// Records the outcome before the answer goes out. A repeat hand-out of a
/// token this connection already got is counted, not written (see
/// [`crate::audit::reuse`]); everything else is written durably first, and
/// a hand-out that cannot be recorded is refused (fail closed).
fn audit_outcome(
    d: &Shared,
    s: Greeted<'_>,
    p: &TokenGetParams,
    t: &Trace,
    r: Result<Issued, BrokerError>,
) -> Result<Handed, BrokerError> {
    if let Ok(res) = &r {
        let now = d.clock.now();
        if t.consent_id.is_none() && d.reuse.repeat(res.0.id, s.session, now) {
            counted(d, s, t, &res.0, now);
            return r;
        }
    }
    let r = r.map_err(RpcError::from);
    let mut rec = crate::audit::about(&s, "token.get");
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
fn counted(d: &Shared, s: Greeted<'_>, t: &Trace, res: &CachedToken, now: i64) {
    crate::observe::repeat(
        d,
        &crate::observe::Repeat {
            agent: &s.agent.name,
            provider: &res.provider,
            scopes: &res.scopes,
            action: t.action.as_deref(),
            resource_owner: t.resource_owner.as_deref(),
            depth: s.delegation.as_ref().map_or(0, |del| del.depth),
            now,
        },
    );
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

/// The steps, in order; `approved` carries a person's approval from
/// `consent.wait`.
async fn get(
    d: &Shared,
    s: Greeted<'_>,
    p: &TokenGetParams,
    approved: Option<(String, Vec<String>)>,
    held: Held,
    t: &mut Trace,
) -> Result<Issued, BrokerError> {
    let provider = d
        .provider(&p.provider)
        .ok_or_else(|| unknown_provider(d, &p.provider))?;
    let r = resolve(p, &provider)?;
    crate::boxes::require(d, &s.identity, &r.provider.name)?;
    let (state, row) = ready(d, s, r.provider)?;
    let authority = authorize(d, s, &r, held)?;
    let policy = Policy {
        row: &row,
        params: p,
        approved,
    };
    let approval = policy.run(d, s, &r, &authority, t).await?;
    let (scopes, grant_id, last_used) = match (authority, approval) {
        // A sub-agent has no grant row of its own: its use is reported
        // only when a token was fetched.
        (Authority::Delegated, approval) => (
            approval.unwrap_or_else(|| r.scopes.to_vec()),
            None,
            Some(d.clock.now()),
        ),
        // A person approved this very request: that is its consent.
        (Authority::Granted(g), Some(allowed)) => (allowed, Some(g.id), g.last_used_at),
        (Authority::Ungranted, Some(allowed)) => (allowed, None, None),
        (Authority::Granted(g), None) => (r.scopes.to_vec(), Some(g.id), g.last_used_at),
        // Boxed: asking is rare, and its future is large.
        (Authority::Ungranted, None) => {
            (Box::pin(consent(d, s, &r, p, held, t)).await?, None, None)
        }
    };
    let i = Issue {
        provider: r.provider,
        state: &state,
        scopes: &scopes,
        resource: r.resource,
        grant_id,
        last_used,
        held,
    };
    issue(d, s, i).await
}

/// What a request names, checked against the config.
struct Resolved<'a> {
    provider: &'a Provider,
    scopes: ScopeSet,
    resource: Option<&'a str>,
}

/// Step 1: valid params, and a provider that allows the scopes and the
/// resource.
fn resolve<'a>(p: &'a TokenGetParams, provider: &'a Provider) -> Result<Resolved<'a>, BrokerError> {
    validate_scopes(&p.scopes).map_err(|m| BrokerError::rpc(ErrorCode::InvalidParams, m))?;
    if let Some(c) = &p.context {
        c.validate()
            .map_err(|m| BrokerError::rpc(ErrorCode::InvalidParams, m))?;
    }
    let scopes = ScopeSet::new(p.scopes.iter().cloned());
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
    Ok(Resolved {
        provider,
        scopes,
        resource,
    })
}

fn unknown_provider(d: &Shared, name: &str) -> BrokerError {
    let known = d.provider_names();
    RpcError::new(
        ErrorCode::UnknownProvider,
        format!(
            "no provider named {name:?} is configured (configured: {}); add it to {}, or add an MCP server with `valetkey mcp add`",
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            },
            d.config.path.display()
        ),
    )
    .with("provider", name)
    .into()
}

/// Step 2: issuing is on, the provider has a working login, and the
/// agent is active.
fn ready(
    d: &Shared,
    s: Greeted<'_>,
    provider: &Provider,
) -> Result<(Arc<ProviderState>, Arc<AgentRow>), BrokerError> {
    if d.paused() {
        return Err(BrokerError::rpc(
            ErrorCode::IssuingPaused,
            "the user paused all issuing; nothing is handed out until they resume (tray menu, or `valetkey resume`)",
        ));
    }
    let state = login_state(d, provider)?;
    let row = d.store.agent_by_id(s.id)?.ok_or_else(|| {
        BrokerError::rpc(
            ErrorCode::AgentSuspended,
            "this agent was removed from the registry; reconnect and say hello again",
        )
    })?;
    crate::delegation::check_status(&row.name, &row.status)?;
    Ok((state, row))
}

/// What stands behind a request.
enum Authority {
    /// A sub-agent's delegation, checked live.
    Delegated,
    /// A standing grant that covers the scopes.
    Granted(Arc<GrantRow>),
    /// Nothing yet: unless the policy asks a person, the user is asked.
    Ungranted,
}

/// Step 3: a sub-agent's delegation covers the provider and scopes and
/// its chain stands; otherwise a live grant for this agent and binary
/// covers every scope, or a remembered denial refuses at once. A grant
/// allowed for an egress proxy serves the proxy only: for a token the
/// agent would hold, it is as if there were none, and the user is asked.
fn authorize(
    d: &Shared,
    s: Greeted<'_>,
    r: &Resolved<'_>,
    held: Held,
) -> Result<Authority, BrokerError> {
    let provider = &r.provider.name;
    if let Some(del) = &s.delegation {
        let who = format!("sub-agent {:?}", s.agent.name);
        if *provider != del.provider {
            return Err(not_granted(&who, &del.provider, &del.scopes, &[provider]));
        }
        let missing = r.scopes.missing_from(&del.scopes);
        if !missing.is_empty() {
            return Err(not_granted(&who, provider, &del.scopes, &missing));
        }
        crate::delegation::verify::check_live(d, del)?;
        return Ok(Authority::Delegated);
    }
    let sha = s.identity.binding();
    let grant = d.store.live_grant(s.id, provider, sha)?;
    if let Some(g) = grant.filter(|g| !g.proxy_only || held == Held::InDaemon) {
        let missing = r.scopes.missing_from(&g.scopes);
        if !missing.is_empty() {
            let who = format!("agent {:?}", s.agent.name);
            return Err(not_granted(&who, provider, &g.scopes, &missing));
        }
        return Ok(Authority::Granted(g));
    }
    if d.store.denied(s.id, provider, sha)? {
        return Err(RpcError::new(
            ErrorCode::ConsentDenied,
            format!(
                "the user denied {:?} access to {provider} and asked to remember it; `valetkey reinstate {}` forgets that",
                s.agent.name, s.agent.name
            ),
        )
        .with("remembered", true)
        .into());
    }
    Ok(Authority::Ungranted)
}

/// Step 4: the policy, for what the authority allows.
struct Policy<'p> {
    row: &'p Arc<AgentRow>,
    params: &'p TokenGetParams,
    approved: Option<(String, Vec<String>)>,
}

impl Policy<'_> {
    /// `Ok(None)`: allowed. `Ok(Some(scopes))`: a person approved this
    /// request, for these scopes.
    async fn run(
        self,
        d: &Shared,
        s: Greeted<'_>,
        r: &Resolved<'_>,
        authority: &Authority,
        t: &mut Trace,
    ) -> Result<Option<Vec<String>>, BrokerError> {
        // One reading of the clock for the whole step.
        let now_ns = d.clock.now_ns();
        let now = now_ns.div_euclid(1_000_000_000);
        let own_chain;
        let (depth, max_depth, chain, expires_at) = match (authority, &s.delegation) {
            (Authority::Delegated, Some(del)) => (
                del.depth,
                del.max_depth,
                &del.chain[..],
                del.expires_at as i64,
            ),
            _ => {
                own_chain = s.chain();
                let expires_at = match authority {
                    Authority::Granted(g) => g.expires_at,
                    _ => None,
                };
                (
                    0,
                    d.config.delegation.max_depth,
                    &own_chain[..],
                    expires_at.unwrap_or(now + 3600),
                )
            }
        };
        let p = self.params;
        let mcp = t.mcp.clone();
        let input = InputRequest {
            method: "token.get",
            provider: &r.provider.name,
            provider_sensitivity: r.provider.sensitivity,
            scopes: &r.scopes,
            indicator: r.resource,
            context: p.context.as_ref(),
            delegating_to: None,
            depth,
            max_depth,
            chain,
            expires_at,
            exe: &s.identity.exe,
            sha256: &s.identity.sha256,
            confinement: s.identity.confinement.as_ref(),
            rate_last_minute: d.rates.hit(s.id, now),
            approval: None,
            now_ns,
            mcp: mcp.as_deref(),
        };
        let asking = Asking {
            provider: r.provider,
            resource: r.resource,
            duration_secs: p.duration_secs,
            wait: p.wait.unwrap_or(true),
            kind: ConsentKind::Approval,
            delegation: None,
            approved: self.approved,
        };
        gate::run(d, s, self.row, input, asking, t).await
    }
}

/// Step 5, without a grant: the user is asked (see
/// [`crate::consent::flow`]); the token carries what they allowed.
async fn consent(
    d: &Shared,
    s: Greeted<'_>,
    r: &Resolved<'_>,
    p: &TokenGetParams,
    held: Held,
    t: &mut Trace,
) -> Result<Vec<String>, BrokerError> {
    let ask = Ask {
        provider: r.provider,
        scopes: &r.scopes,
        resource: r.resource,
        duration_secs: p.duration_secs,
        wait: p.wait.unwrap_or(true),
        kind: ConsentKind::Access,
        reasons: vec![],
        delegation: None,
        proxy_only: held == Held::InDaemon,
    };
    let (consent_id, allowed) = flow::ask(d, s, ask).await?;
    t.consent_id = Some(consent_id);
    Ok(allowed)
}

/// Handles `consent.wait`: waits for a consent `token.get` opened with
/// `wait: false`, then issues what the user allowed.
pub async fn handle_wait(
    d: &Shared,
    s: Greeted<'_>,
    p: ConsentWaitParams,
) -> Result<Handed, BrokerError> {
    if s.in_proxy_box() {
        return Err(BrokerError::proxy_only(
            "any provider",
            "consent.wait hands out tokens, and a box in proxy mode gets none: call token.get again (it waits, and answers with a placeholder)",
        ));
    }
    let (scopes, req) = flow::wait_by_id(d, s, &p.consent_id).await?;
    if req.proxy_only {
        return Err(BrokerError::proxy_only(
            &req.provider,
            "this consent was asked for a box's egress proxy, and what it allows serves the proxy only",
        ));
    }
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
            let r = get(
                d,
                s,
                &params,
                Some((req.id.clone(), scopes)),
                Held::ByAgent,
                &mut t,
            )
            .await;
            return audit_outcome(d, s, &params, &t, r);
        }
        ConsentKind::Access => {}
    }
    let provider = d.provider(&req.provider).ok_or_else(|| {
        BrokerError::rpc(
            ErrorCode::UnknownProvider,
            format!("provider {} is no longer configured", req.provider),
        )
    })?;
    let state = login_state(d, &provider)?;
    let issue_ = Issue {
        provider: &provider,
        state: &state,
        scopes: &scopes,
        resource: req.resource.as_deref(),
        grant_id: None,
        last_used: None,
        held: Held::ByAgent,
    };
    let r = issue(d, s, issue_).await;
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

/// What step 6 issues.
struct Issue<'a> {
    provider: &'a Provider,
    state: &'a ProviderState,
    scopes: &'a [String],
    resource: Option<&'a str>,
    /// The grant behind it.
    grant_id: Option<i64>,
    /// When its use was last reported: a cache hit is reported again
    /// only a minute later (`None`: on every hit).
    last_used: Option<i64>,
    /// Who will hold the token.
    held: Held,
}

/// Step 6: the scopes are allowed; the login must cover them (in full, for
/// a provider that cannot narrow), then the token service hands out a
/// cached token or refreshes once, for the scopes without repositories;
/// where GitHub narrows tokens, it then narrows that one to the scopes.
async fn issue(d: &Shared, s: Greeted<'_>, i: Issue<'_>) -> Result<Issued, BrokerError> {
    let narrow = login_covers(i.provider, i.state, i.scopes, i.held)?;
    let now = d.clock.now();
    // Scopes naming a repository are fetched without it (only the proxy
    // or GitHub's narrowing limit them); the hot path allocates nothing.
    let base;
    let fetched = if i.scopes.iter().any(|x| crate::scope::limited(x).is_some()) {
        base =
            crate::scope::ScopeSet::new(i.scopes.iter().map(|x| crate::scope::base(x).to_owned()));
        &base[..]
    } else {
        i.scopes
    };
    let req = Request {
        agent_id: s.id,
        scopes: fetched,
        resource: i.resource,
        generation: i.state.generation,
        now: now.max(0) as u64,
    };
    let (mut tok, mut cached) = d.tokens.get(&d.store, i.provider, &req).await?;
    if let Some((url, body)) = narrow {
        let req = Request {
            scopes: i.scopes,
            ..req
        };
        let (n, hit) = Box::pin(d.tokens.narrowed(i.provider, &url, &tok, &req, &body)).await?;
        (tok, cached) = (n, hit);
    }
    // Keep the hot path free of writes: record use at most once a minute.
    if !cached || i.last_used.is_none_or(|t| now - t >= 60) {
        if let Some(g) = i.grant_id {
            d.store.touch_grant(g)?;
        }
        d.events.emit(
            &d.store,
            Event::TokenIssued {
                agent: s.agent.name.clone(),
                provider: i.provider.name.clone(),
                scopes: tok.scopes.clone(),
            },
        );
    }
    // The audit record (target valetkey::audit) already says this at info;
    // a fresh token is worth a second line, a cache hit is not.
    let (provider, scopes) = (&i.provider.name, i.scopes.join(" "));
    if cached {
        tracing::debug!(%provider, %scopes, "token issued from cache");
    } else {
        tracing::info!(%provider, %scopes, "token issued");
    }
    Ok(Handed(tok))
}

/// How GitHub narrows a token for `scopes`: its `token/scoped` URL and
/// the request's body (`None`: it does not, for this provider or these
/// scopes).
type Narrowing = Option<(String, serde_json::Value)>;

fn login_covers(
    provider: &Provider,
    state: &ProviderState,
    scopes: &[String],
    held: Held,
) -> Result<Narrowing, BrokerError> {
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
    let at_github = provider
        .narrows_at_github()
        .and_then(|url| Some((url, crate::oauth::github::scoped_body(scopes)?)));
    if at_github.is_some() {
        return Ok(at_github);
    }
    let limited = scopes.iter().any(|s| crate::scope::limited(s).is_some());
    if limited && held == Held::ByAgent {
        return Err(BrokerError::rpc(
            ErrorCode::ScopeNotAllowed,
            format!(
                "{} cannot limit a token to a repository itself, so a scope naming one is served only through the egress proxy (valetkey run --net proxy), which enforces it",
                provider.name
            ),
        ));
    }
    if provider.narrows_on_refresh || provider.allow_full_scope || held == Held::InDaemon {
        return Ok(None);
    }
    let mut full: Vec<String> = state
        .login_scopes
        .iter()
        .filter(|s| provider.allowed_scopes.contains(s))
        .cloned()
        .collect();
    full.sort();
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
    Ok(None)
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
                placeholder: false,
            };
            assert_eq!(
                serde_json::to_string(&Handed(Arc::new(tok))).expect("json"),
                serde_json::to_string(&wire).expect("json")
            );
        }
    }
}

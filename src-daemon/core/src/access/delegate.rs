//! `delegation.create` and `jwks`.
//!
//! The checks for a new delegation, in order, each with its own refusal:
//! the params (`invalid_params`); the issuer is active (`agent_suspended`,
//! `agent_deprecated`); what the issuer holds: its own grant, or its own
//! delegation, still standing (`scope_not_granted`, `delegation_revoked`);
//! the request is inside it: the same provider and a subset of the scopes
//! (`scope_not_granted`), no later expiry (`delegation_refused`,
//! reason `ttl`), not deeper than the limit (`delegation_refused`, reason
//! `depth`), no agent twice in the chain (reason `cycle`); then the
//! policy, which asks a person for any level below depth 2. The token's
//! row is written before the token leaves the daemon.

use std::sync::Arc;

use base64::Engine as _;
use valetkey_ipc::control::{ConsentKind, DelegationAsk, Event};
use valetkey_ipc::methods::{
    validate_scopes, AgentInfo, DelegationCreateParams, DelegationCreateResult, JwkSet,
};
use valetkey_ipc::{DelegationToken, ErrorCode, RpcError};

use crate::access::gate::{self, Asking, Trace};
use crate::broker::Shared;
use crate::caller::Greeted;
use crate::config::Provider;
use crate::delegation::{self, jws};
use crate::error::BrokerError;
use crate::policy::InputRequest;
use crate::scope::ScopeSet;
use crate::store::{AgentRow, NewDelegation};

fn refused(reason: &str, message: String) -> BrokerError {
    RpcError::new(ErrorCode::DelegationRefused, message)
        .with("reason", reason)
        .into()
}

/// What the issuer holds.
struct Parent {
    provider: String,
    scopes: Vec<String>,
    expires_at: i64,
    depth: u32,
    max_depth: u32,
    chain: Vec<String>,
    jti: Option<String>,
    root_grant_id: i64,
}

fn parent_of(d: &Shared, s: Greeted<'_>, provider: &str) -> Result<Parent, BrokerError> {
    let (agent_id, agent) = (&s.id, s.agent);
    if s.in_proxy_box() {
        return Err(BrokerError::proxy_only(
            provider,
            "a box in proxy mode cannot delegate: a sub-agent's token.get would hand out the raw token it holds none of",
        ));
    }
    if let Some(del) = &s.delegation {
        delegation::verify::check_live(d, del)?;
        return Ok(Parent {
            provider: del.provider.clone(),
            scopes: del.scopes.clone(),
            expires_at: del.expires_at as i64,
            depth: del.depth,
            max_depth: del.max_depth,
            chain: del.chain.clone(),
            jti: Some(del.jti.clone()),
            root_grant_id: del.root_grant_id,
        });
    }
    let g = d
        .store
        .live_grant(*agent_id, provider, s.identity.binding())?
        .ok_or_else(|| {
            BrokerError::Rpc(
                RpcError::new(
                    ErrorCode::ScopeNotGranted,
                    format!(
                        "agent {:?} has no grant on {provider} to delegate from; get one first (token.get asks the user)",
                        agent.name
                    ),
                )
                .with("granted", Vec::<String>::new()),
            )
        })?;
    if g.proxy_only {
        return Err(BrokerError::proxy_only(
            provider,
            "the grant was allowed for a box's egress proxy only, and a sub-agent would get raw tokens under it; ask for a grant with token.get outside a proxy box",
        ));
    }
    let cap = d.clock.now() + delegation::verify::max_ttl_secs(d);
    Ok(Parent {
        provider: provider.to_owned(),
        scopes: g.scopes.clone(),
        expires_at: g.expires_at.map_or(cap, |e| e.min(cap)),
        depth: 0,
        max_depth: d.config.delegation.max_depth,
        chain: crate::audit::chain_of(&s),
        jti: None,
        root_grant_id: g.id,
    })
}

/// Handles `delegation.create`, and records the outcome.
pub async fn create(
    d: &Shared,
    s: Greeted<'_>,
    p: DelegationCreateParams,
) -> Result<DelegationCreateResult, BrokerError> {
    let mut t = Trace::default();
    let r = create_inner(d, s, &p, &mut t).await.map_err(RpcError::from);
    let mut rec = crate::audit::about(&s, "delegation.create");
    rec.provider = Some(p.provider.clone());
    rec.scopes = p.scopes.clone();
    t.fill(&mut rec);
    match &r {
        Ok(res) => {
            rec.granted = res.scopes.clone();
            rec.chain = res.chain.clone();
            rec.outcome = "created".into();
            rec.detail = Some(format!(
                "jti {} depth {} ttl until {}",
                res.jti, res.depth, res.expires_at
            ));
        }
        Err(e) => rec.outcome = format!("refused:{}", e.name()),
    }
    // Fail closed: an unrecorded delegation is not handed out.
    crate::observe::record(d, rec)?;
    r.map_err(BrokerError::Rpc)
}

async fn create_inner(
    d: &Shared,
    s: Greeted<'_>,
    p: &DelegationCreateParams,
    t: &mut Trace,
) -> Result<DelegationCreateResult, BrokerError> {
    let (provider, row) = admit(d, s, p)?;
    let parent = parent_of(d, s, &provider.name)?;
    let scopes = ScopeSet::new(p.scopes.iter().cloned());
    let shape = shape(
        p,
        &provider.name,
        &parent,
        &scopes,
        &s.agent.name,
        d.clock.now(),
    )?;
    let scopes = approve(d, s, &row, &provider, p, &shape, scopes, t).await?;
    issue(d, s, p, &provider.name, &parent, shape, scopes).await
}

/// The request's own checks: its names, scopes and lifetime well formed,
/// the provider known, the agent and its sub-agent not suspended, and
/// the caller's box (if the provider requires one).
fn admit(
    d: &Shared,
    s: Greeted<'_>,
    p: &DelegationCreateParams,
) -> Result<(Arc<Provider>, Arc<AgentRow>), BrokerError> {
    let invalid = |m: String| BrokerError::rpc(ErrorCode::InvalidParams, m);
    AgentInfo {
        name: p.sub_agent.clone(),
        version: String::new(),
        purpose: String::new(),
    }
    .validate()
    .map_err(|m| invalid(m.replace("agent.name", "sub_agent")))?;
    validate_scopes(&p.scopes).map_err(invalid)?;
    if p.ttl_secs == 0 {
        return Err(invalid("ttl_secs must be at least 1".into()));
    }
    let provider = d.provider(&p.provider).ok_or_else(|| {
        BrokerError::rpc(
            ErrorCode::UnknownProvider,
            format!("no provider named {:?} is configured", p.provider),
        )
    })?;
    let row = d.store.agent_by_id(s.id)?.ok_or_else(|| {
        BrokerError::rpc(
            ErrorCode::AgentSuspended,
            "this agent was removed from the registry",
        )
    })?;
    delegation::check_status(&row.name, &row.status)?;
    if let Some(sub) = d.store.agent_by_name(&p.sub_agent)? {
        delegation::check_status(&sub.name, &sub.status)?;
    }
    crate::boxes::require(d, &s.identity, &provider.name)?;
    Ok((provider, row))
}

/// Where the new link sits in its chain.
struct Shape {
    now: i64,
    expires_at: i64,
    depth: u32,
    max_depth: u32,
    /// `agent:SUB`.
    sub: String,
    /// The parent's chain with `sub` at its end.
    chain: Vec<String>,
}

/// What the chain allows the new link: a subset of the parent's scopes
/// for the same provider, a lifetime within the parent's, a depth within
/// the chain's limit, and no agent twice.
fn shape(
    p: &DelegationCreateParams,
    provider: &str,
    parent: &Parent,
    scopes: &ScopeSet,
    agent: &str,
    now: i64,
) -> Result<Shape, BrokerError> {
    within_parent(provider, parent, scopes, agent)?;
    let ttl = i64::try_from(p.ttl_secs).unwrap_or(i64::MAX);
    let expires_at = now.saturating_add(ttl);
    if expires_at > parent.expires_at {
        let left = (parent.expires_at - now).max(0);
        return Err(RpcError::new(
            ErrorCode::DelegationRefused,
            format!(
                "ttl_secs {} would outlive {agent:?}'s own access, which ends in {left} s; ask for at most that",
                p.ttl_secs
            ),
        )
        .with("reason", "ttl")
        .with("max_ttl_secs", left)
        .into());
    }
    let (depth, max_depth) = depths(p, parent)?;
    let sub = format!("agent:{}", p.sub_agent);
    if parent.chain.contains(&sub) {
        return Err(refused(
            "cycle",
            format!("{sub} is already in the chain {}", parent.chain.join(" → ")),
        ));
    }
    let mut chain = parent.chain.clone();
    chain.push(sub.clone());
    Ok(Shape {
        now,
        expires_at,
        depth,
        max_depth,
        sub,
        chain,
    })
}

/// The same provider as the parent's access, and scopes within it.
fn within_parent(
    provider: &str,
    parent: &Parent,
    scopes: &ScopeSet,
    agent: &str,
) -> Result<(), BrokerError> {
    if parent.provider != provider {
        return Err(RpcError::new(
            ErrorCode::ScopeNotGranted,
            format!(
                "this connection's access is for {}, not {provider}",
                parent.provider
            ),
        )
        .into());
    }
    let outside = scopes.missing_from(&parent.scopes);
    if outside.is_empty() {
        return Ok(());
    }
    Err(RpcError::new(
        ErrorCode::ScopeNotGranted,
        format!(
            "a sub-agent can only get a subset of what {agent:?} holds ({}); not {}",
            parent.scopes.join(" "),
            outside.join(" ")
        ),
    )
    .with("missing", &outside)
    .with("granted", &parent.scopes)
    .into())
}

/// The new link's depth, and the limit it passes on (at most the chain's,
/// at least its own depth).
fn depths(p: &DelegationCreateParams, parent: &Parent) -> Result<(u32, u32), BrokerError> {
    let depth = parent.depth + 1;
    if depth > parent.max_depth {
        return Err(refused(
            "depth",
            format!(
                "a delegation at depth {depth} is beyond this chain's limit of {}; delegate from higher up instead",
                parent.max_depth
            ),
        ));
    }
    let max_depth = match p.max_depth {
        None => parent.max_depth,
        Some(m) if m > parent.max_depth => {
            return Err(refused(
                "depth",
                format!(
                    "max_depth {m} is beyond this chain's limit of {}",
                    parent.max_depth
                ),
            ))
        }
        Some(m) if m < depth => {
            return Err(BrokerError::rpc(
                ErrorCode::InvalidParams,
                format!("max_depth {m} is above the new token's own depth {depth}"),
            ))
        }
        Some(m) => m,
    };
    Ok((depth, max_depth))
}

/// The policy and, where it asks, the user: the scopes approved.
#[allow(clippy::too_many_arguments)]
async fn approve(
    d: &Shared,
    s: Greeted<'_>,
    row: &Arc<AgentRow>,
    provider: &Arc<Provider>,
    p: &DelegationCreateParams,
    shape: &Shape,
    scopes: ScopeSet,
    t: &mut Trace,
) -> Result<Vec<String>, BrokerError> {
    let input = InputRequest {
        method: "delegation.create",
        provider: &provider.name,
        provider_sensitivity: provider.sensitivity,
        scopes: &scopes,
        indicator: provider.resource.as_deref(),
        context: None,
        delegating_to: Some(&p.sub_agent),
        depth: shape.depth,
        max_depth: shape.max_depth,
        chain: &shape.chain,
        expires_at: shape.expires_at,
        exe: &s.identity.exe,
        sha256: &s.identity.sha256,
        confinement: s.identity.confinement.as_ref(),
        rate_last_minute: d.rates.hit(s.id, d.clock.now()),
        approval: None,
        now_ns: d.clock.now_ns(),
        mcp: None,
    };
    let asking = Asking {
        provider,
        resource: provider.resource.as_deref(),
        duration_secs: Some(p.ttl_secs),
        wait: p.wait.unwrap_or(true),
        kind: ConsentKind::Delegation,
        delegation: Some(DelegationAsk {
            sub_agent: p.sub_agent.clone(),
            depth: shape.depth,
            chain: shape.chain.clone(),
            ttl_secs: p.ttl_secs,
        }),
        approved: None,
    };
    let approval = gate::run(d, s, row, input, asking, t).await?;
    // The seed article's rule, kept in code as well as in the built-in
    // policy: a level below depth 2 never goes out without a person.
    if shape.depth > 2 && approval.is_none() {
        return Err(RpcError::new(
            ErrorCode::PolicyDenied,
            "a delegation below depth 2 needs a person's approval, and the policy did not ask for one",
        )
        .with("rule", "valetkeyd.depth_approval")
        .into());
    }
    Ok(approval.unwrap_or_else(|| scopes.into_vec()))
}

/// Signs the delegation token, stores the link, and announces it.
async fn issue(
    d: &Shared,
    s: Greeted<'_>,
    p: &DelegationCreateParams,
    provider: &str,
    parent: &Parent,
    shape: Shape,
    scopes: Vec<String>,
) -> Result<DelegationCreateResult, BrokerError> {
    let (kid, key) = d.signer.current(&d.store, &*d.keychain).await?;
    let jti = new_jti()?;
    let aud = delegation::audience(&d.store)?;
    let claims = jws::Claims {
        iss: aud.clone(),
        aud,
        sub: shape.sub.clone(),
        act: jws::Claims::act_of(&parent.chain)
            .ok_or_else(|| BrokerError::rpc(ErrorCode::Internal, "empty delegation chain"))?,
        scope: scopes.join(" "),
        exp: shape.expires_at,
        iat: shape.now,
        nbf: shape.now,
        jti: jti.clone(),
        vk_grant: parent.root_grant_id,
        vk_provider: provider.to_owned(),
        vk_depth: shape.depth,
        vk_max_depth: shape.max_depth,
        vk_parent: parent.jti.clone(),
    };
    d.store.insert_delegation(&NewDelegation {
        jti: &jti,
        parent_jti: parent.jti.as_deref(),
        root_grant_id: parent.root_grant_id,
        issuer_agent_id: s.id,
        sub_agent: &p.sub_agent,
        provider,
        scopes: &scopes,
        depth: shape.depth,
        max_depth: shape.max_depth,
        kid: &kid,
        expires_at: shape.expires_at,
    })?;
    let token = jws::sign(&kid, &key, &claims);
    let Shape { chain, depth, .. } = shape;
    tracing::info!(chain = %chain.join(" → "), jti, depth, "delegation created");
    d.events.emit(
        &d.store,
        Event::DelegationCreated {
            chain: chain.clone(),
            provider: provider.to_owned(),
            scopes: scopes.clone(),
            jti: jti.clone(),
        },
    );
    Ok(DelegationCreateResult {
        token: DelegationToken::new(token),
        jti,
        kid,
        expires_at: shape.expires_at as u64,
        depth,
        max_depth: shape.max_depth,
        provider: provider.to_owned(),
        scopes,
        chain,
    })
}

/// A fresh token id: 16 random bytes, base64url.
fn new_jti() -> Result<String, BrokerError> {
    let mut b = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| BrokerError::rpc(ErrorCode::Internal, "no randomness"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// Handles `jwks`.
pub fn jwks(d: &Shared) -> Result<JwkSet, BrokerError> {
    crate::delegation::keys::jwks(&d.store, delegation::verify::max_ttl_secs(d))
}

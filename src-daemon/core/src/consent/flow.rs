//! Asking, waiting, deciding, timing out.
//!
//! Order matters for "nothing half-made": on allow, the grant row is
//! written first and the consent settled second; if the consent was
//! already settled (a timeout won the race), the new grant is deleted
//! again before the call returns.

use std::time::Duration;

use valetkey_ipc::control::{
    ConsentDecideResult, ConsentKind, ConsentOutcome, ConsentRequest, Decision, DelegationAsk,
    Event,
};
use valetkey_ipc::{ErrorCode, RpcError};

use super::manager::{Asked, Lookup, Refusal, Resolution};
use crate::broker::Shared;
use crate::caller::Greeted;
use crate::config::{OnLock, Provider};
use crate::error::BrokerError;
use crate::scope::ScopeSet;
use crate::store::{GrantFilter, NewGrant};

/// Shortest and longest "allow for" durations.
const MIN_FOR: u64 = 60;
const MAX_FOR: u64 = 30 * 24 * 3600;

/// What an agent asked for, before a consent exists.
pub struct Ask<'a> {
    /// The provider.
    pub provider: &'a Provider,
    /// Sorted scopes.
    pub scopes: &'a [String],
    /// Resource indicator.
    pub resource: Option<&'a str>,
    /// The agent's duration hint.
    pub duration_secs: Option<u64>,
    /// Wait for the decision.
    pub wait: bool,
    /// Access, a policy's approval, or a delegation.
    pub kind: ConsentKind,
    /// The policy's reasons, shown to the user.
    pub reasons: Vec<String>,
    /// For a delegation: who gets what.
    pub delegation: Option<DelegationAsk>,
    /// Asked for an egress proxy: a grant made here serves the proxy only.
    pub proxy_only: bool,
}

fn outcome_of(r: &Resolution) -> ConsentOutcome {
    match r {
        Resolution::Allowed { .. } => ConsentOutcome::Allowed,
        Resolution::Denied => ConsentOutcome::Denied,
        Resolution::TimedOut => ConsentOutcome::TimedOut,
        Resolution::UserAway => ConsentOutcome::UserAway,
        Resolution::Withdrawn => ConsentOutcome::Withdrawn,
    }
}

/// Settles `id` and tells everyone. Returns false if it was not pending.
fn settle(d: &Shared, id: &str, r: Resolution) -> bool {
    let Some(req) = d.consents.resolve(id, r.clone()) else {
        return false;
    };
    let (decision, scopes) = match &r {
        Resolution::Allowed {
            decision, scopes, ..
        } => (Some(*decision), scopes.clone()),
        Resolution::Denied => (Some(Decision::Deny { remember: false }), vec![]),
        _ => (None, vec![]),
    };
    tracing::info!(consent = id, agent = %req.agent.name, outcome = ?outcome_of(&r), "consent settled");
    d.events.emit(
        &d.store,
        Event::ConsentDecided {
            id: id.to_owned(),
            agent: req.agent.name.clone(),
            outcome: outcome_of(&r),
            decision,
            scopes,
        },
    );
    true
}

/// What a resolution means for the waiting agent: the allowed scopes, or
/// the refusal.
pub fn result_of(r: &Resolution, req: &ConsentRequest) -> Result<Vec<String>, BrokerError> {
    match r {
        Resolution::Allowed { scopes, .. } => Ok(scopes.clone()),
        Resolution::Denied => Err(RpcError::new(
            ErrorCode::ConsentDenied,
            format!(
                "the user denied {} access to {} on {}",
                req.agent.name,
                req.scopes.join(" "),
                req.provider
            ),
        )
        .with("consent_id", &req.id)
        .into()),
        Resolution::TimedOut => Err(RpcError::new(
            ErrorCode::ConsentTimeout,
            format!(
                "nobody answered the consent prompt for {} within the timeout; nothing was granted. Ask again when the user is at the screen",
                req.agent.name
            ),
        )
        .with("consent_id", &req.id)
        .into()),
        Resolution::UserAway => Err(RpcError::new(
            ErrorCode::UserAway,
            "the user's session is locked, and consents are refused while it is (consent.on_lock = \"refuse\"); try again later",
        )
        .with("consent_id", &req.id)
        .into()),
        // Nobody is waiting by then; said for completeness.
        Resolution::Withdrawn => Err(RpcError::new(
            ErrorCode::ConsentTimeout,
            format!(
                "the consent prompt for {} was withdrawn: the request that asked for it ended first; nothing was granted. Ask again",
                req.agent.name
            ),
        )
        .with("consent_id", &req.id)
        .into()),
    }
}

fn user_away() -> BrokerError {
    BrokerError::rpc(
        ErrorCode::UserAway,
        "the user's session is locked, and consents are refused while it is (consent.on_lock = \"refuse\"); try again later",
    )
}

/// Opens (or joins) a consent for this request and, unless `wait` is off,
/// waits for it. Returns the consent id and the scopes the user allowed.
pub async fn ask(
    d: &Shared,
    s: Greeted<'_>,
    a: Ask<'_>,
) -> Result<(String, Vec<String>), BrokerError> {
    let (agent_id, agent) = (s.id, s.agent);
    if d.locked() && d.config.consent.on_lock == OnLock::Refuse {
        return Err(user_away());
    }
    let request = ConsentRequest {
        id: String::new(),
        agent_id,
        agent: agent.clone(),
        exe: s.identity.exe.clone(),
        exe_unverified: s.identity.exe_unverified,
        foreign_namespaces: s.identity.foreign_namespaces.clone(),
        sha256: s.identity.binding().to_owned(),
        confinement: s.identity.confinement.clone(),
        pid: s.identity.pid,
        parents: s.identity.parents.clone(),
        provider: a.provider.name.clone(),
        provider_display: a.provider.display_name.clone(),
        scopes: a.scopes.to_vec(),
        resource: a.resource.map(str::to_owned),
        duration_secs: a.duration_secs,
        created_at: 0,
        expires_at: 0,
        requests: 0,
        kind: a.kind,
        in_words: crate::proxy::in_words(a.provider, a.scopes),
        action: crate::proxy::action(a.provider, a.scopes),
        proxy_only: a.proxy_only,
        limit: crate::proxy::limit(a.provider, a.scopes, s.proxied()),
        reasons: a.reasons,
        delegation: a.delegation,
    };
    let asked = match d.consents.ask(request) {
        Ok(a) => a,
        Err(Refusal::Flood { first }) => {
            if first {
                tracing::warn!(agent = %agent.name, "consent flood: refusing prompts");
                d.events.emit(
                    &d.store,
                    Event::ConsentFlood {
                        agent: agent.name.clone(),
                    },
                );
            }
            return Err(BrokerError::rpc(
                ErrorCode::ConsentRateLimited,
                format!(
                    "{} has asked for consent too often (at most {} pending and {} new prompts a minute); the user was told. Wait for the pending prompt instead of asking again",
                    agent.name,
                    d.config.consent.max_pending_per_agent,
                    d.config.consent.max_prompts_per_minute
                ),
            ));
        }
    };
    if asked.new {
        tracing::info!(consent = %asked.id, agent = %agent.name, scopes = %a.scopes.join(" "), "consent requested");
        d.events.emit(
            &d.store,
            Event::ConsentRequested {
                consent: Box::new(asked.request.clone()),
            },
        );
    }
    if !a.wait {
        d.consents.keep(&asked.id);
        let (why, reason) = match a.kind {
            ConsentKind::Access => ("has no grant for", "pending"),
            ConsentKind::Approval => ("needs a person's approval (policy) for", "approval"),
            ConsentKind::Delegation => ("needs a person's approval to delegate", "delegation"),
        };
        let next = match a.kind {
            ConsentKind::Delegation => "Call delegation.create again (it waits by default) to receive the token once approved",
            _ => "Call consent.wait with this id, or retry later",
        };
        return Err(RpcError::new(
            ErrorCode::ConsentRequired,
            format!(
                "agent {:?} {why} {} on {}; the user was asked (consent {}). {next}",
                agent.name,
                a.scopes.join(" "),
                a.provider.name,
                asked.id
            ),
        )
        .with("consent_id", &asked.id)
        .with("reason", reason)
        .with("provider", &a.provider.name)
        .with("scopes", a.scopes)
        .into());
    }
    let id = asked.id.clone();
    wait(d, asked).await.map(|scopes| (id, scopes))
}

/// Waits for a pending consent (from `token.get` or `consent.wait`).
pub async fn wait(d: &Shared, asked: Asked) -> Result<Vec<String>, BrokerError> {
    let Asked {
        id,
        mut rx,
        request,
        ..
    } = asked;
    let left = Duration::from_secs(
        request
            .expires_at
            .saturating_sub(d.clock.now().max(0) as u64),
    ) + Duration::from_millis(500);
    let waited = tokio::time::timeout(left, async {
        rx.wait_for(Option::is_some).await.map(|v| v.clone())
    })
    .await;
    let resolution = match waited {
        Ok(Ok(Some(r))) => r,
        _ => {
            settle(d, &id, Resolution::TimedOut);
            rx.borrow().clone().unwrap_or(Resolution::TimedOut)
        }
    };
    result_of(&resolution, &request)
}

/// For `consent.wait`: finds this agent's consent and waits for it.
pub async fn wait_by_id(
    d: &Shared,
    s: Greeted<'_>,
    id: &str,
) -> Result<(Vec<String>, ConsentRequest), BrokerError> {
    match d.consents.lookup(id, s.id, s.identity.binding()) {
        None => Err(RpcError::new(
            ErrorCode::UnknownConsent,
            format!("no pending or recent consent {id:?} for this agent; call token.get again"),
        )
        .with("consent_id", id)
        .into()),
        Some(Lookup::Decided(r, req)) => result_of(&r, &req).map(|s| (s, req)),
        Some(Lookup::Pending(rx, req)) => {
            let asked = Asked {
                id: id.to_owned(),
                new: false,
                rx,
                request: req.clone(),
            };
            wait(d, asked).await.map(|s| (s, req))
        }
    }
}

/// Times out every overdue consent (called every second).
pub fn expire_overdue(d: &Shared) {
    for id in d.consents.overdue() {
        settle(d, &id, Resolution::TimedOut);
    }
    for id in d.consents.abandoned() {
        settle(d, &id, Resolution::Withdrawn);
    }
}

/// Reacts to the session locking or unlocking.
pub fn session_changed(d: &Shared, locked: bool) {
    if !d.set_locked(locked) {
        return;
    }
    tracing::info!(locked, "session lock state changed");
    if locked && d.config.consent.on_lock == OnLock::Refuse {
        for id in d.consents.ids(None) {
            settle(d, &id, Resolution::UserAway);
        }
    }
    d.events
        .emit(&d.store, Event::StatusChanged { status: d.status() });
}

/// Denies every pending consent of one agent (or of all), e.g. on revoke.
pub fn deny_pending(d: &Shared, agent_id: Option<i64>) {
    for id in d.consents.ids(agent_id) {
        settle(d, &id, Resolution::Denied);
    }
}

/// Applies the user's decision.
pub fn decide(
    d: &Shared,
    id: &str,
    decision: Decision,
    narrowed: Option<Vec<String>>,
) -> Result<ConsentDecideResult, BrokerError> {
    if d.locked() {
        return Err(BrokerError::rpc(
            ErrorCode::SessionLocked,
            "the session is locked; unlock it to decide consents",
        ));
    }
    let req = d.consents.get(id).ok_or_else(|| {
        BrokerError::Rpc(
            RpcError::new(
                ErrorCode::NotFound,
                format!("no pending consent {id:?}; it was already decided or timed out"),
            )
            .with("consent_id", id),
        )
    })?;
    let scopes = ScopeSet::new(narrowed.unwrap_or_else(|| req.scopes.clone()));
    if scopes.is_empty() || !scopes.within(&req.scopes) {
        return Err(BrokerError::rpc(
            ErrorCode::InvalidParams,
            format!(
                "scopes must be a non-empty subset of what was asked ({}); a prompt can narrow, never widen",
                req.scopes.join(" ")
            ),
        ));
    }
    let expires_at = match decision {
        Decision::For { duration_secs } if !(MIN_FOR..=MAX_FOR).contains(&duration_secs) => {
            return Err(BrokerError::rpc(
                ErrorCode::InvalidParams,
                format!("duration_secs must be between {MIN_FOR} and {MAX_FOR}"),
            ))
        }
        Decision::For { duration_secs } => Some(d.clock.now() + duration_secs as i64),
        _ => None,
    };
    // Approvals and delegations are about one request: any "allow" approves
    // it once, and nothing standing is created or remembered.
    let standing = req.kind == ConsentKind::Access;
    let grant_id = match decision {
        _ if !standing => None,
        Decision::For { .. } | Decision::Always => Some(d.store.upsert_grant(&NewGrant {
            agent_id: req.agent_id,
            provider: &req.provider,
            scopes: &scopes,
            binary_sha256: &req.sha256,
            expires_at,
            proxy_only: req.proxy_only,
        })?),
        Decision::Deny { remember: true } => {
            d.store
                .add_denial(req.agent_id, &req.provider, &req.sha256)?;
            None
        }
        _ => None,
    };
    let resolution = match decision {
        Decision::Deny { .. } => Resolution::Denied,
        _ => Resolution::Allowed {
            scopes: scopes.to_vec(),
            grant_id,
            decision,
        },
    };
    if !settle(d, id, resolution) {
        if let Some(g) = grant_id {
            d.store.delete_grants(GrantFilter::Id(g))?;
        }
        return Err(BrokerError::rpc(
            ErrorCode::NotFound,
            format!("consent {id:?} timed out while it was being decided; nothing was granted"),
        ));
    }
    if let Some(g) = grant_id {
        d.events.emit(
            &d.store,
            Event::GrantChanged {
                agent: req.agent.name.clone(),
                grant_id: g,
                change: "created".into(),
            },
        );
    }
    Ok(ConsentDecideResult {
        grant_id,
        scopes: if matches!(decision, Decision::Deny { .. }) {
            vec![]
        } else {
            scopes.into_vec()
        },
    })
}

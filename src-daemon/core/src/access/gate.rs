//! The policy step shared by `token.get` and `delegation.create`: decide,
//! refuse on deny, ask a person on require-approval and decide again with
//! the approval, and record every decision (audit, and the tray for
//! anything but allow).

use std::sync::Arc;

use valetkey_ipc::control::{ConsentKind, DelegationAsk, Event};
use valetkey_ipc::policy::{PolicyDecision, Verdict};
use valetkey_ipc::{ErrorCode, RpcError};

use crate::broker::Shared;
use crate::caller::{Caller, Greeted, PolicyMemo};
use crate::config::Provider;
use crate::consent::flow::{self, Ask};
use crate::error::BrokerError;
use crate::policy::{build_input, InputRequest};
use crate::store::{AgentRow, AuditRecord};

/// How to ask a person if the policy wants one.
pub struct Asking<'a> {
    /// The provider.
    pub provider: &'a Provider,
    /// RFC 8707 resource.
    pub resource: Option<&'a str>,
    /// The agent's duration hint.
    pub duration_secs: Option<u64>,
    /// Wait for the decision.
    pub wait: bool,
    /// `Approval` or `Delegation`.
    pub kind: ConsentKind,
    /// For a delegation.
    pub delegation: Option<DelegationAsk>,
    /// A person already approved this request (from `consent.wait`).
    pub approved: Option<(String, Vec<String>)>,
}

/// What a request went through, for its audit record and the monitor.
#[derive(Debug, Default)]
pub struct Trace {
    /// The last policy decision.
    pub decision: Option<Arc<PolicyDecision>>,
    /// The action as the policy saw it.
    pub action: Option<Arc<str>>,
    /// Whose data, as the policy saw it.
    pub resource_owner: Option<Arc<str>>,
    /// The consent that decided, if any.
    pub consent_id: Option<String>,
    /// The MCP request a proxied token is for (policy input `mcp`).
    pub mcp: Option<Arc<valetkey_ipc::policy::PolicyMcp>>,
}

impl Trace {
    /// Copies what was traced into `rec`.
    pub fn fill(&self, rec: &mut AuditRecord) {
        if let Some(dec) = &self.decision {
            rec.verdict = Some(dec.verdict.as_str().into());
            rec.rule = Some(dec.rule.clone());
            rec.reasons = dec.reasons.clone();
        }
        rec.action = self.action.as_deref().map(str::to_owned);
        rec.resource_owner = self.resource_owner.as_deref().map(str::to_owned);
        rec.consent_id = self.consent_id.clone();
    }
}

fn denied(d: &PolicyDecision) -> BrokerError {
    RpcError::new(
        ErrorCode::PolicyDenied,
        format!(
            "the policy ({}) refused: {}. `valetkey policy check` explains decisions",
            d.source,
            d.reasons.join("; ")
        ),
    )
    .with("rule", &d.rule)
    .with("reasons", &d.reasons)
    .with("source", &d.source)
    .into()
}

fn tell(d: &Shared, agent: &AgentRow, chain: &[String], decision: &PolicyDecision) {
    if decision.verdict == Verdict::Allow {
        // The hot path: the audit record says it already.
        tracing::debug!(agent = %agent.name, rule = %decision.rule, "policy allows");
    } else {
        tracing::info!(agent = %agent.name, verdict = decision.verdict.as_str(), rule = %decision.rule, reasons = ?decision.reasons, "policy decision");
        d.events.emit(
            &d.store,
            Event::PolicyDecided {
                agent: agent.name.clone(),
                chain: chain.to_vec(),
                decision: decision.clone(),
            },
        );
    }
}

/// The decision for `req`, and its facts in `t`. An agent asking its
/// connection's last question again, under the same policy set and
/// registry record, gets the last answer without the input document being
/// built (when the policy cannot tell the two requests apart anyway).
fn decide(
    d: &Shared,
    s: &Caller,
    agent: &Arc<AgentRow>,
    req: &InputRequest<'_>,
    t: &mut Trace,
) -> Result<Arc<PolicyDecision>, BrokerError> {
    let set = d.policies.current()?;
    let memo = set.cacheable() && req.approval.is_none() && req.delegating_to.is_none();
    let same = |m: &PolicyMemo| {
        m.set == Arc::as_ptr(&set) as usize
            && m.agent == Arc::as_ptr(agent) as usize
            && m.expires_at == req.expires_at
            && m.provider == req.provider
            && m.scopes == req.scopes
            && m.indicator.as_deref() == req.indicator
            && m.context.as_ref() == req.context
            && m.mcp.as_ref() == req.mcp
    };
    let mut slot = s.policy_memo.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(m) = slot.as_ref().filter(|m| memo && same(m)) {
        t.action = Some(m.action.clone());
        t.resource_owner = Some(m.resource_owner.clone());
        t.decision = Some(m.decision.clone());
        return Ok(m.decision.clone());
    }
    let input = build_input(agent, req);
    let decision = Arc::new(d.policies.decide_with(&set, &input)?);
    let action: Arc<str> = Arc::from(input.action.as_str());
    let owner: Arc<str> = Arc::from(input.resource.owner.as_str());
    t.action = Some(action.clone());
    t.resource_owner = Some(owner.clone());
    t.decision = Some(decision.clone());
    *slot = memo.then(|| PolicyMemo {
        set: Arc::as_ptr(&set) as usize,
        agent: Arc::as_ptr(agent) as usize,
        provider: req.provider.to_owned(),
        scopes: req.scopes.to_vec(),
        indicator: req.indicator.map(str::to_owned),
        context: req.context.cloned(),
        mcp: req.mcp.cloned(),
        expires_at: req.expires_at,
        decision: decision.clone(),
        action,
        resource_owner: owner,
    });
    Ok(decision)
}

/// Runs the policy. `Ok(None)`: allowed, go on as usual. `Ok(Some(scopes))`:
/// a person approved this request (possibly narrowing the scopes). The
/// last decision and the facts it saw are left in `t` for the audit record.
pub async fn run(
    d: &Shared,
    s: Greeted<'_>,
    agent: &Arc<AgentRow>,
    req: InputRequest<'_>,
    asking: Asking<'_>,
    t: &mut Trace,
) -> Result<Option<Vec<String>>, BrokerError> {
    let (consent_id, scopes) = match asking.approved.clone() {
        Some(a) => a,
        None => {
            let decision = decide(d, &s, agent, &req, t)?;
            tell(d, agent, req.chain, &decision);
            match decision.verdict {
                Verdict::Allow => return Ok(None),
                Verdict::Deny => return Err(denied(&decision)),
                Verdict::RequireApproval => {}
            }
            // Boxed: asking is rare, and its future is large.
            Box::pin(flow::ask(
                d,
                s,
                Ask {
                    provider: asking.provider,
                    scopes: req.scopes,
                    resource: asking.resource,
                    duration_secs: asking.duration_secs,
                    wait: asking.wait,
                    kind: asking.kind,
                    reasons: decision.reasons.clone(),
                    delegation: asking.delegation.clone(),
                    // One request's approval: it makes no grant.
                    proxy_only: false,
                },
            ))
            .await?
        }
    };
    t.consent_id = Some(consent_id.clone());
    // Decide again, as approved, for what the person allowed.
    let approved = InputRequest {
        approval: Some(consent_id),
        scopes: &scopes,
        ..req
    };
    let decision = decide(d, &s, agent, &approved, t)?;
    tell(d, agent, approved.chain, &decision);
    match decision.verdict {
        Verdict::Allow => Ok(Some(scopes)),
        _ => Err(denied(&decision)),
    }
}

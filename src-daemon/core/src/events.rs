//! The daemon's event bus: every state change the user should see goes
//! through [`Events::emit`], which records one line in the activity log and
//! broadcasts the typed event to subscribed control connections (the tray).
//!
//! A slow subscriber only loses events (it is told via a lag count and can
//! re-list); it never slows the agents down.

use tokio::sync::broadcast;
use valetkey_ipc::control::{ConsentOutcome, Decision, Event, RevokeResult, RevokeTarget};

use crate::store::{AuditRecord, Store};

/// Broadcast capacity per subscriber.
const CAPACITY: usize = 1024;

/// The bus.
pub struct Events {
    tx: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
        }
    }
}

fn describe_decision(d: &Decision) -> String {
    match d {
        Decision::Once => "once".into(),
        Decision::For { duration_secs } => format!(
            "for {}",
            humantime::format_duration(std::time::Duration::from_secs(*duration_secs))
        ),
        Decision::Always => "until revoked".into(),
        Decision::Deny { remember: true } => "denied (remembered)".into(),
        Decision::Deny { remember: false } => "denied".into(),
    }
}

/// The agent an event concerns and a sentence for the activity log.
fn summarize(e: &Event) -> (Option<String>, String) {
    match e {
        Event::ConsentRequested { consent: c } => (
            Some(c.agent.name.clone()),
            format!(
                "{} ({}) asked for {} on {}",
                c.agent.name,
                c.exe,
                c.scopes.join(" "),
                c.provider_display
            ),
        ),
        Event::ConsentDecided {
            agent,
            outcome,
            decision,
            scopes,
            ..
        } => (
            Some(agent.clone()),
            decided(*outcome, decision.as_ref(), scopes),
        ),
        Event::ConsentFlood { agent } => (
            Some(agent.clone()),
            "asked for consent too often; further requests are refused for a minute".into(),
        ),
        Event::GrantChanged {
            agent,
            grant_id,
            change,
        } => (Some(agent.clone()), format!("grant {grant_id} {change}")),
        Event::TokenIssued {
            agent,
            provider,
            scopes,
        } => (
            Some(agent.clone()),
            format!("token for {} on {provider}", scopes.join(" ")),
        ),
        Event::AgentSeen { agent, exe } => (Some(agent.clone()), format!("connected as {exe}")),
        Event::Revoked { target, result } => revoked(target, result),
        Event::AgentChanged { agent, change } => (Some(agent.clone()), format!("agent {change}")),
        Event::PolicyDecided {
            agent,
            chain,
            decision,
        } => (
            Some(agent.clone()),
            format!(
                "policy {} for {}: {} ({})",
                decision.verdict.as_str(),
                chain.join(" → "),
                decision.reasons.join("; "),
                decision.rule
            ),
        ),
        Event::PolicyReloaded { ok, files, error } => {
            (None, policy_reloaded(*ok, files, error.as_deref()))
        }
        Event::DelegationCreated {
            chain,
            provider,
            scopes,
            ..
        } => delegated(chain, provider, scopes),
        Event::Anomaly {
            agent,
            rule,
            detail,
            suspended,
        } => (
            Some(agent.clone()),
            format!(
                "anomaly {rule}: {detail}{}",
                if *suspended { "; agent suspended" } else { "" }
            ),
        ),
        Event::StatusChanged { status } => (None, status_line(status)),
    }
}

/// How a consent ended, as the activity log says it.
fn decided(outcome: ConsentOutcome, decision: Option<&Decision>, scopes: &[String]) -> String {
    match outcome {
        ConsentOutcome::Allowed => format!(
            "allowed {} {}",
            scopes.join(" "),
            decision.map(describe_decision).unwrap_or_default()
        ),
        ConsentOutcome::Denied => "consent denied".into(),
        ConsentOutcome::TimedOut => "consent timed out unanswered".into(),
        ConsentOutcome::UserAway => "consent refused: session locked".into(),
        ConsentOutcome::Withdrawn => "consent withdrawn: the agent went away".into(),
    }
}

/// A revocation: the agent it concerns (when it named one) and its tally.
fn revoked(target: &RevokeTarget, result: &RevokeResult) -> (Option<String>, String) {
    let what = match target {
        RevokeTarget::Grant { id } => format!("grant {id}"),
        RevokeTarget::Agent { name } => format!("agent {name}"),
        RevokeTarget::All => "everything".into(),
        RevokeTarget::Delegation { jti } => format!("delegation {jti}"),
    };
    let agent = match target {
        RevokeTarget::Agent { name } => Some(name.clone()),
        _ => None,
    };
    let line = format!(
        "revoked {what}: {} grant(s), {} cached token(s), {} revoked at the provider, {} connection(s) closed",
        result.grants_removed,
        result.tokens_dropped,
        result.tokens_revoked_upstream,
        result.connections_closed
    );
    (agent, line)
}

/// A delegation: the agent that made it (the chain's one before last),
/// and what it passed on.
fn delegated(chain: &[String], provider: &str, scopes: &[String]) -> (Option<String>, String) {
    let by = chain
        .iter()
        .rev()
        .nth(1)
        .and_then(|a| a.strip_prefix("agent:"))
        .map(str::to_owned);
    let line = format!(
        "delegated {} on {provider} to {}",
        scopes.join(" "),
        chain.join(" → ")
    );
    (by, line)
}

fn status_line(status: &valetkey_ipc::control::StatusResult) -> String {
    format!(
        "issuing {}, session {}",
        if status.paused { "paused" } else { "active" },
        if status.session_locked {
            "locked"
        } else {
            "unlocked"
        }
    )
}

fn policy_reloaded(ok: bool, files: &[String], error: Option<&str>) -> String {
    if !ok {
        return format!(
            "policy change refused, the previous policy stays: {}",
            error.unwrap_or_default()
        );
    }
    if files.is_empty() {
        "policy reloaded: built-in only".into()
    } else {
        format!("policy reloaded: {}", files.join(", "))
    }
}

/// The audit record an event stands for, when it is not recorded where
/// it happens (token hand-outs, hellos, delegations, lifecycle changes,
/// policy reloads and anomalies are).
fn audit_of(e: &Event) -> Option<AuditRecord> {
    let (kind, agent, outcome) = match e {
        Event::ConsentRequested { consent: c } => {
            let mut r = crate::audit::by_user("consent.request", Some(&c.agent.name));
            r.pid = Some(c.pid);
            r.binary_sha256 = Some(c.sha256.clone());
            r.provider = Some(c.provider.clone());
            r.scopes = c.scopes.clone();
            r.consent_id = Some(c.id.clone());
            r.outcome = "asked".into();
            r.detail = Some(format!("{:?} consent from {}", c.kind, c.exe));
            return Some(r);
        }
        Event::ConsentDecided {
            id,
            agent,
            outcome,
            decision,
            scopes,
        } => {
            let mut r = crate::audit::by_user("consent.decision", Some(agent));
            r.consent_id = Some(id.clone());
            r.granted = scopes.clone();
            // The wire spelling: `allowed`, `denied`, `timed_out`, `user_away`.
            r.outcome = serde_json::to_value(outcome)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            r.detail = decision.as_ref().map(describe_decision);
            return Some(r);
        }
        Event::ConsentFlood { agent } => ("consent.flood", Some(agent.as_str()), "refused"),
        Event::GrantChanged { agent, .. } => ("grant", Some(agent.as_str()), "changed"),
        Event::Revoked { target, .. } => (
            "revoke",
            match target {
                RevokeTarget::Agent { name } => Some(name.as_str()),
                _ => None,
            },
            "revoked",
        ),
        Event::StatusChanged { .. } => ("status", None, "changed"),
        _ => return None,
    };
    let mut r = crate::audit::by_user(kind, agent);
    r.outcome = outcome.into();
    r.detail = Some(summarize(e).1);
    Some(r)
}

impl Events {
    /// A new receiver for a control connection.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Records (activity log and audit trail) and broadcasts `e`. A
    /// failure to record is logged, never fatal: these events follow
    /// decisions already taken, and the event still reaches the tray.
    pub fn emit(&self, store: &Store, e: Event) {
        if let Some(rec) = audit_of(&e) {
            let _ = crate::audit::write(store, &rec);
        }
        // Every hello would swamp the log; the registry keeps last_seen.
        if !matches!(e, Event::AgentSeen { .. }) {
            let (agent, summary) = summarize(&e);
            if let Err(err) = store.record_activity(e.kind(), agent.as_deref(), &summary) {
                tracing::warn!(error = %err, kind = e.kind(), "could not record activity");
            }
        }
        let _ = self.tx.send(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consent_records_use_the_wire_names_and_the_user_as_actor() {
        let r = audit_of(&Event::ConsentDecided {
            id: "c1".into(),
            agent: "a".into(),
            outcome: ConsentOutcome::TimedOut,
            decision: None,
            scopes: vec![],
        })
        .expect("recorded");
        assert_eq!(
            (r.kind.as_str(), r.outcome.as_str(), r.consent_id.as_deref()),
            ("consent.decision", "timed_out", Some("c1"))
        );
        assert_eq!(r.chain.last().map(String::as_str), Some("agent:a"));
        assert!(r.chain[0].starts_with("user:"));
        // Recorded where they happen, not twice.
        assert!(audit_of(&Event::AgentSeen {
            agent: "a".into(),
            exe: "/bin/a".into()
        })
        .is_none());
    }
}

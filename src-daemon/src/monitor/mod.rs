//! Anomaly monitoring: every audit record about an agent updates that
//! agent's counters ([`rules::AgentStats`]); a rule that fires writes an
//! `anomaly` audit record, tells the tray and the desktop, and with
//! `[monitor] on_anomaly = "suspend"` suspends the agent.
//!
//! Counters live in memory (they are rates, and restart fresh); the
//! scopes an agent used before are read back from the audit trail the
//! first time the agent shows up, so `first_use` survives restarts.

pub mod rules;

use std::collections::HashMap;
use std::sync::Mutex;

use valetkey_ipc::control::{AgentStatsEntry, Event, Lifecycle};

use crate::config::OnAnomaly;
use crate::state::Daemon;
use crate::store::AuditRecord;
use rules::{AgentStats, Finding, Seen};

/// Per-agent counters.
#[derive(Default)]
pub struct Monitor {
    agents: Mutex<HashMap<String, AgentStats>>,
}

fn depth(chain: &[String]) -> u32 {
    // user, root agent, then one entry per delegation level.
    chain.len().saturating_sub(2) as u32
}

/// Feeds one written record to the rules.
pub fn observe(d: &Daemon, rec: &AuditRecord) {
    if !d.config.monitor.enabled || rec.kind == "anomaly" {
        return;
    }
    let Some(agent) = rec.agent.clone() else {
        return;
    };
    let user = rec
        .chain
        .first()
        .and_then(|u| u.strip_prefix("user:"))
        .unwrap_or_default()
        .to_owned();
    let granted = if rec.granted.is_empty() {
        &rec.scopes
    } else {
        &rec.granted
    };
    let seen = Seen {
        now: rec.ts,
        kind: &rec.kind,
        provider: rec.provider.as_deref(),
        scopes: granted,
        ok: matches!(rec.outcome.as_str(), "issued" | "created" | "accepted"),
        refused: rec.outcome.starts_with("refused:"),
        action: rec.action.as_deref(),
        resource_owner: rec.resource_owner.as_deref(),
        user: &user,
        depth: depth(&rec.chain),
    };
    let findings = {
        let mut agents = d.monitor.agents.lock().unwrap_or_else(|p| p.into_inner());
        let stats = agents.entry(agent.clone()).or_default();
        if !stats.loaded {
            stats.loaded = true;
            match d.store.used_scopes(&agent, rec.id) {
                Ok(used) => {
                    for (p, scopes) in used {
                        stats.remember(&p, &scopes);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the agent's history"),
            }
        }
        stats.observe(&seen, &d.config.monitor)
    };
    for f in findings {
        fire(d, &agent, rec, f);
    }
}

fn fire(d: &Daemon, agent: &str, about: &AuditRecord, f: Finding) {
    let suspend = d.config.monitor.on_anomaly == OnAnomaly::Suspend;
    tracing::warn!(agent, rule = f.rule.as_str(), detail = %f.detail, suspend, "anomaly");
    let rec = AuditRecord {
        kind: "anomaly".into(),
        chain: about.chain.clone(),
        agent: Some(agent.to_owned()),
        pid: about.pid,
        binary_sha256: about.binary_sha256.clone(),
        provider: about.provider.clone(),
        scopes: about.scopes.clone(),
        outcome: f.rule.as_str().into(),
        detail: Some(format!("{} (after record {})", f.detail, about.id)),
        ..Default::default()
    };
    let _ = crate::audit::write(&d.store, &rec);
    crate::notify::anomaly(d, agent, f.rule.as_str(), &f.detail, suspend);
    d.events.emit(
        &d.store,
        Event::Anomaly {
            agent: agent.to_owned(),
            rule: f.rule.as_str().into(),
            detail: f.detail.clone(),
            suspended: suspend,
        },
    );
    if suspend {
        let (d, name) = (d.clone(), agent.to_owned());
        tokio::spawn(async move {
            let p = valetkey_ipc::control::AgentsLifecycleParams {
                name: name.clone(),
                step: Lifecycle::Suspend,
            };
            if let Err(e) = crate::handlers::control::agents_lifecycle(&d, p).await {
                tracing::error!(agent = %name, error = %e, "could not suspend the agent after an anomaly");
            }
        });
    }
}

/// `agents.stats`: every agent's counters, busiest first.
pub fn stats(d: &Daemon) -> Vec<AgentStatsEntry> {
    let now = crate::store::now();
    let agents = d.monitor.agents.lock().unwrap_or_else(|p| p.into_inner());
    let mut v: Vec<AgentStatsEntry> = agents
        .iter()
        .map(|(name, s)| {
            let (writes, errors, recent) = s.recent(now);
            AgentStatsEntry {
                agent: name.clone(),
                requests: s.requests,
                refusals: s.refusals,
                last_minute: s.last_minute(now),
                baseline_per_minute: s.baseline(now).0,
                writes_last_minute: writes,
                errors_last_5m: errors,
                requests_last_5m: recent,
                known_scopes: s.known() as u32,
                anomalies: s.anomalies,
                last_anomaly: s.last_anomaly.as_ref().map(|(_, r)| r.clone()),
                last_anomaly_at: s.last_anomaly.as_ref().map(|(t, _)| *t),
            }
        })
        .collect();
    v.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.agent.cmp(&b.agent)));
    v
}

//! Anomaly monitoring: every audit record about an agent updates that
//! agent's counters ([`rules::AgentStats`]) and returns the rules that
//! fired. The monitor only finds; [`crate::record`] acts on what it finds
//! (an `anomaly` record, an event, a suspension).
//!
//! Counters live in memory (they are rates, and restart fresh); the
//! scopes an agent used before are read back from the audit trail the
//! first time the agent shows up, so `first_use` survives restarts.

pub mod rules;

use std::collections::HashMap;
use std::sync::Mutex;

use valetkey_ipc::control::AgentStatsEntry;

use crate::config::MonitorSection;
use crate::store::{AuditRecord, Store};
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

impl Monitor {
    /// Feeds one written record to the rules; returns the ones that fired.
    /// `history` is read once per agent, for the scopes it used before.
    pub fn observe(
        &self,
        rec: &AuditRecord,
        cfg: &MonitorSection,
        history: &Store,
    ) -> Vec<Finding> {
        if rec.kind == "anomaly" {
            return vec![];
        }
        let Some(agent) = rec.agent.as_deref() else {
            return vec![];
        };
        let user = rec
            .chain
            .first()
            .and_then(|u| u.strip_prefix("user:"))
            .unwrap_or_default();
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
            user,
            depth: depth(&rec.chain),
            repeat: false,
        };
        let mut agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
        let stats = agents.entry(agent.to_owned()).or_default();
        if !stats.loaded {
            stats.loaded = true;
            match history.used_scopes(agent, rec.id) {
                Ok(used) => {
                    for (p, scopes) in used {
                        stats.remember(&p, &scopes);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the agent's history"),
            }
        }
        stats.observe(&seen, cfg)
    }

    /// Counts a repeat hand-out (see [`crate::audit::reuse`]): no record
    /// was written, but the rates still see the request.
    pub fn repeat(&self, agent: &str, seen: &Seen<'_>, cfg: &MonitorSection) -> Vec<Finding> {
        let mut agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
        match agents.get_mut(agent) {
            Some(stats) => stats.observe(seen, cfg),
            None => vec![],
        }
    }

    /// `agents.stats`: every agent's counters at `now`, busiest first.
    pub fn stats(&self, now: i64) -> Vec<AgentStatsEntry> {
        let agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
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
}

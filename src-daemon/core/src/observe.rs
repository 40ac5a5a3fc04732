//! What agents do, recorded and watched: a record about a request is
//! written (see [`crate::record`]) and fed to the anomaly monitor, whose
//! findings are acted on here: an `anomaly` record, an event for the tray
//! and the desktop, and with `[monitor] on_anomaly = "suspend"` the agent's
//! suspension.

use valetkey_ipc::control::{Event, Lifecycle};

use crate::broker::Shared;
use crate::config::OnAnomaly;
use crate::error::BrokerError;
use crate::monitor::rules::Finding;
use crate::store::AuditRecord;

/// Records `r` (fail closed, as [`crate::record::record`]) and feeds it to
/// the monitor. Returns the record as written.
pub fn record(d: &Shared, r: AuditRecord) -> Result<AuditRecord, BrokerError> {
    let rec = crate::record::record(d, r)?;
    observe(d, &rec);
    Ok(rec)
}

/// What a repeat hand-out looks like to the monitor.
pub struct Repeat<'a> {
    /// The agent.
    pub agent: &'a str,
    /// Its provider.
    pub provider: &'a str,
    /// The token's scopes.
    pub scopes: &'a [String],
    /// The action, as the policy saw it.
    pub action: Option<&'a str>,
    /// Whose data, when declared.
    pub resource_owner: Option<&'a str>,
    /// Delegation depth.
    pub depth: u32,
    /// When (Unix seconds).
    pub now: i64,
}

/// Feeds a repeat hand-out (counted, not written: see
/// [`crate::audit::reuse`]) to the monitor, and acts on what it finds.
pub fn repeat(d: &Shared, r: &Repeat<'_>) {
    if !d.config.monitor.enabled {
        return;
    }
    let seen = crate::monitor::rules::Seen {
        now: r.now,
        kind: "token.get",
        provider: Some(r.provider),
        scopes: r.scopes,
        ok: true,
        refused: false,
        action: r.action,
        resource_owner: r.resource_owner,
        user: crate::store::os_user_ref(),
        depth: r.depth,
        repeat: true,
    };
    let found = d.monitor.repeat(r.agent, &seen, &d.config.monitor);
    if found.is_empty() {
        return;
    }
    let mut about = crate::audit::by_user("token.reused", Some(r.agent));
    about.provider = Some(r.provider.to_owned());
    about.scopes = r.scopes.to_vec();
    for f in found {
        act(d, &about, f);
    }
}

fn observe(d: &Shared, rec: &AuditRecord) {
    if !d.config.monitor.enabled {
        return;
    }
    for f in d.monitor.observe(rec, &d.config.monitor, &d.store) {
        act(d, rec, f);
    }
}

/// Acts on one finding: records it, tells the tray (and through it the
/// desktop), and suspends the agent when configured to.
fn act(d: &Shared, about: &AuditRecord, f: Finding) {
    let Some(agent) = about.agent.clone() else {
        return;
    };
    let suspend = d.config.monitor.on_anomaly == OnAnomaly::Suspend;
    tracing::warn!(agent, rule = f.rule.as_str(), detail = %f.detail, suspend, "anomaly");
    let rec = AuditRecord {
        kind: "anomaly".into(),
        chain: about.chain.clone(),
        agent: Some(agent.clone()),
        pid: about.pid,
        binary_sha256: about.binary_sha256.clone(),
        provider: about.provider.clone(),
        scopes: about.scopes.clone(),
        outcome: f.rule.as_str().into(),
        detail: Some(format!("{} (after record {})", f.detail, about.id)),
        ..Default::default()
    };
    let _ = crate::audit::write(&d.store, &rec);
    d.events.emit(
        &d.store,
        Event::Anomaly {
            agent: agent.clone(),
            rule: f.rule.as_str().into(),
            detail: f.detail.clone(),
            suspended: suspend,
        },
    );
    if suspend {
        let d = d.clone();
        tokio::spawn(async move {
            let p = valetkey_ipc::control::AgentsLifecycleParams {
                name: agent.clone(),
                step: Lifecycle::Suspend,
            };
            if let Err(e) = crate::agents::agents_lifecycle(&d, p).await {
                tracing::error!(agent = %agent, error = %e, "could not suspend the agent after an anomaly");
            }
        });
    }
}

//! `box.report`: what a box's supervisor saw, into the audit trail and
//! back to the launcher when the box closes.
//!
//! The supervisor (`valetkey box-exec`, the parent of everything the box
//! runs) reports each attempt on a locked path, each socket outside the
//! box it refused, and each watched path created. It proves it is the
//! supervisor with a key the launcher gave it in its environment (which
//! nothing else in the box can read: the supervisor is not dumpable) and
//! whose hash the launcher recorded at `box.open`: an agent in the box
//! can neither forge a report nor use up the box's budget of events so
//! that the real ones are dropped. Each event is one `box.event` audit
//! record.

use valetkey_ipc::control::{BoxEvent, BoxReportParams, BoxReportResult};
use valetkey_ipc::methods::PeerIdentity;
use valetkey_ipc::ErrorCode;

use super::BoxSession;
use crate::broker::Shared;
use crate::error::BrokerError;

/// Events in one report, at most.
pub const PER_REPORT: usize = 64;

fn invalid(msg: impl Into<String>) -> BrokerError {
    BrokerError::rpc(ErrorCode::InvalidParams, msg)
}

/// Handles `box.report` from `peer` (on a box's socket).
pub fn handle(
    d: &Shared,
    peer: &PeerIdentity,
    p: BoxReportParams,
) -> Result<BoxReportResult, BrokerError> {
    let id = peer
        .confinement
        .as_ref()
        .map(|f| f.id.clone())
        .ok_or_else(|| invalid("box.report is for a box's supervisor, on the box's own socket"))?;
    let s = d
        .boxes
        .get(&id)
        .ok_or_else(|| BrokerError::rpc(ErrorCode::NotFound, format!("no open box {id}")))?;
    // Hashes compared: how long a comparison takes tells nothing of the
    // key.
    let given = crate::attest::sha256_hex(p.key.as_bytes());
    let same = !s.report_key.is_empty() && given == s.report_key;
    if !same {
        return Err(BrokerError::rpc(
            ErrorCode::PeerRejected,
            "box.report takes reports from the box's supervisor only (its key does not match)",
        ));
    }
    if p.events.len() > PER_REPORT {
        return Err(invalid(format!("at most {PER_REPORT} events a report")));
    }
    let kept = s.keep(p.events.into_iter().filter(well_formed).collect());
    for e in &kept {
        let mut rec = crate::audit::by_user("box.event", s.facts.name.as_deref());
        rec.binary_sha256 = Some(s.facts.entry_sha256.clone());
        rec.outcome = outcome(&e.kind).into();
        let mut what = format!("{id}: {} {}", e.op, e.path);
        what.truncate(400);
        rec.detail = Some(what);
        crate::record::record_best_effort(d, rec);
    }
    Ok(BoxReportResult {
        recorded: kept.len() as u32,
    })
}

/// Records the watched paths the launcher of box `s` moved aside.
pub fn quarantined(d: &Shared, s: &BoxSession, events: Vec<BoxEvent>) {
    let events: Vec<BoxEvent> = events
        .into_iter()
        .filter(|e| e.kind == "quarantined" && s.watched.contains(&e.path))
        .collect();
    for e in s.keep(events) {
        let mut rec = crate::audit::by_user("box.event", s.facts.name.as_deref());
        rec.binary_sha256 = Some(s.facts.entry_sha256.clone());
        rec.outcome = "quarantined".into();
        let mut what = format!("{}: {} moved to {}", s.facts.id, e.path, e.op);
        what.truncate(400);
        rec.detail = Some(what);
        crate::record::record_best_effort(d, rec);
    }
}

fn well_formed(e: &BoxEvent) -> bool {
    matches!(e.kind.as_str(), "locked" | "created" | "socket")
        && e.path.len() <= 4096
        && e.op.len() <= 32
        && e.path.starts_with('/')
}

/// The audit outcome of an event of `kind`.
fn outcome(kind: &str) -> &'static str {
    match kind {
        "locked" => "refused:locked",
        "socket" => "refused:socket",
        _ => "created",
    }
}

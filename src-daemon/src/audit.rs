//! Writes decision records (see [`crate::store::AuditRecord`]) with the
//! whole actor chain. A failed write is logged loudly; the tamper-evident
//! chain and fail-closed writes build on this.

use crate::server::Session;
use crate::state::Daemon;
use crate::store::AuditRecord;

/// Who a session acts for, outermost first: `user:…`, `agent:…`, and for a
/// sub-agent every ancestor down to itself.
pub fn chain_of(s: &Session) -> Vec<String> {
    if let Some(del) = &s.delegation {
        return del.chain.clone();
    }
    let mut v = vec![format!("user:{}", crate::store::os_user())];
    if let Some((_, a)) = &s.agent {
        v.push(format!("agent:{}", a.name));
    }
    v
}

/// A record about session `s`, with its facts filled in.
pub fn about(s: &Session, kind: &str) -> AuditRecord {
    AuditRecord {
        kind: kind.into(),
        chain: chain_of(s),
        agent: s.agent.as_ref().map(|(_, a)| a.name.clone()),
        pid: Some(s.identity.pid),
        binary_sha256: Some(s.identity.sha256.clone()),
        ..Default::default()
    }
}

/// Appends `r`.
pub fn record(d: &Daemon, r: AuditRecord) {
    if let Err(e) = d.store.append_audit(&r) {
        tracing::error!(error = %e, kind = %r.kind, "cannot write the audit record");
    }
}

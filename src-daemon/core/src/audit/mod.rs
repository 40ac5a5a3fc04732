//! The tamper-evident audit trail.
//!
//! Every event that changes who can do what, or hands something out,
//! becomes one hash-chained row ([`crate::store::AuditRecord`]) carrying the
//! whole actor chain, the attested binary and the pid. Writes that gate a
//! hand-out are fail closed: if the record cannot be written, the token,
//! delegation or session is refused with `audit_unavailable`, because an
//! unrecorded hand-out is exactly what an attacker would want. Writes about
//! actions that only take rights away (revocation, suspension) are best
//! effort, so a full disk never stops the user from revoking.
//!
//! Each written record is also emitted as a `tracing` event on the
//! `valetkey::audit` target, which reaches journald under systemd.
//! [`crate::record`] adds the checkpoint cadence and the anomaly monitor on
//! top; [`checkpoint`] signs the chain's head; [`verify`] checks it all.

pub mod checkpoint;
pub mod reuse;
pub mod verify;

use valetkey_ipc::ErrorCode;

use crate::caller::Caller;
use crate::error::BrokerError;
use crate::store::{AuditRecord, Store};

/// Who a caller acts for, outermost first (see [`Caller::chain`]).
pub fn chain_of(s: &Caller) -> Vec<String> {
    s.chain().into_owned()
}

/// `user:NAME` for the OS user the daemon serves.
pub fn user() -> String {
    format!("user:{}", crate::store::os_user())
}

/// A record about session `s`, with its facts filled in.
pub fn about(s: &Caller, kind: &str) -> AuditRecord {
    AuditRecord {
        kind: kind.into(),
        chain: chain_of(s),
        agent: s.agent.as_ref().map(|(_, a)| a.name.clone()),
        pid: Some(s.identity.pid),
        binary_sha256: Some(s.identity.binding().to_owned()),
        ..Default::default()
    }
}

/// A record of the user acting on `agent` (consent, grants, lifecycle).
pub fn by_user(kind: &str, agent: Option<&str>) -> AuditRecord {
    let mut chain = vec![user()];
    if let Some(a) = agent {
        chain.push(format!("agent:{a}"));
    }
    AuditRecord {
        kind: kind.into(),
        chain,
        agent: agent.map(str::to_owned),
        ..Default::default()
    }
}

/// Appends `r` to the chain and emits it to the log (journald under
/// systemd). The error says what to do.
pub fn write(store: &Store, r: &AuditRecord) -> Result<AuditRecord, BrokerError> {
    match store.append_audit(r) {
        Ok(rec) => {
            tracing::info!(
                target: "valetkey::audit",
                seq = rec.id,
                kind = %rec.kind,
                chain = %rec.chain.join(" > "),
                agent = rec.agent.as_deref().unwrap_or(""),
                pid = rec.pid.unwrap_or(0),
                binary = rec.binary_sha256.as_deref().unwrap_or(""),
                provider = rec.provider.as_deref().unwrap_or(""),
                scopes = %rec.scopes.join(" "),
                granted = %rec.granted.join(" "),
                verdict = rec.verdict.as_deref().unwrap_or(""),
                rule = rec.rule.as_deref().unwrap_or(""),
                outcome = %rec.outcome,
                hash = %rec.hash,
                "audit"
            );
            Ok(rec)
        }
        Err(e) => {
            tracing::error!(error = %e, kind = %r.kind, "cannot write the audit record; refusing");
            Err(BrokerError::rpc(
                ErrorCode::AuditUnavailable,
                format!(
                    "the audit record could not be written ({e}), so nothing was handed out. \
                     Free disk space or repair the database ({}) and retry",
                    crate::dirs::db_path().display()
                ),
            ))
        }
    }
}

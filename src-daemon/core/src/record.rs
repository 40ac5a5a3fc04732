//! Recording what happened: every record is appended to the audit chain
//! (fail closed for what gates a hand-out) and signed into a checkpoint
//! every `[audit] checkpoint_every` records. Records about what agents do
//! also go through [`crate::observe`], which feeds the anomaly monitor.

use crate::broker::Shared;
use crate::error::BrokerError;
use crate::store::AuditRecord;

/// Appends `r` (fail closed: the caller refuses what it was about to
/// hand out when this fails) and signs a checkpoint every
/// `[audit] checkpoint_every` records. Returns the record as stored.
pub fn record(d: &Shared, r: AuditRecord) -> Result<AuditRecord, BrokerError> {
    let rec = crate::audit::write(&d.store, &r)?;
    if (rec.id as u64).is_multiple_of(d.config.audit.checkpoint_every) {
        checkpoint_soon(d);
    }
    Ok(rec)
}

/// Appends `r` for an action that only takes rights away: a failure is
/// logged, never blocking.
pub fn record_best_effort(d: &Shared, r: AuditRecord) {
    let _ = record(d, r);
}

/// Writes the repeat counters that are due (see [`crate::audit::reuse`]):
/// those of tokens that left the cache (expired ones are swept out first)
/// and, with `all`, every one. The daemon calls it every second, with
/// `all` every minute, and at shutdown.
pub fn flush_reuse(d: &Shared, all: bool) {
    d.tokens.cache.sweep(d.clock.now().max(0) as u64);
    let mut recs = d.reuse.tokens_left(&d.tokens.cache.take_left());
    if all {
        recs.extend(d.reuse.due());
    }
    for r in recs {
        record_best_effort(d, r);
    }
}

/// Connection `session` closed: its repeat counters are written.
pub fn session_closed(d: &Shared, session: u64) {
    for r in d.reuse.connection_closed(session) {
        record_best_effort(d, r);
    }
}

/// Signs a checkpoint in the background.
pub fn checkpoint_soon(d: &Shared) {
    let d = d.clone();
    tokio::spawn(async move {
        let now = d.clock.now();
        crate::audit::checkpoint::log(
            crate::audit::checkpoint::make(&d.store, &d.signer, &*d.keychain, now).await,
        )
    });
}

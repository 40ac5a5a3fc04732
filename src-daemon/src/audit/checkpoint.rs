//! Signed checkpoints: the broker's Ed25519 key (the delegation key, from
//! the keychain) signs the chain's head `(seq, hash, ts)`. A hash chain
//! alone shows edits in the middle; a signed head also shows rows cut off
//! the end, and lets retention delete the start while the rest verifies
//! from the checkpoint it now begins at.
//!
//! Checkpoints are made every `[audit] checkpoint_every` records, every
//! `checkpoint_interval` while records arrive, at start and at shutdown.
//! Signing needs the keychain; while it is locked, checkpoints wait (the
//! chain itself keeps growing and verifying).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;

use crate::error::BrokerError;
use crate::state::Daemon;
use crate::store::{now, Checkpoint};

/// Signs the current head, unless it is already signed. Returns the new
/// checkpoint.
pub async fn make(d: &Daemon) -> Result<Option<Checkpoint>, BrokerError> {
    let Some((seq, hash)) = d.store.audit_head()? else {
        return Ok(None);
    };
    if d.store
        .last_checkpoint_seq()?
        .is_some_and(|last| last >= seq)
    {
        return Ok(None);
    }
    let (kid, pair) = d.signer.current(&d.store, &d.keychain).await?;
    let broker = crate::delegation::audience(d)?;
    let ts = now();
    let sig = B64.encode(
        pair.sign(&Checkpoint::message(&broker, seq, &hash, ts))
            .as_ref(),
    );
    let c = Checkpoint {
        seq,
        hash,
        ts,
        kid,
        sig,
    };
    d.store.add_checkpoint(&c)?;
    tracing::debug!(seq, "audit checkpoint signed");
    Ok(Some(c))
}

/// Makes a checkpoint in the background.
pub fn soon(d: &Daemon) {
    let d = d.clone();
    tokio::spawn(async move { log(make(&d).await) });
}

fn log(r: Result<Option<Checkpoint>, BrokerError>) {
    if let Err(e) = r {
        tracing::warn!(error = %e, "cannot sign an audit checkpoint yet; will retry");
    }
}

/// Applies retention once: deletes records older than `[audit] retain`
/// up to the newest signed checkpoint among them.
pub fn prune(d: &Daemon) {
    let retain = d.config.audit.retain.as_secs() as i64;
    if retain == 0 {
        return;
    }
    match d.store.prune_audit(now() - retain) {
        Ok(0) => {}
        Ok(n) => tracing::info!(deleted = n, "audit retention applied"),
        Err(e) => tracing::warn!(error = %e, "audit retention failed; will retry"),
    }
}

/// The background duty: a checkpoint and retention at start, then a
/// checkpoint every interval and retention hourly.
pub fn spawn(d: &Daemon) {
    let d = d.clone();
    tokio::spawn(async move {
        prune(&d);
        log(make(&d).await);
        let mut tick = tokio::time::interval(d.config.audit.checkpoint_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut last_prune = std::time::Instant::now();
        loop {
            tick.tick().await;
            log(make(&d).await);
            if last_prune.elapsed().as_secs() >= 3600 {
                prune(&d);
                last_prune = std::time::Instant::now();
            }
        }
    });
}

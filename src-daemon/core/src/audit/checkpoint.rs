//! Signed checkpoints: the broker's Ed25519 key (the delegation key, from
//! the keychain) signs the chain's head `(seq, hash, ts)`. A hash chain
//! alone shows edits in the middle; a signed head also shows rows cut off
//! the end, and lets retention delete the start while the rest verifies
//! from the checkpoint it now begins at.
//!
//! Checkpoints are made every `[audit] checkpoint_every` records (see
//! [`crate::record`]), and by the daemon every `checkpoint_interval` while
//! records arrive, at start and at shutdown.
//! Signing needs the keychain; while it is locked, checkpoints wait (the
//! chain itself keeps growing and verifying).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;

use crate::delegation::keys::Signer;
use crate::error::BrokerError;
use crate::keychain::Keychain;
use crate::store::{Checkpoint, Store};

/// Signs the current head at `now`, unless it is already signed. Returns
/// the new checkpoint.
pub async fn make(
    store: &Store,
    signer: &Signer,
    keychain: &dyn Keychain,
    now: i64,
) -> Result<Option<Checkpoint>, BrokerError> {
    let Some((seq, hash)) = store.audit_head()? else {
        return Ok(None);
    };
    if store.last_checkpoint_seq()?.is_some_and(|last| last >= seq) {
        return Ok(None);
    }
    let (kid, pair) = signer.current(store, keychain).await?;
    let broker = crate::delegation::audience(store)?;
    let sig = B64.encode(
        pair.sign(&Checkpoint::message(&broker, seq, &hash, now))
            .as_ref(),
    );
    let c = Checkpoint {
        seq,
        hash,
        ts: now,
        kid,
        sig,
    };
    store.add_checkpoint(&c)?;
    tracing::debug!(seq, "audit checkpoint signed");
    Ok(Some(c))
}

/// Logs a checkpoint that could not be made yet.
pub fn log(r: Result<Option<Checkpoint>, BrokerError>) {
    if let Err(e) = r {
        tracing::warn!(error = %e, "cannot sign an audit checkpoint yet; will retry");
    }
}

/// Applies retention once: deletes records older than `retain` seconds
/// before `now`, up to the newest signed checkpoint among them. `retain`
/// 0 keeps everything.
pub fn prune(store: &Store, retain: i64, now: i64) {
    if retain == 0 {
        return;
    }
    match store.prune_audit(now - retain) {
        Ok(0) => {}
        Ok(n) => tracing::info!(deleted = n, "audit retention applied"),
        Err(e) => tracing::warn!(error = %e, "audit retention failed; will retry"),
    }
}

//! The daemon's background duties on a timer: sign the audit chain's head
//! every `[audit] checkpoint_interval` (and once at start), and apply
//! audit retention at start and then hourly.

use valetkey_core::audit::checkpoint;
use valetkey_core::broker::Shared;

/// Starts the duties as one background task.
pub fn spawn(d: &Shared) {
    let d = d.clone();
    tokio::spawn(async move {
        let retain = d.config.audit.retain.as_secs() as i64;
        checkpoint::prune(&d.store, retain, d.clock.now());
        sign(&d).await;
        let mut tick = tokio::time::interval(d.config.audit.checkpoint_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut last_prune = tokio::time::Instant::now();
        loop {
            tick.tick().await;
            sign(&d).await;
            if last_prune.elapsed().as_secs() >= 3600 {
                checkpoint::prune(&d.store, retain, d.clock.now());
                last_prune = tokio::time::Instant::now();
            }
        }
    });
}

/// Signs the head now, if it is not signed yet.
pub async fn sign(d: &Shared) {
    checkpoint::log(checkpoint::make(&d.store, &d.signer, &d.keychain, d.clock.now()).await);
}

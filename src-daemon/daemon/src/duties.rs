//! The daemon's background duties on a timer: sign the audit chain's head
//! every `[audit] checkpoint_interval` (and once at start), apply audit
//! retention at start and then hourly, and write the counted repeat
//! hand-outs when they are due (every second for tokens that left the
//! cache, every minute for all).

use valetkey_core::audit::checkpoint;
use valetkey_core::broker::Shared;

/// Starts the duties.
pub fn spawn(d: &Shared) {
    spawn_reuse(d);
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

fn spawn_reuse(d: &Shared) {
    let d = d.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let every = valetkey_core::audit::reuse::FLUSH_EVERY_SECS as u64;
        let mut n: u64 = 0;
        loop {
            tick.tick().await;
            n += 1;
            valetkey_core::record::flush_reuse(&d, n.is_multiple_of(every));
        }
    });
}

/// Signs the head now, if it is not signed yet.
pub async fn sign(d: &Shared) {
    checkpoint::log(checkpoint::make(&d.store, &d.signer, &*d.keychain, d.clock.now()).await);
}

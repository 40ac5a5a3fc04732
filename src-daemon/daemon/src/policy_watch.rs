//! Reloads the policy when its files change. inotify (through `notify`)
//! watches the policy directory; bursts of events (an editor's write,
//! rename and chmod) are folded into one reload 300 ms after the last one.
//! A refused reload leaves the previous policy in force, and the user is
//! told through the event stream, the log and (through [`crate::notify`])
//! a desktop notification.

use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use valetkey_core::broker::Shared;

const SETTLE: Duration = Duration::from_millis(300);

/// Starts watching; logs and gives up (keeping the loaded policy) if the
/// directory cannot be watched.
pub fn spawn(d: &Shared) {
    let dir = d.policies.dir.clone();
    if let Err(e) = valetkey_core::dirs::ensure_dir(&dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot create the policy directory; policy changes will not be picked up");
        return;
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            let rego = ev
                .paths
                .iter()
                .any(|p| p.extension().is_some_and(|x| x == "rego"));
            if rego && !ev.kind.is_access() {
                let _ = tx.send(());
            }
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the policy directory");
            return;
        }
    };
    if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the policy directory");
        return;
    }
    tracing::info!(dir = %dir.display(), "watching policy files");
    let d = d.clone();
    tokio::spawn(async move {
        let _watcher = watcher;
        while rx.recv().await.is_some() {
            // Settle: wait until no event came for SETTLE.
            while let Ok(Some(())) = tokio::time::timeout(SETTLE, rx.recv()).await {}
            valetkey_core::control::reload_policy(&d);
        }
    });
}

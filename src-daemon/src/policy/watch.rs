//! Reloads the policy when its files change. inotify (through `notify`)
//! watches the policy directory; bursts of events (an editor's write,
//! rename and chmod) are folded into one reload 300 ms after the last one.
//! A refused reload leaves the previous policy in force, and the user is
//! told through the event stream, the log and a desktop notification.

use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use valetkey_ipc::control::Event;

use crate::state::Daemon;

const SETTLE: Duration = Duration::from_millis(300);

/// Starts watching; logs and gives up (keeping the loaded policy) if the
/// directory cannot be watched.
pub fn spawn(d: &Daemon) {
    let dir = d.policies.dir.clone();
    if let Err(e) = crate::dirs::ensure_dir(&dir) {
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
            reload(&d);
        }
    });
}

/// Reloads now and tells everyone how it went.
pub fn reload(d: &Daemon) {
    let (ok, files, error) = match d.policies.reload() {
        Ok(files) => (true, files, None),
        Err(e) => (false, d.policies.status().files, Some(e)),
    };
    let mut rec = crate::audit::by_user("policy.reload", None);
    rec.outcome = if ok { "loaded" } else { "refused" }.into();
    rec.detail = error.clone();
    crate::audit::record_best_effort(d, rec);
    if let Some(e) = &error {
        crate::notify::policy_refused(d, e);
    }
    d.events
        .emit(&d.store, Event::PolicyReloaded { ok, files, error });
}

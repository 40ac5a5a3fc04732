//! Reloads the policy and config.toml when their files change. inotify
//! (through `notify`) watches the policy directory and config.toml's
//! directory (an editor replaces the file, so the file itself cannot be
//! watched); bursts of events (an editor's write, rename and chmod) are
//! folded into one reload 300 ms after the last one. A refused reload
//! leaves what was in force, and says why: the policy's through the event
//! stream, the log and (through [`crate::notify`]) a desktop notification;
//! config.toml's through the log, the audit trail and the next refusal it
//! explains.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use valetkey_core::broker::Shared;

const SETTLE: Duration = Duration::from_millis(300);

/// Starts watching the policy directory and config.toml.
pub fn spawn(d: &Shared) {
    let dir = d.policies.dir.clone();
    if let Err(e) = valetkey_core::dirs::ensure_dir(&dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot create the policy directory; policy changes will not be picked up");
    } else {
        let rego = |p: &Path| p.extension().is_some_and(|x| x == "rego");
        let dc = d.clone();
        watch(&dir, rego, "policy files", move || {
            valetkey_core::control::reload_policy(&dc)
        });
    }
    let file = d.config.path.clone();
    let (Some(parent), Some(name)) = (file.parent(), file.file_name()) else {
        return;
    };
    if !parent.is_dir() {
        tracing::info!(path = %file.display(), "no config directory; config.toml edits need a restart");
        return;
    }
    let name = name.to_owned();
    let dc = d.clone();
    watch(
        parent,
        move |p: &Path| p.file_name() == Some(&name),
        "config.toml",
        move || valetkey_core::control::reload_config(&dc),
    );
}

/// Calls `reload` (settled) after changes to files in `dir` that `wanted`
/// picks; logs and gives up if `dir` cannot be watched.
fn watch(
    dir: &Path,
    wanted: impl Fn(&Path) -> bool + Send + 'static,
    what: &str,
    reload: impl Fn() + Send + 'static,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            if ev.paths.iter().any(|p| wanted(p)) && !ev.kind.is_access() {
                let _ = tx.send(());
            }
        }
    });
    let dir: PathBuf = dir.to_owned();
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(what, error = %e, "cannot watch for changes");
            return;
        }
    };
    if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
        tracing::warn!(what, dir = %dir.display(), error = %e, "cannot watch for changes");
        return;
    }
    tracing::info!(what, dir = %dir.display(), "watching for changes");
    tokio::spawn(async move {
        let _watcher = watcher;
        while rx.recv().await.is_some() {
            // Settle: wait until no event came for SETTLE.
            while let Ok(Some(())) = tokio::time::timeout(SETTLE, rx.recv()).await {}
            reload();
        }
    });
}

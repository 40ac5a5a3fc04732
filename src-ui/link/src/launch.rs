//! Starting valetkeyd from the tray ("daemon not running" → Start).
//!
//! The daemon is the systemd user service when installed, else the sibling
//! `valetkeyd` of this executable; never a program named by the webview. It runs in its own session so that quitting
//! the tray does not stop it, and its stderr goes to
//! `$XDG_STATE_HOME/valetkey/valetkeyd.log`.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::error::UiError;

/// Starts valetkeyd: through the systemd user service when it is installed
/// (so it runs sandboxed and logs to the journal), else by spawning the
/// sibling binary detached. Does not wait for its socket: the link
/// reconnects on its own and the UI follows its state.
pub fn start_daemon() -> Result<(), UiError> {
    if systemctl(&["cat", "valetkeyd.service"]) {
        if systemctl(&["start", "valetkeyd.service"]) {
            tracing::info!("started valetkeyd.service");
            return Ok(());
        }
        tracing::warn!(
            "`systemctl --user start valetkeyd.service` failed; starting valetkeyd directly"
        );
    }
    spawn_sibling()
}

/// Starts the daemon unless its control socket already answers (used by
/// `--start`, which the autostart entry passes). With socket activation
/// the connect itself starts it.
pub fn attach_or_start(control: &std::path::Path) {
    if std::os::unix::net::UnixStream::connect(control).is_ok() {
        return;
    }
    if let Err(e) = start_daemon() {
        tracing::warn!(error = %e, "cannot start valetkeyd");
    }
}

fn systemctl(args: &[&str]) -> bool {
    Command::new("systemctl")
        .arg("--user")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Spawns the sibling `valetkeyd` detached; it inherits this app's
/// environment, so it finds the same config and socket.
fn spawn_sibling() -> Result<(), UiError> {
    let exe = std::env::current_exe().map_err(|e| UiError::Launch(e.to_string()))?;
    let daemon = exe.with_file_name("valetkeyd");
    if !daemon.is_file() {
        return Err(UiError::Launch(format!(
            "{} is not installed; install Valet Key's daemon next to the tray app",
            daemon.display()
        )));
    }
    let log_path = log_file();
    if let Some(dir) = log_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| UiError::Launch(e.to_string()))?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| UiError::Launch(format!("cannot open {}: {e}", log_path.display())))?;
    let mut cmd = Command::new(&daemon);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .spawn()
        .map_err(|e| UiError::Launch(format!("{}: {e}", daemon.display())))?;
    tracing::info!(pid = child.id(), "started valetkeyd");
    // Reap it if it exits while the tray runs, so no zombie is left.
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    Ok(())
}

/// `$XDG_STATE_HOME/valetkey/valetkeyd.log` (`~/.local/state/…` by default).
fn log_file() -> PathBuf {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    state.join("valetkey").join("valetkeyd.log")
}

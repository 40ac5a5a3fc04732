//! Running as a per-user service: what the service manager hands the daemon
//! (listening sockets, a readiness channel, a watchdog). Installing the
//! service is `valetkey service install` (the CLI's `service` module).
//!
//! Everything platform-specific is behind `cfg` in one file per platform,
//! so a port touches one place:
//! * Linux: [`systemd`](self) (`sd_notify` over a datagram socket,
//!   `LISTEN_FDS`, user units under `~/.config/systemd/user`);
//! * macOS: `launchd.rs` (a LaunchAgent plist, `launchctl bootstrap`). It is
//!   written but cannot be compiled or tested on the Linux CI machines;
//! * Windows: nothing yet. The agent socket would be a named pipe through
//!   `interprocess`'s `GenericNamespaced` names; see `packaging/README.md`.
//!
//! Without a service manager every function here is a harmless no-op, so
//! `valetkeyd` run by hand behaves exactly as before.

use std::path::PathBuf;

use interprocess::local_socket::tokio::Listener;

#[cfg(target_os = "macos")]
#[path = "launchd.rs"]
mod platform;
#[cfg(target_os = "linux")]
#[path = "systemd.rs"]
mod platform;

pub use platform::{notify, watchdog_interval};

/// Listening sockets handed over by the service manager (socket activation).
#[derive(Default)]
pub struct Inherited {
    /// The agent socket and its path.
    pub agent: Option<(PathBuf, Listener)>,
    /// The control socket and its path.
    pub control: Option<(PathBuf, Listener)>,
}

/// Takes the sockets the service manager passed, if any.
pub fn inherited() -> Result<Inherited, ServiceError> {
    platform::inherited()
}

/// Why the service manager's hand-over cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The sockets passed by the service manager are not what we expect.
    #[error("socket activation: {0}")]
    Activation(String),
}

/// Tells the manager the daemon serves (`READY=1`), with a status line.
pub fn ready(status: &str) {
    if let Err(e) = notify(&format!("READY=1\nSTATUS={status}")) {
        tracing::warn!(error = %e, "cannot notify the service manager of readiness");
    }
}

/// Tells the manager the daemon is stopping (`STOPPING=1`).
pub fn stopping() {
    if let Err(e) = notify("STOPPING=1\nSTATUS=stopping: closing connections") {
        tracing::warn!(error = %e, "cannot notify the service manager of stopping");
    }
}

/// Pings the watchdog from the runtime that serves requests, so a wedged
/// event loop stops the pings and the manager restarts the daemon.
pub fn spawn_watchdog() {
    let Some(every) = watchdog_interval() else {
        return;
    };
    tracing::info!(every_ms = every.as_millis() as u64, "watchdog enabled");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if let Err(e) = notify("WATCHDOG=1") {
                tracing::warn!(error = %e, "watchdog ping failed");
            }
        }
    });
}

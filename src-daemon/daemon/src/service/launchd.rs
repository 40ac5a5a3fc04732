//! macOS: a per-user LaunchAgent.
//!
//! Not compiled or tested on the Linux CI machines; it is kept small and
//! uses only std so a port starts from working shape. launchd has no
//! `sd_notify` equivalent (the agent is "running" once exec'd), and its
//! socket activation needs the `launch_activate_socket` C call, so the
//! daemon binds its own socket and `RunAtLoad` starts it at login.

use std::time::Duration;

use super::{Inherited, ServiceError};

/// launchd has no readiness protocol; nothing to tell.
pub fn notify(_state: &str) -> std::io::Result<bool> {
    Ok(false)
}

/// launchd has no watchdog protocol.
pub fn watchdog_interval() -> Option<Duration> {
    None
}

/// launchd socket activation is not used: the daemon binds its own.
pub fn inherited() -> Result<Inherited, ServiceError> {
    Ok(Inherited::default())
}

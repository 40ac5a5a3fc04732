//! systemd: readiness notification and socket activation.
//!
//! Everything here is plain socket work, no libsystemd:
//! * `sd_notify` is one datagram to `$NOTIFY_SOCKET` (a path, or an abstract
//!   name when it starts with `@`), so `Type=notify` needs no C library;
//! * socket activation takes the listeners systemd passed (fd 3 onwards,
//!   checked against `$LISTEN_PID`) and tells the agent socket from the
//!   control socket by the file name each is bound to, so the order of
//!   `ListenStream=` lines does not matter.
//!
//! Installing the units is the CLI's job (`valetkey service install`).

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use interprocess::local_socket::tokio::Listener;

use super::{Inherited, ServiceError};

/// Sends `state` (e.g. `READY=1`) to the service manager, if there is one.
/// Returns whether a manager was told.
pub fn notify(state: &str) -> std::io::Result<bool> {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let sock = UnixDatagram::unbound()?;
    let bytes = target.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), Path::new(&target))?;
    }
    Ok(true)
}

/// How often to ping the watchdog: half of `$WATCHDOG_USEC`, when it is set
/// for this process.
pub fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID") {
        if pid.to_str()?.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Takes the listening sockets systemd passed, if any. Each must be a
/// listening Unix stream socket bound to `agent.sock` or `control.sock`.
pub fn inherited() -> Result<Inherited, ServiceError> {
    let mut fds = listenfd::ListenFd::from_env();
    let mut out = Inherited::default();
    for idx in 0..fds.len() {
        let bad = |why: String| ServiceError::Activation(format!("passed socket {idx}: {why}"));
        let std_listener = fds
            .take_unix_listener(idx)
            .map_err(|e| bad(format!("not a listening Unix stream socket ({e})")))?
            .ok_or_else(|| bad("already taken".into()))?;
        let path = std_listener
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(Path::to_owned))
            .ok_or_else(|| bad("not bound to a path".into()))?;
        // Same rules as a socket we bind: a private directory, a 0600 socket.
        if let Some(dir) = path.parent() {
            valetkey_core::dirs::check_private_dir(dir).map_err(|e| bad(e.to_string()))?;
        }
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| bad(format!("cannot make {} 0600: {e}", path.display())))?;
        }
        let fd = OwnedFd::from(std_listener);
        let listener = interprocess::os::unix::uds_local_socket::tokio::Listener::try_from(fd)
            .map(Listener::from)
            .map_err(|e| bad(e.to_string()))?;
        let slot = match path.file_name().and_then(|n| n.to_str()) {
            Some("agent.sock") => &mut out.agent,
            Some(valetkey_ipc::paths::CONTROL_SOCKET_NAME) => &mut out.control,
            _ => {
                return Err(bad(format!(
                "{} is neither agent.sock nor control.sock; fix ListenStream= in valetkeyd.socket",
                path.display()
            )))
            }
        };
        if slot.is_some() {
            return Err(bad(format!("{} was passed twice", path.display())));
        }
        *slot = Some((path, listener));
    }
    Ok(out)
}

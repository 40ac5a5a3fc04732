//! systemd: readiness notification, socket activation and the user units.
//!
//! Everything here is plain socket and file work, no libsystemd:
//! * `sd_notify` is one datagram to `$NOTIFY_SOCKET` (a path, or an abstract
//!   name when it starts with `@`), so `Type=notify` needs no C library;
//! * socket activation takes the listeners systemd passed (fd 3 onwards,
//!   checked against `$LISTEN_PID`) and tells the agent socket from the
//!   control socket by the file name each is bound to, so the order of
//!   `ListenStream=` lines does not matter;
//! * the units are embedded in the binary (from `packaging/systemd/`), so
//!   `valetkey service install` writes exactly what the `.deb` ships.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use interprocess::local_socket::tokio::Listener;

use super::{Inherited, ServiceError, Step};

/// The service unit, with `@BINDIR@` where the binaries are.
const SERVICE_UNIT: &str = include_str!("../../../packaging/systemd/valetkeyd.service");
/// The socket unit.
const SOCKET_UNIT: &str = include_str!("../../../packaging/systemd/valetkeyd.socket");
/// Where the `.deb` puts the units; the service template says `/usr/bin`.
const PACKAGED_UNIT_DIR: &str = "/usr/lib/systemd/user";

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
            crate::dirs::check_private_dir(dir).map_err(|e| bad(e.to_string()))?;
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

/// `$XDG_CONFIG_HOME/systemd/user`, where per-user units live.
fn user_unit_dir() -> PathBuf {
    crate::dirs::config_home().join("systemd/user")
}

/// The units for a daemon at `daemon`.
fn rendered(daemon: &Path) -> [(&'static str, String); 2] {
    let bindir = daemon.parent().unwrap_or(Path::new("/usr/bin"));
    [
        (
            "valetkeyd.service",
            SERVICE_UNIT.replace("/usr/bin", &bindir.to_string_lossy()),
        ),
        ("valetkeyd.socket", SOCKET_UNIT.to_string()),
    ]
}

fn systemctl(args: &[&str]) -> Result<String, ServiceError> {
    let out = Command::new("systemctl")
        .arg("--user")
        .args(args)
        .output()
        .map_err(|e| ServiceError::Manager(format!("cannot run systemctl: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(ServiceError::Manager(format!(
            "`systemctl --user {}` failed: {}; `systemctl --user status valetkeyd.socket valetkeyd.service` shows more",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Whether a systemd user manager answers.
fn manager_reachable() -> bool {
    systemctl(&["show-environment"]).is_ok()
}

const NO_MANAGER: &str = "no systemd user manager answers (no login session, or systemd is not the init system); log in normally and run `valetkey service install` again, or start valetkeyd from your session's startup instead";

/// Writes (or finds the packaged) units and enables socket activation.
pub fn install(daemon: &Path) -> Result<Vec<Step>, ServiceError> {
    let mut steps = Vec::new();
    let packaged = Path::new(PACKAGED_UNIT_DIR).join("valetkeyd.service");
    if daemon.starts_with("/usr/bin") && packaged.exists() {
        steps.push(Step::Kept(format!(
            "using the packaged units in {PACKAGED_UNIT_DIR}"
        )));
    } else {
        if !daemon.is_file() {
            return Err(ServiceError::NoDaemon(daemon.to_owned()));
        }
        let dir = user_unit_dir();
        std::fs::create_dir_all(&dir).map_err(|e| ServiceError::Io(dir.clone(), e))?;
        for (name, text) in rendered(daemon) {
            let path = dir.join(name);
            if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
                steps.push(Step::Kept(format!("{} is up to date", path.display())));
            } else {
                std::fs::write(&path, text).map_err(|e| ServiceError::Io(path.clone(), e))?;
                steps.push(Step::Did(format!("wrote {}", path.display())));
            }
        }
    }
    // The data directory must exist: ProtectSystem=strict only lets the
    // daemon write where ReadWritePaths= says, and that path must exist.
    let data = crate::dirs::data_dir();
    if !data.is_dir() {
        crate::dirs::ensure_dir(&data).map_err(|e| ServiceError::Io(data.clone(), e))?;
        steps.push(Step::Did(format!("created {}", data.display())));
    }
    if !manager_reachable() {
        return Err(ServiceError::Partial(steps, NO_MANAGER.into()));
    }
    let partial = |steps: &mut Vec<Step>, e: ServiceError| {
        ServiceError::Partial(std::mem::take(steps), e.to_string())
    };
    systemctl(&["daemon-reload"]).map_err(|e| partial(&mut steps, e))?;
    let enabled = systemctl(&["is-enabled", "valetkeyd.socket"]).is_ok();
    let active = systemctl(&["is-active", "valetkeyd.socket"]).is_ok();
    if enabled && active {
        steps.push(Step::Kept(
            "valetkeyd.socket is enabled and listening".into(),
        ));
    } else {
        systemctl(&["enable", "--now", "valetkeyd.socket"]).map_err(|e| partial(&mut steps, e))?;
        steps.push(Step::Did(
            "enabled valetkeyd.socket (the first agent request starts valetkeyd)".into(),
        ));
    }
    Ok(steps)
}

/// Stops and disables the units and removes the per-user copies.
pub fn uninstall() -> Result<Vec<Step>, ServiceError> {
    let mut steps = Vec::new();
    let manager = manager_reachable();
    if manager {
        for unit in ["valetkeyd.socket", "valetkeyd.service"] {
            let known =
                systemctl(&["is-enabled", unit]).is_ok() || systemctl(&["is-active", unit]).is_ok();
            if known {
                systemctl(&["disable", "--now", unit])?;
                steps.push(Step::Did(format!("stopped and disabled {unit}")));
            }
        }
    } else {
        steps.push(Step::Kept(format!("nothing to stop: {NO_MANAGER}")));
    }
    let dir = user_unit_dir();
    for name in ["valetkeyd.service", "valetkeyd.socket"] {
        let path = dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => steps.push(Step::Did(format!("removed {}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ServiceError::Io(path, e)),
        }
    }
    if manager {
        systemctl(&["daemon-reload"])?;
    }
    if steps.iter().all(|s| matches!(s, Step::Kept(_))) {
        steps.push(Step::Kept("not installed; nothing to do".into()));
    }
    steps.push(Step::Kept(format!(
        "your grants, audit trail and keychain items are kept ({} and the keychain)",
        crate::dirs::data_dir().display()
    )));
    Ok(steps)
}

/// One line per unit: where its file is, and its state.
pub fn status() -> Result<Vec<(String, String)>, ServiceError> {
    let dir = user_unit_dir();
    let manager = manager_reachable();
    let mut rows = Vec::new();
    for unit in ["valetkeyd.socket", "valetkeyd.service"] {
        let file = [dir.join(unit), Path::new(PACKAGED_UNIT_DIR).join(unit)]
            .into_iter()
            .find(|p| p.exists());
        let state = if !manager {
            "state unknown: no systemd user manager answers".to_string()
        } else {
            let show = systemctl(&[
                "show",
                "-p",
                "UnitFileState,ActiveState,SubState,MainPID",
                unit,
            ])?;
            let get = |k: &str| {
                show.lines()
                    .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                    .unwrap_or("")
                    .to_string()
            };
            let pid = get("MainPID");
            format!(
                "{} ({}), {}{}",
                get("ActiveState"),
                get("SubState"),
                match get("UnitFileState").as_str() {
                    "" => "unknown".to_string(),
                    s => s.to_string(),
                },
                if pid.is_empty() || pid == "0" {
                    String::new()
                } else {
                    format!(", pid {pid}")
                }
            )
        };
        let where_ = file
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "not installed".into());
        rows.push((unit.to_string(), format!("{where_}; {state}")));
    }
    Ok(rows)
}

/// The command that shows the daemon's log.
pub fn logs_command(follow: bool, lines: u32) -> Command {
    let mut c = Command::new("journalctl");
    c.args([
        "--user",
        "--unit",
        "valetkeyd.service",
        "--output",
        "short-iso",
        "--lines",
    ])
    .arg(lines.to_string());
    if follow {
        c.arg("--follow");
    }
    c
}

/// Whether the unit files are installed (per user or packaged).
pub fn installed() -> bool {
    ["valetkeyd.socket", "valetkeyd.service"]
        .iter()
        .all(|u| user_unit_dir().join(u).exists() || Path::new(PACKAGED_UNIT_DIR).join(u).exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_rendered_for_the_daemon_they_will_run() {
        let [(s, service), (k, socket)] = rendered(Path::new("/opt/vk/bin/valetkeyd"));
        assert_eq!((s, k), ("valetkeyd.service", "valetkeyd.socket"));
        assert!(
            service.contains("ExecStart=/opt/vk/bin/valetkeyd"),
            "{service}"
        );
        assert!(!service.contains("/usr/bin"));
        assert!(service.contains("Type=notify"));
        assert!(socket.contains("ListenStream=%t/valetkey/agent.sock"));
        assert!(socket.contains("ListenStream=%t/valetkey/control.sock"));
    }
}

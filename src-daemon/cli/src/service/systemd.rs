//! systemd: the user units, written from the copies embedded in the
//! binary (from `packaging/systemd/`), so `valetkey service install`
//! writes exactly what the `.deb` ships.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{ServiceError, Step};

/// The service unit, with `/usr/bin` where the binaries are.
const SERVICE_UNIT: &str = include_str!("../../../../packaging/systemd/valetkeyd.service");
/// The socket unit.
const SOCKET_UNIT: &str = include_str!("../../../../packaging/systemd/valetkeyd.socket");
/// Where the `.deb` puts the units; the service template says `/usr/bin`.
const PACKAGED_UNIT_DIR: &str = "/usr/lib/systemd/user";

/// `$XDG_CONFIG_HOME/systemd/user`, where per-user units live.
fn user_unit_dir() -> PathBuf {
    valetkey_core::dirs::config_home().join("systemd/user")
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
    let data = valetkey_core::dirs::data_dir();
    if !data.is_dir() {
        valetkey_core::dirs::ensure_dir(&data).map_err(|e| ServiceError::Io(data.clone(), e))?;
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
        valetkey_core::dirs::data_dir().display()
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

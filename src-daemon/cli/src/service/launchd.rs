//! macOS: a per-user LaunchAgent.
//!
//! Not compiled or tested on the Linux CI machines; it is kept small and
//! uses only std so a port starts from working shape. The daemon binds its
//! own socket and `RunAtLoad` starts it at login.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{ServiceError, Step};

const LABEL: &str = "dev.valetkey.valetkeyd";
const PLIST: &str = include_str!("../../../../packaging/macos/dev.valetkey.valetkeyd.plist");

fn plist_path() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
        .join("Library/LaunchAgents")
        .join(format!("{LABEL}.plist"))
}

fn domain() -> String {
    format!("gui/{}", rustix::process::getuid().as_raw())
}

fn launchctl(args: &[&str]) -> Result<String, ServiceError> {
    let out = Command::new("launchctl")
        .args(args)
        .output()
        .map_err(|e| ServiceError::Manager(format!("cannot run launchctl: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(ServiceError::Manager(format!(
            "`launchctl {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Writes the LaunchAgent and loads it.
pub fn install(daemon: &Path) -> Result<Vec<Step>, ServiceError> {
    if !daemon.is_file() {
        return Err(ServiceError::NoDaemon(daemon.to_owned()));
    }
    let mut steps = Vec::new();
    let path = plist_path();
    let home = std::env::var("HOME").unwrap_or_default();
    // launchd expands neither `~` nor variables.
    let text = PLIST
        .replace("/usr/local/bin/valetkeyd", &daemon.to_string_lossy())
        .replace("~/Library", &format!("{home}/Library"));
    if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
        steps.push(Step::Kept(format!("{} is up to date", path.display())));
    } else {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| ServiceError::Io(dir.to_owned(), e))?;
        }
        std::fs::write(&path, text).map_err(|e| ServiceError::Io(path.clone(), e))?;
        steps.push(Step::Did(format!("wrote {}", path.display())));
        let _ = launchctl(&["bootout", &format!("{}/{LABEL}", domain())]);
    }
    if launchctl(&["print", &format!("{}/{LABEL}", domain())]).is_ok() {
        steps.push(Step::Kept(format!("{LABEL} is loaded")));
    } else {
        launchctl(&["bootstrap", &domain(), &path.to_string_lossy()])?;
        steps.push(Step::Did(format!(
            "loaded {LABEL} (starts now and at login)"
        )));
    }
    Ok(steps)
}

/// Unloads and removes the LaunchAgent.
pub fn uninstall() -> Result<Vec<Step>, ServiceError> {
    let mut steps = Vec::new();
    if launchctl(&["bootout", &format!("{}/{LABEL}", domain())]).is_ok() {
        steps.push(Step::Did(format!("unloaded {LABEL}")));
    }
    let path = plist_path();
    match std::fs::remove_file(&path) {
        Ok(()) => steps.push(Step::Did(format!("removed {}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            steps.push(Step::Kept("not installed; nothing to do".into()))
        }
        Err(e) => return Err(ServiceError::Io(path, e)),
    }
    Ok(steps)
}

/// The LaunchAgent's state.
pub fn status() -> Result<Vec<(String, String)>, ServiceError> {
    let state = match launchctl(&["print", &format!("{}/{LABEL}", domain())]) {
        Ok(out) => out
            .lines()
            .find_map(|l| l.trim().strip_prefix("state = "))
            .unwrap_or("loaded")
            .to_string(),
        Err(_) => "not loaded".into(),
    };
    Ok(vec![(
        LABEL.to_string(),
        format!("{}; {state}", plist_path().display()),
    )])
}

/// The daemon's log: the file the plist sends stderr to.
pub fn logs_command(follow: bool, lines: u32) -> Command {
    let mut c = Command::new("tail");
    c.arg("-n").arg(lines.to_string());
    if follow {
        c.arg("-F");
    }
    c.arg(
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join("Library/Logs/valetkeyd.log"),
    );
    c
}

/// Whether the LaunchAgent is written.
pub fn installed() -> bool {
    plist_path().exists()
}

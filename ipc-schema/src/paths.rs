//! Where the agent socket lives, computed in exactly one place.
//!
//! atuin shipped a bug where daemon and client disagreed on the socket path;
//! both sides of Valet Key call [`agent_socket_path`] instead.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Environment variable that overrides the agent socket path.
pub const SOCKET_ENV: &str = "VALETKEY_SOCKET";

/// Where systemd-logind puts each user's runtime directory.
pub const RUN_USER: &str = "/run/user";

/// The runtime directory that holds the sockets, by the rule systemd
/// uses for `$XDG_RUNTIME_DIR` (sd_path's `SD_PATH_USER_RUNTIME`):
/// `$XDG_RUNTIME_DIR/valetkey`; else `/run/user/$UID/valetkey` when
/// `/run/user/$UID` is a directory that belongs to you; only then
/// `/tmp/valetkey-$UID`. The middle step is what lets a client started
/// with a reduced environment (the MCP SDKs' stdio transports keep only
/// HOME, LOGNAME, PATH, SHELL, TERM and USER) find the daemon that a
/// user's service manager started. The daemon checks the directory's
/// owner and mode either way.
pub fn runtime_dir() -> PathBuf {
    runtime_dir_from(
        std::env::var_os("XDG_RUNTIME_DIR"),
        uid(),
        Path::new(RUN_USER),
    )
}

/// The user's runtime directory that [`runtime_dir`] is inside
/// (`$XDG_RUNTIME_DIR`, or `/run/user/$UID` found by the same rule), or
/// `None` when it fell back to `/tmp`. `valetkey run` puts a tmpfs over
/// it in a box, so the box sees none of the user's sockets there.
pub fn user_runtime_dir() -> Option<PathBuf> {
    let dir = runtime_dir();
    if dir.starts_with("/tmp") && std::env::var_os("XDG_RUNTIME_DIR").is_none_or(|v| v.is_empty()) {
        return None;
    }
    dir.parent().map(Path::to_owned)
}

fn uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// [`runtime_dir`] over its inputs, for tests.
pub fn runtime_dir_from(xdg: Option<OsString>, uid: u32, run_user: &Path) -> PathBuf {
    if let Some(dir) = xdg.filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("valetkey");
    }
    let logind = run_user.join(uid.to_string());
    if owned_dir(&logind, uid) {
        return logind.join("valetkey");
    }
    // `/tmp` itself, not `$TMPDIR`: a client with another TMPDIR than
    // the daemon's must still agree with it (the SDKs use `/tmp` too).
    Path::new("/tmp").join(format!("valetkey-{uid}"))
}

/// A real directory (not a symlink) owned by `uid`.
fn owned_dir(path: &Path, uid: u32) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir() && m.uid() == uid)
}

/// How the agent socket was looked for, in words, for an error that
/// could not reach it: each place in the order of the rule, what was (or
/// was not) there, and the fix. `tried` is the socket that failed.
pub fn how_found(tried: &Path) -> String {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let mut steps = Vec::new();
    match var(SOCKET_ENV) {
        Some(v) => steps.push(format!("${SOCKET_ENV}={}", Path::new(&v).display())),
        None => steps.push(format!("${SOCKET_ENV} is not set")),
    }
    match var("XDG_RUNTIME_DIR") {
        Some(v) => steps.push(format!("$XDG_RUNTIME_DIR={}", Path::new(&v).display())),
        None => steps.push("$XDG_RUNTIME_DIR is not set".into()),
    }
    let logind = Path::new(RUN_USER).join(uid().to_string());
    if var("XDG_RUNTIME_DIR").is_none() {
        let state = if owned_dir(&logind, uid()) {
            "is yours"
        } else if logind.exists() {
            "is not a directory of yours"
        } else {
            "does not exist"
        };
        steps.push(format!("{} {state}", logind.display()));
    }
    let mut out = format!("looked for it by: {}", steps.join("; "));
    let elsewhere = logind.join("valetkey/agent.sock");
    if elsewhere != tried && elsewhere.exists() {
        out.push_str(&format!(
            ". A daemon's socket is at {}: give the client VALETKEY_SOCKET={} \
             (an MCP client's server entry has an `env` for it)",
            elsewhere.display(),
            elsewhere.display()
        ));
    } else {
        out.push_str(
            ". Start the daemon (`systemctl --user start valetkeyd.socket`, or `valetkeyd`), \
             or give the client VALETKEY_SOCKET=<the daemon's agent.sock>",
        );
    }
    out
}

/// The agent socket: `$VALETKEY_SOCKET`, else `runtime_dir()/agent.sock`.
pub fn agent_socket_path() -> PathBuf {
    match std::env::var_os(SOCKET_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => runtime_dir().join("agent.sock"),
    }
}

/// File name of the control socket, always next to the agent socket.
pub const CONTROL_SOCKET_NAME: &str = "control.sock";

/// The control socket that sits next to the agent socket `agent`.
pub fn control_socket_for(agent: &std::path::Path) -> PathBuf {
    agent
        .parent()
        .map(|d| d.join(CONTROL_SOCKET_NAME))
        .unwrap_or_else(|| runtime_dir().join(CONTROL_SOCKET_NAME))
}

/// The directory of the boxes' own sockets (`boxes/`, next to the agent
/// socket `agent`): `valetkey run` mounts one of its subdirectories in a
/// box.
pub fn boxes_dir_for(agent: &std::path::Path) -> PathBuf {
    agent
        .parent()
        .map(|d| d.join("boxes"))
        .unwrap_or_else(|| runtime_dir().join("boxes"))
}

/// The default control socket: next to [`agent_socket_path`].
pub fn control_socket_path() -> PathBuf {
    control_socket_for(&agent_socket_path())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn me() -> u32 {
        uid()
    }

    #[test]
    fn xdg_runtime_dir_comes_first() {
        let run = tempfile_dir("first");
        std::fs::create_dir_all(run.join(me().to_string())).expect("test dir");
        let got = runtime_dir_from(Some("/x/run".into()), me(), &run);
        assert_eq!(got, Path::new("/x/run/valetkey"));
    }

    #[test]
    fn a_reduced_environment_finds_the_logind_directory() {
        let run = tempfile_dir("logind");
        let mine = run.join(me().to_string());
        std::fs::create_dir_all(&mine).expect("test dir");
        std::fs::set_permissions(&mine, std::fs::Permissions::from_mode(0o700)).expect("test dir");
        assert_eq!(runtime_dir_from(None, me(), &run), mine.join("valetkey"));
        // An empty XDG_RUNTIME_DIR counts as unset, as in sd_path.
        assert_eq!(
            runtime_dir_from(Some("".into()), me(), &run),
            mine.join("valetkey")
        );
    }

    #[test]
    fn someone_elses_or_a_missing_or_a_linked_directory_falls_back_to_tmp() {
        let run = tempfile_dir("fallback");
        let tmp = Path::new("/tmp").join(format!("valetkey-{}", me()));
        assert_eq!(runtime_dir_from(None, me(), &run), tmp, "missing");
        std::fs::create_dir_all(run.join("elsewhere")).expect("test dir");
        std::os::unix::fs::symlink(run.join("elsewhere"), run.join(me().to_string()))
            .expect("test dir");
        assert_eq!(runtime_dir_from(None, me(), &run), tmp, "a symlink");
        // Another uid's directory (ours, seen as theirs) is not used.
        let other = me() + 1;
        std::fs::create_dir_all(run.join(other.to_string())).expect("test dir");
        let theirs = Path::new("/tmp").join(format!("valetkey-{other}"));
        assert_eq!(runtime_dir_from(None, other, &run), theirs, "not theirs");
    }

    #[test]
    fn the_explanation_names_each_step_and_a_fix() {
        let text = how_found(Path::new("/nowhere/agent.sock"));
        assert!(text.contains("VALETKEY_SOCKET"), "{text}");
        assert!(text.contains("XDG_RUNTIME_DIR"), "{text}");
        assert!(text.contains("VALETKEY_SOCKET="), "{text}");
    }

    fn tempfile_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "vk-paths-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("test dir");
        d
    }
}

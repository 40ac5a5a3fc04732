//! Where the agent socket lives, computed in exactly one place.
//!
//! atuin shipped a bug where daemon and client disagreed on the socket path;
//! both sides of Valet Key call [`agent_socket_path`] instead.

use std::path::PathBuf;

/// Environment variable that overrides the agent socket path.
pub const SOCKET_ENV: &str = "VALETKEY_SOCKET";

/// The runtime directory that holds the sockets:
/// `$XDG_RUNTIME_DIR/valetkey`, or `/tmp/valetkey-$UID` when
/// `XDG_RUNTIME_DIR` is unset (the daemon checks its owner and mode either way).
pub fn runtime_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("valetkey"),
        _ => std::env::temp_dir().join(format!("valetkey-{}", rustix::process::getuid().as_raw())),
    }
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

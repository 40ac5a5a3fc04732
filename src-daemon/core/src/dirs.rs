//! The one module that knows where Valet Key keeps things, and that checks
//! the runtime directory before a socket is put in it.
//!
//! * config: `$VALETKEY_CONFIG_DIR`, else `$XDG_CONFIG_HOME/valetkey`, else `~/.config/valetkey`
//! * state:  `$VALETKEY_DATA_DIR`, else `$XDG_DATA_HOME/valetkey`, else `~/.local/share/valetkey`
//! * sockets: [`valetkey_ipc::paths`] (shared with every client)

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// The path exists but is a symlink; refusing to follow it.
    #[error("{0} is a symlink; refusing to use it (remove it and restart)")]
    Symlink(PathBuf),
    /// Owned by someone else.
    #[error("{path} is owned by uid {owner}, not by you (uid {me}); another user may be able to intercept the socket. Remove it and restart")]
    WrongOwner {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// Our uid.
        me: u32,
    },
    /// Group or others have access.
    #[error("{path} has mode {mode:o}; it must be 0700 (run `chmod 700 {path}`)")]
    WrongMode {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Not a directory.
    #[error("{0} exists but is not a directory")]
    NotADir(PathBuf),
    /// Any other I/O failure.
    #[error("cannot prepare {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// `$var`, else `~/fallback` (an XDG base directory).
fn base(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var).filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => home().join(fallback),
    }
}

fn xdg(var: &str, override_var: &str, fallback: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(override_var).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    base(var, fallback).join("valetkey")
}

/// `$XDG_CONFIG_HOME`, else `~/.config` (where systemd looks for user units).
pub fn config_home() -> PathBuf {
    base("XDG_CONFIG_HOME", ".config")
}

/// The config directory (holds `config.toml`).
pub fn config_dir() -> PathBuf {
    xdg("XDG_CONFIG_HOME", "VALETKEY_CONFIG_DIR", ".config")
}

/// The config file: `--config`, else `config_dir()/config.toml`.
pub fn config_file(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_owned)
        .unwrap_or_else(|| config_dir().join("config.toml"))
}

/// The agent socket, for the daemon and the CLI alike: `--socket`, else
/// `$VALETKEY_SOCKET`, else `[daemon] socket` in the config, else the
/// default under the runtime dir ([`valetkey_ipc::paths::runtime_dir`]).
pub fn agent_socket(flag: Option<&Path>, config_socket: Option<&Path>) -> PathBuf {
    flag.map(Path::to_owned)
        .or_else(|| {
            std::env::var_os(valetkey_ipc::paths::SOCKET_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .or_else(|| config_socket.map(Path::to_owned))
        .unwrap_or_else(|| valetkey_ipc::paths::runtime_dir().join("agent.sock"))
}

/// The data directory (holds `state.db`).
pub fn data_dir() -> PathBuf {
    xdg("XDG_DATA_HOME", "VALETKEY_DATA_DIR", ".local/share")
}

/// The state database path.
pub fn db_path() -> PathBuf {
    data_dir().join("state.db")
}

/// Creates `dir` (mode 0700) if missing, then checks it is a real directory
/// owned by us with no group or other access. The parent of every socket goes
/// through this, so a socket can never be planted where another user can
/// reach or replace it.
pub fn ensure_private_dir(dir: &Path) -> Result<(), DirError> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| DirError::Io {
                    path: dir.to_owned(),
                    source,
                })?;
        }
        Err(source) => {
            return Err(DirError::Io {
                path: dir.to_owned(),
                source,
            })
        }
        Ok(_) => {}
    }
    check_private_dir(dir)
}

/// Checks, without creating or changing anything, that `dir` is a real
/// directory owned by us with no group or other access (what
/// [`ensure_private_dir`] insists on; `valetkey doctor` reports it).
pub fn check_private_dir(dir: &Path) -> Result<(), DirError> {
    let meta = std::fs::symlink_metadata(dir).map_err(|source| DirError::Io {
        path: dir.to_owned(),
        source,
    })?;
    if meta.file_type().is_symlink() {
        return Err(DirError::Symlink(dir.to_owned()));
    }
    if !meta.is_dir() {
        return Err(DirError::NotADir(dir.to_owned()));
    }
    let me = rustix::process::getuid().as_raw();
    if meta.uid() != me {
        return Err(DirError::WrongOwner {
            path: dir.to_owned(),
            owner: meta.uid(),
            me,
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(DirError::WrongMode {
            path: dir.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// Creates a directory for our own files (config, data) with mode 0700.
pub fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_precedence_is_flag_then_env_then_config_then_default() {
        let flag = Path::new("/f.sock");
        let cfg = Path::new("/c.sock");
        assert_eq!(agent_socket(Some(flag), Some(cfg)), flag);
        if std::env::var_os(valetkey_ipc::paths::SOCKET_ENV).is_none() {
            assert_eq!(agent_socket(None, Some(cfg)), cfg);
            assert_eq!(
                agent_socket(None, None),
                valetkey_ipc::paths::runtime_dir().join("agent.sock")
            );
            // The daemon's default is the one every client computes.
            assert_eq!(
                agent_socket(None, None),
                valetkey_ipc::paths::agent_socket_path()
            );
        }
    }

    #[test]
    fn creates_private_dir_and_refuses_loose_modes_and_symlinks() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("rt");
        ensure_private_dir(&dir).expect("created");
        let mode = std::fs::metadata(&dir).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert!(matches!(
            ensure_private_dir(&dir),
            Err(DirError::WrongMode { mode: 0o755, .. })
        ));

        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).expect("symlink");
        assert!(matches!(
            ensure_private_dir(&link),
            Err(DirError::Symlink(_))
        ));
    }
}

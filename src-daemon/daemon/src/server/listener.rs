//! Binding the agent socket safely.
//!
//! The parent directory must be ours and 0700 ([`valetkey_core::dirs::ensure_private_dir`]).
//! A symlink at the socket path is refused. A socket left by a dead daemon
//! (connect is refused) is removed; a live one means another daemon is
//! serving, and we refuse to start rather than steal its clients.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use interprocess::local_socket::{tokio::Listener, GenericFilePath, ListenerOptions, ToFsName};

use valetkey_core::dirs::{ensure_private_dir, DirError};

/// Why the socket could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The runtime directory is unsafe.
    #[error(transparent)]
    Dir(#[from] DirError),
    /// A symlink sits at the socket path.
    #[error("{0} is a symlink; refusing to use it (someone may be redirecting agents). Remove it and restart")]
    Symlink(PathBuf),
    /// Something that is not a socket sits at the path.
    #[error("{0} exists and is not a socket; remove it or choose another path with --socket")]
    NotASocket(PathBuf),
    /// Another daemon answers on the socket.
    #[error("another valetkeyd is already serving {0}; stop it first (`pkill -x valetkeyd`) or use --socket to run a second one elsewhere")]
    AlreadyRunning(PathBuf),
    /// Any other failure.
    #[error("cannot listen on {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Prepares the directory, clears a stale socket and binds `path` (mode 0600).
pub fn bind(path: &Path) -> Result<Listener, BindError> {
    let io = |source| BindError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        ensure_private_dir(dir)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => return Err(BindError::Symlink(path.to_owned())),
        Ok(m) if !m.file_type().is_socket() => return Err(BindError::NotASocket(path.to_owned())),
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => return Err(BindError::AlreadyRunning(path.to_owned())),
            Err(_) => {
                tracing::info!(path = %path.display(), "removing stale socket from a dead daemon");
                std::fs::remove_file(path).map_err(io)?;
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let name = path.to_fs_name::<GenericFilePath>().map_err(io)?;
    let listener = ListenerOptions::new()
        .name(name)
        .create_tokio()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => BindError::AlreadyRunning(path.to_owned()),
            _ => io(e),
        })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(listener)
}

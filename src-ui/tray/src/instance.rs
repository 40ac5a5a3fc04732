//! One tray per user session. The first `valetkey-tray` holds an exclusive
//! lock on `tray.lock` beside the control socket and listens on `tray.sock`;
//! a later launch finds the lock taken, says `show` (or `ping`) on the
//! socket and exits, so `valetkey-tray --show` from the app menu or a
//! notification opens the window of the tray that runs. The lock, not the
//! socket, decides who owns the session: a socket file left by a crash is
//! simply replaced.

use std::fs::File;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{flock, FlockOperation};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc::UnboundedSender;

use crate::icon::Action;

/// What [`claim`] found.
pub enum Claim {
    /// This process is the tray: keep the lock file open for its lifetime.
    Mine(File, UnixListener),
    /// Another tray runs and was told.
    Other,
}

/// Becomes the session's tray, or hands `show` to the one that is.
pub async fn claim(dir: &Path, show: bool) -> io::Result<Claim> {
    // 0700, as the daemon and the socket unit make it, in case this
    // process is the first to need it.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("tray.lock"))?;
    let sock = socket(dir);
    if flock(&lock, FlockOperation::NonBlockingLockExclusive).is_ok() {
        let _ = std::fs::remove_file(&sock);
        return Ok(Claim::Mine(lock, UnixListener::bind(&sock)?));
    }
    // The owner may still be binding: a few tries, then give up.
    let word: &[u8] = if show { b"show\n" } else { b"ping\n" };
    for _ in 0..50 {
        if let Ok(mut s) = UnixStream::connect(&sock).await {
            s.write_all(word).await?;
            return Ok(Claim::Other);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(io::Error::other(format!(
        "another valetkey-tray holds {} but does not answer on {}",
        dir.join("tray.lock").display(),
        sock.display()
    )))
}

/// `tray.sock` in `dir`.
pub fn socket(dir: &Path) -> PathBuf {
    dir.join("tray.sock")
}

/// Turns each later launch's `show` into [`Action::Open`].
pub async fn serve(listener: UnixListener, actions: UnboundedSender<Action>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let actions = actions.clone();
        tokio::spawn(async move {
            let mut line = String::new();
            let mut r = BufReader::new(stream.take(64));
            if r.read_line(&mut line).await.is_ok() && line.trim() == "show" {
                let _ = actions.send(Action::Open);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_second_launch_hands_show_to_the_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let Claim::Mine(_lock, listener) = claim(dir.path(), false).await.expect("first") else {
            panic!("the first launch must own the session");
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(serve(listener, tx));
        assert!(matches!(
            claim(dir.path(), false).await.expect("ping"),
            Claim::Other
        ));
        assert!(matches!(
            claim(dir.path(), true).await.expect("show"),
            Claim::Other
        ));
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(
            got.expect("in time"),
            Some(Action::Open),
            "show opens, ping does not"
        );
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_missing_runtime_dir_is_made_private() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().expect("tempdir");
        let dir = base.path().join("valetkey");
        assert!(matches!(
            claim(&dir, false).await.expect("claim"),
            Claim::Mine(..)
        ));
        let mode = std::fs::metadata(&dir).expect("dir").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[tokio::test]
    async fn a_socket_left_by_a_crash_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(socket(dir.path()), b"stale").expect("stale file");
        assert!(matches!(
            claim(dir.path(), false).await.expect("claim"),
            Claim::Mine(..)
        ));
    }
}

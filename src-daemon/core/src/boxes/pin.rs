//! What runs in a box is what was hashed.
//!
//! The daemon hashes a box's program and script when the box is opened,
//! and grants bind to that hash. Between the hash and the interpreter
//! opening the script, another process can rename a different file over
//! it (another box sharing the working directory, watching with
//! inotify), and the box would run that under the first one's grant. So
//! the daemon reads each file it hashes once, hashes exactly the bytes it
//! read, and, where the file could be swapped, writes those bytes to a
//! copy in the box's own directory (which no box can write). The launcher
//! binds the copy read-only at the file's path in the box: a rename or a
//! write after the hash changes nothing the box sees.
//!
//! A file the user can change (it, or a directory above it, is writable
//! by the daemon's user) is pinned up to [`ALWAYS`] (scripts are small,
//! and a copy costs nothing). A larger one is pinned, up to [`LARGEST`],
//! when it is in a place a box writes (this box's, or any open box's); an
//! even larger one there is refused. Anything else is hashed without a
//! copy: a system file nobody but root changes, or a large one elsewhere
//! (an interpreter under `~/.nvm`), which only unboxed processes, trusted
//! like the user, can change.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Files up to this size are always pinned.
pub const ALWAYS: u64 = 1 << 20;

/// The largest file pinned.
pub const LARGEST: u64 = 64 << 20;

/// A file read once for a box: its hash, and the copy made of it.
#[derive(Debug)]
pub struct Pinned {
    /// Lowercase hex SHA-256 of the bytes read.
    pub sha256: String,
    /// The copy, when one was made.
    pub copy: Option<PathBuf>,
}

/// Hashes `path` and, as [`Pinned`] says, copies it to `copy`. `writable`
/// are the places boxes write. Blocking.
pub fn pin(path: &Path, copy: &Path, writable: &[PathBuf]) -> std::io::Result<Pinned> {
    let mut file = std::fs::File::open(path)?;
    let m = file.metadata()?;
    if !m.is_file() {
        return Err(std::io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let in_box = writable.iter().any(|w| path.starts_with(w));
    let copied = in_box || (m.len() <= ALWAYS && swappable(path));
    if !copied {
        return Ok(Pinned {
            sha256: crate::attest::sha256_bounded(&mut file)?.ok_or_else(|| {
                std::io::Error::other(format!("{} is larger than 512 MiB", path.display()))
            })?,
            copy: None,
        });
    }
    let mut bytes = Vec::with_capacity(m.len().min(LARGEST) as usize);
    (&mut file).take(LARGEST + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > LARGEST {
        return Err(std::io::Error::other(format!(
            "{} is over 64 MiB and in a directory a box can write, so it cannot be pinned for the box; move it out of the working directory",
            path.display()
        )));
    }
    let sha256 = crate::attest::sha256_hex(&bytes);
    write_copy(copy, &bytes, m.permissions())?;
    Ok(Pinned {
        sha256,
        copy: Some(copy.to_owned()),
    })
}

/// Whether this user can change what `path` names: write the file, or
/// rename something in a directory above it.
fn swappable(path: &Path) -> bool {
    use rustix::fs::{access, Access};
    path.ancestors()
        .filter(|p| !p.as_os_str().is_empty())
        .any(|p| access(p, Access::WRITE_OK).is_ok())
}

/// Writes the copy, read-only, keeping the execute bits (a `#!` script
/// run directly must stay runnable).
fn write_copy(copy: &Path, bytes: &[u8], perm: std::fs::Permissions) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(copy, bytes)?;
    let mode = (perm.mode() & 0o555) | 0o400;
    std::fs::set_permissions(copy, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_script_is_copied_as_hashed_and_a_later_swap_changes_nothing() {
        let t = tempfile::tempdir().expect("tempdir");
        let script = t.path().join("good.py");
        std::fs::write(&script, "print('good')\n").expect("write");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let copy = t.path().join("pinned-0");
        let p = pin(&script, &copy, &[]).expect("pinned");
        assert_eq!(p.sha256, crate::attest::sha256_hex(b"print('good')\n"));
        std::fs::write(t.path().join("evil.py"), "print('evil')\n").expect("write");
        std::fs::rename(t.path().join("evil.py"), &script).expect("swap");
        assert_eq!(
            std::fs::read_to_string(&copy).expect("copy"),
            "print('good')\n"
        );
        let mode = std::fs::metadata(&copy).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o555, "read-only, still runnable");
    }

    #[test]
    fn a_system_file_is_hashed_not_copied() {
        let t = tempfile::tempdir().expect("tempdir");
        let copy = t.path().join("pinned-0");
        let sh = pin(Path::new("/bin/sh"), &copy, &[]).expect("hashed");
        // As root every file is writable: then it is copied, as it should.
        let root = rustix::process::geteuid().is_root();
        assert_eq!(sh.copy.is_some(), root);
        assert_eq!(
            sh.sha256,
            crate::attest::sha256_file(Path::new("/bin/sh")).expect("hash")
        );
    }

    #[test]
    fn a_large_file_is_pinned_only_where_a_box_writes() {
        let t = tempfile::tempdir().expect("tempdir");
        let big = t.path().join("tool");
        std::fs::write(&big, vec![7u8; (ALWAYS + 1) as usize]).expect("write");
        let copy = t.path().join("pinned-0");
        let outside = pin(&big, &copy, &[]).expect("hashed");
        assert!(outside.copy.is_none() && !copy.exists());
        let inside = pin(&big, &copy, &[t.path().to_owned()]).expect("pinned");
        assert_eq!(inside.copy.as_deref(), Some(copy.as_path()));
        assert_eq!(inside.sha256, outside.sha256);
    }
}

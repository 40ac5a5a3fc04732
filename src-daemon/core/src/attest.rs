//! Who is on the other end of the socket, from the kernel's point of view.
//!
//! The peer's uid and pid come from `SO_PEERCRED`; everything else is read
//! from `/proc/PID`: the executable (path and SHA-256 of the file the process
//! is actually running, via `/proc/PID/exe`), the start time (so a recycled
//! pid is not mistaken for the original process), and the parent chain. The
//! start time is read before and after the hash; if it changed, the pid was
//! reused while we looked and the peer is refused.
//!
//! Hashes are cached by (device, inode, size, mtime, ctime), so an agent
//! reconnecting does not re-hash its binary. Linux only; other platforms get
//! a clear error from this one module (the place to port).

use std::collections::HashMap;
use std::sync::Mutex;

use valetkey_ipc::methods::{PeerIdentity, ProcessInfo};

/// Largest executable that is hashed (bigger ones are refused).
pub const MAX_EXE_BYTES: u64 = 512 * 1024 * 1024;
/// How many ancestors are recorded.
pub const MAX_PARENTS: usize = 8;

/// Why a peer could not be attested.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    /// The process is gone or `/proc` is unreadable.
    #[error("cannot inspect process {pid}: {why}")]
    Unreadable {
        /// The pid.
        pid: u32,
        /// What failed.
        why: String,
    },
    /// The pid now names a different process.
    #[error("process {0} was replaced while being attested (pid reuse); reconnect")]
    PidReused(u32),
    /// The executable is larger than [`MAX_EXE_BYTES`].
    #[error("executable of process {0} is larger than 512 MiB; refusing to hash it")]
    TooLarge(u32),
    /// No `/proc` on this platform.
    #[error("process attestation is not implemented on this platform")]
    Unsupported,
}

type FileKey = (u64, u64, u64, i64, i64);

/// Attests peers; holds the hash cache.
#[derive(Default)]
pub struct Attestor {
    hashes: Mutex<HashMap<FileKey, String>>,
}

#[cfg(target_os = "linux")]
mod linux {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    pub(super) struct Stat {
        pub ppid: u32,
        pub start_time: u64,
        /// Exited (a zombie not yet reaped, or dead).
        pub exited: bool,
    }

    pub(super) fn read_stat(pid: u32) -> Result<Stat, AttestError> {
        let unreadable = |why: String| AttestError::Unreadable { pid, why };
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_err(|e| unreadable(e.to_string()))?;
        // `comm` may hold spaces and parens; fields resume after the last ')'.
        let rest = text
            .rsplit_once(')')
            .map(|(_, r)| r)
            .ok_or_else(|| unreadable("malformed stat".into()))?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .ok_or_else(|| unreadable("malformed stat".into()))
        };
        // fields[0] is field 3 (state): ppid is field 4, starttime field 22.
        Ok(Stat {
            ppid: field(1)? as u32,
            start_time: field(19)?,
            exited: matches!(fields.first(), Some(&("Z" | "X" | "x"))),
        })
    }

    /// The namespaces (`mnt`, `user`) in which `pid` is not where we are
    /// (or whose link cannot be read).
    pub(super) fn foreign_namespaces(pid: u32) -> Vec<&'static str> {
        let link = |who: &str, ns: &str| std::fs::read_link(format!("/proc/{who}/ns/{ns}")).ok();
        ["mnt", "user"]
            .into_iter()
            .filter(|ns| {
                let theirs = link(&pid.to_string(), ns);
                theirs.is_none() || theirs != link("self", ns)
            })
            .collect()
    }

    /// Whether `exe`, opened here, is the very file `pid` runs.
    pub(super) fn path_verified(pid: u32, exe: &str) -> bool {
        let runs = std::fs::metadata(format!("/proc/{pid}/exe")).ok();
        let named = std::fs::metadata(exe).ok();
        match (runs, named) {
            (Some(r), Some(n)) => r.dev() == n.dev() && r.ino() == n.ino(),
            _ => false,
        }
    }

    pub(super) fn exe_path(pid: u32) -> Option<String> {
        std::fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    }

    pub(super) fn hash_exe(a: &Attestor, pid: u32) -> Result<String, AttestError> {
        let unreadable = |why: String| AttestError::Unreadable { pid, why };
        let mut file = std::fs::File::open(format!("/proc/{pid}/exe"))
            .map_err(|e| unreadable(format!("executable: {e}")))?;
        let m = file.metadata().map_err(|e| unreadable(e.to_string()))?;
        if m.len() > MAX_EXE_BYTES {
            return Err(AttestError::TooLarge(pid));
        }
        let key = (m.dev(), m.ino(), m.size(), m.mtime(), m.ctime());
        if let Some(h) = a.hashes.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(h.clone());
        }
        let hex = sha256_bounded(&mut file)
            .map_err(|e| unreadable(e.to_string()))?
            .ok_or(AttestError::TooLarge(pid))?;
        a.hashes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, hex.clone());
        Ok(hex)
    }
}

/// The pid namespace of process `pid` (`pid:[INODE]`), when readable.
#[cfg(target_os = "linux")]
pub fn pid_namespace(pid: u32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// No `/proc` here: no namespace can be read.
#[cfg(not(target_os = "linux"))]
pub fn pid_namespace(_pid: u32) -> Option<String> {
    None
}

/// Process `pid`'s parent and start time, when it is alive.
#[cfg(target_os = "linux")]
pub fn parent_and_start(pid: u32) -> Option<(u32, u64)> {
    linux::read_stat(pid)
        .ok()
        .filter(|s| !s.exited)
        .map(|s| (s.ppid, s.start_time))
}

/// No `/proc` here.
#[cfg(not(target_os = "linux"))]
pub fn parent_and_start(_pid: u32) -> Option<(u32, u64)> {
    None
}

/// Loader variables that inject code into a process.
pub const LOADER_VARS: &[&str] = &["LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT"];

/// The loader variables set (non-empty) in a `/proc/PID/environ` image.
pub fn loader_vars(environ: &[u8]) -> Vec<String> {
    let mut found: Vec<String> = environ
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let eq = kv.iter().position(|b| *b == b'=')?;
            let (k, v) = (&kv[..eq], &kv[eq + 1..]);
            let k = std::str::from_utf8(k).ok()?;
            (LOADER_VARS.contains(&k) && !v.is_empty()).then(|| k.to_owned())
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

/// The loader variables (`LD_PRELOAD`, `LD_LIBRARY_PATH`, `LD_AUDIT`) set
/// in process `pid`'s environment: each can load any code into the real
/// binary. `Err` when the environment cannot be read. Blocking (reads
/// `/proc`). With the identity's `foreign_namespaces` and
/// `exe_unverified`, this is what the control socket needs to take a
/// client's path at its word.
#[cfg(target_os = "linux")]
pub fn loader_env(pid: u32) -> Result<Vec<String>, String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|e| loader_vars(&e))
        .map_err(|e| e.to_string())
}

/// The environment is read from `/proc`: elsewhere it cannot be vouched for.
#[cfg(not(target_os = "linux"))]
pub fn loader_env(_pid: u32) -> Result<Vec<String>, String> {
    Err("not implemented on this platform".into())
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Attestor {
    /// Attests process `pid` running as `uid`. Blocking (reads `/proc`,
    /// may hash a file): call from a blocking thread.
    #[cfg(target_os = "linux")]
    pub fn attest(&self, pid: u32, uid: u32) -> Result<PeerIdentity, AttestError> {
        let before = linux::read_stat(pid)?;
        let exe = linux::exe_path(pid).ok_or_else(|| AttestError::Unreadable {
            pid,
            why: "executable path unreadable".into(),
        })?;
        let sha256 = linux::hash_exe(self, pid)?;
        // Read before the second look at the start time, so all of it is
        // about the same process.
        let exe_unverified = !linux::path_verified(pid, &exe);
        let foreign_namespaces = linux::foreign_namespaces(pid)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let after = linux::read_stat(pid)?;
        if after.start_time != before.start_time {
            return Err(AttestError::PidReused(pid));
        }
        let mut parents = Vec::new();
        let mut next = before.ppid;
        while next != 0 && parents.len() < MAX_PARENTS {
            parents.push(ProcessInfo {
                pid: next,
                exe: linux::exe_path(next),
            });
            next = match linux::read_stat(next) {
                Ok(s) => s.ppid,
                Err(_) => 0,
            };
        }
        Ok(PeerIdentity {
            uid,
            pid,
            exe_unverified,
            confinement: None,
            exe,
            sha256,
            start_time: before.start_time,
            parents,
            foreign_namespaces,
        })
    }

    /// SHA-256 of the file at `path`, hex, cached like executables'
    /// hashes (a box's program and script are hashed once per change).
    /// Blocking.
    pub fn hash_path(&self, path: &std::path::Path) -> std::io::Result<String> {
        use std::os::unix::fs::MetadataExt;
        let mut file = std::fs::File::open(path)?;
        let m = file.metadata()?;
        if !m.is_file() {
            return Err(std::io::Error::other(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        let key = (m.dev(), m.ino(), m.size(), m.mtime(), m.ctime());
        if let Some(h) = self
            .hashes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(h.clone());
        }
        let hex = sha256_bounded(&mut file)?.ok_or_else(|| {
            std::io::Error::other(format!("{} is larger than 512 MiB", path.display()))
        })?;
        self.hashes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, hex.clone());
        Ok(hex)
    }

    /// A handle on the process that connected, for [`ProcessHandle::alive`].
    #[cfg(target_os = "linux")]
    pub fn handle(pid: u32, start_time: u64) -> ProcessHandle {
        use rustix::process::{pidfd_open, Pid, PidfdFlags};
        let fd = Pid::from_raw(pid as i32).and_then(|p| pidfd_open(p, PidfdFlags::empty()).ok());
        // The pid could have been recycled between attestation and here:
        // check once that the handle names the attested process.
        let gone = !Self::still_same(pid, start_time);
        ProcessHandle {
            fd,
            pid,
            start_time,
            gone,
        }
    }

    /// Attestation is Linux-only for now.
    #[cfg(not(target_os = "linux"))]
    pub fn handle(pid: u32, start_time: u64) -> ProcessHandle {
        ProcessHandle {
            fd: None,
            pid,
            start_time,
            gone: true,
        }
    }

    /// Whether `pid` still names the live process that started at
    /// `start_time` (an exited one not yet reaped by its parent counts as
    /// gone: its socket may live on in a child).
    #[cfg(target_os = "linux")]
    pub fn still_same(pid: u32, start_time: u64) -> bool {
        linux::read_stat(pid).is_ok_and(|s| s.start_time == start_time && !s.exited)
    }

    /// Attestation is Linux-only for now.
    #[cfg(not(target_os = "linux"))]
    pub fn attest(&self, _pid: u32, _uid: u32) -> Result<PeerIdentity, AttestError> {
        Err(AttestError::Unsupported)
    }

    /// Attestation is Linux-only for now.
    #[cfg(not(target_os = "linux"))]
    pub fn still_same(_pid: u32, _start_time: u64) -> bool {
        false
    }
}

/// Streams `r` through SHA-256; `Ok(None)` when it exceeds [`MAX_EXE_BYTES`].
pub fn sha256_bounded(r: &mut impl std::io::Read) -> std::io::Result<Option<String>> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(Some(hex(ctx.finish().as_ref())));
        }
        total += n as u64;
        if total > MAX_EXE_BYTES {
            return Ok(None);
        }
        ctx.update(&buf[..n]);
    }
}

/// SHA-256 of a file, hex (for `valetkey grant add --binary`), with the
/// same 512 MiB bound attestation uses.
pub fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    sha256_bounded(&mut std::fs::File::open(path)?)?
        .ok_or_else(|| std::io::Error::other(format!("{} is larger than 512 MiB", path.display())))
}

/// The exact process behind a connection. On Linux a pidfd: it refers to
/// that process and no other, and turns readable when it exits, so "is
/// the peer still there?" is one `poll` per request rather than a parse
/// of `/proc/PID/stat`, and a recycled pid can never pass for it. Without
/// pidfds (kernels before 5.3) it falls back to comparing start times.
pub struct ProcessHandle {
    fd: Option<std::os::fd::OwnedFd>,
    pid: u32,
    start_time: u64,
    gone: bool,
}

impl ProcessHandle {
    /// Whether the process that connected is still running (an exited
    /// one not yet reaped counts as gone).
    #[cfg(target_os = "linux")]
    pub fn alive(&self) -> bool {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        if self.gone {
            return false;
        }
        let Some(fd) = &self.fd else {
            return Attestor::still_same(self.pid, self.start_time);
        };
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match poll(&mut [PollFd::new(fd, PollFlags::IN)], Some(&now)) {
            Ok(0) => true,
            Ok(_) => false,
            Err(_) => Attestor::still_same(self.pid, self.start_time),
        }
    }
    /// Attestation is Linux-only for now.
    #[cfg(not(target_os = "linux"))]
    pub fn alive(&self) -> bool {
        !self.gone && Attestor::still_same(self.pid, self.start_time)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn loader_variables_are_found_only_when_set() {
        let env =
            b"PATH=/usr/bin\0LD_PRELOAD=/tmp/x.so\0LD_LIBRARY_PATH=\0HOME=/root\0LD_AUDIT=a.so";
        assert_eq!(loader_vars(env), ["LD_AUDIT", "LD_PRELOAD"]);
        assert!(loader_vars(b"PATH=/bin\0MY_LD_PRELOAD=x\0").is_empty());
        assert!(loader_vars(b"").is_empty());
    }

    #[test]
    fn this_process_is_in_our_namespaces_and_runs_what_its_path_names() {
        let me = std::process::id();
        let exe = std::env::current_exe().expect("exe");
        assert!(linux::foreign_namespaces(me).is_empty());
        assert!(linux::path_verified(me, &exe.to_string_lossy()));
        // Another file at that path is not the one running.
        assert!(!linux::path_verified(me, "/bin/sh"));
        // cargo may set LD_LIBRARY_PATH for the tests it runs (the repo's
        // runner removes it); the reading must agree with what this
        // process was given.
        let mut given: Vec<String> = LOADER_VARS
            .iter()
            .filter(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
            .map(|v| v.to_string())
            .collect();
        given.sort();
        assert_eq!(loader_env(me), Ok(given));
    }

    #[test]
    fn attests_this_test_process() {
        let a = Attestor::default();
        let me = std::process::id();
        let uid = rustix::process::getuid().as_raw();
        let id = a.attest(me, uid).expect("attest self");
        let exe = std::env::current_exe().expect("exe");
        assert_eq!(id.exe, exe.to_string_lossy());
        assert_eq!(id.sha256, sha256_file(&exe).expect("hash"));
        assert!(
            id.foreign_namespaces.is_empty(),
            "{:?}",
            id.foreign_namespaces
        );
        assert!(!id.exe_unverified);
        assert!(!id.parents.is_empty());
        assert!(Attestor::still_same(me, id.start_time));
        assert!(!Attestor::still_same(me, id.start_time + 1));
        // Second call hits the cache and agrees.
        assert_eq!(a.attest(me, uid).expect("again").sha256, id.sha256);
    }

    /// A child that exits after 0.2 s, its pid and start time.
    fn short_lived() -> (std::process::Child, u32, u64) {
        let child = std::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .expect("spawn");
        let pid = child.id();
        let start = linux::read_stat(pid).expect("stat").start_time;
        (child, pid, start)
    }

    #[test]
    fn an_exited_unreaped_process_is_not_the_same() {
        let (mut child, pid, start) = short_lived();
        assert!(Attestor::still_same(pid, start), "running");
        std::thread::sleep(std::time::Duration::from_millis(600));
        // Exited but not waited for: a zombie with the same start time.
        assert_eq!(linux::read_stat(pid).expect("zombie").start_time, start);
        assert!(!Attestor::still_same(pid, start), "a zombie is gone");
        child.wait().expect("wait");
        assert!(!Attestor::still_same(pid, start), "reaped");
    }

    #[test]
    fn a_handle_sees_its_process_exit_even_before_it_is_reaped() {
        let (mut child, pid, start) = short_lived();
        let h = Attestor::handle(pid, start);
        assert!(h.alive(), "running");
        assert!(
            !Attestor::handle(pid, start + 1).alive(),
            "another start time"
        );
        std::thread::sleep(std::time::Duration::from_millis(600));
        assert!(!h.alive(), "exited, not yet reaped");
        child.wait().expect("wait");
        assert!(!h.alive(), "reaped");
    }

    #[test]
    fn a_dead_pid_is_unreadable() {
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        child.wait().expect("wait");
        assert!(matches!(
            Attestor::default().attest(pid, 0),
            Err(AttestError::Unreadable { .. })
        ));
    }
}

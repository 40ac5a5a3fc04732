//! The box's supervisor: `valetkey box-exec`, the parent of everything the
//! box runs, answering the seccomp user notifications of its filter
//! ([`super::filter`]).
//!
//! **`connect`** is made here, never let through: the supervisor reads the
//! address once from the caller's memory, takes a duplicate of its socket
//! (`pidfd_getfd`) and connects that, on its own copy of the address, then
//! answers with the result. What the caller's memory or descriptor table
//! holds after the read changes nothing (letting the call go on with
//! `SECCOMP_USER_NOTIF_FLAG_CONTINUE` would let another thread swap the
//! address or the descriptor in between). A Unix socket path is opened
//! here (`O_PATH`, as the caller would resolve it: from its working
//! directory), checked by device and inode, and connected through
//! `/proc/self/fd/N`, so the check and the connection are about the same
//! socket. Allowed: sockets on the box's own file systems (its `/tmp`,
//! runtime directory and `/dev`: nothing outside the box can put one
//! there), its own `agent.sock` and `proxy.sock`, and the profile's
//! `sockets`. Anything else gets `EACCES` and a report. Abstract sockets
//! and TCP are connected as asked; Landlock and the network namespace
//! decide those, for the supervisor as for the box.
//!
//! **Calls that change a path** are noted when they touch a locked or a
//! watched path, then let go on: the mounts decide them.
//!
//! Since every connection from the box is made here, the daemon sees the
//! supervisor as the peer of every box connection (its pid namespace is
//! the box's); the box's facts say what runs in it.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use tokio::sync::mpsc::UnboundedSender as Sender;

use libseccomp::{notify_id_valid, ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
use valetkey_ipc::control::BoxEvent;

/// `AT_FDCWD`.
const AT_FDCWD: i32 = -100;
const EACCES: i32 = 13;
const EFAULT: i32 = 14;
const EINVAL: i32 = 22;
const ENOSYS: i32 = 38;
const EAFNOSUPPORT: i32 = 97;
const EBADF: i32 = 9;

/// What the supervisor checks against.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// The box's own socket directory (`agent.sock`, `proxy.sock`).
    pub own: PathBuf,
    /// Sockets outside the box the profile allows.
    pub sockets: Vec<PathBuf>,
    /// Locked paths (read-only in the box).
    pub locked: Vec<PathBuf>,
    /// Watched paths (reported when created).
    pub watched: Vec<PathBuf>,
    /// The places the box writes (a `.git` made there is reported).
    pub writable: Vec<PathBuf>,
    /// The devices of the box's own file systems.
    pub private_devs: Vec<u64>,
}

impl Rules {
    /// Finds the box's own places, from inside it: its socket directory,
    /// and the devices of its `/tmp`, `/dev` and runtime directory (each a
    /// file system of the box's own, which nothing outside can write).
    pub fn find_own_places(&mut self) {
        self.own = valetkey_ipc::paths::runtime_dir();
        let runtime = valetkey_ipc::paths::user_runtime_dir();
        let places = [
            Some(PathBuf::from("/tmp")),
            Some(PathBuf::from("/dev")),
            runtime,
        ];
        self.private_devs = places
            .iter()
            .flatten()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.dev())
            .collect();
    }
}

/// One notification and what answering it needs.
struct Call<'a> {
    req: ScmpNotifReq,
    fd: i32,
    rules: &'a Rules,
    events: &'a Sender<BoxEvent>,
}

/// Answers notifications on `listener` for as long as the box runs.
/// Blocking: runs on a thread of its own, which ends with the process.
pub fn serve(listener: OwnedFd, rules: Rules, events: Sender<BoxEvent>) {
    use std::os::fd::AsRawFd;
    let fd = listener.as_raw_fd();
    let rules = std::sync::Arc::new(rules);
    loop {
        // An error is a caller that went away before its notification was
        // read: the next one is as good.
        let Ok(req) = ScmpNotifReq::receive(fd) else {
            std::thread::sleep(std::time::Duration::from_millis(1));
            continue;
        };
        let name = req.data.syscall.get_name().unwrap_or_default();
        if name == "connect" {
            let c = Call {
                req,
                fd,
                rules: &rules,
                events: &events,
            };
            match prepare(&c) {
                Err(errno) => answer(fd, req.id, Err(errno)),
                Ok(p) if !p.slow() => answer(fd, req.id, connect(&c, &p)),
                // A blocking TCP connect may take as long as a handshake:
                // on a thread of its own, so the box's other calls go on.
                Ok(p) => {
                    let (rules, events) = (rules.clone(), events.clone());
                    std::thread::spawn(move || {
                        let c = Call {
                            req,
                            fd,
                            rules: &rules,
                            events: &events,
                        };
                        answer(fd, req.id, connect(&c, &p));
                    });
                }
            }
        } else {
            note_paths(
                &Call {
                    req,
                    fd,
                    rules: &rules,
                    events: &events,
                },
                &name,
            );
            let _ = ScmpNotifResp::new_continue(req.id, ScmpNotifRespFlags::empty()).respond(fd);
        }
    }
}

fn answer(fd: i32, id: u64, r: Result<(), i32>) {
    let resp = match r {
        Ok(()) => ScmpNotifResp::new_val(id, 0, ScmpNotifRespFlags::empty()),
        Err(errno) => ScmpNotifResp::new_error(id, -errno, ScmpNotifRespFlags::empty()),
    };
    let _ = resp.respond(fd);
}

/// A `connect` read from the caller: a duplicate of its socket and a
/// copy of its address.
struct Prepared {
    sock: OwnedFd,
    addr: Vec<u8>,
}

impl Prepared {
    /// Whether connecting may block for long: a TCP socket in blocking
    /// mode (a Unix connect completes or fails at once).
    fn slow(&self) -> bool {
        let family = self.addr.get(..2).map(|f| u16::from_ne_bytes([f[0], f[1]]));
        let blocking = rustix::fs::fcntl_getfl(&self.sock)
            .is_ok_and(|f| !f.contains(rustix::fs::OFlags::NONBLOCK));
        blocking && matches!(family, Some(2 | 10))
    }
}

/// Reads `connect(fd, addr, len)`'s address and takes its socket, while
/// the notification still stands for the caller.
fn prepare(c: &Call<'_>) -> Result<Prepared, i32> {
    let [fd, addr, len, ..] = c.req.data.args;
    let len = len as usize;
    if len > 128 {
        return Err(EINVAL);
    }
    let addr = read_mem(c.req.pid, addr, len)?;
    let sock = take_fd(c.req.pid, fd as i32)?;
    // The pid still names the caller (it did not exit, and no other
    // process took its pid, while its memory was read).
    notify_id_valid(c.fd, c.req.id).map_err(|_| ENOSYS)?;
    if addr.len() < 2 {
        return Err(EINVAL);
    }
    Ok(Prepared { sock, addr })
}

/// A duplicate of descriptor `fd` of the thread `tid` (what a seccomp
/// notification names). `pidfd_open` refuses a thread that is not its
/// group's leader (ENOENT, which the caller would have seen as its own
/// connect's error: Go runs connects on any of its threads), so the
/// descriptor is taken from the leader, whose table the threads share.
fn take_fd(tid: u32, fd: i32) -> Result<OwnedFd, i32> {
    let pid = tgid(tid).unwrap_or(tid);
    let p = rustix::process::Pid::from_raw(pid as i32).ok_or(EBADF)?;
    let pidfd = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty())
        .map_err(|e| e.raw_os_error())?;
    rustix::process::pidfd_getfd(&pidfd, fd, rustix::process::PidfdGetfdFlags::empty())
        .map_err(|e| e.raw_os_error())
}

/// The thread group (process) of thread `tid`, from `/proc/TID/status`.
fn tgid(tid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// `len` bytes at `addr` of process `pid`'s memory.
fn read_mem(pid: u32, addr: u64, len: usize) -> Result<Vec<u8>, i32> {
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).map_err(|_| EFAULT)?;
    let mut buf = vec![0u8; len];
    mem.read_exact_at(&mut buf, addr).map_err(|_| EFAULT)?;
    Ok(buf)
}

/// The NUL-terminated string at `addr` (at most 4,096 bytes).
fn read_path(pid: u32, addr: u64) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    let mut out = vec![];
    let mut chunk = [0u8; 256];
    while out.len() < 4096 {
        // A read up to the end of the page, so no read crosses into one
        // that is not mapped.
        let at = addr + out.len() as u64;
        let room = (4096 - (at % 4096)) as usize;
        let n = mem.read_at(&mut chunk[..room.min(256)], at).ok()?;
        if n == 0 {
            return None;
        }
        if let Some(end) = chunk[..n].iter().position(|b| *b == 0) {
            out.extend_from_slice(&chunk[..end]);
            return Some(PathBuf::from(std::ffi::OsString::from_vec(out)));
        }
        out.extend_from_slice(&chunk[..n]);
    }
    None
}

/// Emulates the prepared `connect` for the caller, on the supervisor's
/// copies of its socket and address.
fn connect(c: &Call<'_>, p: &Prepared) -> Result<(), i32> {
    let (sock, bytes) = (&p.sock, &p.addr);
    let family = u16::from_ne_bytes([bytes[0], bytes[1]]);
    let r = match family {
        0 => rustix::net::connect_unspec(sock),
        1 => return unix(c, sock, &bytes[2..]),
        2 => rustix::net::connect(sock, &std::net::SocketAddr::V4(v4(bytes)?)),
        10 => rustix::net::connect(sock, &std::net::SocketAddr::V6(v6(bytes)?)),
        _ => return Err(EAFNOSUPPORT),
    };
    r.map_err(|e| e.raw_os_error())
}

fn v4(b: &[u8]) -> Result<std::net::SocketAddrV4, i32> {
    if b.len() < 8 {
        return Err(EINVAL);
    }
    let port = u16::from_be_bytes([b[2], b[3]]);
    Ok(std::net::SocketAddrV4::new(
        [b[4], b[5], b[6], b[7]].into(),
        port,
    ))
}

fn v6(b: &[u8]) -> Result<std::net::SocketAddrV6, i32> {
    if b.len() < 24 {
        return Err(EINVAL);
    }
    let port = u16::from_be_bytes([b[2], b[3]]);
    let flow = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
    let mut ip = [0u8; 16];
    ip.copy_from_slice(&b[8..24]);
    let scope = b
        .get(24..28)
        .map_or(0, |s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]));
    Ok(std::net::SocketAddrV6::new(ip.into(), port, flow, scope))
}

/// An `AF_UNIX` connect: abstract names as asked (Landlock decides),
/// paths only to sockets the box may reach.
fn unix(c: &Call<'_>, sock: &OwnedFd, path: &[u8]) -> Result<(), i32> {
    use std::os::unix::ffi::OsStrExt;
    let errno = |e: rustix::io::Errno| e.raw_os_error();
    if path.first() == Some(&0) {
        let name = rustix::net::SocketAddrUnix::new_abstract_name(&path[1..]).map_err(errno)?;
        return rustix::net::connect(sock, &name).map_err(errno);
    }
    let end = path.iter().position(|b| *b == 0).unwrap_or(path.len());
    let named = Path::new(std::ffi::OsStr::from_bytes(&path[..end]));
    let target = open_as_caller(c.req.pid, named)?;
    let m = rustix::fs::fstat(&target).map_err(errno)?;
    if !allowed(c.rules, m.st_dev, m.st_ino) {
        let shown = absolute(c.req.pid, AT_FDCWD, &own_proc(c.req.pid, named));
        let _ = c.events.send(BoxEvent {
            kind: "socket".into(),
            path: shown.display().to_string(),
            op: "connect".into(),
        });
        return Err(EACCES);
    }
    use std::os::fd::AsRawFd;
    let via = format!("/proc/self/fd/{}", target.as_fd().as_raw_fd());
    let addr = rustix::net::SocketAddrUnix::new(via.as_str()).map_err(errno)?;
    rustix::net::connect(sock, &addr).map_err(errno)
}

/// Opens `path` (`O_PATH`) as process `pid` would resolve it.
fn open_as_caller(pid: u32, path: &Path) -> Result<OwnedFd, i32> {
    use rustix::fs::{Mode, OFlags};
    let path = own_proc(pid, path);
    let base = if path.is_absolute() {
        PathBuf::from("/")
    } else {
        PathBuf::from(format!("/proc/{pid}/cwd"))
    };
    rustix::fs::open(
        base.join(&path),
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| e.raw_os_error())
}

/// `/proc/self/…` means the caller's, not the supervisor's.
fn own_proc(pid: u32, path: &Path) -> PathBuf {
    for prefix in ["/proc/self", "/proc/thread-self"] {
        if let Ok(rest) = path.strip_prefix(prefix) {
            return Path::new(&format!("/proc/{pid}")).join(rest);
        }
    }
    path.to_owned()
}

/// Whether the socket `(dev, ino)` may be reached from the box.
fn allowed(r: &Rules, dev: u64, ino: u64) -> bool {
    if r.private_devs.contains(&dev) {
        return true;
    }
    let own = ["agent.sock", "proxy.sock"].map(|n| r.own.join(n));
    own.iter()
        .chain(&r.sockets)
        .filter_map(|p| std::fs::metadata(p).ok())
        .any(|m| m.dev() == dev && m.ino() == ino)
}

/// `path` made absolute as process `pid` names it, relative to `dirfd`
/// (`AT_FDCWD`: its working directory), `.` and `..` resolved by name.
fn absolute(pid: u32, dirfd: i32, path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_owned()
    } else {
        let base = match dirfd {
            AT_FDCWD => format!("/proc/{pid}/cwd"),
            fd => format!("/proc/{pid}/fd/{fd}"),
        };
        std::fs::read_link(base).unwrap_or_default().join(path)
    };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// Notes a path call that touches a locked or watched path.
fn note_paths(c: &Call<'_>, name: &str) {
    let a = &c.req.data.args;
    let path_at = |dirfd: u64, p: u64| -> Option<PathBuf> {
        Some(absolute(c.req.pid, dirfd as i32, &read_path(c.req.pid, p)?))
    };
    let cwd = AT_FDCWD as i64 as u64;
    // (path, whether the call makes it)
    let paths: Vec<(Option<PathBuf>, bool)> = match name {
        "open" => vec![(path_at(cwd, a[0]), a[1] & 0o100 != 0)],
        "creat" => vec![(path_at(cwd, a[0]), true)],
        "openat" | "openat2" => vec![(path_at(a[0], a[1]), name == "openat2" || a[2] & 0o100 != 0)],
        "rename" | "link" => vec![(path_at(cwd, a[0]), false), (path_at(cwd, a[1]), true)],
        "renameat" | "renameat2" | "linkat" => {
            vec![(path_at(a[0], a[1]), false), (path_at(a[2], a[3]), true)]
        }
        "symlink" => vec![(path_at(cwd, a[1]), true)],
        "symlinkat" => vec![(path_at(a[1], a[2]), true)],
        "mkdir" => vec![(path_at(cwd, a[0]), true)],
        "mkdirat" => vec![(path_at(a[0], a[1]), true)],
        "unlinkat" | "fchmodat" => vec![(path_at(a[0], a[1]), false)],
        _ => vec![(path_at(cwd, a[0]), false)],
    };
    for (p, makes) in paths {
        if let Some(kind) = p.as_deref().and_then(|p| touched(c.rules, p, makes)) {
            let _ = c.events.send(BoxEvent {
                kind: kind.into(),
                path: p.map(|p| p.display().to_string()).unwrap_or_default(),
                op: name.into(),
            });
        }
    }
}

/// `locked` if `p` is or is inside a locked path; `created` if the call
/// makes a watched path, a `.git` in a writable place, or editor settings.
fn touched(r: &Rules, p: &Path, makes: bool) -> Option<&'static str> {
    if r.locked.iter().any(|l| p.starts_with(l)) {
        return Some("locked");
    }
    let named = |n: &str| p.file_name().is_some_and(|f| f == n);
    let new_repo = named(".git") || named(".vscode") || named(".idea");
    let in_box = r.writable.iter().any(|w| p.starts_with(w));
    (makes && (r.watched.iter().any(|w| w == p) || (new_repo && in_box))).then_some("created")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            locked: vec!["/w/.git/config".into(), "/w/.git/hooks".into()],
            watched: vec!["/w/.git/commondir".into()],
            writable: vec!["/w".into()],
            ..Rules::default()
        }
    }

    /// A connect from a thread that is not its process's leader (Go runs
    /// them on any thread) was answered ENOENT: `pidfd_open` refuses a
    /// non-leader's tid.
    #[test]
    fn a_descriptor_is_taken_from_any_thread_of_the_caller() {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open("/proc/self/status").expect("a file");
        let fd = file.as_raw_fd();
        let got = std::thread::spawn(move || {
            let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
            assert_ne!(tid, std::process::id(), "a thread, not the leader");
            assert_eq!(tgid(tid), Some(std::process::id()));
            take_fd(tid, fd).map(drop)
        })
        .join()
        .expect("thread");
        assert_eq!(got, Ok(()));
    }

    #[test]
    fn what_a_path_call_touches() {
        let r = rules();
        let t = |p: &str, makes| touched(&r, Path::new(p), makes);
        assert_eq!(t("/w/.git/config", false), Some("locked"));
        assert_eq!(t("/w/.git/hooks/pre-commit", true), Some("locked"));
        assert_eq!(t("/w/.git/commondir", true), Some("created"));
        assert_eq!(
            t("/w/.git/commondir", false),
            None,
            "only its making is news"
        );
        assert_eq!(t("/w/sub/.git", true), Some("created"));
        assert_eq!(t("/w/.vscode", true), Some("created"));
        assert_eq!(t("/elsewhere/.git", true), None);
        assert_eq!(t("/w/.git/index.lock", true), None);
        assert_eq!(t("/w/src/main.rs", true), None);
    }

    #[test]
    fn paths_are_made_absolute_by_name() {
        let me = std::process::id();
        let cwd = std::env::current_dir().expect("cwd");
        assert_eq!(
            absolute(me, AT_FDCWD, Path::new("a/../b/./c")),
            cwd.join("b/c")
        );
        assert_eq!(
            absolute(me, AT_FDCWD, Path::new("/x/../../y")),
            PathBuf::from("/y")
        );
        assert_eq!(
            own_proc(42, Path::new("/proc/self/fd/3")),
            PathBuf::from("/proc/42/fd/3")
        );
        assert_eq!(own_proc(42, Path::new("/tmp/s")), PathBuf::from("/tmp/s"));
    }

    #[test]
    fn addresses_are_read_as_the_kernel_lays_them_out() {
        let mut b = vec![2u8, 0, 0x1f, 0x90, 127, 0, 0, 1];
        assert_eq!(v4(&b).expect("v4").to_string(), "127.0.0.1:8080");
        b.truncate(6);
        assert_eq!(v4(&b), Err(EINVAL));
        let mut six = vec![10u8, 0, 0x01, 0xbb, 0, 0, 0, 0];
        six.extend([0u8; 15]);
        six.push(1);
        assert_eq!(v6(&six).expect("v6").to_string(), "[::1]:443");
    }
}

//! The seccomp filter of everything a box runs, installed by the second
//! stage of `valetkey box-exec` just before it execs the command.
//!
//! What each rule closes (SECURITY.md has the table):
//!
//! - `connect` goes to the box's supervisor ([`super::supervise`]), which
//!   makes the connection itself, on a copy of the address it read once,
//!   and refuses a Unix socket outside the box that the profile does not
//!   name. A read-only mount does not stop `connect()`, and Landlock on
//!   this kernel has no rule for it (ABI 9 adds one).
//! - `socket` and `socketpair` of `AF_UNIX` `SOCK_DGRAM` get `EACCES`: a
//!   datagram reaches a socket by `sendto` with no `connect` at all
//!   (`/dev/log`, journald's socket).
//! - `io_uring_setup`, `_enter`, `_register` get `EPERM`: an io_uring
//!   `connect` or `openat` never passes through seccomp.
//! - `keyctl`, `add_key`, `request_key` get `EPERM`: the box inherits the
//!   launcher's session keyring, and whatever was put there (Kerberos
//!   tickets, keyutils secrets) would be readable.
//! - Calls that change a path (`open`/`openat` for writing or creating,
//!   `rename*`, `unlink*`, `mkdir*`, `link*`, `symlink*`, `truncate`,
//!   `chmod`, `fchmodat`) go to the supervisor, which only notes the ones
//!   that touch a locked or watched path and lets every one go on: the
//!   mounts decide, the note is for the report.
//! - Other architectures' system calls (i386, x32) kill the process: each
//!   is another table the rules above would not cover.

use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};

/// `AF_UNIX`, `SOCK_DGRAM` and the `open` flags, as the kernel numbers
/// them (Linux, every architecture this runs on).
const AF_UNIX: u64 = 1;
const SOCK_DGRAM: u64 = 2;
const SOCK_TYPE_MASK: u64 = 0xf;
const O_WRONLY: u64 = 0o1;
const O_RDWR: u64 = 0o2;
const O_CREAT: u64 = 0o100;
const O_TRUNC: u64 = 0o1000;
const EPERM: i32 = 1;
const EACCES: i32 = 13;

/// The calls that change a path, reported by the supervisor.
pub const PATH_CALLS: &[&str] = &[
    "creat",
    "openat2",
    "rename",
    "renameat",
    "renameat2",
    "unlink",
    "unlinkat",
    "rmdir",
    "mkdir",
    "mkdirat",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "truncate",
    "chmod",
    "fchmodat",
];

fn err(what: &str, e: impl std::fmt::Display) -> String {
    format!("the box's seccomp filter: {what}: {e}")
}

fn sys(name: &str) -> Result<ScmpSyscall, String> {
    ScmpSyscall::from_name(name).map_err(|e| err(name, e))
}

/// Builds and loads the filter on this thread (which then execs the
/// command). The supervisor takes the listener from this process.
pub fn install() -> Result<(), String> {
    let mut ctx = ScmpFilterContext::new(ScmpAction::Allow).map_err(|e| err("new", e))?;
    ctx.set_act_badarch(ScmpAction::KillProcess)
        .map_err(|e| err("other architectures", e))?;
    for name in [
        "keyctl",
        "add_key",
        "request_key",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
    ] {
        ctx.add_rule(ScmpAction::Errno(EPERM), sys(name)?)
            .map_err(|e| err(name, e))?;
    }
    let dgram = [
        ScmpArgCompare::new(0, ScmpCompareOp::Equal, AF_UNIX),
        ScmpArgCompare::new(1, ScmpCompareOp::MaskedEqual(SOCK_TYPE_MASK), SOCK_DGRAM),
    ];
    for name in ["socket", "socketpair"] {
        ctx.add_rule_conditional(ScmpAction::Errno(EACCES), sys(name)?, &dgram)
            .map_err(|e| err(name, e))?;
    }
    ctx.add_rule(ScmpAction::Notify, sys("connect")?)
        .map_err(|e| err("connect", e))?;
    for (name, flags) in [("open", 1), ("openat", 2)] {
        for bit in [O_WRONLY, O_RDWR, O_CREAT, O_TRUNC] {
            let when = [ScmpArgCompare::new(
                flags,
                ScmpCompareOp::MaskedEqual(bit),
                bit,
            )];
            ctx.add_rule_conditional(ScmpAction::Notify, sys(name)?, &when)
                .map_err(|e| err(name, e))?;
        }
    }
    for name in PATH_CALLS {
        ctx.add_rule(ScmpAction::Notify, sys(name)?)
            .map_err(|e| err(name, e))?;
    }
    ctx.load().map_err(|e| err("load", e))
}

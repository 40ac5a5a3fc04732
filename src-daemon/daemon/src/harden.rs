//! Process hardening, applied by `valetkeyd` before it touches a secret.
//!
//! - Not dumpable (`PR_SET_DUMPABLE 0`): other processes of the same user
//!   cannot ptrace it or read its `/proc/PID/mem`, `environ` or `fd`, so
//!   an agent running as the user cannot lift tokens from its memory.
//! - No core dumps (`RLIMIT_CORE 0`): a crash never writes tokens to disk.
//! - Memory locked (`mlockall`, on fault) where the memlock limit allows
//!   it: pages holding tokens are never swapped out. With a finite limit
//!   (the usual 8 MiB for users) locking every future page could make
//!   allocations fail later, so it is skipped and logged instead; run under
//!   systemd with `LimitMEMLOCK=infinity` (or as root) to get it.
//! - The open-file soft limit is raised to the hard limit, so
//!   `[limits] max_connections` above ~1,000 is not cut short by the usual
//!   soft limit of 1,024 descriptors.
//! - Secrets themselves live in [`valetkey_core::secret::Secret`] and
//!   `valetkey_ipc::secret` types: zeroed on drop, `<redacted>` in `Debug`.

use rustix::mm::{mlockall, MlockAllFlags};
use rustix::process::{
    getrlimit, set_dumpable_behavior, setrlimit, DumpableBehavior, Resource, Rlimit,
};

/// Whether we hold `CAP_IPC_LOCK` (root does), which lifts the memlock limit.
fn can_lock_any() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))?
                .trim()
                .to_owned();
            u64::from_str_radix(&hex, 16).ok()
        })
        .is_some_and(|caps| caps & (1 << 14) != 0)
}

/// What was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hardening {
    /// `PR_SET_DUMPABLE 0` took effect.
    pub not_dumpable: bool,
    /// `RLIMIT_CORE` is 0.
    pub no_core: bool,
    /// `mlockall` took effect.
    pub memory_locked: bool,
}

/// Applies everything that the platform allows, logging what it could not.
pub fn apply() -> Hardening {
    let not_dumpable = set_dumpable_behavior(DumpableBehavior::NotDumpable)
        .map_err(|e| tracing::warn!(error = %e, "cannot make the process non-dumpable"))
        .is_ok();
    let no_core = setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .map_err(|e| tracing::warn!(error = %e, "cannot turn core dumps off"))
    .is_ok();
    let memory_locked = if getrlimit(Resource::Memlock).current.is_none() || can_lock_any() {
        mlockall(MlockAllFlags::CURRENT | MlockAllFlags::FUTURE | MlockAllFlags::ONFAULT)
            .map_err(|e| tracing::warn!(error = %e, "mlockall failed; memory may be swapped"))
            .is_ok()
    } else {
        tracing::info!(
            "memory not locked: the memlock limit is finite (set LimitMEMLOCK=infinity to lock it)"
        );
        false
    };
    let files = getrlimit(Resource::Nofile);
    if files.current != files.maximum {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: files.maximum,
                maximum: files.maximum,
            },
        )
        .map_err(|e| tracing::warn!(error = %e, "cannot raise the open-file limit"));
    }
    let h = Hardening {
        not_dumpable,
        no_core,
        memory_locked,
    };
    tracing::info!(not_dumpable, no_core, memory_locked, "process hardened");
    h
}

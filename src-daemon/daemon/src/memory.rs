//! Giving memory back after connections close.
//!
//! A burst of connections grows glibc's heap (each holds its task, its
//! caller and buffers: a few KiB), and when they close glibc keeps the
//! freed pages for reuse, so the daemon's RSS stays at its peak. Once a
//! second, if a connection closed since the last look, `malloc_trim`
//! returns whole free pages to the system.
//!
//! Under `mlockall` (the systemd unit's `LimitMEMLOCK=infinity`, or root)
//! the kernel refuses to discard locked pages, so nothing comes back
//! there: pages that may have held a token never reach swap, and the heap
//! stays at its peak. That is the price of the lock, and why the trim is
//! skipped when memory is locked (see `harden`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static CLOSED: AtomicU64 = AtomicU64::new(0);

/// Counts a closed connection.
pub fn connection_closed() {
    CLOSED.fetch_add(1, Ordering::Relaxed);
}

/// Starts the trimmer, unless memory is locked (then it could not work).
pub fn spawn(memory_locked: bool) {
    if memory_locked {
        return;
    }
    tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen = 0;
        loop {
            tick.tick().await;
            let closed = CLOSED.load(Ordering::Relaxed);
            if closed != seen {
                seen = closed;
                trim();
            }
        }
    });
}

/// Returns glibc's free heap pages to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() {
    // SAFETY: malloc_trim takes a plain integer, touches only the
    // allocator's own free lists under its own locks, and is documented as
    // safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

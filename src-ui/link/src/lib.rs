//! What both desktop programs share: `valetkey-tray` (the icon that runs
//! all day) and `valetkey-window` (the window, made on Open and gone on
//! close). Neither links the other: the tray must not carry WebKit, which
//! costs tens of MiB merely by being loaded.
//!
//! - [`link`]: one reconnecting connection to valetkeyd's control socket,
//!   owned by one task, reporting to a [`link::Sink`];
//! - [`look`]: what the tray shows for a connection state;
//! - [`launch`]: starting valetkeyd (the systemd unit, else the sibling
//!   binary);
//! - [`error`]: the one error type the window's webview sees;
//! - [`init_logging`]: both log to stderr at `VALETKEY_LOG` or `RUST_LOG`.
//!
//! None of it decides anything: every request is the daemon's to refuse.

pub mod error;
pub mod launch;
pub mod link;
pub mod look;

/// Logs to stderr at the level `VALETKEY_LOG` or `RUST_LOG` sets (default
/// `info`).
pub fn init_logging() {
    let filter = std::env::var("VALETKEY_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
}

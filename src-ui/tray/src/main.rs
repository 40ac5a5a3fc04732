//! `valetkey-tray`: Valet Key in the system tray, all day, in a few MiB.
//!
//! It shows the pending count on a StatusNotifierItem (the freedesktop tray
//! protocol, spoken over the session bus by [`icon`]) and offers Open,
//! Pause, Resume and Quit. It links neither GTK nor WebKit: the window is
//! a separate program, `valetkey-window` ([`window`]), started on Open and
//! gone when closed. It keeps one control-socket connection (the shared
//! link) for the count and for Pause/Resume; the daemon admits it because
//! its executable is the `valetkey-tray` installed next to `valetkeyd`.
//!
//! One tray runs per session ([`instance`]); a later `valetkey-tray --show`
//! opens the running tray's window.

mod icon;
mod instance;
mod window;

use ksni::TrayMethods;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use valetkey_ipc::control::{IssuingSet, IssuingSetParams};
use valetkey_ui_link::link::Link;

use crate::icon::{Action, Icon, IconSink};

const USAGE: &str = "\
valetkey-tray: Valet Key in the system tray (pending count, Open, Pause, Quit)

USAGE: valetkey-tray [--show] [--start]

  --show       open the window at once (valetkey-window); when a tray runs
               already, open its window and exit
  --start      start valetkeyd if it is not running (the autostart entry
               passes this): via `systemctl --user` when the service is
               installed, else the valetkeyd next to this program
  --version    print the version
  --help       print this help

The tray talks to valetkeyd's control socket (VALETKEY_SOCKET's directory,
or $XDG_RUNTIME_DIR/valetkey/control.sock). Log level: VALETKEY_LOG or RUST_LOG.";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        return println!("{USAGE}");
    }
    if args.iter().any(|a| a == "--version" || a == "-V") {
        return println!("valetkey-tray {}", env!("CARGO_PKG_VERSION"));
    }
    if let Some(bad) = args
        .iter()
        .find(|a| !matches!(a.as_str(), "--show" | "--start"))
    {
        eprintln!("valetkey-tray: unknown argument {bad:?}\n\n{USAGE}");
        std::process::exit(2);
    }
    valetkey_ui_link::init_logging();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let code = match rt {
        Ok(rt) => rt.block_on(run(
            args.iter().any(|a| a == "--show"),
            args.iter().any(|a| a == "--start"),
        )),
        Err(e) => {
            eprintln!("valetkey-tray: cannot start: {e}");
            1
        }
    };
    std::process::exit(code);
}

async fn run(show: bool, start: bool) -> i32 {
    let control = valetkey_ipc::paths::control_socket_path();
    let dir = control
        .parent()
        .map(|d| d.to_path_buf())
        .unwrap_or_default();
    let (_lock, listener) = match instance::claim(&dir, show).await {
        Ok(instance::Claim::Mine(lock, listener)) => (lock, listener),
        Ok(instance::Claim::Other) => return 0,
        Err(e) => {
            eprintln!("valetkey-tray: {e}");
            return 1;
        }
    };
    tracing::info!(socket = %control.display(), "valetkey-tray starting");
    if start {
        valetkey_ui_link::launch::attach_or_start(&control);
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = match Icon::new(tx.clone())
        .assume_sni_available(true)
        .spawn()
        .await
    {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(error = %e, "no tray icon (is there a session bus?); `valetkey-tray --show` still opens the window");
            None
        }
    };
    let link = Link::start(
        control,
        IconSink(handle.clone()),
        &tokio::runtime::Handle::current(),
    );
    tokio::spawn(instance::serve(listener, tx.clone()));
    if show {
        let _ = tx.send(Action::Open);
    }
    serve(rx, &link).await;
    if let Some(h) = handle {
        h.shutdown().await;
    }
    0
}

/// Acts on the user's picks until Quit, SIGTERM or SIGINT.
async fn serve(mut rx: mpsc::UnboundedReceiver<Action>, link: &Link) {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return tracing::error!("cannot handle signals");
    };
    loop {
        let action = tokio::select! {
            a = rx.recv() => a.unwrap_or(Action::Quit),
            _ = term.recv() => Action::Quit,
            _ = int.recv() => Action::Quit,
        };
        match action {
            Action::Open => window::open(),
            Action::Pause => set_paused(link, true),
            Action::Resume => set_paused(link, false),
            Action::Quit => return,
        }
    }
}

fn set_paused(link: &Link, paused: bool) {
    let link = link.clone();
    tokio::spawn(async move {
        if let Err(e) = link.call::<IssuingSet>(&IssuingSetParams { paused }).await {
            tracing::warn!(error = %e, paused, "could not change issuing from the tray menu");
        }
    });
}

//! `valetkey-tray`: the desktop face of valetkeyd.
//!
//! The daemon is the broker; this app holds no token and makes no decision.
//! It keeps one control-socket connection ([`link`]), forwards the user's
//! clicks as control requests ([`commands`]), re-emits the daemon's events to
//! the webview and mirrors the pending count on the tray icon ([`tray`]).
//! The daemon admits it only because its executable is the `valetkey-tray`
//! installed next to `valetkeyd` (see PROTOCOL.md, "Control socket").
//!
//! The app starts in the tray with no window. Open makes the window, and
//! closing it destroys it with its webview, so the WebKit processes end and
//! the idle app stays small; the app lives in the tray until Quit. A second
//! launch (for example `valetkey-tray --show` from a notification)
//! shows the running instance's window instead of starting another.

mod commands;
mod error;
mod launch;
mod link;
mod tray;

use tauri::{Manager, RunEvent, WindowEvent};

const USAGE: &str = "\
valetkey-tray: consent prompts, grants and revocation for valetkeyd

USAGE: valetkey-tray [--show] [--start]

  --show       open the window at once (otherwise the app starts in the tray)
  --start      start valetkeyd if it is not running (the autostart entry
               passes this): via `systemctl --user` when the service is
               installed, else the valetkeyd next to this app
  --version    print the version
  --help       print this help

The app talks to valetkeyd's control socket (VALETKEY_SOCKET's directory,
or $XDG_RUNTIME_DIR/valetkey/control.sock). Log level: VALETKEY_LOG or RUST_LOG.";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return;
    }
    if args.iter().any(|a| a == "--version" || a == "-V") {
        println!("valetkey-tray {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    if let Some(bad) = args
        .iter()
        .find(|a| !matches!(a.as_str(), "--show" | "--start"))
    {
        eprintln!("valetkey-tray: unknown argument {bad:?}\n\n{USAGE}");
        std::process::exit(2);
    }
    let show = args.iter().any(|a| a == "--show");
    let start = args.iter().any(|a| a == "--start");
    init_logging();
    without_gdk_gl();

    let app = tauri::Builder::default()
        // Must come first: a second launch hands over and exits.
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            tray::show_window(app);
        }))
        .invoke_handler(commands::handler())
        .setup(move |app| {
            // The tray first: the link's first report must find it.
            tray::build(app.handle())?;
            let sink = tray::AppSink(app.handle().clone());
            let path = valetkey_ipc::paths::control_socket_path();
            tracing::info!(socket = %path.display(), "valetkey-tray starting");
            if start {
                launch::attach_or_start(&path);
            }
            app.manage(link::Link::start(path, sink));
            if show {
                tray::show_window(app.handle());
            }
            Ok(())
        })
        .on_window_event(|_window, event| {
            if let WindowEvent::Destroyed = event {
                tracing::debug!("window closed; its webview is gone until Open");
            }
        })
        .build(tauri::generate_context!());
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            eprintln!("valetkey-tray: cannot start: {e}");
            std::process::exit(1);
        }
    };
    app.run(|_app, event| {
        // Closing the window destroys it; exit only through Quit.
        if let RunEvent::ExitRequested {
            api, code: None, ..
        } = event
        {
            api.prevent_exit();
        }
    });
}

/// GTK probes OpenGL when it opens an X11 display, which loads the Mesa
/// driver (and with it LLVM): about 30 MiB for an app that mostly sits in
/// the tray. The window is a form, drawn fine without GL, so GDK's GL is off
/// unless the user set `GDK_GL` themselves. Called before any thread starts.
fn without_gdk_gl() {
    if std::env::var_os("GDK_GL").is_none() {
        std::env::set_var("GDK_GL", "disable");
    }
}

fn init_logging() {
    let filter = std::env::var("VALETKEY_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
}

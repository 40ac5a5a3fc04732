//! `valetkey-window`: the window of Valet Key, a thin client of valetkeyd.
//!
//! The daemon is the broker; this window holds no token and makes no
//! decision. It keeps one control-socket connection (the shared
//! `valetkey_ui_link::link`), forwards the user's clicks as control
//! requests ([`commands`]) and re-emits the daemon's events to the webview
//! ([`sink`]). The daemon admits it only because its executable is the
//! `valetkey-window` installed next to `valetkeyd` (see PROTOCOL.md,
//! "Control socket").
//!
//! It lives only while it is open: `valetkey-tray` starts it on Open, and
//! closing it ends the process, WebKit and all, so the tray that runs all
//! day carries none of it. A second launch focuses the open window instead
//! of making another.

mod commands;
mod sink;

use tauri::Manager;

const USAGE: &str = "\
valetkey-window: Valet Key's window (consent prompts, agents and grants, activity)

USAGE: valetkey-window

Usually started by valetkey-tray (its Open item, or `valetkey-tray --show`).
A second launch focuses the open window. Closing the window ends the program.

  --version    print the version
  --help       print this help

The window talks to valetkeyd's control socket (VALETKEY_SOCKET's directory,
or $XDG_RUNTIME_DIR/valetkey/control.sock). Log level: VALETKEY_LOG or RUST_LOG.";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {}
        Some("--help" | "-h") => return println!("{USAGE}"),
        Some("--version" | "-V") => {
            return println!("valetkey-window {}", env!("CARGO_PKG_VERSION"))
        }
        Some(bad) => {
            eprintln!("valetkey-window: unknown argument {bad:?}\n\n{USAGE}");
            std::process::exit(2);
        }
    }
    valetkey_ui_link::init_logging();
    without_gdk_gl();
    let app = tauri::Builder::default()
        // Must come first: a second launch hands over and exits.
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            if let Some(w) = app.get_webview_window(sink::WINDOW) {
                let _ = w.show();
                let _ = w.unminimize();
                let _ = w.set_focus();
            }
        }))
        .invoke_handler(commands::handler())
        .setup(|app| {
            let path = valetkey_ipc::paths::control_socket_path();
            tracing::info!(socket = %path.display(), "valetkey-window starting");
            let sink = sink::AppSink(app.handle().clone());
            let rt = tauri::async_runtime::handle().inner().clone();
            app.manage(valetkey_ui_link::link::Link::start(path, sink, &rt));
            Ok(())
        })
        .run(tauri::generate_context!());
    if let Err(e) = app {
        eprintln!("valetkey-window: cannot start: {e}");
        std::process::exit(1);
    }
}

/// GTK probes OpenGL when it opens an X11 display, which loads the Mesa
/// driver (and with it LLVM): about 30 MiB. The window is a form, drawn
/// fine without GL, so GDK's GL is off unless the user set `GDK_GL`
/// themselves. Called before any thread starts.
fn without_gdk_gl() {
    if std::env::var_os("GDK_GL").is_none() {
        std::env::set_var("GDK_GL", "disable");
    }
}

//! The tray icon, its menu, and the bridge from the link to the webview.
//!
//! The icon carries the pending count (a dot on the icon, the count as the
//! indicator label, and in the tooltip and menu), so a waiting agent is
//! visible without opening the window. Pause and Resume go through the same
//! link as the window's buttons.

use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Emitter, Manager, Runtime};
use valetkey_ipc::control::{Event, IssuingSet, IssuingSetParams};

use crate::link::{Connection, Link, Sink};

const TRAY_ID: &str = "main";
/// The window's label (tauri.conf.json; capabilities/main.json grants the
/// commands to it).
const WINDOW: &str = "main";
/// The webview event carrying a daemon [`Event`].
pub const EVENT: &str = "daemon://event";
/// The webview event carrying the [`Connection`] state.
pub const CONNECTION: &str = "daemon://connection";

const ICON: &[u8] = include_bytes!("../icons/tray.png");
const ICON_PENDING: &[u8] = include_bytes!("../icons/tray-pending.png");

/// What follows the daemon's state: the menu items, and both icons
/// decoded once.
struct Items<R: Runtime> {
    open: MenuItem<R>,
    pause: MenuItem<R>,
    resume: MenuItem<R>,
    icon: Image<'static>,
    icon_pending: Image<'static>,
}

/// What the tray shows for a connection state: (pending count, open label,
/// tooltip, pause enabled, resume enabled).
#[derive(Debug, PartialEq)]
pub struct Look {
    pub pending: u32,
    pub open_label: String,
    pub tooltip: String,
    pub can_pause: bool,
    pub can_resume: bool,
}

/// Pure so it can be tested without a display.
pub fn look(state: &Connection) -> Look {
    match state {
        Connection::Connected { status } => {
            let pending = status.pending;
            let mut tooltip = match pending {
                0 => "Valet Key: nothing waiting".to_owned(),
                1 => "Valet Key: 1 request waiting for you".to_owned(),
                n => format!("Valet Key: {n} requests waiting for you"),
            };
            if status.paused {
                tooltip.push_str(" (issuing paused)");
            }
            if status.session_locked {
                tooltip.push_str(" (session locked)");
            }
            Look {
                pending,
                open_label: if pending > 0 {
                    format!("Open Valet Key ({pending} pending)")
                } else {
                    "Open Valet Key".to_owned()
                },
                tooltip,
                can_pause: !status.paused,
                can_resume: status.paused,
            }
        }
        Connection::Connecting | Connection::Down { .. } => Look {
            pending: 0,
            open_label: "Open Valet Key".to_owned(),
            tooltip: "Valet Key: daemon not running".to_owned(),
            can_pause: false,
            can_resume: false,
        },
    }
}

/// Builds the tray icon and its menu.
pub fn build<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    let open = MenuItem::with_id(app, "open", "Open Valet Key", true, None::<&str>)?;
    let pause = MenuItem::with_id(app, "pause", "Pause all agents", false, None::<&str>)?;
    let resume = MenuItem::with_id(app, "resume", "Resume", false, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let sep = PredefinedMenuItem::separator(app)?;
    let menu = Menu::with_items(app, &[&open, &sep, &pause, &resume, &sep, &quit])?;
    let icon = Image::from_bytes(ICON)?;
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon.clone())
        .tooltip("Valet Key")
        .menu(&menu)
        .show_menu_on_left_click(true)
        .on_menu_event(|app, event| match event.id().as_ref() {
            "open" => show_window(app),
            "pause" => set_paused(app, true),
            "resume" => set_paused(app, false),
            "quit" => app.exit(0),
            _ => {}
        })
        .build(app)?;
    app.manage(Items {
        open,
        pause,
        resume,
        icon,
        icon_pending: Image::from_bytes(ICON_PENDING)?,
    });
    Ok(())
}

/// Shows, unminimizes and focuses the window, making it (and its webview)
/// first if it is not there: the app starts without one, and closing it
/// destroys it (see `main`), so the hidden app keeps no WebKit.
pub fn show_window<R: Runtime>(app: &AppHandle<R>) {
    let window = match app.get_webview_window(WINDOW) {
        Some(w) => w,
        None => match make_window(app) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "cannot open the window");
                return;
            }
        },
    };
    let _ = window.show();
    let _ = window.unminimize();
    let _ = window.set_focus();
}

fn make_window<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<tauri::WebviewWindow<R>> {
    let config = app
        .config()
        .app
        .windows
        .iter()
        .find(|w| w.label == WINDOW)
        .ok_or_else(|| tauri::Error::WindowNotFound)?
        .clone();
    tauri::WebviewWindowBuilder::from_config(app, &config)?.build()
}

fn set_paused<R: Runtime>(app: &AppHandle<R>, paused: bool) {
    let Some(link) = app.try_state::<Link>().map(|l| l.inner().clone()) else {
        return;
    };
    tauri::async_runtime::spawn(async move {
        if let Err(e) = link.call::<IssuingSet>(&IssuingSetParams { paused }).await {
            tracing::warn!(error = %e, paused, "could not change issuing from the tray menu");
        }
    });
}

/// Forwards the link's reports to the webview and the tray.
pub struct AppSink<R: Runtime>(pub AppHandle<R>);

impl<R: Runtime> Sink for AppSink<R> {
    fn connection(&self, state: &Connection) {
        let _ = self.0.emit(CONNECTION, state);
        apply(&self.0, &look(state));
    }

    fn event(&self, event: &Event) {
        let _ = self.0.emit(EVENT, event);
    }
}

fn apply<R: Runtime>(app: &AppHandle<R>, look: &Look) {
    let Some(items) = app.try_state::<Items<R>>() else {
        return; // no tray: `main` builds it before the link starts
    };
    if let Some(tray) = app.tray_by_id(TRAY_ID) {
        let icon = if look.pending > 0 {
            &items.icon_pending
        } else {
            &items.icon
        };
        let _ = tray.set_icon(Some(icon.clone()));
        let _ = tray.set_tooltip(Some(&look.tooltip));
        let label = (look.pending > 0).then(|| look.pending.to_string());
        let _ = tray.set_title(label.as_deref());
    }
    let _ = items.open.set_text(&look.open_label);
    let _ = items.pause.set_enabled(look.can_pause);
    let _ = items.resume.set_enabled(look.can_resume);
    if let Some(w) = app.get_webview_window(WINDOW) {
        let title = match look.pending {
            0 => "Valet Key".to_owned(),
            n => format!("Valet Key ({n} pending)"),
        };
        let _ = w.set_title(&title);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use valetkey_ipc::control::StatusResult;

    fn connected(pending: u32, paused: bool) -> Connection {
        Connection::Connected {
            status: StatusResult {
                daemon_version: "0.1.0".into(),
                paused,
                session_locked: false,
                on_lock: "hold".into(),
                pending,
            },
        }
    }

    #[test]
    fn the_tray_shows_the_pending_count() {
        let l = look(&connected(2, false));
        assert_eq!(l.pending, 2);
        assert_eq!(l.open_label, "Open Valet Key (2 pending)");
        assert!(l.tooltip.contains("2 requests waiting"));
        assert!(l.can_pause && !l.can_resume);
        assert_eq!(look(&connected(0, false)).open_label, "Open Valet Key");
    }

    #[test]
    fn pause_and_resume_follow_the_daemon() {
        let l = look(&connected(0, true));
        assert!(!l.can_pause && l.can_resume);
        assert!(l.tooltip.contains("paused"));
    }

    #[test]
    fn a_down_daemon_disables_pause_and_resume() {
        let l = look(&Connection::Down {
            error: "no socket".into(),
        });
        assert!(!l.can_pause && !l.can_resume);
        assert!(l.tooltip.contains("daemon not running"));
    }
}

//! The bridge from the link to the webview: the daemon's events and the
//! connection state are re-emitted as webview events, and the window's
//! title carries the pending count.

use tauri::{AppHandle, Emitter, Manager, Runtime};
use valetkey_ipc::control::Event;
use valetkey_ui_link::link::{Connection, Sink};

/// The webview event carrying a daemon [`Event`].
pub const EVENT: &str = "daemon://event";
/// The webview event carrying the [`Connection`] state.
pub const CONNECTION: &str = "daemon://connection";
/// The window's label (tauri.conf.json; capabilities/main.json grants the
/// commands to it).
pub const WINDOW: &str = "main";

/// Forwards the link's reports to the webview.
pub struct AppSink<R: Runtime>(pub AppHandle<R>);

impl<R: Runtime> Sink for AppSink<R> {
    fn connection(&self, state: &Connection) {
        let _ = self.0.emit(CONNECTION, state);
        if let Some(w) = self.0.get_webview_window(WINDOW) {
            let _ = w.set_title(&title(state));
        }
    }

    fn event(&self, event: &Event) {
        let _ = self.0.emit(EVENT, event);
    }
}

/// The window title: the pending count when something waits.
pub fn title(state: &Connection) -> String {
    match state {
        Connection::Connected { status } if status.pending > 0 => {
            format!("Valet Key ({} pending)", status.pending)
        }
        _ => "Valet Key".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use valetkey_ipc::control::StatusResult;

    #[test]
    fn the_title_carries_the_pending_count() {
        let connected = |pending| Connection::Connected {
            status: StatusResult {
                daemon_version: "0.1.0".into(),
                paused: false,
                session_locked: false,
                on_lock: "hold".into(),
                pending,
            },
        };
        assert_eq!(title(&connected(0)), "Valet Key");
        assert_eq!(title(&connected(3)), "Valet Key (3 pending)");
        let down = Connection::Down {
            error: "no socket".into(),
        };
        assert_eq!(title(&down), "Valet Key");
    }
}

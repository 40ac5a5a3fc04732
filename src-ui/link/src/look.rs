//! What the tray shows for a connection state: the pending count, the
//! Open item's label, the tooltip, and which of Pause and Resume apply.
//! Pure, so it is tested without a display or a tray host.

use crate::link::Connection;

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

//! The icon in the tray: a StatusNotifierItem with its menu (ksni, over the
//! session bus). What it shows is [`Look`], from the shared link's state;
//! what the user picks goes out as an [`Action`] to `main`'s loop, which
//! owns the link. Nothing here talks to the daemon.

use tokio::sync::mpsc::UnboundedSender;
use valetkey_ui_link::link::{Connection, Sink};
use valetkey_ui_link::look::{look, Look};

const ICON: &[u8] = include_bytes!("../../icons/tray.png");
const ICON_PENDING: &[u8] = include_bytes!("../../icons/tray-pending.png");

/// What the user picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Open,
    Pause,
    Resume,
    Quit,
}

/// The tray item's state.
pub struct Icon {
    look: Look,
    actions: UnboundedSender<Action>,
    normal: Vec<ksni::Icon>,
    pending: Vec<ksni::Icon>,
}

impl Icon {
    pub fn new(actions: UnboundedSender<Action>) -> Icon {
        Icon {
            look: look(&Connection::Connecting),
            actions,
            normal: argb(ICON),
            pending: argb(ICON_PENDING),
        }
    }

    fn send(&self, a: Action) {
        let _ = self.actions.send(a);
    }
}

impl ksni::Tray for Icon {
    fn id(&self) -> String {
        "valetkey".into()
    }

    fn title(&self) -> String {
        "Valet Key".into()
    }

    fn category(&self) -> ksni::Category {
        ksni::Category::ApplicationStatus
    }

    fn status(&self) -> ksni::Status {
        match self.look.pending {
            0 => ksni::Status::Active,
            _ => ksni::Status::NeedsAttention,
        }
    }

    fn icon_pixmap(&self) -> Vec<ksni::Icon> {
        match self.look.pending {
            0 => self.normal.clone(),
            _ => self.pending.clone(),
        }
    }

    fn attention_icon_pixmap(&self) -> Vec<ksni::Icon> {
        self.pending.clone()
    }

    fn tool_tip(&self) -> ksni::ToolTip {
        ksni::ToolTip {
            title: self.look.tooltip.clone(),
            ..Default::default()
        }
    }

    fn activate(&mut self, _x: i32, _y: i32) {
        self.send(Action::Open);
    }

    fn menu(&self) -> Vec<ksni::MenuItem<Self>> {
        let item = |label: &str, enabled: bool, action: Action| {
            ksni::menu::StandardItem {
                label: label.to_owned(),
                enabled,
                activate: Box::new(move |this: &mut Icon| this.send(action)),
                ..Default::default()
            }
            .into()
        };
        vec![
            item(&self.look.open_label, true, Action::Open),
            ksni::MenuItem::Separator,
            item("Pause all agents", self.look.can_pause, Action::Pause),
            item("Resume", self.look.can_resume, Action::Resume),
            ksni::MenuItem::Separator,
            item("Quit", true, Action::Quit),
        ]
    }
}

/// Puts the link's reports on the icon.
pub struct IconSink(pub Option<ksni::Handle<Icon>>);

impl Sink for IconSink {
    fn connection(&self, state: &Connection) {
        let Some(handle) = self.0.clone() else {
            return; // no session bus: nothing to show the state on
        };
        let next = look(state);
        tokio::spawn(async move {
            handle.update(|icon| icon.look = next).await;
        });
    }

    fn event(&self, _event: &valetkey_ipc::control::Event) {
        // The count comes with the status the link re-reads on each event.
    }
}

/// A PNG as the ARGB32 (network byte order) pixmap the spec wants.
fn argb(png_bytes: &[u8]) -> Vec<ksni::Icon> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::ALPHA);
    let Ok(mut reader) = decoder.read_info() else {
        return Vec::new();
    };
    let mut buf = vec![0; reader.output_buffer_size().unwrap_or(0)];
    let Ok(info) = reader.next_frame(&mut buf) else {
        return Vec::new();
    };
    let data = buf[..info.buffer_size()]
        .chunks_exact(4)
        .flat_map(|p| [p[3], p[0], p[1], p[2]])
        .collect();
    vec![ksni::Icon {
        width: info.width as i32,
        height: info.height as i32,
        data,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use ksni::Tray;

    #[test]
    fn the_icons_decode_to_argb() {
        for png in [ICON, ICON_PENDING] {
            let icons = argb(png);
            assert_eq!(icons.len(), 1);
            let i = &icons[0];
            assert_eq!((i.width, i.height), (32, 32));
            assert_eq!(i.data.len(), 32 * 32 * 4);
            assert!(
                i.data.chunks(4).any(|p| p[0] == 255),
                "some pixel is opaque"
            );
        }
    }

    #[test]
    fn a_pending_request_changes_the_icon_and_status() {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let mut icon = Icon::new(tx);
        assert!(matches!(icon.status(), ksni::Status::Active));
        assert_eq!(icon.icon_pixmap()[0].data, icon.normal[0].data);
        icon.look.pending = 2;
        assert!(matches!(icon.status(), ksni::Status::NeedsAttention));
        assert_eq!(icon.icon_pixmap()[0].data, icon.pending[0].data);
        assert_ne!(icon.normal[0].data, icon.pending[0].data);
    }
}

//! Is the user at the screen? While the session is locked nobody can give
//! consent, so the daemon listens for:
//!
//! * logind's `org.freedesktop.login1.Session` `Lock` / `Unlock` signals
//!   (system bus by default; `consent.login1_bus` can point it at the
//!   session bus, which the tests use with a stand-in service), and
//! * `org.freedesktop.ScreenSaver` `ActiveChanged(bool)` on the session bus.
//!
//! Signals are accepted only from the current owner of the well-known name
//! (`org.freedesktop.login1`, `org.freedesktop.ScreenSaver`), so another
//! process on the bus cannot fake an unlock. logind sends `Lock`/`Unlock`
//! for every session; without a session id to filter on (a systemd user
//! service has none) any session of this machine counts, which errs on the
//! side of "locked".
//!
//! A bus that is missing is logged once and skipped: the daemon then
//! behaves as if the session were never locked.

use futures::StreamExt;

use valetkey_core::broker::Shared;
use valetkey_core::config::Login1Bus;

const LOGIN1: &str = "org.freedesktop.login1";
const LOGIN1_SESSION: &str = "org.freedesktop.login1.Session";
const SCREENSAVER: &str = "org.freedesktop.ScreenSaver";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Starts the watchers as background tasks.
pub fn spawn_watchers(d: &Shared) {
    let login1 = d.config.consent.login1_bus;
    if login1 != Login1Bus::None {
        let d = d.clone();
        tokio::spawn(async move {
            let conn = match login1 {
                Login1Bus::System => zbus::Connection::system().await,
                _ => zbus::Connection::session().await,
            };
            let r = match conn {
                Ok(c) => watch(&d, c, LOGIN1, LOGIN1_SESSION).await,
                Err(e) => Err(e.into()),
            };
            if let Err(e) = r {
                tracing::warn!(error = %e, "not watching logind for session locks");
            }
        });
    }
    let d = d.clone();
    tokio::spawn(async move {
        let r = match zbus::Connection::session().await {
            Ok(c) => watch(&d, c, SCREENSAVER, SCREENSAVER).await,
            Err(e) => Err(e.into()),
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, "not watching the screensaver for session locks");
        }
    });
}

async fn watch(
    d: &Shared,
    conn: zbus::Connection,
    name: &str,
    iface: &str,
) -> Result<(), BoxError> {
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .interface(iface)?
        .build();
    let mut stream = zbus::MessageStream::for_match_rule(rule, &conn, Some(64)).await?;
    let dbus = zbus::fdo::DBusProxy::new(&conn).await?;
    let bus_name = zbus::names::BusName::try_from(name)?;
    tracing::info!(name, "watching for session lock signals");
    while let Some(msg) = stream.next().await {
        let Ok(msg) = msg else { continue };
        let header = msg.header();
        let locked = match header.member().map(|m| m.as_str()) {
            Some("Lock") if iface == LOGIN1_SESSION => true,
            Some("Unlock") if iface == LOGIN1_SESSION => false,
            Some("ActiveChanged") if iface == SCREENSAVER => {
                match msg.body().deserialize::<bool>() {
                    Ok(active) => active,
                    Err(_) => continue,
                }
            }
            _ => continue,
        };
        // Who owns the name now (it can change when the service restarts).
        let owner = dbus.get_name_owner(bus_name.clone()).await.ok();
        let sender = header.sender().map(|s| s.as_str().to_owned());
        if owner.as_ref().map(|o| o.as_str()) != sender.as_deref() {
            tracing::warn!(
                ?sender,
                name,
                "ignored a lock signal not sent by the name's owner"
            );
            continue;
        }
        valetkey_core::consent::flow::session_changed(d, locked);
    }
    Ok(())
}

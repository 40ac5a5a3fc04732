//! Desktop notifications (freedesktop Notifications over D-Bus, sent with
//! notify-rust): "agent X wants …", floods, revocations, anomalies and
//! refused policy changes, each shown when the core announces it on its
//! event bus.
//!
//! A notification is a convenience, never part of the decision path: every
//! failure (no bus, no notification server) is logged and ignored, and the
//! prompt stays in the tray and in `valetkey consent list`.
//!
//! Allow/Deny buttons are offered only when the server advertises the
//! `actions` capability. That prompt is sent with a plain `Notify` call on
//! the connection that listens for the answer (servers address
//! `ActionInvoked` to the sender of `Notify`); the plain announcements go
//! through notify-rust. The `ActionInvoked` signal is accepted only from
//! the connection that owns `org.freedesktop.Notifications` at the time of
//! sending: any process on the session bus can emit a signal with that
//! name, and notify-rust's own listener does not check the sender, so
//! without this check an agent could "click" Allow on its own prompt.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::broadcast::error::RecvError;
use valetkey_ipc::control::{ConsentRequest, Decision, Event, RevokeResult, RevokeTarget};

use valetkey_core::broker::Shared;

const IFACE: &str = "org.freedesktop.Notifications";
const PATH: &str = "/org/freedesktop/Notifications";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn short(sha: &str) -> &str {
    &sha[..12.min(sha.len())]
}

/// Listens to the core's event bus and shows what a person should see:
/// new consent prompts, prompt floods, revocations, anomalies and refused
/// policy changes.
pub fn spawn(d: &Shared) {
    let mut events = d.events.subscribe();
    let d = d.clone();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(e) => show(&d, e),
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "notifications fell behind the event bus")
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
}

fn show(d: &Shared, e: Event) {
    match e {
        Event::ConsentRequested { consent } => consent_requested(d, &consent),
        Event::ConsentFlood { agent } => flood(d, &agent),
        Event::Revoked { target, result } => revoked(d, &target, &result),
        Event::Anomaly {
            agent,
            rule,
            detail,
            suspended,
        } => anomaly(d, &agent, &rule, &detail, suspended),
        Event::PolicyReloaded {
            ok: false,
            error: Some(error),
            ..
        } => policy_refused(d, &error),
        _ => {}
    }
}

/// Shows the consent prompt, with buttons where supported.
fn consent_requested(d: &Shared, req: &ConsentRequest) {
    if !d.config.consent.notify {
        return;
    }
    let (d, req) = (d.clone(), req.clone());
    tokio::spawn(async move {
        if let Err(e) = consent_notification(&d, &req).await {
            tracing::warn!(error = %e, consent = %req.id, "no desktop notification (the tray and `valetkey consent list` still show the request)");
        }
    });
}

/// Tells the user an agent is flooding prompts.
fn flood(d: &Shared, agent: &str) {
    simple(
        d,
        format!("Valet Key: {agent} is asking too often"),
        format!("Further consent requests from {agent} are refused for a minute."),
    );
}

/// Confirms a revocation.
fn revoked(d: &Shared, target: &RevokeTarget, r: &RevokeResult) {
    let what = match target {
        RevokeTarget::Grant { id } => format!("grant {id}"),
        RevokeTarget::Agent { name } => format!("agent {name}"),
        RevokeTarget::All => "all agents".into(),
        RevokeTarget::Delegation { jti } => format!("delegation {jti}"),
    };
    simple(
        d,
        format!("Valet Key: revoked {what}"),
        format!(
            "{} grant(s) removed, {} token(s) dropped, {} connection(s) closed.",
            r.grants_removed, r.tokens_dropped, r.connections_closed
        ),
    );
}

/// Tells the user a monitoring rule fired.
fn anomaly(d: &Shared, agent: &str, rule: &str, detail: &str, suspended: bool) {
    simple(
        d,
        format!("Valet Key: unusual activity from {agent}"),
        format!(
            "{rule}: {detail}.{}",
            if suspended {
                format!(
                    " The agent is suspended; `valetkey agents resume {agent}` lets it back in."
                )
            } else {
                format!(" `valetkey agents suspend {agent}` stops it.")
            }
        ),
    );
}

/// Tells the user a policy change was refused.
fn policy_refused(d: &Shared, error: &str) {
    simple(
        d,
        "Valet Key: policy change refused".into(),
        format!("The previous policy stays in force. {error}"),
    );
}

fn simple(d: &Shared, summary: String, body: String) {
    if !d.config.consent.notify {
        return;
    }
    tokio::spawn(async move {
        let shown = notify_rust::Notification::new()
            .appname("Valet Key")
            .summary(&summary)
            .body(&body)
            .show_async()
            .await;
        if let Err(e) = shown {
            tracing::warn!(error = %e, "no desktop notification");
        }
    });
}

async fn consent_notification(d: &Shared, req: &ConsentRequest) -> Result<(), BoxError> {
    let conn = zbus::Connection::session().await?;
    let dbus = zbus::fdo::DBusProxy::new(&conn).await?;
    let caps: Vec<String> = conn
        .call_method(Some(IFACE), PATH, Some(IFACE), "GetCapabilities", &())
        .await?
        .body()
        .deserialize()?;
    let actions = d.config.consent.notify_actions && caps.iter().any(|c| c == "actions");
    // Subscribe before showing, so a fast click is not missed.
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .interface(IFACE)?
        .path(PATH)?
        .build();
    let mut signals = zbus::MessageStream::for_match_rule(rule, &conn, Some(16)).await?;
    let owner = dbus
        .get_name_owner(zbus::names::BusName::try_from(IFACE)?)
        .await?;

    let duration = req
        .duration_secs
        .map(|s| {
            format!(
                " for {}",
                humantime::format_duration(Duration::from_secs(s))
            )
        })
        .unwrap_or_default();
    // A path the daemon could not verify says so, as on the tray's card.
    let unverified = if req.exe_unverified || !req.foreign_namespaces.is_empty() {
        " (path not verified: trust the hash)"
    } else {
        ""
    };
    // Boxed or not, as on the card: an unboxed agent can read the keychain.
    let confinement = match &req.confinement {
        Some(b) => format!(
            "In a box ({}): {}",
            b.profile,
            b.script.as_ref().unwrap_or(&b.program).path
        ),
        None => "Not confined: it can read your keychain".into(),
    };
    let body = format!(
        "{} wants to {}{duration}.\n{confinement}\nBinary {}{unverified} ({})\nPurpose: {}",
        req.agent.name,
        req.action,
        req.exe,
        short(&req.sha256),
        if req.agent.purpose.is_empty() {
            "(none given)"
        } else {
            &req.agent.purpose
        }
    );
    // Sent on `conn` itself, not through notify-rust: servers such as dunst
    // address ActionInvoked to the connection that sent Notify, and
    // notify-rust sends from a connection of its own.
    let buttons: &[&str] = if actions {
        &[
            "default",
            "Open Valet Key",
            "allow-1h",
            "Allow for 1 hour",
            "deny",
            "Deny",
        ]
    } else {
        &[]
    };
    let mut hints = std::collections::HashMap::<&str, zbus::zvariant::Value<'_>>::new();
    hints.insert("urgency", zbus::zvariant::Value::U8(1));
    let timeout_ms = i32::try_from(d.consents.timeout().as_millis())
        .unwrap_or(i32::MAX)
        .max(1000);
    let id: u32 = conn
        .call_method(
            Some(IFACE),
            PATH,
            Some(IFACE),
            "Notify",
            &(
                "Valet Key",
                0u32,
                "",
                format!("Valet Key: {} wants access", req.agent.name),
                body,
                buttons,
                hints,
                timeout_ms,
            ),
        )
        .await?
        .body()
        .deserialize()?;
    tracing::debug!(consent = %req.id, notification = id, actions, "notification shown");
    if !actions {
        return Ok(());
    }
    loop {
        let msg = tokio::select! {
            m = signals.next() => match m { Some(Ok(m)) => m, _ => return Ok(()) },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                if d.consents.get(&req.id).is_none() {
                    // Decided elsewhere: take the stale prompt down.
                    let _ = conn.call_method(Some(IFACE), PATH, Some(IFACE), "CloseNotification", &(id,)).await;
                    return Ok(());
                }
                continue;
            }
        };
        let header = msg.header();
        let member = header.member().map(|m| m.as_str().to_owned());
        if member.as_deref() == Some("NotificationClosed") {
            if let Ok((nid, _reason)) = msg.body().deserialize::<(u32, u32)>() {
                if nid == id {
                    return Ok(());
                }
            }
            continue;
        }
        if member.as_deref() != Some("ActionInvoked") {
            continue;
        }
        let Ok((nid, action)) = msg.body().deserialize::<(u32, String)>() else {
            continue;
        };
        if nid != id {
            continue;
        }
        let sender = header.sender().map(|s| s.as_str().to_owned());
        if sender.as_deref() != Some(owner.as_str()) {
            tracing::warn!(consent = %req.id, ?sender, "ignored a notification action from a process that is not the notification server");
            continue;
        }
        let decision = match action.as_str() {
            "allow-1h" => Decision::For {
                duration_secs: 3600,
            },
            "deny" => Decision::Deny { remember: false },
            _ => {
                open_tray();
                continue;
            }
        };
        match valetkey_core::consent::flow::decide(d, &req.id, decision, None) {
            Ok(_) => tracing::info!(consent = %req.id, action, "decided from the notification"),
            Err(e) => tracing::warn!(consent = %req.id, error = %e, "notification action failed"),
        }
        return Ok(());
    }
}

/// Starts the tray app (installed next to `valetkeyd`) to show the window.
fn open_tray() {
    let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|p| p.to_owned()))
    else {
        return;
    };
    let tray = dir.join("valetkey-tray");
    if tray.exists() {
        let child = std::process::Command::new(tray)
            .arg("--show")
            .stdin(std::process::Stdio::null())
            .spawn();
        // A second tray hands over to the running one and exits: reap it.
        if let Ok(mut child) = child {
            std::thread::spawn(move || child.wait());
        }
    }
}

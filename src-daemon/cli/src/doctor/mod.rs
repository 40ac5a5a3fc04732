//! `valetkey doctor`: one line per check, each failure with its fix.
//!
//! It reads and connects, never changes anything, and prints no secret
//! (the keychain check asks whether an item exists, not what it holds).
//! Exit status 1 when any check fails; warnings alone exit 0.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use valetkey_ipc::client::Client;
use valetkey_ipc::control::ProviderStatus;
use valetkey_ipc::methods::AgentInfo;

use super::{Cli, Failure};

mod boxes;
use valetkey_core::config::Config;
use valetkey_core::keychain::{Item, SecretService};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Fail,
}

struct Report {
    failures: usize,
}

impl Report {
    fn line(&mut self, level: Level, check: &str, what: impl AsRef<str>, fix: Option<&str>) {
        let tag = match level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => {
                self.failures += 1;
                "FAIL"
            }
        };
        match fix {
            Some(fix) => println!("{tag} {check:<10} {}; fix: {fix}", what.as_ref()),
            None => println!("{tag} {check:<10} {}", what.as_ref()),
        }
    }
}

/// Runs every check.
pub async fn doctor(cli: &Cli) -> Result<(), Failure> {
    let mut r = Report { failures: 0 };
    let cfg = match cli.load_config() {
        Ok(c) => {
            r.line(Level::Ok, "config", c.path.display().to_string(), None);
            Some(c)
        }
        Err(e) => {
            r.line(
                Level::Fail,
                "config",
                e.message,
                Some("correct the file; the message names the line"),
            );
            None
        }
    };
    let socket = cli.socket_path(cfg.as_ref());
    let daemon_version = socket_checks(&mut r, &socket).await;
    if daemon_version.is_some() {
        memory_check(&mut r, &socket);
    }
    discovery_check(&mut r);
    service_check(&mut r);
    boxes::checks(&mut r, cli, cfg.as_ref(), daemon_version.is_some()).await;
    keychain_check(&mut r).await;
    if let Some(cfg) = &cfg {
        let states = super::grants::provider_states(cli).await.ok().flatten();
        provider_checks(&mut r, cfg, states.as_deref()).await;
    }
    version_check(&mut r, daemon_version);
    if r.failures > 0 {
        return Err(Failure {
            code: 1,
            message: format!("{} check(s) failed", r.failures),
        });
    }
    Ok(())
}

/// Runtime dir, socket file, and a `hello`. Returns the daemon's version.
async fn socket_checks(r: &mut Report, socket: &Path) -> Option<String> {
    // The same rules the daemon enforces before it binds; their messages
    // carry the fix.
    if let Some(dir) = socket.parent() {
        match valetkey_core::dirs::check_private_dir(dir) {
            Ok(()) => {}
            Err(valetkey_core::dirs::DirError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                r.line(
                    Level::Warn,
                    "socket",
                    format!("{} does not exist (the daemon never ran)", dir.display()),
                    Some("start it: `valetkey service install`, or run valetkeyd"),
                )
            }
            Err(e) => r.line(Level::Fail, "socket", e.to_string(), None),
        }
    }
    match std::fs::symlink_metadata(socket) {
        Ok(m) if !m.file_type().is_socket() => r.line(
            Level::Fail,
            "socket",
            format!("{} is not a socket", socket.display()),
            Some("remove it and restart valetkeyd"),
        ),
        Ok(m) if m.permissions().mode() & 0o077 != 0 => r.line(
            Level::Fail,
            "socket",
            format!(
                "{} has mode {:o}",
                socket.display(),
                m.permissions().mode() & 0o777
            ),
            Some("restart valetkeyd (it creates the socket 0600)"),
        ),
        _ => {}
    }
    let hello = async {
        let mut c = Client::connect(socket).await?;
        c.hello(AgentInfo {
            name: "valetkey-doctor".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            purpose: "health check".into(),
        })
        .await
    };
    match hello.await {
        Ok(h) => {
            r.line(
                Level::Ok,
                "daemon",
                format!(
                    "valetkeyd {} answers on {} (protocol {})",
                    h.daemon_version,
                    socket.display(),
                    h.protocol
                ),
                None,
            );
            Some(h.daemon_version)
        }
        Err(e) => {
            r.line(
                Level::Fail,
                "daemon",
                format!("not reachable on {}: {e}", socket.display()),
                Some("`valetkey service install` (or run valetkeyd), then `valetkey service logs`"),
            );
            None
        }
    }
}

/// Whether the daemon's memory is locked (no secret can reach swap). The
/// daemon's pid is the agent socket's peer; its `VmLck` and memlock limit
/// are in `/proc`. A warning: the daemon works unlocked, and a user
/// manager's own limit (systemd's `DefaultLimitMEMLOCK`, 8 MiB by default)
/// caps the unit's `LimitMEMLOCK=infinity`.
fn memory_check(r: &mut Report, socket: &Path) {
    let Some(pid) = std::os::unix::net::UnixStream::connect(socket)
        .ok()
        .and_then(|s| rustix::net::sockopt::socket_peercred(&s).ok())
        .map(|c| c.pid.as_raw_nonzero().get())
    else {
        return;
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |text: &str, key: &str| -> Option<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    let locked_kib: u64 = field(&status, "VmLck:")
        .and_then(|v| v.split(' ').next()?.parse().ok())
        .unwrap_or(0);
    if locked_kib > 0 {
        let what = format!(
            "valetkeyd's memory is locked ({} MiB): no secret can reach swap",
            locked_kib / 1024
        );
        r.line(Level::Ok, "memory", what, None);
        return;
    }
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
    let limit = match field(&limits, "Max locked memory")
        .as_deref()
        .and_then(|v| v.split(' ').next())
    {
        Some("unlimited") => "unlimited".to_owned(),
        Some(n) => n
            .parse::<u64>()
            .map(|b| format!("{} KiB", b / 1024))
            .unwrap_or_else(|_| n.to_owned()),
        None => "unknown".to_owned(),
    };
    r.line(
        Level::Warn,
        "memory",
        format!("valetkeyd's memory is not locked (its locked-memory limit: {limit}): tokens could be written to swap; it works on, unlocked"),
        Some("raise the user manager's limit (DefaultLimitMEMLOCK=infinity in /etc/systemd/user.conf, then log in again), or use encrypted or no swap"),
    );
}

/// Whether a client started with a reduced environment (no
/// `XDG_RUNTIME_DIR`: the MCP SDKs' stdio clients, Codex) finds the same
/// socket as this shell. A warning: such clients then need
/// `VALETKEY_SOCKET` in their config.
fn discovery_check(r: &mut Report) {
    use valetkey_ipc::paths::{runtime_dir, runtime_dir_from};
    if std::env::var_os(valetkey_ipc::paths::SOCKET_ENV).is_some() {
        r.line(Level::Ok, "discovery", "VALETKEY_SOCKET is set here; clients without it use the rule (XDG_RUNTIME_DIR, /run/user/$UID, /tmp/valetkey-$UID)", None);
        return;
    }
    let here = runtime_dir();
    let uid = rustix::process::getuid().as_raw();
    let reduced = runtime_dir_from(None, uid, Path::new(valetkey_ipc::paths::RUN_USER));
    if here == reduced {
        let what = format!(
            "agents find the socket in {}, with or without XDG_RUNTIME_DIR (as MCP clients start them)",
            here.display()
        );
        r.line(Level::Ok, "discovery", what, None);
    } else {
        let what = format!(
            "this shell finds the socket in {}, but a client started without XDG_RUNTIME_DIR (the MCP SDKs' stdio clients, Codex) looks in {}",
            here.display(),
            reduced.display()
        );
        let fix = format!(
            "run valetkeyd in a login session (logind makes /run/user/{uid}), or give such a client env VALETKEY_SOCKET={}",
            here.join("agent.sock").display()
        );
        r.line(Level::Warn, "discovery", what, Some(&fix));
    }
}

fn service_check(r: &mut Report) {
    if !crate::service::installed() {
        r.line(
            Level::Warn,
            "service",
            "not installed as a user service (it will not start at login)",
            Some("`valetkey service install`"),
        );
        return;
    }
    match crate::service::status() {
        Ok(rows) => {
            let bad = rows.iter().any(|(_, s)| s.contains("failed"));
            let summary = rows
                .iter()
                .map(|(u, s)| format!("{u}: {s}"))
                .collect::<Vec<_>>()
                .join("; ");
            if bad {
                r.line(Level::Fail, "service", summary, Some("`valetkey service logs` says why; then `systemctl --user restart valetkeyd`"));
            } else {
                r.line(Level::Ok, "service", summary, None);
            }
        }
        Err(e) => r.line(Level::Warn, "service", e.to_string(), None),
    }
}

/// The Secret Service answers and its default collection is unlocked.
async fn keychain_check(r: &mut Report) {
    const FIX: &str = "log in to a desktop session, or run `gnome-keyring-daemon --unlock` (or another Secret Service) in this session";
    let probe = async {
        let conn = zbus::Connection::session().await?;
        let proxy = zbus::Proxy::new(
            &conn,
            "org.freedesktop.secrets",
            "/org/freedesktop/secrets/aliases/default",
            "org.freedesktop.Secret.Collection",
        )
        .await?;
        proxy.get_property::<bool>("Locked").await
    };
    match tokio::time::timeout(std::time::Duration::from_secs(5), probe).await {
        Ok(Ok(false)) => r.line(
            Level::Ok,
            "keychain",
            "Secret Service reachable, default collection unlocked",
            None,
        ),
        Ok(Ok(true)) => r.line(
            Level::Fail,
            "keychain",
            "the default collection is locked",
            Some(FIX),
        ),
        Ok(Err(e)) => r.line(
            Level::Fail,
            "keychain",
            format!("no Secret Service: {e}"),
            Some(FIX),
        ),
        Err(_) => r.line(
            Level::Fail,
            "keychain",
            "the Secret Service did not answer within 5 s",
            Some(FIX),
        ),
    }
}

async fn provider_checks(r: &mut Report, cfg: &Config, states: Option<&[ProviderStatus]>) {
    if cfg.providers.is_empty() {
        r.line(
            Level::Warn,
            "providers",
            format!("none configured in {}", cfg.path.display()),
            Some("add one (see README, \"Configure a provider\")"),
        );
        return;
    }
    let states = match states {
        Some(v) => v,
        None => {
            r.line(
                Level::Warn,
                "logins",
                "the daemon is not running, so whether the provider accepted each login is unknown",
                Some("start valetkeyd, then run `valetkey doctor` again"),
            );
            &[]
        }
    };
    let keychain = SecretService::new();
    let mut clock_done = false;
    for p in cfg.providers.values() {
        let check = format!("login:{}", p.name);
        let state = states.iter().find(|s| s.name == p.name);
        let login_fix = format!("`valetkey login {}`", p.name);
        match (
            state,
            keychain.get(Item::RefreshToken(&p.keychain_key)).await,
        ) {
            (Some(s), _) if s.login_required => r.line(
                Level::Fail,
                &check,
                "the provider rejected the refresh token",
                Some(&login_fix),
            ),
            (_, Ok(Some(_))) => r.line(Level::Ok, &check, "refresh token in the keychain", None),
            (_, Ok(None)) => r.line(Level::Warn, &check, "not logged in", Some(&login_fix)),
            (_, Err(e)) => r.line(
                Level::Fail,
                &check,
                format!("cannot read the keychain: {e}"),
                None,
            ),
        }
        if !clock_done {
            clock_done = clock_check(r, p).await;
        }
    }
}

/// Compares our clock with the provider's `Date`. Returns whether it could.
async fn clock_check(r: &mut Report, p: &valetkey_core::config::Provider) -> bool {
    match valetkey_core::oauth::clock_skew(p).await {
        Ok(skew) if skew.abs() <= 5 => {
            r.line(
                Level::Ok,
                "clock",
                format!("within {}s of {}", skew.abs().max(1), p.name),
                None,
            );
            true
        }
        Ok(skew) => {
            let level = if skew.abs() > 60 {
                Level::Fail
            } else {
                Level::Warn
            };
            r.line(
                level,
                "clock",
                format!(
                    "{}s {} {}",
                    skew.abs(),
                    if skew > 0 { "behind" } else { "ahead of" },
                    p.name
                ),
                Some("enable time sync (`timedatectl set-ntp true`); token lifetimes depend on it"),
            );
            true
        }
        Err(e) => {
            r.line(
                Level::Warn,
                "clock",
                format!("cannot compare with {}: {e}", p.name),
                None,
            );
            false
        }
    }
}

fn version_check(r: &mut Report, daemon: Option<String>) {
    let cli = env!("CARGO_PKG_VERSION");
    let mut parts = vec![format!("valetkey {cli}")];
    let mut mismatch = false;
    let apps = [
        ("valetkeyd", daemon),
        ("valetkey-tray", sibling_version("valetkey-tray")),
        ("valetkey-window", sibling_version("valetkey-window")),
    ];
    for (name, v) in apps {
        match v {
            Some(v) => {
                mismatch |= v != cli;
                parts.push(format!("{name} {v}"));
            }
            None => parts.push(format!("{name} unknown")),
        }
    }
    if mismatch {
        r.line(
            Level::Fail,
            "versions",
            parts.join(", "),
            Some("restart valetkeyd and the tray after an upgrade (`systemctl --user restart valetkeyd`)"),
        );
    } else {
        r.line(Level::Ok, "versions", parts.join(", "), None);
    }
}

/// What `NAME --version` of the program installed next to this one says.
fn sibling_version(name: &str) -> Option<String> {
    let o = std::process::Command::new(super::service::sibling(name))
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .nth(1)
        .map(str::to_owned)
}

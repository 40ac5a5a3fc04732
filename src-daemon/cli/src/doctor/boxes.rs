//! The box's lines of `valetkey doctor`: whether a box can be made here,
//! what the default profile's network reaches, where tools' caches live,
//! the profiles' `read_write` paths, whether the daemon took the last
//! edit of `config.toml`, and the version managers' shims on `PATH`.
//!
//! Each is something a new user met as a failure with no word why (issue
//! 28): a box that could reach `localhost`, `mkdir ~/.cache` refused, a
//! `read_write` path dropped, an edit not seen, a shim granted. Like the
//! rest of the doctor, these only read: a missing path is named, not made.

use std::path::{Path, PathBuf};

use valetkey_core::boxes::profile;
use valetkey_core::config::boxes::{Network, Profile};
use valetkey_core::config::Config;
use valetkey_ipc::control::{AuditQuery, AuditQueryParams};

use super::{Cli, Level, Report};

/// Programs an agent is often started as, that version managers shim.
const SHIMMED: &[&str] = &["python3", "python", "node", "npm", "ruby", "go"];

/// Runs the box's checks; those that read the config only with one.
pub(super) async fn checks(r: &mut Report, cli: &Cli, cfg: Option<&Config>, daemon: bool) {
    box_check(r);
    if let Some(cfg) = cfg {
        network_check(r, cfg);
        caches_check(r, cfg);
        paths_check(r, cfg, &home());
    }
    if daemon {
        reload_check(r, cli).await;
    }
    shims_check(r);
}

fn home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
}

/// Whether `valetkey run` can make a box here: bubblewrap installed, and
/// unprivileged user namespaces allowed. A warning: unboxed agents work.
fn box_check(r: &mut Report) {
    use crate::run::{BASE, ISOLATION};
    let tried = std::process::Command::new("bwrap")
        .args(ISOLATION)
        .args(BASE)
        .args(["--", "true"])
        .stdin(std::process::Stdio::null())
        .output();
    match tried {
        Ok(o) if o.status.success() => match crate::boxexec::probe() {
            Ok(()) => r.line(Level::Ok, "box", "bubblewrap can make a box, and its seccomp filter and supervisor work (valetkey run)", None),
            Err(e) => r.line(
                Level::Warn,
                "box",
                format!("bubblewrap works, but the box's seccomp filter does not: {e}"),
                Some("valetkey run needs Linux 5.9 or later with seccomp user notification, and libseccomp 2.5 (apt-get install libseccomp2); until then agents run unconfined"),
            ),
        },
        Ok(o) => r.line(
            Level::Warn,
            "box",
            format!(
                "bubblewrap cannot make a box: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Some("allow unprivileged user namespaces (sysctl user.max_user_namespaces > 0; on Ubuntu, an AppArmor profile for bwrap); until then agents run unconfined"),
        ),
        Err(_) => r.line(
            Level::Warn,
            "box",
            "bubblewrap (bwrap) is not installed, so valetkey run cannot box agents",
            Some("apt-get install bubblewrap"),
        ),
    }
}

/// What a box started without `--profile` or `--net` reaches. `shared`
/// is a warning: such a box reaches the user's local services.
fn network_check(r: &mut Report, cfg: &Config) {
    let Ok((name, p)) = cfg.boxes.profile(None) else {
        // The config's own check refuses an unknown default profile.
        return;
    };
    let through = |p: &Profile| {
        format!(
            "the providers' hosts and {} tunnelled host(s) through the egress proxy, never localhost or the LAN",
            p.tunnels().len()
        )
    };
    let what = match p.network {
        Network::Filtered => format!(
            "the default profile ({name}) is filtered: a box reaches {}",
            through(&p)
        ),
        Network::Proxy => format!(
            "the default profile ({name}) is proxy: a box reaches {}, and holds placeholders, never a token",
            through(&p)
        ),
        Network::None => format!("the default profile ({name}) has no network (loopback only)"),
        Network::Shared => {
            let what = format!(
                "the default profile ({name}) shares the host's network: a boxed agent reaches localhost and the LAN (your local services)"
            );
            let fix = format!(
                "set network = \"filtered\" in [box.profiles.{name}], and keep shared for a profile you name with --profile"
            );
            return r.line(Level::Warn, "box-net", what, Some(&fix));
        }
    };
    r.line(Level::Ok, "box-net", what, None);
}

/// Where boxes write tools' caches: a directory per profile, kept between
/// runs, never the user's own (those stay read-only in the box).
fn caches_check(r: &mut Report, cfg: &Config) {
    let root = valetkey_core::dirs::data_dir().join("box-caches");
    let names = profile_names(cfg);
    let (own, off): (Vec<&String>, Vec<&String>) = names.iter().partition(|n| {
        cfg.boxes
            .profile(Some(n))
            .is_ok_and(|(_, p)| p.caches != Some(false))
    });
    let listed = |v: &[&String]| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
    let mut what = format!(
        "boxes write tools' caches (~/.cache, ~/.npm, cargo's registry) in {}/PROFILE, kept between runs (profiles: {}); your own caches stay read-only",
        root.display(),
        listed(&own)
    );
    if !off.is_empty() {
        what.push_str(&format!(
            "; caches = false in {}: tools there cannot write a cache",
            listed(&off)
        ));
    }
    r.line(Level::Ok, "box-caches", what, None);
}

/// The built-in profiles and the configured ones, sorted.
fn profile_names(cfg: &Config) -> Vec<String> {
    let mut names: Vec<String> = ["default", "offline"]
        .into_iter()
        .map(str::to_owned)
        .chain(cfg.boxes.profiles.keys().cloned())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Each profile's `read_write` paths that do not exist: made at a box's
/// start inside the home, refused outside it (so that profile's boxes do
/// not start: a failure).
fn paths_check(r: &mut Report, cfg: &Config, home: &Path) {
    let (mut listed, mut named) = (0, false);
    for (name, p) in &cfg.boxes.profiles {
        listed += p.read_write.len();
        for (path, makeable) in profile::missing_read_write(p, home) {
            named = true;
            if makeable {
                let what = format!(
                    "profile {name}: read_write {} does not exist yet; the first box with it makes it (mode 0700)",
                    path.display()
                );
                r.line(Level::Ok, "box-paths", what, None);
            } else {
                let what = format!(
                    "profile {name}: read_write {} does not exist and is outside your home, so its boxes do not start",
                    path.display()
                );
                let fix = format!("create it, or remove it from [box.profiles.{name}]");
                r.line(Level::Fail, "box-paths", what, Some(&fix));
            }
        }
    }
    if listed > 0 && !named {
        let what = format!("every profile's read_write paths exist ({listed})");
        r.line(Level::Ok, "box-paths", what, None);
    }
}

/// Whether the daemon took the last edit of `config.toml` (its
/// `config.reload` audit record). `[box]` is taken without a restart; the
/// other sections when the daemon restarts.
async fn reload_check(r: &mut Report, cli: &Cli) {
    let newest = async {
        let mut c = crate::client::connect(cli).await.ok()?;
        c.call::<AuditQuery>(&AuditQueryParams {
            kind: Some("config.reload".into()),
            limit: Some(1),
            ..AuditQueryParams::default()
        })
        .await
        .ok()?
        .records
        .into_iter()
        .next()
    };
    const LATER: &str = "[box] edits are taken on save; other sections when valetkeyd restarts";
    match newest.await {
        None => r.line(
            Level::Ok,
            "box-config",
            format!("no edit of config.toml since the daemon started with it ({LATER})"),
            None,
        ),
        Some(rec) if rec.outcome == "loaded" => {
            let what = format!(
                "the daemon took the last edit of config.toml ({}); {LATER}",
                super::super::when(Some(rec.ts))
            );
            r.line(Level::Ok, "box-config", what, None)
        }
        Some(rec) => {
            let what = format!(
                "the daemon refused the last edit of config.toml ({}): {}; the profiles before it are in force",
                super::super::when(Some(rec.ts)),
                rec.detail.as_deref().unwrap_or("no reason recorded")
            );
            r.line(
                Level::Warn,
                "box-config",
                what,
                Some("correct the file and save it; the daemon reloads it on save"),
            )
        }
    }
}

/// Version managers' shims on `PATH` (pyenv's `python3`): a grant for one
/// is bound to the program it runs, so say which that is.
fn shims_check(r: &mut Report) {
    for name in SHIMMED {
        let Some(path) = crate::shim::on_path(name) else {
            continue;
        };
        match crate::shim::target(&path) {
            Ok(None) => {}
            Ok(Some((shim, real))) => {
                let what = format!(
                    "{} is a shim of {}: `grant add --binary` binds to {}, the program it runs here",
                    path.display(),
                    shim.manager,
                    real.display()
                );
                r.line(Level::Ok, "shims", what, None);
            }
            Err(e) => r.line(
                Level::Warn,
                "shims",
                e.message,
                Some("select a version (`pyenv global 3.12`, or the manager's own) before granting it"),
            ),
        }
    }
}

//! Boxes: agents started by `valetkey run`, whose only door to
//! credentials is a socket the daemon made for them alone.
//!
//! An unboxed agent runs as the user with everything the user has: it can
//! read the keychain, run `valetkey consent allow`, or edit the state
//! database. A box (bubblewrap, started by the launcher) takes all of that
//! away and leaves one socket. The daemon records what was launched when
//! the box is opened (`box.open`: profile, command line, working
//! directory, program and script with hashes it computed itself) and
//! learns the box's pid namespace when it starts (`box.started`). From
//! then on a connection on the box's socket is served as that box only if
//! it comes from that namespace, and carries those facts on its
//! [`PeerIdentity`](valetkey_ipc::methods::PeerIdentity): grants bind to
//! the box's entry point (the script's hash), the card shows the facts,
//! and policy sees `agent.confined` and `agent.box`.
//!
//! Each open box is a small JSON record beside its socket directory, so a
//! restarted daemon puts the socket back where the running box expects
//! it; a box whose launcher is gone is closed. This module knows no
//! sockets: the daemon binds and serves them.

pub mod entry;
pub mod pin;
pub mod profile;
pub mod protect;
pub mod registry;
pub mod report;

pub use registry::{BoxSession, Boxes};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use valetkey_ipc::control::{BoxDone, BoxOpenParams, BoxPlan, BoxStartedParams, Pin, ProxyPlan};
use valetkey_ipc::methods::{BoxFacts, FileFact, PeerIdentity};
use valetkey_ipc::ErrorCode;

use crate::broker::Shared;
use crate::error::BrokerError;

fn invalid(msg: impl Into<String>) -> BrokerError {
    BrokerError::rpc(ErrorCode::InvalidParams, msg)
}

/// Who opens a box: the launcher's pid and start time.
fn launcher_of(peer: &PeerIdentity) -> (u32, u64) {
    (peer.pid, peer.start_time)
}

/// `box.open`: resolves the profile, hashes what will run, and (unless
/// `explain`) records the box with its socket directory under `root`.
/// Returns the plan and, for a real open, the session whose socket the
/// daemon must now bind. Blocking (hashes files).
pub fn open(
    d: &Shared,
    p: BoxOpenParams,
    peer: &PeerIdentity,
    root: &Path,
) -> Result<(BoxPlan, Option<Arc<BoxSession>>), BrokerError> {
    if p.explain {
        return Ok((plan_of(d, &p, None)?, None));
    }
    let id = new_id();
    let socket_dir = root.join(&id);
    crate::dirs::ensure_private_dir(&socket_dir)
        .map_err(|e| BrokerError::rpc(ErrorCode::Internal, e.to_string()))?;
    let planned = plan_of(d, &p, Some(&socket_dir));
    let mut plan = match planned {
        Ok(plan) => plan,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&socket_dir);
            return Err(e);
        }
    };
    plan.facts.id = id;
    let proxy = match &plan.proxy {
        Some(_) => Some(Arc::new(proxy_of(d, &plan, &socket_dir)?)),
        None => None,
    };
    let facts = plan.facts.clone();
    let mut session = BoxSession::new(facts, launcher_of(peer), socket_dir.clone());
    session.agent = plan.agent.clone();
    session.proxy = proxy;
    session.report_key = p.report_key_sha256.clone();
    session.watched = plan.protection.watched.clone();
    let session = Arc::new(session);
    d.boxes.insert(session.clone()).map_err(|e| {
        BrokerError::rpc(
            ErrorCode::Internal,
            format!("cannot record box {}: {e}", plan.facts.id),
        )
    })?;
    let mut rec = crate::audit::by_user("box.opened", plan.facts.name.as_deref());
    rec.binary_sha256 = Some(plan.facts.entry_sha256.clone());
    rec.outcome = "ok".into();
    rec.detail = serde_json::to_string(&plan.facts).ok();
    crate::record::record_best_effort(d, rec);
    plan.socket_dir = socket_dir.display().to_string();
    Ok((plan, Some(session)))
}

/// The proxy of a box about to open, and its CA bundle (the system's
/// roots, then the box's CA) written beside its socket.
fn proxy_of(d: &Shared, plan: &BoxPlan, dir: &Path) -> Result<crate::proxy::BoxProxy, BrokerError> {
    let internal = |e: String| BrokerError::rpc(ErrorCode::Internal, e);
    let tunnels = plan
        .proxy
        .as_ref()
        .map(|x| {
            x.tunnelled
                .iter()
                .filter_map(|h| crate::config::proxy::host_port(h).ok())
                .collect()
        })
        .unwrap_or_default();
    let bx = crate::proxy::BoxProxy::new(&plan.facts.id, &d.providers(), tunnels, d.clock.now())
        .map_err(internal)?;
    std::fs::write(dir.join("ca-bundle.pem"), bundle(bx.ca.pem()))
        .map_err(|e| internal(format!("cannot write the box's CA bundle: {e}")))?;
    Ok(bx)
}

/// The system's CA bundle with `ca` (PEM) after it.
pub fn bundle(ca: &str) -> String {
    let mut bundle = SYSTEM_ROOTS
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    if !bundle.is_empty() && !bundle.ends_with('\n') {
        bundle.push('\n');
    }
    bundle.push_str(ca);
    bundle
}

/// Where the system's CA bundle may be (Debian, Fedora, others).
pub const SYSTEM_ROOTS: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The box `p` describes, id and socket left empty: the profile made
/// concrete for the launcher's directories, and the launch's facts. With
/// `pin_dir` (a real open), the entry files are pinned there and the
/// repositories' missing `hooks/` are made, so they can be locked.
fn plan_of(d: &Shared, p: &BoxOpenParams, pin_dir: Option<&Path>) -> Result<BoxPlan, BrokerError> {
    let (profile_name, mut profile) = profile_for(d, p.profile.as_deref())?;
    if let Some(n) = &p.network {
        profile.network = crate::config::boxes::Network::parse(n).map_err(invalid)?;
    }
    check_params(p)?;
    let dir = |s: &str, fallback: &str| -> PathBuf {
        if s.is_empty() {
            Path::new(&p.home).join(fallback)
        } else {
            PathBuf::from(s)
        }
    };
    let places = profile::Places {
        home: PathBuf::from(&p.home),
        data_home: dir(&p.data_home, ".local/share"),
        config_home: dir(&p.config_home, ".config"),
        cwd: PathBuf::from(&p.cwd),
        own: vec![crate::dirs::config_dir(), crate::dirs::data_dir()],
    };
    let resolved = profile::resolve(&profile, &places).map_err(invalid)?;
    let cache_root = crate::dirs::data_dir()
        .join("box-caches")
        .join(&profile_name);
    let caches = profile::caches(
        &profile,
        &places,
        &resolved.read_write,
        &cache_root,
        pin_dir.is_some(),
    )
    .map_err(invalid)?;
    let shown = |v: &[PathBuf]| v.iter().map(|h| h.display().to_string()).collect();
    let writable: Vec<PathBuf> = std::iter::once(places.cwd.clone())
        .chain(resolved.read_write.iter().cloned())
        .collect();
    let protection = protect::plan(&writable, pin_dir.is_some());
    let launch = Launch {
        params: p,
        profile: &profile_name,
        network: profile.network.as_str(),
        writable: &writable,
        pin_dir,
    };
    let (facts, pins) = facts_of(d, &launch)?;
    Ok(BoxPlan {
        agent: agent_name(&facts),
        proxy: proxy_plan(d, &profile),
        facts,
        socket_dir: String::new(),
        network: profile.network.as_str().into(),
        hide: shown(&resolved.hide),
        read_write: shown(&resolved.read_write),
        env: profile.env.clone(),
        pins,
        protection,
        sockets: resolved
            .sockets
            .iter()
            .map(|s| s.display().to_string())
            .collect(),
        caches: caches
            .iter()
            .map(|(path, source)| valetkey_ipc::control::BoxCache {
                path: path.display().to_string(),
                source: source.display().to_string(),
            })
            .collect(),
    })
}

/// The profile `name` (else the default) as config.toml has it now; when
/// it is missing and the last edit was refused, the refusal says why.
fn profile_for(
    d: &Shared,
    name: Option<&str>,
) -> Result<(String, crate::config::boxes::Profile), BrokerError> {
    let now = d.box_profiles();
    now.section.profile(name).map_err(|e| match &now.refused {
        Some(why) => invalid(format!(
            "{e}; your last edit of config.toml was not loaded: {why}"
        )),
        None => invalid(e),
    })
}

/// What a box launches, and where: the inputs of [`facts_of`].
struct Launch<'a> {
    params: &'a BoxOpenParams,
    profile: &'a str,
    network: &'a str,
    /// The box's writable places.
    writable: &'a [PathBuf],
    /// Where pinned copies go (`None`: only describe).
    pin_dir: Option<&'a Path>,
}

/// What the proxy of a box with `profile` opens and tunnels.
fn proxy_plan(d: &Shared, profile: &crate::config::boxes::Profile) -> Option<ProxyPlan> {
    if !profile.network.proxied() {
        return None;
    }
    let opened = d
        .config
        .providers
        .values()
        .filter_map(|p| p.proxy.as_ref())
        .flat_map(|x| x.hosts.iter().map(|h| format!("{}:{}", h.host, h.port)))
        .collect();
    let tunnelled = profile
        .tunnels()
        .iter()
        .chain(&unproxied_hosts(d))
        .filter_map(|h| crate::config::proxy::host_port(h).ok())
        .map(|(h, p)| format!("{h}:{p}"))
        .collect();
    Some(ProxyPlan { opened, tunnelled })
}

/// The API hosts of the providers the proxy has no rules for (their
/// `resource`), tunnelled untouched: a box given such a provider's token
/// with `--env` can use it there, as it could with the host's network.
fn unproxied_hosts(d: &Shared) -> Vec<String> {
    d.config
        .providers
        .values()
        .filter(|p| p.proxy.is_none())
        .filter_map(|p| url::Url::parse(p.resource.as_deref()?).ok())
        .filter(|u| u.scheme() == "https")
        .filter_map(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
        .collect()
}

/// The agent name a box's requests are made as when it does not say: the
/// pinned name, else the script's (else the program's) file name.
pub fn agent_name(f: &BoxFacts) -> String {
    if let Some(n) = &f.name {
        return n.clone();
    }
    let entry = f.script.as_ref().unwrap_or(&f.program);
    let clean: String = Path::new(&entry.path)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(64)
        .collect();
    if clean.is_empty() {
        "agent".into()
    } else {
        clean
    }
}

fn check_params(p: &BoxOpenParams) -> Result<(), BrokerError> {
    if p.argv.is_empty() || p.argv.len() > 4096 {
        return Err(invalid(
            "argv must hold the command to run (1 to 4096 words)",
        ));
    }
    if !Path::new(&p.program).is_absolute() || !Path::new(&p.program).is_file() {
        return Err(invalid(format!(
            "program {:?} is not an absolute path to a file",
            p.program
        )));
    }
    if !Path::new(&p.cwd).is_absolute() || !Path::new(&p.cwd).is_dir() {
        return Err(invalid(format!(
            "cwd {:?} is not an absolute path to a directory",
            p.cwd
        )));
    }
    if !Path::new(&p.home).is_absolute() {
        return Err(invalid("home must be absolute"));
    }
    if let Some(name) = &p.name {
        let info = valetkey_ipc::methods::AgentInfo {
            name: name.clone(),
            version: String::new(),
            purpose: String::new(),
        };
        info.validate().map_err(invalid)?;
    }
    Ok(())
}

/// The facts of what is launched (id left empty), hashed here, and the
/// copies pinned for the box (see [`pin`]).
fn facts_of(d: &Shared, l: &Launch<'_>) -> Result<(BoxFacts, Vec<Pin>), BrokerError> {
    let p = l.params;
    let e = entry::locate(
        Path::new(&p.program),
        &p.argv,
        Path::new(&p.cwd),
        entry::shebang_of,
    );
    // Every open box's working directory, and this box's writable places:
    // where a file can be swapped under a box.
    let mut writable = l.writable.to_vec();
    writable.extend(d.boxes.working_dirs());
    let mut pins = vec![];
    let mut fact = |path: &Path| -> Result<FileFact, BrokerError> {
        let cannot =
            |err: std::io::Error| invalid(format!("cannot hash {}: {err}", path.display()));
        let sha256 = match l.pin_dir {
            Some(dir) => {
                let copy = dir.join(format!("pinned-{}", pins.len()));
                let got = pin::pin(path, &copy, &writable).map_err(cannot)?;
                if let Some(c) = got.copy {
                    pins.push(Pin {
                        path: path.display().to_string(),
                        copy: c.display().to_string(),
                    });
                }
                got.sha256
            }
            None => d.attestor.hash_path(path).map_err(cannot)?,
        };
        Ok(FileFact {
            path: path.display().to_string(),
            sha256,
        })
    };
    let program = fact(&e.program)?;
    let script = e.script.as_deref().map(&mut fact).transpose()?;
    let entry_sha256 = entry::entry_hash(
        &program.sha256,
        &e.options,
        script.as_ref().map(|s| s.sha256.as_str()),
    );
    let facts = BoxFacts {
        id: String::new(),
        profile: l.profile.into(),
        network: l.network.into(),
        name: p.name.clone(),
        argv: p.argv.clone(),
        cwd: p.cwd.clone(),
        program,
        script,
        entry_sha256,
    };
    Ok((facts, pins))
}

fn new_id() -> String {
    let mut b = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    format!("b_{}", crate::attest::hex(&b))
}

/// The box `id`, opened by this launcher.
fn owned(d: &Shared, id: &str, peer: &PeerIdentity) -> Result<Arc<BoxSession>, BrokerError> {
    match d.boxes.get(id) {
        Some(s) if s.launcher == launcher_of(peer) => Ok(s),
        Some(_) => Err(invalid(format!(
            "box {id} was opened by another process; only the valetkey run that opened it may report or close it"
        ))),
        None => Err(BrokerError::rpc(
            ErrorCode::NotFound,
            format!("no open box {id}"),
        )),
    }
}

/// `box.started`: checks that `child_pid` descends from the launcher and
/// runs in a pid namespace of its own, and records that namespace.
/// Blocking (reads `/proc`).
pub fn started(
    d: &Shared,
    p: BoxStartedParams,
    peer: &PeerIdentity,
) -> Result<BoxDone, BrokerError> {
    let s = owned(d, &p.id, peer)?;
    let mut at = p.child_pid;
    let mut descends = false;
    for _ in 0..4 {
        match crate::attest::parent_and_start(at) {
            Some((ppid, _)) if ppid == peer.pid => {
                descends = true;
                break;
            }
            Some((ppid, _)) if ppid > 1 => at = ppid,
            _ => break,
        }
    }
    if !descends {
        return Err(invalid(format!(
            "process {} is not the launcher's box",
            p.child_pid
        )));
    }
    let ns = crate::attest::pid_namespace(p.child_pid);
    let own = crate::attest::pid_namespace(std::process::id());
    let Some(ns) = ns.filter(|n| Some(n) != own.as_ref()) else {
        return Err(invalid(format!(
            "process {} has no pid namespace of its own; the box was not made",
            p.child_pid
        )));
    };
    s.started_in(ns).map_err(|e| {
        BrokerError::rpc(
            ErrorCode::Internal,
            format!("cannot record box {}: {e}", p.id),
        )
    })?;
    Ok(BoxDone {
        id: p.id,
        events: vec![],
    })
}

/// `box.close` from its launcher: what the launcher moved aside is
/// recorded, and what the box's supervisor reported goes back with the
/// answer, for the launcher to say.
pub fn close(
    d: &Shared,
    id: &str,
    quarantined: Vec<valetkey_ipc::control::BoxEvent>,
    peer: &PeerIdentity,
) -> Result<BoxDone, BrokerError> {
    let s = owned(d, id, peer)?;
    report::quarantined(d, &s, quarantined);
    closed(d, id, "ended");
    Ok(BoxDone {
        id: id.into(),
        events: s.events(),
    })
}

/// Closes box `id` and records why (`ended`, or `launcher gone`).
pub fn closed(d: &Shared, id: &str, why: &str) {
    if let Some(s) = d.boxes.close(id) {
        let mut rec = crate::audit::by_user("box.closed", s.facts.name.as_deref());
        rec.binary_sha256 = Some(s.facts.entry_sha256.clone());
        rec.outcome = "ok".into();
        rec.detail = Some(format!("{id}: {why}"));
        crate::record::record_best_effort(d, rec);
    }
}

/// Refuses an unboxed caller a provider listed in `[policy]
/// require_confinement` (`confinement_required`).
pub fn require(d: &Shared, caller: &PeerIdentity, provider: &str) -> Result<(), BrokerError> {
    if caller.confinement.is_some()
        || !d
            .config
            .policy
            .require_confinement
            .iter()
            .any(|p| p == provider)
    {
        return Ok(());
    }
    Err(valetkey_ipc::RpcError::new(
        ErrorCode::ConfinementRequired,
        format!(
            "{provider} serves only agents in a box ([policy] require_confinement), and this one runs unconfined, able to read your keychain; start it with `valetkey run -- COMMAND`"
        ),
    )
    .with("provider", provider)
    .into())
}

/// Refuses `hello` as another agent than the one a box is pinned to.
pub fn check_name(caller: &PeerIdentity, name: &str) -> Result<(), BrokerError> {
    match caller.confinement.as_ref().and_then(|b| b.name.as_deref()) {
        Some(pinned) if pinned != name => Err(invalid(format!(
            "this box was started for agent {pinned:?} (valetkey run --name {pinned}); it cannot say hello as {name:?}"
        ))),
        _ => Ok(()),
    }
}

/// Records a box as open, for the in-process tier: `facts` as
/// `box.open` would make them, with a proxy when `facts.network` is
/// `proxy`, its record under `dir`.
#[cfg(test)]
pub fn open_for_tests(d: &Shared, facts: BoxFacts, dir: &Path) -> Arc<BoxSession> {
    let socket_dir = dir.join(&facts.id);
    std::fs::create_dir_all(&socket_dir).expect("box dir");
    let mut s = BoxSession::new(facts, (std::process::id(), 0), socket_dir);
    if s.facts.network == "proxy" || s.facts.network == "filtered" {
        let bx = crate::proxy::BoxProxy::new(&s.facts.id, &d.providers(), vec![], d.clock.now())
            .expect("box proxy");
        s.proxy = Some(Arc::new(bx));
    }
    let s = Arc::new(s);
    d.boxes.insert(s.clone()).expect("recorded");
    s
}

#[cfg(test)]
mod tests;

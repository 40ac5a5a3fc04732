//! The box as bubblewrap will build it: its namespaces, its mounts in
//! order, the command `bwrap` runs inside (`valetkey box-exec` and what it
//! supervises), and its environment; and `--explain`, which prints it.

use std::path::Path;

use valetkey_ipc::control::BoxPlan;

use super::{passed, RunArgs};

/// The box as bubblewrap arguments and an environment.
pub struct Spec {
    /// Arguments before `--info-fd` (filesystem, namespaces).
    pub args: Vec<String>,
    /// The command bwrap runs: `valetkey box-exec … -- PROGRAM ARGV…`.
    pub inner: Vec<String>,
    /// The box's environment (the report key last, for box-exec alone).
    pub env: Vec<(String, String)>,
}

impl Spec {
    /// The box of `plan`, running `program` as `a` asked, with this
    /// `valetkey` (`exe`) as its first process and `key` its report key.
    pub fn new(plan: &BoxPlan, a: &RunArgs, program: &Path, exe: &Path, key: &str) -> Spec {
        let cwd = Path::new(&plan.facts.cwd);
        let inside = valetkey_ipc::paths::runtime_dir();
        let socket = inside.join("agent.sock");
        let mut env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| passed(k, &plan.env))
            .collect();
        env.push((
            valetkey_ipc::paths::SOCKET_ENV.into(),
            socket.display().to_string(),
        ));
        env.push(("VALETKEY_BOX".into(), plan.facts.id.clone()));
        if plan.proxy.is_some() {
            env.extend(proxy_env(&inside.join("ca-bundle.pem")));
        }
        env.push((crate::boxexec::KEY_ENV.into(), key.into()));
        Spec {
            args: mounts(plan, cwd, exe),
            inner: inner(plan, a, program, exe),
            env,
        }
    }
}

/// `valetkey box-exec` and its arguments: the agent, the tokens, the
/// proxy, what its supervisor checks, then the command.
fn inner(plan: &BoxPlan, a: &RunArgs, program: &Path, exe: &Path) -> Vec<String> {
    let mut inner = vec![exe.display().to_string(), "box-exec".into()];
    inner.extend(["--agent".into(), plan.agent.clone()]);
    for e in &a.env {
        inner.extend(["--env".into(), e.clone()]);
    }
    if plan.proxy.is_some() {
        let sock = valetkey_ipc::paths::runtime_dir().join("proxy.sock");
        inner.extend(["--proxy".into(), sock.display().to_string()]);
    }
    if plan.network == "proxy" {
        inner.push("--placeholders".into());
    }
    let p = &plan.protection;
    let pairs = [("--allow-socket", &plan.sockets), ("--watch", &p.watched)];
    for (flag, paths) in pairs {
        for path in paths {
            inner.extend([flag.into(), path.clone()]);
        }
    }
    for l in &p.locked {
        inner.extend(["--lock".into(), l.path.clone()]);
    }
    for w in std::iter::once(&plan.facts.cwd).chain(&plan.read_write) {
        inner.extend(["--writable".into(), w.clone()]);
    }
    inner.extend(["--".into(), program.display().to_string()]);
    inner.extend(a.command.iter().cloned());
    inner
}

/// Where a box in `proxy` mode sends HTTP(S), and which CA bundle (the
/// system's roots and the box's CA) its clients trust: the variables curl,
/// git, Python (urllib, requests), Node and Go read.
fn proxy_env(bundle: &Path) -> Vec<(String, String)> {
    let url = format!("http://{}", crate::boxexec::PROXY_LISTEN);
    let bundle = bundle.display().to_string();
    let mut env = vec![];
    for v in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        env.push((v.to_owned(), url.clone()));
    }
    for v in [
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
        "GIT_SSL_CAINFO",
        "CURL_CA_BUNDLE",
    ] {
        env.push((v.to_owned(), bundle.clone()));
    }
    // Node 24 and later: fetch and http follow HTTPS_PROXY.
    env.push(("NODE_USE_ENV_PROXY".into(), "1".into()));
    env
}

/// The namespaces and privileges of every box (`valetkey doctor` tries
/// them): all namespaces new, no nested user namespaces, no capabilities,
/// a new session (no controlling terminal), gone with its launcher.
pub const ISOLATION: &[&str] = &[
    "--unshare-all",
    "--unshare-user",
    "--disable-userns",
    "--die-with-parent",
    "--new-session",
    "--cap-drop",
    "ALL",
];

/// The filesystem every box starts from: the host's, read-only, with a
/// minimal `/dev` and its own `/proc`.
pub const BASE: &[&str] = &["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"];

/// bubblewrap's namespace and mount arguments for `plan`, in order: the
/// read-only root, then the empty places, the tools' caches (the
/// profile's own), the writable ones, the
/// repositories' `.git` bound onto themselves and what is locked in them
/// (read-only over the writable binds), the hidden paths (after the
/// working directory, so they stay hidden inside it), the pinned files,
/// the launcher's own binary (for `box-exec`), the sockets the profile
/// allows, and the box's socket directory at the runtime directory's
/// `valetkey/`.
fn mounts(plan: &BoxPlan, cwd: &Path, exe: &Path) -> Vec<String> {
    let mut args: Vec<String> = vec![];
    let mut add = |xs: &[&str]| args.extend(xs.iter().map(|s| s.to_string()));
    add(ISOLATION);
    if plan.network == "shared" {
        // After --unshare-all, which it undoes for the network only.
        add(&["--share-net"]);
    }
    add(BASE);
    add(&["--tmpfs", "/tmp"]);
    if let Some(runtime) = valetkey_ipc::paths::user_runtime_dir().filter(|d| d.is_dir()) {
        add(&["--tmpfs", &runtime.display().to_string()]);
    }
    for c in &plan.caches {
        add(&["--bind", &c.source, &c.path]);
    }
    let cwd_s = cwd.display().to_string();
    add(&["--bind", &cwd_s, &cwd_s]);
    for p in &plan.read_write {
        add(&["--bind", p, p]);
    }
    for g in &plan.protection.anchored {
        add(&["--bind", g, g]);
    }
    for l in &plan.protection.locked {
        add(&["--ro-bind", &l.path, &l.path]);
    }
    for h in &plan.hide {
        if Path::new(h).is_dir() {
            add(&["--tmpfs", h]);
        } else {
            add(&["--ro-bind", "/dev/null", h]);
        }
    }
    for p in &plan.pins {
        add(&["--ro-bind", &p.copy, &p.path]);
    }
    let exe_s = exe.display().to_string();
    add(&["--ro-bind", &exe_s, &exe_s]);
    for s in plan.sockets.iter().filter(|s| Path::new(s).exists()) {
        add(&["--ro-bind", s, s]);
    }
    if !plan.socket_dir.is_empty() {
        let inside = valetkey_ipc::paths::runtime_dir().display().to_string();
        add(&["--ro-bind", &plan.socket_dir, &inside]);
    }
    add(&["--chdir", &cwd_s]);
    args
}

fn list(v: impl IntoIterator<Item = String>, none: &str) -> String {
    let v: Vec<String> = v.into_iter().collect();
    if v.is_empty() {
        none.into()
    } else {
        v.join(" ")
    }
}

/// Prints what `valetkey run --explain` shows.
pub fn explain(plan: &BoxPlan, spec: &Spec) {
    let f = &plan.facts;
    println!("profile:   {} (network {})", f.profile, plan.network);
    println!(
        "agent:     {} (what --env and the proxy ask as)",
        plan.agent
    );
    if let Some(p) = &plan.proxy {
        println!(
            "proxy:     opens {} (tokens written in, per the grant's rules); tunnels {}; refuses the rest",
            list(p.opened.iter().cloned(), "nothing"),
            list(p.tunnelled.iter().cloned(), "nothing")
        );
    }
    println!("command:   {}", f.argv.join(" "));
    println!("cwd:       {} (read-write)", f.cwd);
    println!("program:   {}  sha256 {}", f.program.path, f.program.sha256);
    match &f.script {
        Some(s) => println!("script:    {}  sha256 {}", s.path, s.sha256),
        None => println!("script:    none (grants bind to the program and its options)"),
    }
    println!("entry:     {} (what grants bind to)", f.entry_sha256);
    println!("pinned:    files up to 1 MiB, and larger ones in writable places: the box sees them as hashed");
    if let Some(n) = &f.name {
        println!("agent:     {n} (pinned)");
    }
    println!(
        "hidden:    {}",
        list(plan.hide.iter().cloned(), "(none exist)")
    );
    println!(
        "writable:  {}",
        list(
            std::iter::once(f.cwd.clone()).chain(plan.read_write.iter().cloned()),
            ""
        )
    );
    println!(
        "caches:    {}",
        list(
            plan.caches
                .iter()
                .map(|c| format!("{} (the profile's own, kept in {})", c.path, c.source)),
            "the user's, read-only"
        )
    );
    let p = &plan.protection;
    println!(
        "locked:    {}",
        list(p.locked.iter().map(|l| l.path.clone()), "(nothing found)")
    );
    println!(
        "watched:   {}",
        list(p.watched.iter().cloned(), "(nothing)")
    );
    println!("empty:     /tmp, $XDG_RUNTIME_DIR (only the box's agent.sock in it)");
    println!(
        "sockets:   the box's own; {} (every other Unix socket outside the box: EACCES)",
        list(plan.sockets.iter().cloned(), "no others")
    );
    println!("blocked:   session bus, keychain, control.sock, X11/Wayland/ssh-agent/gpg-agent sockets, other processes, user namespaces, TIOCSTI; abstract sockets and signals out (Landlock); the session keyring, io_uring, datagram Unix sockets (seccomp)");
    let names: Vec<&str> = spec
        .env
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| *k != crate::boxexec::KEY_ENV)
        .collect();
    println!("env:       {}", names.join(" "));
    println!(
        "bwrap:     bwrap {} --info-fd N --block-fd M -- {}",
        spec.args.join(" "),
        spec.inner.join(" ")
    );
}

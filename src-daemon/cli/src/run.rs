//! `valetkey run`: start an agent in a box whose only door to credentials
//! is the broker.
//!
//! The box is bubblewrap (the sandbox Flatpak uses), not a namespace
//! sandbox of our own. The launcher asks the daemon to open a box
//! (`box.open` on `control.sock`: the daemon records what will run, hashes
//! it, resolves the profile and makes the box's own socket), starts `bwrap`
//! with the box's first process held (`--block-fd`), reports that
//! process's pid (`box.started`, so the daemon knows the box's pid
//! namespace), and lets it run. Inside, `valetkey box-exec` applies
//! Landlock scoping (no abstract sockets, no signals out), fetches the
//! `--env` tokens through the box's socket, and execs the command.
//!
//! What the box has: the working directory read-write, the rest of the
//! filesystem read-only with credential stores hidden, an empty `/tmp` and
//! runtime directory holding only the box's socket, a fresh `/proc` and
//! pid namespace, the network of its profile (shared or none), no user
//! namespaces, no capabilities, no controlling terminal, and an
//! environment reduced to an allow-list.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use clap::Args;
use valetkey_ipc::control::{
    BoxClose, BoxCloseParams, BoxOpen, BoxOpenParams, BoxPlan, BoxStarted, BoxStartedParams,
};

use super::client::{connect, fail};
use super::{Cli, Failure};

/// `valetkey run` options.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The box profile (`[box.profiles.NAME]`, or `default`, `offline`).
    #[arg(long)]
    pub profile: Option<String>,
    /// Pin the box to this agent name: `hello` with another is refused.
    #[arg(long)]
    pub name: Option<String>,
    /// The network, over the profile's: `shared`, `none`, or `proxy` (no
    /// network but an HTTPS proxy that reaches the providers, with
    /// tokens written in, and the profile's hosts).
    #[arg(long, value_parser = ["shared", "none", "proxy"])]
    pub net: Option<String>,
    /// Print the box that would be made, and run nothing.
    #[arg(long)]
    pub explain: bool,
    /// Put a token in the agent's environment: VAR=PROVIDER:SCOPE[,SCOPE…]
    /// (fetched through the box's socket, with consent, before the command
    /// starts); with `--net proxy`, a placeholder the proxy swaps for it.
    #[arg(long = "env", value_name = "VAR=PROVIDER:SCOPES")]
    pub env: Vec<String>,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// Variables a box inherits from the launcher (besides a profile's `env`).
const PASSED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "TERM",
    "COLORTERM",
    "LANG",
    "LANGUAGE",
    "TZ",
    "EDITOR",
    "VISUAL",
    "PAGER",
    "NO_COLOR",
    "FORCE_COLOR",
    "COLUMNS",
    "LINES",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
    "XDG_STATE_HOME",
];

fn passed(name: &str, extra: &[String]) -> bool {
    PASSED.contains(&name) || name.starts_with("LC_") || extra.iter().any(|e| e == name)
}

/// `argv[0]` as the shell would find it.
fn resolve_program(arg0: &str, cwd: &Path) -> Result<PathBuf, Failure> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let found = if arg0.contains('/') {
        Some(cwd.join(arg0)).filter(|p| runnable(p))
    } else {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(arg0))
                .find(|p| p.is_absolute() && runnable(p))
        })
    };
    let found = found.ok_or_else(|| Failure {
        code: 127,
        message: format!("{arg0}: command not found (or not executable)"),
    })?;
    Ok(std::fs::canonicalize(&found).unwrap_or(found))
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// Runs `valetkey run`.
pub async fn run(cli: &Cli, a: &RunArgs) -> Result<(), Failure> {
    for spec in &a.env {
        super::boxexec::parse_env(spec).map_err(Failure::from)?;
    }
    let cwd = std::env::current_dir()?;
    let cwd = std::fs::canonicalize(&cwd).unwrap_or(cwd);
    let program = resolve_program(&a.command[0], &cwd)?;
    let mut ctl = connect(cli).await?;
    let plan = ctl
        .call::<BoxOpen>(&BoxOpenParams {
            profile: a.profile.clone(),
            name: a.name.clone(),
            argv: a.command.clone(),
            program: program.display().to_string(),
            cwd: cwd.display().to_string(),
            home: var("HOME"),
            data_home: var("XDG_DATA_HOME"),
            config_home: var("XDG_CONFIG_HOME"),
            explain: a.explain,
            network: a.net.clone(),
        })
        .await
        .map_err(fail)?;
    drop(ctl);
    let box_exe = std::env::current_exe()?;
    let spec = Spec::new(&plan, &cwd, &program, a, &box_exe);
    if a.explain {
        explain(&plan, &spec);
        return Ok(());
    }
    let outcome = launch(cli, &plan, &spec).await;
    // The daemon also closes a box whose launcher is gone.
    if let Ok(mut ctl) = connect(cli).await {
        let _ = ctl
            .call::<BoxClose>(&BoxCloseParams {
                id: plan.facts.id.clone(),
            })
            .await;
    }
    match outcome? {
        0 => Ok(()),
        code => Err(Failure {
            code,
            message: String::new(),
        }),
    }
}

/// The box as bubblewrap arguments and an environment.
struct Spec {
    /// Arguments before `--info-fd` (filesystem, namespaces).
    args: Vec<String>,
    /// The command bwrap runs: `valetkey box-exec … -- PROGRAM ARGV…`.
    inner: Vec<String>,
    env: Vec<(String, String)>,
}

impl Spec {
    fn new(plan: &BoxPlan, cwd: &Path, program: &Path, a: &RunArgs, exe: &Path) -> Spec {
        let exe_s = exe.display().to_string();
        let mut inner = vec![exe_s, "box-exec".into()];
        inner.extend(["--agent".into(), plan.agent.clone()]);
        for e in &a.env {
            inner.extend(["--env".into(), e.clone()]);
        }
        let inside = valetkey_ipc::paths::runtime_dir();
        if plan.proxy.is_some() {
            let sock = inside.join("proxy.sock").display().to_string();
            inner.extend(["--proxy".into(), sock]);
        }
        inner.extend(["--".into(), program.display().to_string()]);
        inner.extend(a.command.iter().cloned());
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
        Spec {
            args: mounts(plan, cwd, exe),
            inner,
            env,
        }
    }
}

/// Where a box in `proxy` mode sends HTTP(S), and which CA bundle (the
/// system's roots and the box's CA) its clients trust: the variables curl,
/// git, Python (urllib, requests), Node and Go read.
fn proxy_env(bundle: &Path) -> Vec<(String, String)> {
    let url = format!("http://{}", super::boxexec::PROXY_LISTEN);
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
/// read-only root, then the empty places, the writable ones, the hidden
/// ones (after the working directory, so they stay hidden inside it), the
/// launcher's own binary (for `box-exec`) and the box's socket directory at
/// the runtime directory's `valetkey/`.
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
    let runtime = var("XDG_RUNTIME_DIR");
    if !runtime.is_empty() && Path::new(&runtime).is_dir() {
        add(&["--tmpfs", &runtime]);
    }
    let cwd_s = cwd.display().to_string();
    add(&["--bind", &cwd_s, &cwd_s]);
    for p in &plan.read_write {
        add(&["--bind", p, p]);
    }
    for h in &plan.hide {
        if Path::new(h).is_dir() {
            add(&["--tmpfs", h]);
        } else {
            add(&["--ro-bind", "/dev/null", h]);
        }
    }
    let exe_s = exe.display().to_string();
    add(&["--ro-bind", &exe_s, &exe_s]);
    if !plan.socket_dir.is_empty() {
        let inside = valetkey_ipc::paths::runtime_dir().display().to_string();
        add(&["--ro-bind", &plan.socket_dir, &inside]);
    }
    add(&["--chdir", &cwd_s]);
    args
}

fn explain(plan: &BoxPlan, spec: &Spec) {
    let f = &plan.facts;
    println!("profile:   {} (network {})", f.profile, plan.network);
    println!(
        "agent:     {} (what --env and the proxy ask as)",
        plan.agent
    );
    if let Some(p) = &plan.proxy {
        println!(
            "proxy:     opens {} (tokens written in, per the grant's rules); tunnels {}; refuses the rest",
            if p.opened.is_empty() { "nothing".into() } else { p.opened.join(" ") },
            if p.tunnelled.is_empty() { "nothing".into() } else { p.tunnelled.join(" ") }
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
    if let Some(n) = &f.name {
        println!("agent:     {n} (pinned)");
    }
    println!(
        "hidden:    {}",
        if plan.hide.is_empty() {
            "(none exist)".into()
        } else {
            plan.hide.join(" ")
        }
    );
    println!(
        "writable:  {}",
        std::iter::once(f.cwd.as_str())
            .chain(plan.read_write.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("empty:     /tmp, $XDG_RUNTIME_DIR (only the box's agent.sock in it)");
    println!("blocked:   session bus, keychain, control.sock, X11/Wayland/ssh-agent/gpg-agent sockets, other processes, user namespaces, TIOCSTI; abstract sockets and signals out (Landlock)");
    let names: Vec<&str> = spec.env.iter().map(|(k, _)| k.as_str()).collect();
    println!("env:       {}", names.join(" "));
    println!(
        "bwrap:     bwrap {} --info-fd N --block-fd M -- {}",
        spec.args.join(" "),
        spec.inner.join(" ")
    );
}

/// A pipe end for the child: inherited across exec.
fn inheritable(fd: &impl std::os::fd::AsFd) -> std::io::Result<()> {
    rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty()).map_err(std::io::Error::from)
}

/// Starts the box, reports it, lets it run, and returns its exit code.
async fn launch(cli: &Cli, plan: &BoxPlan, spec: &Spec) -> Result<i32, Failure> {
    let (mut info_r, info_w) = std::io::pipe()?;
    let (block_r, mut block_w) = std::io::pipe()?;
    inheritable(&info_w)?;
    inheritable(&block_r)?;
    let mut cmd = tokio::process::Command::new("bwrap");
    cmd.env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .args(&spec.args)
        .args(["--info-fd", &info_w.as_raw_fd().to_string()])
        .args(["--block-fd", &block_r.as_raw_fd().to_string()])
        .arg("--")
        .args(&spec.inner)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| Failure {
        code: 1,
        message: match e.kind() {
            std::io::ErrorKind::NotFound => "bubblewrap (bwrap) is not installed; install it (Debian: apt-get install bubblewrap) and retry".into(),
            _ => format!("cannot start bwrap: {e}"),
        },
    })?;
    drop((info_w, block_r));
    let info = tokio::task::spawn_blocking(move || {
        let mut s = String::new();
        info_r.read_to_string(&mut s).map(|_| s)
    })
    .await
    .map_err(|e| Failure::from(e.to_string()))??;
    let child_pid = serde_json::from_str::<serde_json::Value>(&info)
        .ok()
        .and_then(|v| v.get("child-pid")?.as_u64())
        .ok_or_else(|| {
            Failure::from(format!(
                "bwrap did not start the box (it said {info:?}); see its message above"
            ))
        })?;
    let mut ctl = connect(cli).await?;
    ctl.call::<BoxStarted>(&BoxStartedParams {
        id: plan.facts.id.clone(),
        child_pid: child_pid as u32,
    })
    .await
    .map_err(fail)?;
    drop(ctl);
    block_w.write_all(b"1")?;
    drop(block_w);
    wait(&mut child, child_pid as u32).await
}

/// Waits for the box. SIGINT and SIGTERM are passed to the command (it
/// has no terminal to get them from); a second one ends the box.
async fn wait(child: &mut tokio::process::Child, init: u32) -> Result<i32, Failure> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut asked = false;
    loop {
        let sig = tokio::select! {
            st = child.wait() => {
                let st = st?;
                use std::os::unix::process::ExitStatusExt;
                return Ok(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)));
            }
            _ = int.recv() => rustix::process::Signal::INT,
            _ = term.recv() => rustix::process::Signal::TERM,
        };
        if asked {
            let _ = child.start_kill();
            continue;
        }
        asked = true;
        // The box's init ignores signals from outside; its children
        // (the command) get them.
        let children = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children"))
            .unwrap_or_default();
        for pid in children.split_whitespace().filter_map(|p| p.parse().ok()) {
            if let Some(p) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(p, sig);
            }
        }
    }
}

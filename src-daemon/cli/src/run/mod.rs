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
//! `--env` tokens through the box's socket, and starts the command under
//! its seccomp filter, as its supervisor (see [`crate::boxexec`]). When the
//! box ends, what the supervisor reported is said ([`report`]).
//!
//! What the box has: the working directory read-write, with the files
//! that make the user's own tools run commands (git's config and hooks,
//! editor settings) read-only ([`valetkey_core::boxes::protect`]), its
//! program and script as the daemon hashed them, the rest of the
//! filesystem read-only with credential stores hidden, an empty `/tmp` and
//! runtime directory holding only the box's socket, no Unix socket outside
//! but those its profile names, a fresh `/proc` and pid namespace, the
//! network of its profile (filtered, proxy, shared or none), no user namespaces, no
//! capabilities, no controlling terminal, and an environment reduced to an
//! allow-list.

mod report;
mod spec;

pub use spec::{BASE, ISOLATION};

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use clap::Args;
use valetkey_ipc::control::{
    BoxClose, BoxCloseParams, BoxOpen, BoxOpenParams, BoxPlan, BoxStarted, BoxStartedParams,
};

use spec::Spec;

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
    /// The network, over the profile's: `filtered` (the default: no
    /// network but an HTTPS proxy that reaches the providers and the
    /// profile's hosts, the package registries unless it says otherwise;
    /// tokens as asked), `proxy` (the same network, and the box holds
    /// placeholders, never tokens), `shared` (the host's network,
    /// `localhost` included) or `none`.
    #[arg(long, value_parser = ["filtered", "proxy", "shared", "none"])]
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

pub(crate) fn passed(name: &str, extra: &[String]) -> bool {
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

pub(crate) fn var(name: &str) -> String {
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
    let key = report::new_key()?;
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
            report_key_sha256: valetkey_core::attest::sha256_hex(key.as_bytes()),
        })
        .await
        .map_err(fail)?;
    drop(ctl);
    let box_exe = std::env::current_exe()?;
    let spec = spec::Spec::new(&plan, a, &program, &box_exe, &key);
    if a.explain {
        spec::explain(&plan, &spec);
        return Ok(());
    }
    let outcome = launch(cli, &plan, &spec).await;
    let quarantined = report::quarantine(&plan.protection.watched, &plan.facts.id);
    // The daemon also closes a box whose launcher is gone.
    if let Ok(mut ctl) = connect(cli).await {
        let closed = ctl
            .call::<BoxClose>(&BoxCloseParams {
                id: plan.facts.id.clone(),
                quarantined,
            })
            .await;
        if let Ok(done) = closed {
            report::say(&done.events);
        }
    }
    match outcome? {
        0 => Ok(()),
        code => Err(Failure {
            code,
            message: String::new(),
        }),
    }
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

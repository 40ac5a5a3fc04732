//! `valetkey box-exec`: the first thing that runs inside a box (started by
//! `valetkey run`, never by hand), and the box's supervisor for as long as
//! it runs. It narrows the box further with Landlock, where bubblewrap's
//! namespaces leave a gap, fetches the tokens `--env` asked for through
//! the box's own socket, then starts the command under a seccomp filter
//! ([`filter`]) and answers that filter's notifications ([`supervise`]):
//! it makes every `connect()` of the box itself, refusing Unix sockets
//! outside the box, and notes attempts on locked paths, which it reports
//! to the daemon (`box.report`, with the key the launcher gave it).
//!
//! Two stages, because a filter must be installed by the process it
//! binds: this process (stage 1) starts `valetkey box-exec --stage2`,
//! which installs the filter, stops itself until stage 1 has taken the
//! filter's listener from it (`pidfd_getfd`), and execs the command.
//! Stage 1 is not dumpable: nothing in the box can read its memory, its
//! environment (the report key) or its descriptors (the listener), or
//! trace it. If it dies, the filter answers `ENOSYS` to every call it
//! would have handled, and bubblewrap ends the box.
//!
//! In `proxy` mode (`--proxy SOCKET`) it first makes the listener the
//! box's `HTTPS_PROXY` points at (127.0.0.1:3128 in the box's own network
//! namespace, which only the box can reach) and hands it to the daemon
//! over the box's proxy socket (`SCM_RIGHTS`): the daemon accepts the
//! box's connections on it directly, with no process of the box in
//! between. `--env` then puts placeholders in the environment
//! (`token.placeholder`), not tokens: the proxy writes the real token into
//! requests it allows.
//!
//! Landlock scoping (ABI 6 and later) stops connections to abstract Unix
//! sockets made outside the box (with a shared network, X11's
//! `@/tmp/.X11-unix/X0`, a session bus on an abstract address) and signals
//! to processes outside. On older kernels it is skipped, and the box still
//! has its namespaces.

pub mod filter;
mod stages;
pub mod supervise;

pub use stages::{probe, KEY_ENV};

use std::path::PathBuf;

use clap::Args;
use valetkey_ipc::methods::{
    AgentInfo, TokenGet, TokenGetParams, TokenPlaceholder, TokenPlaceholderParams,
};
use valetkey_ipc::Client;

use super::client::client_failure;
use super::Failure;

/// `valetkey box-exec` options.
#[derive(Debug, Args)]
pub struct BoxExecArgs {
    /// The agent name `--env` tokens are asked for as.
    #[arg(long, default_value = "agent")]
    pub agent: String,
    /// VAR=PROVIDER:SCOPE[,SCOPE…], fetched before the command starts.
    #[arg(long = "env")]
    pub env: Vec<String>,
    /// A box whose network is the proxy: hand the proxy's listener to the
    /// daemon over this socket.
    #[arg(long)]
    pub proxy: Option<std::path::PathBuf>,
    /// Network `proxy`: make `--env` placeholders, not tokens.
    #[arg(long)]
    pub placeholders: bool,
    /// A Unix socket outside the box it may connect to.
    #[arg(long = "allow-socket")]
    pub sockets: Vec<PathBuf>,
    /// A locked path (reported when the box tries to change it).
    #[arg(long)]
    pub lock: Vec<PathBuf>,
    /// A watched path (reported when the box makes it).
    #[arg(long)]
    pub watch: Vec<PathBuf>,
    /// A place the box writes (a `.git` made there is reported).
    #[arg(long)]
    pub writable: Vec<PathBuf>,
    /// The second stage: install the filter, wait, exec.
    #[arg(long, hide = true)]
    pub stage2: bool,
    /// The program (absolute), then its argv as typed.
    #[arg(last = true, required = true, num_args = 2..)]
    pub command: Vec<String>,
}

/// One `--env` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvToken {
    /// The variable.
    pub var: String,
    /// The provider.
    pub provider: String,
    /// The scopes.
    pub scopes: Vec<String>,
}

/// Parses `VAR=PROVIDER:SCOPE[,SCOPE…]` (scopes split on commas or spaces).
pub fn parse_env(spec: &str) -> Result<EnvToken, String> {
    let bad =
        || format!("--env {spec:?}: write VAR=PROVIDER:SCOPE[,SCOPE…], e.g. GH_TOKEN=github:repo");
    let (var, rest) = spec.split_once('=').ok_or_else(bad)?;
    let (provider, scopes) = rest.split_once(':').ok_or_else(bad)?;
    let scopes: Vec<String> = scopes
        .split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let var_ok = !var.is_empty()
        && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !var.starts_with(|c: char| c.is_ascii_digit())
        && !valetkey_core::attest::LOADER_VARS.contains(&var);
    if !var_ok || provider.is_empty() || scopes.is_empty() {
        return Err(bad());
    }
    Ok(EnvToken {
        var: var.into(),
        provider: provider.into(),
        scopes,
    })
}

/// Scopes abstract sockets and signals to the box (best effort: an older
/// kernel leaves the namespaces alone to do the work).
fn landlock() {
    use landlock::{Ruleset, RulesetAttr, Scope};
    let made = Ruleset::default()
        .scope(Scope::AbstractUnixSocket | Scope::Signal)
        .and_then(|r| r.create())
        .and_then(|r| r.restrict_self());
    if let Err(e) = made {
        eprintln!("valetkey: Landlock scoping not applied ({e}); the box relies on its namespaces");
    }
}

/// Where the proxy listens inside every box (the box's network namespace
/// is its own, so the port is always free).
pub const PROXY_LISTEN: &str = "127.0.0.1:3128";

/// Makes the proxy's listener in the box and hands it to the daemon over
/// `to`; returns once the daemon serves it (it answers `k`, or why not).
fn hand_over_listener(to: &std::path::Path) -> Result<(), Failure> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    use std::io::Read;
    use std::os::fd::AsFd;
    let failed =
        |what: &str, e: std::io::Error| Failure::from(format!("the box's proxy: {what}: {e}"));
    let listener =
        std::net::TcpListener::bind(PROXY_LISTEN).map_err(|e| failed("cannot listen", e))?;
    let mut stream = std::os::unix::net::UnixStream::connect(to)
        .map_err(|e| failed("cannot reach valetkeyd", e))?;
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [listener.as_fd()];
    control.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(
        &stream,
        &[std::io::IoSlice::new(b"L")],
        &mut control,
        SendFlags::empty(),
    )
    .map_err(|e| failed("cannot hand the listener over", e.into()))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| failed("no answer", e))?;
    match answer.strip_prefix('k') {
        Some(_) => Ok(()),
        None => Err(Failure::from(format!(
            "the box's proxy: valetkeyd refused it: {answer}"
        ))),
    }
}

/// Fetches what `--env` asked for: tokens, or in proxy mode placeholders.
async fn env_values(
    a: &BoxExecArgs,
    specs: Vec<EnvToken>,
) -> Result<Vec<(String, String)>, Failure> {
    let mut out = vec![];
    if specs.is_empty() {
        return Ok(out);
    }
    let mut c = Client::connect_default().await.map_err(client_failure)?;
    c.hello(AgentInfo {
        name: a.agent.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        purpose: "tokens for the command's environment (valetkey run --env)".into(),
    })
    .await
    .map_err(client_failure)?;
    for t in specs {
        let named = |e: valetkey_ipc::ClientError| Failure {
            message: format!("--env {}: {e}", t.var),
            ..client_failure(e)
        };
        let value = if a.placeholders {
            let p = TokenPlaceholderParams {
                provider: t.provider.clone(),
                scopes: t.scopes.clone(),
            };
            c.call::<TokenPlaceholder>(&p)
                .await
                .map_err(named)?
                .placeholder
        } else {
            let p = TokenGetParams {
                provider: t.provider.clone(),
                scopes: t.scopes.clone(),
                resource: None,
                wait: Some(true),
                duration_secs: None,
                context: None,
            };
            let r = c.call::<TokenGet>(&p).await.map_err(named)?;
            r.access_token.expose().to_owned()
        };
        out.push((t.var, value));
    }
    Ok(out)
}

/// Runs `valetkey box-exec`: the first stage supervises the command and
/// exits with its status; the second only returns on failure.
pub async fn box_exec(a: &BoxExecArgs) -> Result<(), Failure> {
    if a.stage2 {
        return Err(stages::second(a));
    }
    // Before anything else: nothing in the box may read this process's
    // memory, environment or descriptors, or trace it.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| Failure::from(format!("cannot make the box's supervisor undumpable: {e}")))?;
    landlock();
    let specs = a
        .env
        .iter()
        .map(|s| parse_env(s))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(to) = &a.proxy {
        hand_over_listener(to)?;
    }
    let values = env_values(a, specs).await?;
    match stages::first(a, values).await? {
        0 => Ok(()),
        code => Err(Failure {
            code,
            message: String::new(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_env_requests_and_refuses_the_malformed() {
        let t = parse_env("GH_TOKEN=github:repo,read:org").expect("ok");
        assert_eq!(t.var, "GH_TOKEN");
        assert_eq!(t.provider, "github");
        assert_eq!(t.scopes, vec!["repo", "read:org"]);
        assert_eq!(parse_env("T=p:a b").expect("spaces").scopes, vec!["a", "b"]);
        for bad in [
            "GH_TOKEN",
            "GH_TOKEN=github",
            "=p:s",
            "T=p:",
            "1X=p:s",
            "LD_PRELOAD=p:s",
            "A-B=p:s",
        ] {
            let e = parse_env(bad).expect_err(bad);
            assert!(e.contains("VAR=PROVIDER:SCOPE"), "{e}");
        }
    }
}

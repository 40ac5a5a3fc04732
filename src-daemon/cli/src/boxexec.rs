//! `valetkey box-exec`: the first thing that runs inside a box (started by
//! `valetkey run`, never by hand). It narrows the box further with
//! Landlock, where bubblewrap's namespaces leave a gap, fetches the tokens
//! `--env` asked for through the box's own socket, and execs the command.
//!
//! In `proxy` mode (`--proxy SOCKET`) it first starts the bridge
//! (`valetkey box-bridge`) the box's `HTTPS_PROXY` points at, and `--env`
//! puts placeholders in the environment (`token.placeholder`), not
//! tokens: the proxy writes the real token into requests it allows.
//!
//! Landlock scoping (ABI 6 and later) stops connections to abstract Unix
//! sockets made outside the box (with a shared network, X11's
//! `@/tmp/.X11-unix/X0`, a session bus on an abstract address) and signals
//! to processes outside. On older kernels it is skipped, and the box still
//! has its namespaces.

use std::os::unix::process::CommandExt;

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
    /// Proxy mode: start the bridge to this proxy socket, and make
    /// `--env` placeholders.
    #[arg(long)]
    pub proxy: Option<std::path::PathBuf>,
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

/// Starts the bridge and waits until it listens. It stays a child of
/// the command, and ends with the box.
fn start_bridge(to: &std::path::Path) -> Result<(), Failure> {
    use std::io::BufRead;
    let exe = std::env::current_exe()?;
    let mut child = std::process::Command::new(exe)
        .args(["box-bridge", "--to"])
        .arg(to)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Failure::from(format!("cannot start the proxy bridge: {e}")))?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        std::io::BufReader::new(out).read_line(&mut line)?;
    }
    if line.trim() != "ready" {
        return Err(Failure::from(
            "the proxy bridge did not start; see its message above",
        ));
    }
    Ok(())
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
        let value = if a.proxy.is_some() {
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

/// Runs `valetkey box-exec`: only returns on failure.
pub async fn box_exec(a: &BoxExecArgs) -> Result<(), Failure> {
    landlock();
    let specs = a
        .env
        .iter()
        .map(|s| parse_env(s))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(to) = &a.proxy {
        start_bridge(to)?;
    }
    let values = env_values(a, specs).await?;
    let (program, argv) = (&a.command[0], &a.command[1..]);
    let mut cmd = std::process::Command::new(program);
    cmd.arg0(&argv[0]).args(&argv[1..]);
    for (var, value) in &values {
        cmd.env(var, value);
    }
    let e = cmd.exec();
    Err(Failure {
        code: 127,
        message: format!("cannot run {program}: {e}"),
    })
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

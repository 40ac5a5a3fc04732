//! Connecting to the daemon: the control socket (as the user) and the
//! agent socket (as an agent, after `hello`), and the exit code each
//! failure maps to.

use valetkey_ipc::methods::AgentInfo;
use valetkey_ipc::{Client, ClientError, ErrorCode};

use super::{Cli, Failure, EXIT_CONSENT, EXIT_UNAVAILABLE};

/// Connects to the control socket next to the agent socket.
pub async fn connect(cli: &Cli) -> Result<Client, Failure> {
    let cfg = cli.load_config().ok();
    let path = valetkey_ipc::paths::control_socket_for(&cli.socket_path(cfg.as_ref()));
    Client::connect(&path).await.map_err(|e| Failure {
        code: EXIT_UNAVAILABLE,
        message: e.to_string(),
    })
}

pub fn fail(e: ClientError) -> Failure {
    let code = match &e {
        ClientError::Connect { .. } => EXIT_UNAVAILABLE,
        _ => 1,
    };
    Failure {
        code,
        message: e.to_string(),
    }
}

/// A failure as an agent sees it: unreachable, consent required, or other.
pub fn client_failure(e: ClientError) -> Failure {
    let code = match &e {
        ClientError::Connect { .. } => EXIT_UNAVAILABLE,
        ClientError::Rpc(r) if r.kind() == Some(ErrorCode::ConsentRequired) => EXIT_CONSENT,
        _ => 1,
    };
    Failure {
        code,
        message: e.to_string(),
    }
}

/// Says hello as `agent`, with a delegation token if given.
pub async fn hello_as(
    cli: &Cli,
    agent: &str,
    purpose: &str,
    delegation: Option<&str>,
) -> Result<Client, Failure> {
    let cfg = cli.load_config().ok();
    let mut c = Client::connect(cli.socket_path(cfg.as_ref()))
        .await
        .map_err(client_failure)?;
    let info = AgentInfo {
        name: agent.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        purpose: purpose.into(),
    };
    match delegation {
        Some(t) => c
            .hello_delegated(info, valetkey_ipc::DelegationToken::new(t.trim().into()))
            .await
            .map_err(client_failure)?,
        None => c.hello(info).await.map_err(client_failure)?,
    };
    Ok(c)
}

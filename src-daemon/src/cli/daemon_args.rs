//! `valetkeyd`'s command line. It lives in the library so that
//! `valetkey generate man` can write the daemon's man page too.

use std::path::PathBuf;

use clap::Parser;

/// valetkeyd: hands local AI agents short-lived, down-scoped OAuth tokens.
#[derive(Debug, Parser)]
#[command(name = "valetkeyd", version, about)]
pub struct DaemonArgs {
    /// The agent socket [env: VALETKEY_SOCKET; default: $XDG_RUNTIME_DIR/valetkey/agent.sock].
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// The config file [default: $XDG_CONFIG_HOME/valetkey/config.toml].
    #[arg(long, env = "VALETKEY_CONFIG")]
    pub config: Option<PathBuf>,
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

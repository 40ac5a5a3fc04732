//! The control methods through which `valetkey run` opens a box: the daemon
//! records what is launched, hashes it, resolves the profile and makes a
//! socket for that box alone; the launcher then starts bubblewrap and
//! reports the box's first process, so the daemon can tell connections from
//! inside the box (its pid namespace) from everything else. Re-exported
//! from [`crate::control`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::confinement::BoxFacts;
use crate::methods::Method;

/// `box.open`: records a box about to be launched and opens its socket.
pub struct BoxOpen;

/// Params of `box.open`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BoxOpenParams {
    /// The profile; absent: `[box] profile` (built-in `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Pin the box to this agent name (`hello` with another is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The command line to run, `argv[0]` as typed.
    pub argv: Vec<String>,
    /// `argv[0]` after the launcher's `PATH` lookup (absolute).
    pub program: String,
    /// The working directory (absolute): read-write in the box.
    pub cwd: String,
    /// The launcher's `$HOME`, `$XDG_DATA_HOME` and `$XDG_CONFIG_HOME`
    /// (absolute or empty), to place the hidden paths.
    pub home: String,
    /// See `home`.
    #[serde(default)]
    pub data_home: String,
    /// See `home`.
    #[serde(default)]
    pub config_home: String,
    /// Only describe the box (`valetkey run --explain`): nothing is opened.
    #[serde(default)]
    pub explain: bool,
    /// Override the profile's network: `shared`, `none` or `proxy`
    /// (`valetkey run --net`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

/// Result of `box.open`: everything the launcher needs to build the box.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BoxPlan {
    /// What was recorded (the id is empty with `explain`).
    pub facts: BoxFacts,
    /// The directory holding the box's `agent.sock` (empty with `explain`);
    /// it is mounted read-only at the box's runtime directory.
    pub socket_dir: String,
    /// Network: `shared`, `none` or `proxy`.
    pub network: String,
    /// The agent name requests from the box are made as when it does not
    /// say (`--env`, the proxy): the pinned name, else the script's (or
    /// program's) file name.
    pub agent: String,
    /// With network `proxy`: what the proxy opens and tunnels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyPlan>,
    /// Paths that exist and are hidden in the box (an empty directory or
    /// an empty file over each), absolute.
    pub hide: Vec<String>,
    /// Paths besides the working directory that stay writable, absolute.
    pub read_write: Vec<String>,
    /// Environment variables passed in besides the built-in set.
    pub env: Vec<String>,
}

/// The egress proxy of a box in `proxy` mode. Its socket (`proxy.sock`)
/// and the box's CA bundle (`ca-bundle.pem`: the system's roots and the
/// box's own CA) are in the socket directory.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ProxyPlan {
    /// Providers' hosts, `name:port`: TLS ends at the proxy, requests are
    /// checked against the box's grants and given the token.
    pub opened: Vec<String>,
    /// The profile's hosts, `name:port`: tunnelled untouched.
    pub tunnelled: Vec<String>,
}

impl Method for BoxOpen {
    const NAME: &'static str = "box.open";
    type Params = BoxOpenParams;
    type Result = BoxPlan;
}

/// `box.started`: the box's first process is up (bubblewrap's
/// `child-pid`); connections on the box's socket are served from now on,
/// and only from that process's pid namespace.
pub struct BoxStarted;

/// Params of `box.started`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BoxStartedParams {
    /// The box id from `box.open`.
    pub id: String,
    /// bubblewrap's `child-pid`, as seen from outside the box.
    pub child_pid: u32,
}

/// Result of `box.started` and `box.close`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BoxDone {
    /// The box id.
    pub id: String,
}

impl Method for BoxStarted {
    const NAME: &'static str = "box.started";
    type Params = BoxStartedParams;
    type Result = BoxDone;
}

/// `box.close`: the box has exited; its socket and directory are removed.
/// Boxes whose launcher died are closed by the daemon on its own.
pub struct BoxClose;

/// Params of `box.close`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BoxCloseParams {
    /// The box id.
    pub id: String,
}

impl Method for BoxClose {
    const NAME: &'static str = "box.close";
    type Params = BoxCloseParams;
    type Result = BoxDone;
}

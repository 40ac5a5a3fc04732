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
    /// SHA-256 (hex) of the key the box's supervisor signs its
    /// `box.report` with; the key itself stays with the launcher and the
    /// supervisor. Empty: the box takes no reports.
    #[serde(default)]
    pub report_key_sha256: String,
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
    /// Files pinned for the box: the daemon hashed these bytes and wrote
    /// them to `copy` (in the socket directory); the launcher binds the
    /// copy read-only at `path`, so what runs is what was hashed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pins: Vec<Pin>,
    /// What is locked in the working directory: files that make the
    /// user's own tools run commands when they are used outside the box
    /// (git's config and hooks, editor settings), read-only in the box.
    #[serde(default, skip_serializing_if = "Protection::is_empty")]
    pub protection: Protection,
    /// Unix sockets outside the box it may connect to (the profile's
    /// `sockets`, absolute); every other socket outside is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sockets: Vec<String>,
    /// Tools' caches (`~/.cache`, `~/.npm`, cargo's registry): the
    /// profile's own directories, kept between runs, bound where the
    /// tools look, so downloads work and the user's own caches, which
    /// their unboxed tools trust, are never written by a box.
    #[serde(default)]
    pub caches: Vec<BoxCache>,
}

/// One tool cache a box writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BoxCache {
    /// Where the box sees it (absolute, in the home).
    pub path: String,
    /// The profile's directory bound there (absolute, in valetkeyd's data
    /// directory, which the box does not see).
    pub source: String,
}

/// A file the box sees as the daemon hashed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Pin {
    /// Where the box sees it (absolute).
    pub path: String,
    /// The daemon's copy of the hashed bytes (absolute).
    pub copy: String,
}

/// What the box may not change in the places it writes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Protection {
    /// Directories bound onto themselves, so they cannot be moved away or
    /// replaced (a repository's `.git`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anchored: Vec<String>,
    /// Files and directories read-only in the box, with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locked: Vec<Locked>,
    /// Paths that do not exist and that the box may not create without
    /// it being reported (`.git/commondir`, a new repository's `.git`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watched: Vec<String>,
}

impl Protection {
    /// Whether nothing is protected.
    pub fn is_empty(&self) -> bool {
        self.anchored.is_empty() && self.locked.is_empty() && self.watched.is_empty()
    }
}

/// One locked path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Locked {
    /// Absolute path.
    pub path: String,
    /// Why it is locked, for people (`git runs it: hooks`).
    pub why: String,
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
    /// For `box.close`: what the box's supervisor reported (attempts on
    /// locked files, sockets refused, repositories made), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<BoxEvent>,
}

/// Something a box did that the user should hear of when it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BoxEvent {
    /// `locked` (tried to change a locked path: refused), `created` (made
    /// a path that was watched: a repository, `.git/commondir`),
    /// `socket` (tried to connect to a socket outside the box: refused),
    /// `quarantined` (a watched path the box made, moved aside when it
    /// ended; `op` is where it went).
    pub kind: String,
    /// The path, as the box named it, made absolute.
    pub path: String,
    /// The system call (`openat`, `rename`, `connect` …).
    pub op: String,
}

/// `box.report` (agent protocol, on a box's own socket only): the box's
/// supervisor reports what it saw, signed with the key whose hash
/// `box.open` recorded. Needs no `hello`.
pub struct BoxReport;

/// Params of `box.report`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BoxReportParams {
    /// The report key (hex), as the launcher gave it to the supervisor.
    pub key: String,
    /// At most 64 events.
    pub events: Vec<BoxEvent>,
}

/// Result of `box.report`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BoxReportResult {
    /// How many of the events were recorded (the rest were over the box's
    /// limit of 1,000).
    pub recorded: u32,
}

impl Method for BoxReport {
    const NAME: &'static str = "box.report";
    type Params = BoxReportParams;
    type Result = BoxReportResult;
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
    /// Watched paths the box made, which the launcher moved aside when it
    /// ended (kind `quarantined`, `path` where it was, `op` where it went).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quarantined: Vec<BoxEvent>,
}

impl Method for BoxClose {
    const NAME: &'static str = "box.close";
    type Params = BoxCloseParams;
    type Result = BoxDone;
}

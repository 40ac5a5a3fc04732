//! `TestEnv`: one isolated world per test, built from real parts.
//!
//! * a private D-Bus session with a real, unlocked gnome-keyring;
//! * the real `oidc-provider` over TLS with a test CA made at test time;
//! * the real `valetkeyd` binary on a socket in a private runtime dir;
//! * the real `valetkey` CLI, with `$BROWSER` driving the login.
//!
//! Everything lives in one tempdir and every process is killed on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use valetkey_ipc::control::{
    ConsentDecide, ConsentDecideParams, ConsentDecideResult, Decision, EventsSubscribe,
};
use valetkey_ipc::methods::{AgentInfo, NoParams, TokenGet, TokenGetParams, TokenGetResult};
use valetkey_ipc::{Client, ClientError};

/// The directory holding the built binaries (target/debug).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_owned()
}

/// A built binary; panics with the fix if it is missing.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` before the e2e tests",
        p.display()
    );
    p
}

/// Copies the built binary `name` to `dst` and returns once it can be
/// run. A thread of this test process that forked while the copy was open
/// for writing holds that descriptor until its child execs, and meanwhile
/// exec of the copy fails with ETXTBSY; once one exec succeeds, no writer
/// is left (ours is closed), so none can come back.
pub fn copy_bin(name: &str, dst: &Path) {
    std::fs::copy(bin(name), dst).expect("copy");
    let runnable = || match Command::new(dst).arg("--version").output() {
        Err(e) => e.kind() != std::io::ErrorKind::ExecutableFileBusy,
        Ok(_) => true,
    };
    wait_until(Duration::from_secs(5), runnable).expect("the copy became runnable");
}

pub fn repo() -> PathBuf {
    // Runtime first: a build reused from another checkout must not run
    // that checkout's scripts.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).to_owned())
}

/// The test CA and leaf, made once per test binary.
pub fn certs() -> &'static PathBuf {
    static CERTS: OnceLock<PathBuf> = OnceLock::new();
    CERTS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("vk-e2e-certs-{}", std::process::id()));
        let st = Command::new(repo().join("oidc/make-certs.sh"))
            .arg(&dir)
            .status()
            .expect("run make-certs.sh");
        assert!(st.success(), "make-certs.sh failed");
        dir
    })
}

/// Where test worlds are made: `/var/tmp` (persistent storage, as a
/// home would be), else the temp dir.
fn test_root() -> PathBuf {
    let var_tmp = Path::new("/var/tmp");
    if var_tmp.is_dir() {
        var_tmp.to_owned()
    } else {
        std::env::temp_dir()
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A child process killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The whole isolated world.
pub struct TestEnv {
    /// Root of every file this env writes.
    pub dir: tempfile::TempDir,
    /// `DBUS_SESSION_BUS_ADDRESS` of the private bus.
    pub bus: String,
    /// Provider TLS port.
    pub port: u16,
    /// Provider control port (plain HTTP, test only).
    pub control: u16,
    /// The agent socket.
    pub socket: PathBuf,
    /// The daemon's stderr log.
    pub daemon_log: PathBuf,
    /// Extra lines for the config's `[consent]` section.
    pub consent_toml: String,
    bus_proc: Option<Proc>,
    keyring: Option<Proc>,
    provider: Option<Proc>,
    daemon: Option<Proc>,
}

impl TestEnv {
    /// Bus, keychain and provider up; daemon not started yet.
    pub fn new() -> Result<TestEnv> {
        // Not under /tmp: a box (`valetkey run`) gets an empty /tmp, and
        // the home and config must stay where they are, as on a desktop.
        let dir = tempfile::Builder::new()
            .prefix("vk-e2e-")
            .tempdir_in(test_root())?;
        for d in ["home", "run", "config/valetkey", "data", "logs"] {
            std::fs::create_dir_all(dir.path().join(d))?;
        }
        std::fs::set_permissions(
            dir.path().join("run"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
        let mut env = TestEnv {
            socket: dir.path().join("run/valetkey/agent.sock"),
            daemon_log: dir.path().join("logs/valetkeyd.log"),
            consent_toml: String::new(),
            bus: String::new(),
            port: free_port(),
            control: free_port(),
            dir,
            bus_proc: None,
            keyring: None,
            provider: None,
            daemon: None,
        };
        env.start_bus()?;
        env.start_keyring()?;
        env.start_provider()?;
        env.write_config("")?;
        Ok(env)
    }

    /// A path inside the env.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The environment every process of this world gets.
    pub fn envs(&self) -> Vec<(String, String)> {
        let p = |r: &str| self.path(r).to_string_lossy().into_owned();
        vec![
            ("HOME".into(), p("home")),
            ("XDG_RUNTIME_DIR".into(), p("run")),
            ("XDG_CONFIG_HOME".into(), p("config")),
            ("XDG_DATA_HOME".into(), p("data")),
            ("DBUS_SESSION_BUS_ADDRESS".into(), self.bus.clone()),
            (
                "BROWSER".into(),
                repo()
                    .join("oidc/fake-browser.sh")
                    .to_string_lossy()
                    .into_owned(),
            ),
            (
                "VK_TEST_CA".into(),
                certs().join("ca.pem").to_string_lossy().into_owned(),
            ),
            ("RUST_LOG".into(), "debug".into()),
        ]
    }

    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.envs())
            .stdin(Stdio::null());
        c
    }

    /// A private session bus with no service activation: a killed keyring
    /// stays dead (instead of being restarted locked by D-Bus), and nothing
    /// outside this env can be started on it.
    fn start_bus(&mut self) -> Result<()> {
        let conf = self.path("bus.conf");
        std::fs::write(
            &conf,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                self.path("run/bus").display()
            ),
        )?;
        let mut child = self
            .command("dbus-daemon")
            .args(["--nofork", "--print-address=1"])
            .arg(format!("--config-file={}", conf.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("dbus-daemon (apt-get install dbus-daemon)")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        self.bus = line.trim().to_owned();
        self.bus_proc = Some(Proc(child));
        Ok(())
    }

    /// Starts (or restarts) gnome-keyring on the private bus, unlocked.
    pub fn start_keyring(&mut self) -> Result<()> {
        let mut child = self
            .command("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("gnome-keyring-daemon (apt-get install gnome-keyring)")?;
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().context("stdin")?;
            stdin.write_all(b"test-pass")?;
        }
        self.keyring = Some(Proc(child));
        self.wait_for_bus_name("org.freedesktop.secrets")
            .context("gnome-keyring did not appear on the bus")
    }

    /// Waits (up to 10 s) until `name` has an owner on the private bus.
    pub fn wait_for_bus_name(&self, name: &str) -> Result<()> {
        wait_until(Duration::from_secs(10), || {
            let out = self
                .command("dbus-send")
                .args([
                    "--session",
                    "--print-reply",
                    "--dest=org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.NameHasOwner",
                    &format!("string:{name}"),
                ])
                .output();
            matches!(out, Ok(o) if String::from_utf8_lossy(&o.stdout).contains("true"))
        })
    }

    /// Kills gnome-keyring (the Secret Service disappears).
    pub fn kill_keyring(&mut self) {
        self.keyring = None;
    }

    /// Locks the login collection through the Secret Service API.
    pub fn lock_keychain(&self) -> Result<()> {
        let out = self
            .command("dbus-send")
            .args([
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.secrets",
                "/org/freedesktop/secrets",
                "org.freedesktop.Secret.Service.Lock",
                "array:objpath:/org/freedesktop/secrets/collection/login",
            ])
            .output()?;
        if !out.status.success() {
            bail!("lock failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    fn start_provider(&mut self) -> Result<()> {
        let certs = certs();
        let log = std::fs::File::create(self.path("logs/provider.log"))?;
        let mut child = self
            .command("node")
            .arg(repo().join("oidc/provider.mjs"))
            .env("OIDC_PORT", self.port.to_string())
            .env("OIDC_CONTROL_PORT", self.control.to_string())
            .env("OIDC_TLS_CERT", certs.join("leaf.pem"))
            .env("OIDC_TLS_KEY", certs.join("leaf.key"))
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("node (run scripts/setup.sh)")?;
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().context("stdout")?);
        out.read_line(&mut line)?;
        // Keep draining: oidc-provider logs notices to stdout, and a closed
        // pipe would kill it with EPIPE mid-test.
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path("logs/provider.log"))?;
        std::thread::spawn(move || std::io::copy(&mut out, &mut log));
        if !line.contains("\"ready\":true") {
            bail!(
                "provider did not start: {line:?}; see {}",
                self.path("logs/provider.log").display()
            );
        }
        self.provider = Some(Proc(child));
        Ok(())
    }

    /// The provider's issuer URL.
    pub fn issuer(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Writes config.toml with the local provider plus `extra` TOML.
    pub fn write_config(&self, extra: &str) -> Result<()> {
        // The test binary drives the control socket as the tray would, so
        // it is allow-listed; logind is this env's stand-in on the session bus.
        let exe = std::env::current_exe()?;
        let cfg = format!(
            r#"[consent]
login1_bus = "session"
{consent}

[control]
allowed_clients = ["{exe}"]

[providers.local]
display_name = "Local test IdP"
issuer = "{issuer}"
client_id = "valetkey-cli"
allowed_scopes = ["repo:read", "repo:write", "issues:read"]
login_scopes_extra = ["openid", "offline_access"]
resource = "https://api.valetkey.test"
narrows_on_refresh = true
extra_auth_params = {{ prompt = "consent" }}
ca_file = "{ca}"
timeout_secs = 3
{extra}"#,
            issuer = self.issuer(),
            ca = certs().join("ca.pem").display(),
            consent = self.consent_toml,
            exe = exe.display(),
        );
        std::fs::write(self.path("config/valetkey/config.toml"), cfg)?;
        Ok(())
    }

    /// Starts valetkeyd and waits until its socket accepts.
    pub fn start_daemon(&mut self) -> Result<()> {
        self.start_daemon_cmd(self.command(bin("valetkeyd")))
    }

    /// Runs `cmd` (valetkeyd, or something that starts it) as this env's
    /// daemon, logging to the daemon log, and waits until the socket accepts.
    pub fn start_daemon_cmd(&mut self, mut cmd: Command) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.daemon_log)?;
        let child = cmd.stderr(log).stdout(Stdio::null()).spawn()?;
        self.daemon = Some(Proc(child));
        let sock = self.socket.clone();
        wait_until(Duration::from_secs(10), || {
            std::os::unix::net::UnixStream::connect(&sock).is_ok()
        })
        .with_context(|| format!("valetkeyd did not open its socket; log:\n{}", self.log()))
    }

    /// Stops valetkeyd with SIGTERM and waits for it.
    pub fn stop_daemon(&mut self) {
        if let Some(mut p) = self.daemon.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &p.0.id().to_string()])
                .status();
            let _ = p.0.wait();
        }
    }

    /// The daemon process, if running.
    pub fn daemon(&mut self) -> Option<&mut Child> {
        self.daemon.as_mut().map(|p| &mut p.0)
    }

    /// Whether the daemon is still running.
    pub fn daemon_alive(&mut self) -> bool {
        matches!(self.daemon().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The daemon log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.daemon_log).unwrap_or_default()
    }

    /// A control-socket client (the test binary is allow-listed).
    pub async fn control(&self) -> Client {
        let path = self.socket.with_file_name("control.sock");
        Client::connect(&path)
            .await
            .expect("connect to control.sock")
    }

    /// Runs the CLI to completion.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.command(bin("valetkey"))
            .args(args)
            .output()
            .expect("run valetkey")
    }

    /// Starts the CLI with piped stdout and stderr, for interactive commands.
    pub fn spawn_cli(&self, args: &[&str]) -> Child {
        self.command(bin("valetkey"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn valetkey")
    }

    /// Runs a helper script from `tests/oidc` (the stand-ins for a person).
    pub fn run_script(&self, name: &str, args: &[&str]) -> Output {
        self.command(repo().join("oidc").join(name))
            .args(args)
            .output()
            .expect("run helper script")
    }

    /// Runs the CLI and insists it succeeds; returns stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let o = self.cli(args);
        assert!(
            o.status.success(),
            "valetkey {args:?} failed ({:?}):\n{}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Logs in to the local provider as alice.
    pub fn login(&self) {
        let out = self.cli_ok(&["login", "local", "--login-hint", "alice", "--timeout", "30"]);
        assert!(out.contains("Logged in"), "{out}");
    }

    /// The refresh token as `secret-tool` sees it (None if absent).
    pub fn keychain_refresh_token(&self) -> Option<String> {
        let o = self
            .command("secret-tool")
            .args([
                "lookup",
                "service",
                "valetkey",
                "username",
                "refresh-token:local",
            ])
            .output()
            .expect("secret-tool (apt-get install libsecret-tools)");
        let v = String::from_utf8_lossy(&o.stdout).trim().to_owned();
        (o.status.success() && !v.is_empty()).then_some(v)
    }

    /// Provider counters from the control port.
    pub async fn provider_stats(&self) -> serde_json::Value {
        reqwest::get(format!("http://127.0.0.1:{}/stats", self.control))
            .await
            .expect("stats")
            .json()
            .await
            .expect("json")
    }

    /// Calls a control endpoint (outage/start, outage/end, fail?status=…).
    pub async fn provider_control(&self, what: &str) {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/{what}", self.control))
            .send()
            .await
            .expect("control");
    }

    /// RFC 7662 introspection of `token` as the resource server.
    pub async fn introspect(&self, token: &str) -> serde_json::Value {
        https_client()
            .post(format!("{}/token/introspection", self.issuer()))
            .basic_auth("resource-server", Some("resource-server-test-secret"))
            .form(&[("token", token)])
            .send()
            .await
            .expect("introspect")
            .json()
            .await
            .expect("json")
    }

    /// An in-process agent (this test binary) connected and greeted.
    pub async fn agent(&self, name: &str) -> Client {
        let mut c = Client::connect(&self.socket).await.expect("connect");
        c.hello(AgentInfo {
            name: name.into(),
            version: "1".into(),
            purpose: "e2e test".into(),
        })
        .await
        .expect("hello");
        c
    }

    /// The usual start: daemon up, logged in, this test binary granted
    /// `scopes` as agent `name`, and a greeted client for it.
    pub async fn with_agent(name: &str, scopes: &[&str]) -> (TestEnv, Client) {
        let mut env = TestEnv::new().expect("env");
        env.start_daemon().expect("daemon");
        env.login();
        env.grant_self(name, scopes);
        let c = env.agent(name).await;
        (env, c)
    }

    /// Grants this test binary (as agent `name`) scopes on `local`.
    pub fn grant_self(&self, name: &str, scopes: &[&str]) {
        let exe = std::env::current_exe().expect("exe");
        let mut args = vec!["grant", "add", name, "local"];
        args.extend_from_slice(scopes);
        let exe = exe.to_string_lossy().into_owned();
        args.extend_from_slice(&["--binary", &exe]);
        self.cli_ok(&args);
    }

    /// Every file the daemon and CLI wrote that must never hold a secret.
    pub fn secret_free_files(&self) -> Vec<PathBuf> {
        let mut v = vec![self.daemon_log.clone()];
        for f in ["state.db", "state.db-wal", "state.db-shm"] {
            let p = self.path("data/valetkey").join(f);
            if p.exists() {
                v.push(p);
            }
        }
        v
    }

    /// Asserts none of `secrets` appears in logs, the database or `extra` text.
    pub fn assert_no_leaks(&self, secrets: &[String], extra: &[&str]) {
        assert!(!secrets.is_empty());
        for s in secrets {
            assert!(s.len() >= 16, "suspiciously short secret");
            for f in self.secret_free_files() {
                let bytes = std::fs::read(&f).expect("read");
                let hit = bytes.windows(s.len()).any(|w| w == s.as_bytes());
                assert!(!hit, "a secret leaked into {}", f.display());
            }
            for e in extra {
                assert!(
                    !e.contains(s.as_str()),
                    "a secret leaked into command output"
                );
            }
        }
    }
}

/// Daemon up and logged in; config tweaks in `consent_toml`.
pub fn env_with(consent_toml: &str) -> TestEnv {
    let mut env = TestEnv::new().expect("env");
    env.consent_toml = consent_toml.into();
    env.write_config("").expect("config");
    env.start_daemon().expect("daemon");
    env.login();
    env
}

/// A control connection subscribed to events.
pub async fn subscribed(env: &TestEnv) -> Client {
    let mut ctl = env.control().await;
    ctl.call::<EventsSubscribe>(&NoParams {})
        .await
        .expect("subscribe");
    ctl
}

/// `token.get` params on the env's provider, asking for an hour.
pub fn token_params(scopes: &[&str], wait: bool) -> TokenGetParams {
    TokenGetParams {
        wait: Some(wait),
        duration_secs: Some(3600),
        ..TokenGetParams::new("local", scopes)
    }
}

/// Starts `token.get` (waiting) on its own connection as agent `name`.
pub async fn ask_in_background(
    env: &TestEnv,
    name: &str,
    scopes: &[&str],
) -> tokio::task::JoinHandle<Result<TokenGetResult, ClientError>> {
    let mut c = env.agent(name).await;
    let p = token_params(scopes, true);
    tokio::spawn(async move { c.call::<TokenGet>(&p).await })
}

/// `consent.decide` with optional narrowing.
pub async fn decide(
    ctl: &mut Client,
    id: &str,
    decision: Decision,
    scopes: Option<&[&str]>,
) -> Result<ConsentDecideResult, ClientError> {
    ctl.call::<ConsentDecide>(&ConsentDecideParams {
        id: id.into(),
        decision,
        scopes: scopes.map(|s| s.iter().map(|x| x.to_string()).collect()),
    })
    .await
}

/// The stable error name of a daemon refusal.
pub fn code(e: &ClientError) -> Option<&str> {
    e.rpc().map(|r| r.name())
}

/// An HTTPS client that trusts the test CA, for talking to the provider
/// directly (as a resource server, or as a user revoking an app).
pub fn https_client() -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(certs().join("ca.pem")).expect("ca"))
        .expect("pem");
    reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .expect("client")
}

/// Polls `f` every 20 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("timed out after {limit:?}")
}

/// Waits (up to 10 s) for the next `consent.requested` event on a
/// subscribed control connection.
pub async fn next_consent(ctl: &mut Client) -> valetkey_ipc::control::ConsentRequest {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(10), ctl.next_event())
            .await
            .expect("an event within 10 s")
            .expect("event");
        if let valetkey_ipc::control::Event::ConsentRequested { consent } = e {
            return *consent;
        }
    }
}

/// Waits (up to `limit`) for card `id`'s `consent.decided` event on a
/// subscribed control connection, and returns its outcome.
pub async fn decided(
    ctl: &mut Client,
    id: &str,
    limit: Duration,
) -> valetkey_ipc::control::ConsentOutcome {
    let wait = async {
        loop {
            let e = ctl.next_event().await.expect("event");
            if let valetkey_ipc::control::Event::ConsentDecided {
                id: got, outcome, ..
            } = e
            {
                if got == id {
                    return outcome;
                }
            }
        }
    };
    tokio::time::timeout(limit, wait)
        .await
        .unwrap_or_else(|_| panic!("card {id} was decided within {limit:?}"))
}

/// Whether `needle` is anywhere in process `pid`'s environment or readable
/// memory (every readable mapping, read in chunks that overlap by the
/// needle's length, so nothing straddling a chunk is missed).
pub fn in_process(pid: u32, needle: &[u8]) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let has = |hay: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    if has(&std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default()) {
        return true;
    }
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let Ok(mut mem) = std::fs::File::open(format!("/proc/{pid}/mem")) else {
        return false;
    };
    const CHUNK: u64 = 16 << 20;
    let overlap = needle.len().saturating_sub(1) as u64;
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        if !perms.starts_with('r') || line.ends_with("[vvar]") || line.ends_with("[vsyscall]") {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            continue;
        };
        let mut at = a;
        while at < b {
            let len = (b - at).min(CHUNK + overlap);
            let mut buf = vec![0u8; len as usize];
            if mem.seek(SeekFrom::Start(at)).is_err() || mem.read_exact(&mut buf).is_err() {
                break;
            }
            if has(&buf) {
                return true;
            }
            at += CHUNK;
        }
    }
    false
}

//! Remote MCP servers (`valetkey mcp`): a real MCP server with OAuth built
//! from the official MCP TypeScript SDK (tests/mcp/server.mjs: the SDK's
//! authorization server router, bearer middleware and streamable HTTP
//! transport) over HTTPS, against the real daemon, keychain and CLI. The
//! server reports what it registered, authorized, issued and saw, so the
//! assertions are its observations.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::harness::{bin, bin_dir, certs, free_port, in_process, repo, Proc, TestEnv};

struct Mcp {
    env: TestEnv,
    port: u16,
    as_port: u16,
    _server: Proc,
}

/// Starts the test MCP server, or `None` when it exits before it is ready
/// (its ports, picked free, were taken meanwhile: it logs EADDRINUSE).
fn start_server(env: &TestEnv, port: u16, as_port: u16, flags: &[&str]) -> Option<Proc> {
    let log = std::fs::File::create(env.path("logs/mcp-server.log")).expect("log");
    let mut child = Command::new("node")
        .arg(repo().join("mcp/server.mjs"))
        .args([
            "--port",
            &port.to_string(),
            "--as-port",
            &as_port.to_string(),
        ])
        .args(["--cert", &certs().join("leaf.pem").display().to_string()])
        .args(["--key", &certs().join("leaf.key").display().to_string()])
        .args(["--docs", &env.path("docs").display().to_string()])
        .args(flags)
        .env("NODE_EXTRA_CA_CERTS", certs().join("ca.pem"))
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("node (tests/mcp: npm ci, see scripts/setup.sh)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready line");
    let server = Proc(child);
    line.contains("\"ready\":true").then_some(server)
}

fn mcp_up(flags: &[&str]) -> Mcp {
    let mut env = TestEnv::new().expect("env");
    std::fs::create_dir_all(env.path("docs")).expect("docs");
    // A port picked free can be taken before the server binds it (another
    // test's server): then it is started again on new ones.
    let (port, as_port, server) = (0..3)
        .find_map(|_| {
            let (port, as_port) = (free_port(), free_port());
            start_server(&env, port, as_port, flags).map(|s| (port, as_port, s))
        })
        .unwrap_or_else(|| {
            let log = std::fs::read_to_string(env.path("logs/mcp-server.log")).unwrap_or_default();
            panic!("the MCP test server did not start three times:\n{log}")
        });
    env.start_daemon().expect("daemon");
    Mcp {
        env,
        port,
        as_port,
        _server: server,
    }
}

impl Mcp {
    fn url(&self) -> String {
        format!("https://localhost:{}/mcp", self.port)
    }

    fn other_url(&self) -> String {
        format!("https://localhost:{}/other/mcp", self.port)
    }

    /// What the authorization server registered, authorized and issued,
    /// and what each MCP server saw.
    fn state(&self) -> Value {
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--cacert"])
            .arg(certs().join("ca.pem"))
            .arg(format!("https://localhost:{}/_test/state", self.as_port))
            .output()
            .expect("curl");
        serde_json::from_slice(&out.stdout).expect("state json")
    }

    fn add(&self, name: &str, url: &str, extra: &[&str]) -> Output {
        let ca = certs().join("ca.pem").display().to_string();
        let mut args = vec!["mcp", "add", name, url, "--ca-file", &ca, "--timeout", "30"];
        args.extend_from_slice(extra);
        self.env.cli(&args)
    }

    fn add_ok(&self, name: &str, url: &str, extra: &[&str]) -> String {
        let o = self.add(name, url, extra);
        assert!(
            o.status.success(),
            "mcp add failed:\n{}\n{}",
            text(&o.stdout),
            text(&o.stderr)
        );
        text(&o.stdout)
    }

    /// Grants `agent` (as the installed `valetkey`, which `mcp headers` runs as).
    fn grant(&self, agent: &str, server: &str, scopes: &[&str]) {
        let exe = bin("valetkey").display().to_string();
        let mut args = vec!["grant", "add", agent, server];
        args.extend_from_slice(scopes);
        args.extend_from_slice(&["--binary", &exe]);
        self.env.cli_ok(&args);
    }

    /// POSTs one MCP request with `auth` as the Authorization header;
    /// (status, body).
    fn call(&self, url: &str, auth: &str, body: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-sS", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
            .arg(certs().join("ca.pem"))
            .args(["-H", &format!("authorization: {auth}")])
            .args(["-H", "content-type: application/json"])
            .args(["-H", "accept: application/json, text/event-stream"])
            .args(["--data", body, url])
            .output()
            .expect("curl");
        let s = text(&out.stdout);
        let (body, status) = s.rsplit_once('\n').expect("status line");
        (status.trim().parse().expect("status"), body.to_owned())
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

const TOOLS_LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#;
const WHOAMI: &str =
    r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#;

#[test]
fn add_discovers_from_the_401_registers_and_logs_in_with_pkce_and_resource() {
    let m = mcp_up(&[]);
    let out = m.add_ok("notes", &m.url(), &[]);
    assert!(out.contains("Added MCP server notes"), "{out}");
    let st = m.state();
    let reg = &st["registrations"][0];
    assert_eq!(reg["via"], "dynamic", "{st}");
    assert_eq!(reg["application_type"], "native", "{st}");
    let client_id = reg["client_id"].as_str().expect("client id").to_owned();
    // The authorization and the token request both named the server
    // (RFC 8707), and login asked for the challenge's scope.
    let auth = &st["authorizations"][0];
    assert_eq!(auth["resource"], m.url());
    assert_eq!(auth["client_id"], client_id.as_str());
    let scopes = strs(&auth["scopes"]);
    assert!(scopes.contains(&"mcp:tools".to_owned()), "{scopes:?}");
    assert!(
        !scopes.contains(&"mcp:admin".to_owned()),
        "challenge first: {scopes:?}"
    );
    let tr = &st["tokenRequests"][0];
    assert_eq!(tr["grant_type"], "authorization_code");
    assert_eq!(tr["resource"], m.url());
    let list = m.env.cli_ok(&["mcp", "status", "notes"]);
    assert!(list.contains("logged in"), "{list}");
    assert!(list.contains(&client_id), "{list}");
    assert!(
        list.contains(&format!("resource (audience): {}", m.url())),
        "{list}"
    );
    // The refresh token is in the keychain under the issuer and resource.
    let key = format!(
        "refresh-token:mcp:https://localhost:{} {}",
        m.as_port,
        m.url()
    );
    let rt = m
        .env
        .command("secret-tool")
        .args(["lookup", "service", "valetkey", "username", &key])
        .output()
        .expect("secret-tool");
    assert!(
        rt.status.success() && !rt.stdout.is_empty(),
        "no refresh token under {key}"
    );
    let issued = strs(&st["issued"]);
    let mut secrets = issued.clone();
    secrets.push(text(&rt.stdout).trim().to_owned());
    m.env.assert_no_leaks(&secrets, &[&out]);
    // The name is taken now; another server needs another name.
    let again = m.add("notes", &m.url(), &[]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("--replace"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn the_header_helper_serves_a_granted_agent_with_a_token_for_that_server_only() {
    let m = mcp_up(&[]);
    m.add_ok("notes", &m.url(), &[]);
    m.grant("editor", "notes", &["mcp:tools"]);
    let out = m
        .env
        .cli_ok(&["mcp", "headers", "notes", "--agent", "editor"]);
    let line = out.trim();
    let token = line
        .strip_prefix("Authorization: Bearer ")
        .unwrap_or_else(|| panic!("not a header line: {line:?}"));
    let st = m.state();
    assert!(
        strs(&st["issued"]).iter().any(|t| t == token),
        "the server issued it"
    );
    // The daemon refreshed for it, naming the server again.
    let refresh = st["tokenRequests"]
        .as_array()
        .expect("array")
        .iter()
        .find(|r| r["grant_type"] == "refresh_token")
        .expect("a refresh")
        .clone();
    assert_eq!(refresh["resource"], m.url());
    // The MCP server takes it: tools/list and tools/call work, and the
    // token's audience is this server.
    let auth = format!("Bearer {token}");
    let (status, body) = m.call(&m.url(), &auth, TOOLS_LIST);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("whoami") && body.contains("echo"), "{body}");
    let (status, body) = m.call(&m.url(), &auth, WHOAMI);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&m.url().replace('/', "\\/")) || body.contains(&m.url()),
        "{body}"
    );
    // The other server, on the same host and authorization server, refuses
    // it: the token is bound to its audience.
    let (status, body) = m.call(&m.other_url(), &auth, TOOLS_LIST);
    assert_eq!(status, 401, "{body}");
    // JSON for clients that take a headers object.
    let json = m
        .env
        .cli_ok(&["mcp", "headers", "notes", "--agent", "editor", "--json"]);
    let v: Value = serde_json::from_str(json.trim()).expect("json");
    assert!(v["Authorization"]
        .as_str()
        .is_some_and(|a| a.starts_with("Bearer ")));
    m.env.assert_no_leaks(&[token.to_owned()], &[]);
}

#[test]
fn the_header_helper_refuses_an_agent_with_no_grant() {
    let m = mcp_up(&[]);
    m.add_ok("notes", &m.url(), &[]);
    let o = m.env.cli(&[
        "mcp",
        "headers",
        "notes",
        "--agent",
        "stranger",
        "--no-wait",
    ]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "consent required: {}",
        text(&o.stderr)
    );
    assert!(o.stdout.is_empty(), "no header printed");
    assert!(text(&o.stderr).contains("consent"), "{}", text(&o.stderr));
    let u = m.env.cli(&["mcp", "headers", "nope", "--agent", "editor"]);
    assert!(!u.status.success());
    assert!(
        text(&u.stderr).contains("no MCP server named \"nope\""),
        "{}",
        text(&u.stderr)
    );
}

#[test]
fn a_metadata_document_is_used_where_the_server_accepts_one() {
    let m = mcp_up(&["--cimd", "--no-dcr"]);
    // Without a published document, and no dynamic registration, the
    // user is told what to do.
    let o = m.add("notes", &m.url(), &["--no-browser"]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("--client-id") && err.contains("--client-metadata-url"),
        "{err}"
    );
    let doc_url = format!("https://localhost:{}/clients/valetkey.json", m.port);
    let doc = m.env.cli_ok(&["mcp", "client-metadata", &doc_url]);
    std::fs::write(m.env.path("docs/valetkey.json"), &doc).expect("publish");
    m.add_ok("notes", &m.url(), &["--client-metadata-url", &doc_url]);
    let st = m.state();
    assert_eq!(st["registrations"][0]["via"], "metadata_document", "{st}");
    assert_eq!(st["registrations"][0]["client_id"], doc_url.as_str());
    assert_eq!(st["authorizations"][0]["client_id"], doc_url.as_str());
}

#[test]
fn servers_survive_a_restart_and_remove_revokes_everything() {
    let mut m = mcp_up(&[]);
    m.add_ok("notes", &m.url(), &[]);
    m.grant("editor", "notes", &["mcp:tools"]);
    m.env.stop_daemon();
    m.env.start_daemon().expect("restart");
    let out = m
        .env
        .cli_ok(&["mcp", "headers", "notes", "--agent", "editor"]);
    assert!(out.starts_with("Authorization: Bearer "), "{out}");
    let listed = m.env.cli_ok(&["mcp", "list"]);
    assert!(listed.contains("agents with a grant: editor"), "{listed}");
    // `valetkey login` and `logout` know the server too: a new login is a
    // new authorization, with the resource again.
    let again = m.env.cli_ok(&["login", "notes", "--timeout", "30"]);
    assert!(again.contains("Logged in"), "{again}");
    let st = m.state();
    let auths = st["authorizations"].as_array().expect("array");
    assert_eq!(auths.len(), 2, "{st}");
    assert_eq!(auths[1]["resource"], m.url());
    let out = m
        .env
        .cli_ok(&["mcp", "headers", "notes", "--agent", "editor"]);
    assert!(
        out.starts_with("Authorization: Bearer "),
        "after a new login: {out}"
    );
    let removed = m.env.cli_ok(&["mcp", "remove", "notes"]);
    assert!(removed.contains("Revoked 1 grant(s)"), "{removed}");
    assert!(removed.contains("RFC 7009"), "{removed}");
    let after = m.env.cli(&["mcp", "headers", "notes", "--agent", "editor"]);
    assert!(!after.status.success());
    assert!(m.env.cli_ok(&["mcp", "list"]).contains("No MCP servers"));
    // The audit trail names the server's addition and removal.
    let audit = m.env.cli_ok(&["audit", "--provider", "notes", "--json"]);
    assert!(
        audit.contains("mcp.add") && audit.contains("mcp.remove"),
        "{audit}"
    );
}

/// The official SDK's client (tests/mcp/client.mjs), running
/// `valetkey mcp proxy` as its stdio server, driven one command at a time.
struct SdkClient {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

impl SdkClient {
    fn start(m: &Mcp, server: &str, agent: &str) -> SdkClient {
        SdkClient::start_with(m, server, agent, &[])
    }

    /// With the TypeScript client's options `opts` (before `--`).
    fn start_with(m: &Mcp, server: &str, agent: &str, opts: &[&str]) -> SdkClient {
        let valetkey = bin("valetkey").display().to_string();
        let mut cmd = m.env.command("node");
        cmd.arg(repo().join("mcp/client.mjs"))
            .args(opts)
            .args(["--", &valetkey, "mcp", "proxy", server, "--agent", agent]);
        SdkClient::spawn(m, cmd)
    }

    /// Starts `client` (an SDK's client program and its arguments) on the
    /// stdio server `command args`, as an editor starts a README config:
    /// the SDK gives the server its default environment only. The
    /// world's runtime directory is where logind puts one, at
    /// /run/user/$UID (a /run of the client's own, under bubblewrap), so
    /// the server finds the daemon only by the rule for a reduced
    /// environment.
    fn start_as_configured(
        m: &Mcp,
        client: &[String],
        command: &str,
        args: &[String],
    ) -> SdkClient {
        let uid = rustix::process::getuid().as_raw();
        let mut cmd = m.env.command("bwrap");
        cmd.env(
            "PATH",
            format!(
                "{}:{}",
                bin_dir().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .args(["--dev-bind", "/", "/", "--tmpfs", "/run", "--bind"])
        .arg(m.env.path("run"))
        .arg(format!("/run/user/{uid}"))
        .arg("--")
        .args(client)
        .arg("--")
        .arg(command)
        .args(args);
        SdkClient::spawn(m, cmd)
    }

    fn spawn(m: &Mcp, mut cmd: Command) -> SdkClient {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(m.env.path("logs/mcp-client.log")).expect("log"),
            ))
            .spawn()
            .expect("the MCP client");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("ready");
        assert!(
            line.contains("\"ready\":true"),
            "client: {line} {}",
            m.client_log()
        );
        SdkClient {
            child,
            stdin,
            stdout,
        }
    }

    fn ask(&mut self, cmd: Value) -> Value {
        self.send(cmd);
        self.read()
    }

    fn send(&mut self, cmd: Value) {
        use std::io::Write;
        writeln!(self.stdin, "{cmd}").expect("send");
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("answer");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }

    fn call(&mut self, tool: &str, args: Value) -> Value {
        self.ask(serde_json::json!({"op": "call", "name": tool, "args": args}))
    }
}

impl Drop for SdkClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mcp {
    fn client_log(&self) -> String {
        std::fs::read_to_string(self.env.path("logs/mcp-client.log")).unwrap_or_default()
    }

    /// Up, added as `notes`, `agent` granted `mcp:tools`, the SDK client running.
    fn with_client(agent: &str) -> (Mcp, SdkClient) {
        let m = mcp_up(&[]);
        m.add_ok("notes", &m.url(), &[]);
        m.grant(agent, "notes", &["mcp:tools"]);
        let c = SdkClient::start(&m, "notes", agent);
        (m, c)
    }

    fn post(&self, what: &str) {
        let st = Command::new("curl")
            .args(["-sS", "--fail", "-X", "POST", "--cacert"])
            .arg(certs().join("ca.pem"))
            .arg(format!("https://localhost:{}/_test/{what}", self.as_port))
            .stdout(Stdio::null())
            .status()
            .expect("curl");
        assert!(st.success(), "POST /_test/{what}");
    }
}

#[test]
fn the_mcp_proxy_serves_tools_and_the_client_never_holds_the_token() {
    let (m, mut c) = Mcp::with_client("sdk-client");
    let list = c.ask(serde_json::json!({"op": "list"}));
    assert_eq!(list["ok"], true, "{list}");
    let tools = strs(&list["tools"]);
    assert!(
        tools.contains(&"echo".to_owned()) && tools.contains(&"whoami".to_owned()),
        "{tools:?}"
    );
    let echo = c.call(
        "echo",
        serde_json::json!({"text": "hello through valetkey"}),
    );
    assert_eq!(echo["text"], "hello through valetkey", "{echo}");
    let who = c.call("whoami", serde_json::json!({}));
    assert_eq!(who["ok"], true, "{who}");
    let who: Value = serde_json::from_str(who["text"].as_str().expect("text")).expect("json");
    assert_eq!(
        who["resource"],
        m.url(),
        "the token's audience is this server"
    );
    assert_eq!(who["server"], "main");
    // The server saw a token it issued, for each request through the proxy.
    let st = m.state();
    let issued = strs(&st["issued"]);
    let seen = st["seen"].as_array().expect("seen");
    let called = seen
        .iter()
        .find(|s| s["tool"] == "whoami")
        .expect("the server saw the whoami call");
    assert!(issued
        .iter()
        .any(|t| *t == called["token"].as_str().unwrap_or("")));
    // Neither the MCP client nor the stdio proxy it started holds any
    // token the server issued, in memory or in its environment.
    let pids = c.ask(serde_json::json!({"op": "pids"}));
    for key in ["client", "server"] {
        let pid = pids[key].as_u64().expect("pid") as u32;
        let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
        for t in &issued {
            assert!(
                !in_process(pid, t.as_bytes()),
                "the {key} process holds a token"
            );
            assert!(!environ.windows(t.len()).any(|w| w == t.as_bytes()));
        }
    }
    m.env.assert_no_leaks(&issued, &[&m.client_log()]);
    // Nor any file the client, the bridge or the daemon wrote in this world
    // (home, config, runtime and data directories).
    for dir in ["home", "config", "run", "data"] {
        for f in files_under(&m.env.path(dir)) {
            let bytes = std::fs::read(&f).unwrap_or_default();
            for t in &issued {
                assert!(
                    !bytes.windows(t.len()).any(|w| w == t.as_bytes()),
                    "a token is in {}",
                    f.display()
                );
            }
        }
    }
}

/// Every regular file under `dir`.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(p),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out
}

#[test]
fn an_expired_token_is_refreshed_once_under_concurrent_calls() {
    let (m, mut c) = Mcp::with_client("sdk-client");
    assert_eq!(
        c.call("echo", serde_json::json!({"text": "warm"}))["ok"],
        true
    );
    let before = m.state()["refreshes"].as_u64().expect("refreshes");
    // The server expires every token early; the daemon's cached one is
    // now dead, though it does not know yet.
    m.post("expire");
    let burst =
        c.ask(serde_json::json!({"op": "burst", "n": 8, "name": "echo", "args": {"text": "x"}}));
    assert_eq!(burst["ok"], true, "{burst}");
    let after = m.state()["refreshes"].as_u64().expect("refreshes");
    assert_eq!(after, before + 1, "one refresh for the whole burst");
}

#[test]
fn the_policy_sees_the_tool_and_the_audit_trail_names_it() {
    let (m, mut c) = Mcp::with_client("sdk-client");
    let dir = m.env.path("config/valetkey/policies");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("mcp.rego"),
        "package valetkey.authz\nimport rego.v1\n\nallow if input.agent.status == \"active\"\n\ndeny contains \"sdk-client may not echo\" if {\n\tinput.mcp.tool == \"echo\"\n\tinput.mcp.server == \"notes\"\n}\n",
    )
    .expect("policy");
    let mut reloaded = false;
    for _ in 0..100 {
        if m.env.cli_ok(&["policy", "status"]).contains("mcp.rego") {
            reloaded = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(reloaded, "the policy reloads");
    let echo = c.call("echo", serde_json::json!({"text": "no"}));
    assert_eq!(echo["ok"], false, "{echo}");
    assert!(
        echo["error"]
            .as_str()
            .unwrap_or("")
            .contains("sdk-client may not echo"),
        "{echo}"
    );
    let who = c.call("whoami", serde_json::json!({}));
    assert_eq!(who["ok"], true, "other tools still work: {who}");
    let audit = m.env.cli_ok(&[
        "audit",
        "--provider",
        "notes",
        "--kind",
        "mcp.call",
        "--json",
    ]);
    let lines: Vec<Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let whoami = lines
        .iter()
        .find(|r| r["detail"].as_str().is_some_and(|d| d.contains("whoami")))
        .unwrap_or_else(|| panic!("a record of the whoami call: {audit}"));
    assert!(
        strs(&whoami["chain"]).contains(&"agent:sdk-client".to_owned()),
        "{whoami}"
    );
    assert_eq!(whoami["provider"], "notes");
    let echo = lines
        .iter()
        .find(|r| r["detail"].as_str().is_some_and(|d| d.contains("echo")))
        .unwrap_or_else(|| panic!("a record of the refused echo call: {audit}"));
    assert_eq!(echo["outcome"], "status:403", "{echo}");
}

#[test]
fn revoking_the_agent_fails_its_next_call_within_a_second() {
    let (m, mut c) = Mcp::with_client("sdk-client");
    assert_eq!(
        c.call("echo", serde_json::json!({"text": "before"}))["ok"],
        true
    );
    m.env.cli_ok(&["revoke", "agent", "sdk-client"]);
    let t = std::time::Instant::now();
    let after = c.call("echo", serde_json::json!({"text": "after"}));
    assert_eq!(after["ok"], false, "{after}");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_asking_for_more_scopes_gets_a_consent_then_the_call_succeeds() {
    use crate::harness::{decide, next_consent, subscribed};
    use valetkey_ipc::control::Decision;
    let (m, c) = Mcp::with_client("sdk-client");
    let mut ctl = subscribed(&m.env).await;
    // admin_reset needs mcp:admin, which neither the grant nor the login
    // holds: the server answers 403 insufficient_scope.
    let c = std::sync::Arc::new(std::sync::Mutex::new(c));
    let caller = c.clone();
    let call = std::thread::spawn(move || {
        caller
            .lock()
            .expect("client")
            .call("admin_reset", serde_json::json!({}))
    });
    let card = next_consent(&mut ctl).await;
    assert_eq!(card.provider, "notes");
    assert!(
        card.scopes.contains(&"mcp:admin".to_owned()),
        "{:?}",
        card.scopes
    );
    let why = card.reasons.join(" ");
    assert!(
        why.contains("admin_reset") && why.contains("insufficient_scope"),
        "{why}"
    );
    decide(&mut ctl, &card.id, Decision::Always, None)
        .await
        .expect("allow");
    let done = tokio::task::spawn_blocking(move || call.join().expect("thread"))
        .await
        .expect("join");
    assert_eq!(done["text"], "reset done", "{done}");
    // The daemon logged in again, asking for the wider scopes, with the
    // resource again.
    let st = m.state();
    let auths = st["authorizations"].as_array().expect("array");
    let last = auths.last().expect("a second authorization");
    assert_eq!(auths.len(), 2, "{st}");
    assert!(
        strs(&last["scopes"]).contains(&"mcp:admin".to_owned()),
        "{last}"
    );
    assert_eq!(last["resource"], m.url());
    // Granted for good: the next call needs no card.
    let again = tokio::task::spawn_blocking(move || {
        c.lock()
            .expect("client")
            .call("admin_reset", serde_json::json!({}))
    })
    .await
    .expect("join");
    assert_eq!(again["text"], "reset done", "{again}");
    let audit = m.env.cli_ok(&[
        "audit",
        "--provider",
        "notes",
        "--kind",
        "mcp.stepup",
        "--json",
    ]);
    assert!(audit.contains("mcp:admin"), "{audit}");
}

/// Inside a box in `proxy` mode, an HTTP MCP client (curl here) reaches
/// the server through the box's egress proxy with a placeholder; the
/// proxy writes the token in, as `valetkey mcp proxy` has it do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_boxed_http_client_reaches_the_server_through_the_box_proxy() {
    use crate::harness::{decide, next_consent, subscribed};
    use valetkey_ipc::control::Decision;
    let m = mcp_up(&[]);
    m.add_ok("notes", &m.url(), &[]);
    let mut ctl = subscribed(&m.env).await;
    std::fs::create_dir_all(m.env.path("work")).expect("work");
    let script = format!(
        "curl -sS -H \"Authorization: Bearer $MCP_TOKEN\" -H 'content-type: application/json' \
         -H 'accept: application/json, text/event-stream' --data '{WHOAMI}' {url} > whoami.out 2> whoami.err\n\
         env > env.txt\n",
        url = m.url()
    );
    std::fs::write(m.env.path("work/agent.sh"), script).expect("script");
    let child = m
        .env
        .command(bin("valetkey"))
        .args(["run", "--net", "proxy", "--name", "boxed-mcp"])
        .args(["--env", "MCP_TOKEN=notes:mcp:tools", "--", "sh", "agent.sh"])
        .current_dir(m.env.path("work"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("valetkey run");
    let card = next_consent(&mut ctl).await;
    assert_eq!(card.provider, "notes");
    assert!(card.confinement.is_some(), "the card shows the box");
    decide(&mut ctl, &card.id, Decision::Once, None)
        .await
        .expect("allow");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
        .await
        .expect("join");
    let read =
        |f: &str| std::fs::read_to_string(m.env.path(&format!("work/{f}"))).unwrap_or_default();
    let whoami = read("whoami.out");
    assert!(
        whoami.contains("resource") && whoami.contains("main"),
        "{whoami}\n{}\n{out:?}",
        read("whoami.err")
    );
    let env_txt = read("env.txt");
    let placeholder = env_txt
        .lines()
        .find_map(|l| l.strip_prefix("MCP_TOKEN="))
        .expect("MCP_TOKEN in the box");
    assert!(placeholder.starts_with("vkp_"), "{placeholder}");
    let st = m.state();
    let seen = st["seen"].as_array().expect("seen");
    assert!(
        seen.iter().any(|s| s["tool"] == "whoami"
            && strs(&st["issued"])
                .iter()
                .any(|t| *t == s["token"].as_str().unwrap_or(""))),
        "the server saw a token it issued: {st}"
    );
    m.env
        .assert_no_leaks(&strs(&st["issued"]), &[&env_txt, &whoami]);
}

/// The README's MCP client config (Claude Desktop's, Cursor's and Claude
/// Code's `mcpServers` entry) as written: (command, args).
fn readme_mcp_server() -> (String, Vec<String>) {
    let readme = std::fs::read_to_string(repo().join("../README.md")).expect("README.md");
    let block = readme
        .split("```json")
        .skip(1)
        .map(|b| &b[..b.find("```").expect("end of block")])
        .find(|b| b.contains("mcpServers") && b.contains("\"command\": \"valetkey\""))
        .expect("the README's mcpServers example");
    let v: Value = serde_json::from_str(block).expect("the README's JSON parses");
    let notes = &v["mcpServers"]["notes"];
    assert!(
        notes.get("env").is_none(),
        "the example sets no env: {notes}"
    );
    let args = strs(&notes["args"]);
    (notes["command"].as_str().expect("command").into(), args)
}

/// The README's grant for that client, run as copied (with the built
/// `valetkey` first on PATH).
fn readme_grant(m: &Mcp) {
    let readme = std::fs::read_to_string(repo().join("../README.md")).expect("README.md");
    let line = readme
        .lines()
        .find(|l| l.starts_with("valetkey grant add claude-desktop notes"))
        .expect("the README's grant for the MCP client");
    let out = m
        .env
        .command("sh")
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin_dir().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .args(["-c", line])
        .output()
        .expect("sh");
    assert!(out.status.success(), "{line}: {}", text(&out.stderr));
}

/// The official SDKs' stdio clients start the README's config with their
/// own default environment (no XDG_RUNTIME_DIR), and `valetkey mcp proxy`
/// still finds the daemon a user's service manager started.
#[test]
fn the_sdks_clients_run_the_readme_config_with_their_default_environment() {
    let m = mcp_up(&[]);
    m.add_ok("notes", &m.url(), &[]);
    readme_grant(&m);
    let (command, args) = readme_mcp_server();
    let python = std::env::var("VK_PY_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(std::env::var("HOME").expect("HOME"))
                .join(".cache/valetkey-py")
        })
        .join("bin/python3");
    let clients = [
        vec![
            "node".to_owned(),
            repo().join("mcp/client.mjs").display().to_string(),
            "--sdk-env".into(),
        ],
        vec![
            python.display().to_string(),
            repo().join("mcp/client.py").display().to_string(),
        ],
    ];
    for client in clients {
        let mut c = SdkClient::start_as_configured(&m, &client, &command, &args);
        let echo = c.call("echo", serde_json::json!({"text": "from the README"}));
        assert_eq!(
            echo["text"],
            "from the README",
            "{client:?}: {echo} {}",
            m.client_log()
        );
        let closed = c.ask(serde_json::json!({"op": "close"}));
        assert_eq!(closed["ok"], true, "{closed}");
    }
}

/// The handshake is answered at once from what `mcp add` recorded, within
/// a client's short handshake timeout, although the agent has no grant;
/// the consent card comes with the first call that needs the server, and
/// the server's own handshake goes first, with the client's parameters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_is_answered_at_once_and_consent_waits_for_the_first_call() {
    use crate::harness::{decide, next_consent, subscribed};
    use valetkey_ipc::control::Decision;
    let m = std::sync::Arc::new(mcp_up(&[]));
    let added = m.add("notes", &m.url(), &[]);
    let mut ctl = subscribed(&m.env).await;
    let m2 = m.clone();
    let mut c = tokio::task::spawn_blocking(move || {
        SdkClient::start_with(&m2, "notes", "claude-code", &["--connect-timeout", "3000"])
    })
    .await
    .expect("the client is ready within its 3 s handshake timeout");
    let said = text(&added.stderr);
    assert!(
        said.contains("MCP revisions: 2025-11-25, 2025-06-18"),
        "{said}"
    );
    let info = c.ask(serde_json::json!({"op": "info"}));
    assert_eq!(info["server"]["name"], "valetkey-test-main", "{info}");
    assert!(info["capabilities"]["tools"].is_object(), "{info}");
    assert!(
        info["instructions"]
            .as_str()
            .unwrap_or("")
            .contains("call whoami"),
        "{info}"
    );
    let before = m.state()["seen"].as_array().map_or(0, Vec::len);
    c.send(serde_json::json!({"op": "list"}));
    let card = next_consent(&mut ctl).await;
    assert_eq!(
        (card.provider.as_str(), card.agent.name.as_str()),
        ("notes", "claude-code")
    );
    // Finding 9: an MCP card says what it lets the client do.
    assert_eq!(card.in_words, ["call the tools of notes"]);
    assert_eq!(card.action, "call the tools of notes");
    decide(&mut ctl, &card.id, Decision::Always, None)
        .await
        .expect("allow");
    let list = tokio::task::spawn_blocking(move || c.read())
        .await
        .expect("join");
    assert_eq!(list["ok"], true, "{list} {}", m.client_log());
    assert!(
        strs(&list["tools"]).contains(&"whoami".to_owned()),
        "{list}"
    );
    let seen = m.state()["seen"].as_array().expect("seen").clone();
    let methods: Vec<&str> = seen[before..]
        .iter()
        .filter_map(|s| s["method"].as_str())
        .collect();
    assert_eq!(
        methods,
        ["initialize", "notifications/initialized", "tools/list"],
        "the server got its handshake first"
    );
    assert_eq!(
        seen[before]["client"], "valetkey-test-client",
        "the client's own initialize"
    );
}

/// A client that goes away while its first call waits for consent takes
/// the card, and the `valetkey mcp proxy` it started, with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_takes_its_card_and_its_proxy_with_it() {
    use crate::harness::{next_consent, subscribed};
    use valetkey_ipc::control::ConsentOutcome;
    let m = std::sync::Arc::new(mcp_up(&[]));
    m.add_ok("notes", &m.url(), &[]);
    let mut ctl = subscribed(&m.env).await;
    let m2 = m.clone();
    let mut c = tokio::task::spawn_blocking(move || SdkClient::start(&m2, "notes", "editor"))
        .await
        .expect("ready");
    let pids = c.ask(serde_json::json!({"op": "pids"}));
    let proxy = pids["server"].as_u64().expect("pid") as i32;
    c.send(serde_json::json!({"op": "list"}));
    let card = next_consent(&mut ctl).await;
    drop(c);
    let outcome =
        crate::harness::decided(&mut ctl, &card.id, std::time::Duration::from_secs(10)).await;
    assert_eq!(outcome, ConsentOutcome::Withdrawn);
    crate::harness::wait_until(std::time::Duration::from_secs(5), || {
        !std::path::Path::new(&format!("/proc/{proxy}")).exists()
            || std::fs::read_to_string(format!("/proc/{proxy}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
    })
    .expect("valetkey mcp proxy ended with its client");
}

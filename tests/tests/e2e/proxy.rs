//! The egress proxy (`valetkey run --net proxy`): real git, curl, Python
//! and Node in a real bubblewrap box, against the real daemon and keychain,
//! and a small stand-in for GitHub (tests/github/standin.py: its OAuth
//! web flow, REST shapes and the real `git http-backend`) over HTTPS,
//! because GitHub itself is not reachable from here.
//!
//! The stand-in tells the test what credential each request carried
//! (a live token it issued, a placeholder, another string or none), so
//! "the upstream saw the real token" is its observation, not ours.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use valetkey_ipc::control::Decision;

use crate::harness::{
    bin, certs, decide, free_port, in_process, next_consent, repo, subscribed, wait_until, Proc,
    TestEnv,
};

const CLIENT_ID: &str = "Iv1.standin0001";
/// The stand-in app's client secret: random, made once per test run.
fn client_secret() -> &'static str {
    static SECRET: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SECRET.get_or_init(|| {
        let mut b = [0u8; 20];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut b))
            .expect("/dev/urandom");
        b.iter().map(|x| format!("{x:02x}")).collect()
    })
}

/// A test world with the GitHub stand-in up and logged in to.
struct GitHub {
    env: TestEnv,
    api: u16,
    git: u16,
    other: u16,
    _standin: Proc,
}

fn git(dir: &Path, args: &[&str]) {
    let st = Command::new("git")
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.invalid",
        ])
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("git (apt-get install git)");
    assert!(st.success(), "git {args:?}");
}

/// Bare repositories `octo/hello`, `octo/other` (private) and `octo/pub`
/// (public), one commit each (README).
fn make_repos(env: &TestEnv) {
    make_repo(env, "hello");
    make_repo(env, "other");
    make_repo(env, "pub");
}

fn make_repo(env: &TestEnv, name: &str) {
    let bare = env.path(&format!("github/repos/octo/{name}.git"));
    std::fs::create_dir_all(&bare).expect("mkdir");
    git(&bare, &["init", "-q", "--bare", "--initial-branch=main"]);
    let seed = env.path(&format!("github/seed-{name}"));
    std::fs::create_dir_all(&seed).expect("mkdir");
    git(&seed, &["init", "-q", "--initial-branch=main"]);
    std::fs::write(seed.join("README"), "hello from the stand-in repository\n").expect("readme");
    git(&seed, &["add", "README"]);
    git(&seed, &["commit", "-qm", "init"]);
    let url = bare.display().to_string();
    git(&seed, &["push", "-q", &url, "main"]);
}

fn start_standin(env: &TestEnv, api: u16, git: u16, other: u16) -> Proc {
    let log = std::fs::File::create(env.path("logs/standin.log")).expect("log");
    let mut child = Command::new("python3")
        .arg(repo().join("github/standin.py"))
        .args(["--cert", &certs().join("leaf.pem").display().to_string()])
        .args(["--key", &certs().join("leaf.key").display().to_string()])
        .args([
            "--api-port",
            &api.to_string(),
            "--git-port",
            &git.to_string(),
        ])
        .args(["--other-port", &other.to_string()])
        .args(["--public", "octo/pub"])
        .args(["--repos", &env.path("github/repos").display().to_string()])
        .args(["--client-id", CLIENT_ID, "--client-secret", client_secret()])
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready line");
    assert!(line.contains("\"ready\": true"), "stand-in: {line:?}");
    Proc(child)
}

fn github_up() -> GitHub {
    github_up_with("")
}

/// [`github_up`], with `extra` appended to the config.
fn github_up_with(extra: &str) -> GitHub {
    github_world(extra, false)
}

/// The stand-in under GitHub's own names: the preset's hosts
/// (`api.github.com`, `github.com`) and the provider's `connect_to`
/// sending them to the stand-in, so clients in the box use GitHub's
/// names (Go never proxies `localhost`, and gh takes any other host for
/// GitHub Enterprise).
fn github_named() -> GitHub {
    github_world("", true)
}

fn github_world(extra: &str, named: bool) -> GitHub {
    let mut env = TestEnv::new().expect("env");
    let (api, git, other) = (free_port(), free_port(), free_port());
    make_repos(&env);
    let standin = start_standin(&env, api, git, other);
    let hosts = if named {
        format!(
            "connect_to = {{ \"api.github.com\" = \"127.0.0.1:{api}\", \"github.com\" = \"127.0.0.1:{git}\" }}"
        )
    } else {
        format!(
            "[providers.github.proxy]\nhosts = {{ api = \"localhost:{api}\", git = \"localhost:{git}\" }}"
        )
    };
    env.write_config(&format!(
        r#"
[providers.github]
preset = "github"
client_id = "{CLIENT_ID}"
confidential = true
authorization_endpoint = "https://localhost:{git}/login/oauth/authorize"
token_endpoint = "https://localhost:{git}/login/oauth/access_token"
allowed_scopes = ["metadata:read", "contents:read", "contents:write"]
ca_file = "{ca}"
{hosts}

[box.profiles.dev]
network = "proxy"
hosts = ["localhost:{other}"]
{extra}"#,
        ca = certs().join("ca.pem").display(),
    ))
    .expect("config");
    env.start_daemon().expect("daemon");
    let mut set = env
        .command(bin("valetkey"))
        .args(["provider", "set-secret", "github"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("set-secret");
    use std::io::Write;
    set.stdin
        .take()
        .expect("stdin")
        .write_all(client_secret().as_bytes())
        .expect("write");
    assert!(set.wait().expect("wait").success());
    let out = env.cli_ok(&["login", "github", "--timeout", "30"]);
    assert!(out.contains("Logged in"), "{out}");
    std::fs::create_dir_all(env.path("work")).expect("work");
    // The box's /tmp is empty: the test CA (for the tunnelled host, whose
    // TLS is end to end) goes in the working directory.
    std::fs::copy(certs().join("ca.pem"), env.path("work/test-ca.pem")).expect("ca");
    // Node 20's fetch follows HTTPS_PROXY through undici's EnvHttpProxyAgent
    // (tests/oidc's package), copied in for the same reason.
    let st = Command::new("cp")
        .arg("-r")
        .arg(repo().join("oidc/node_modules/undici"))
        .arg(env.path("work/undici"))
        .status()
        .expect("cp");
    assert!(st.success(), "undici is installed (scripts/setup.sh)");
    GitHub {
        env,
        api,
        git,
        other,
        _standin: standin,
    }
}

impl GitHub {
    fn standin(&self, what: &str) -> Value {
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--cacert"])
            .arg(certs().join("ca.pem"))
            .arg(format!("https://localhost:{}/_standin/{what}", self.api))
            .output()
            .expect("curl");
        serde_json::from_slice(&out.stdout).expect("stand-in json")
    }

    /// What the stand-in saw: (role, method, path, auth) for each request.
    fn seen(&self) -> Vec<(String, String, String, String)> {
        let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
        self.standin("seen")
            .as_array()
            .expect("array")
            .iter()
            .map(|v| (s(v, "role"), s(v, "method"), s(v, "path"), s(v, "auth")))
            .collect()
    }

    fn issued(&self) -> Vec<String> {
        self.standin("issued")
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.env.path(&format!("work/{rel}"))).unwrap_or_default()
    }

    /// `valetkey run --net proxy --profile dev --name gitbot ENV… -- sh agent.sh`.
    fn run(&self, script: &str, env: &[&str]) -> Child {
        self.run_net("proxy", script, env)
    }

    /// [`GitHub::run`] with the network `net`.
    fn run_net(&self, net: &str, script: &str, env: &[&str]) -> Child {
        let script = script
            .replace("API", &format!("https://localhost:{}", self.api))
            .replace("GIT", &format!("https://localhost:{}", self.git))
            .replace("OTHER", &format!("https://localhost:{}", self.other));
        std::fs::write(self.env.path("work/agent.sh"), script).expect("script");
        let mut args = vec!["run", "--net", net, "--profile", "dev", "--name", "gitbot"];
        for e in env {
            args.extend(["--env", e]);
        }
        args.extend(["--", "sh", "agent.sh"]);
        self.env
            .command(bin("valetkey"))
            .args(&args)
            .current_dir(self.env.path("work"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("valetkey run")
    }
}

async fn done(child: Child) -> Output {
    tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
        .await
        .expect("join")
}

/// Every process under `root` (its descendants, itself included).
fn descendants(root: u32) -> Vec<u32> {
    let mut parent = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").expect("proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or_default();
        if let Some(pp) = after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
        {
            parent.insert(pid, pp);
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parent.iter().filter(|(_, pp)| **pp == p).map(|(c, _)| *c));
        i += 1;
    }
    out
}

const AGENT: &str = r#"set -u
git clone -q GIT/octo/hello.git hello 2> clone.err; echo $? > clone.rc
curl -sS -H "Authorization: Bearer $GH_TOKEN" API/repos/octo/hello/contents/README -o contents.json
python3 -c 'import os, urllib.request as u; r = u.Request("API/user", headers={"Authorization": "token " + os.environ["GH_TOKEN"]}); print(u.urlopen(r).read().decode())' > user.json
(cd hello && echo more >> README && git -c user.name=a -c user.email=a@example.invalid commit -qam more && git push -q 2> ../push.err; echo $? > ../push.rc)
curl -sS -X DELETE -H "Authorization: Bearer $GH_TOKEN" API/repos/octo/hello -o delete.json -w '%{http_code}' > delete.code
curl -sS https://example.com/ -o /dev/null 2> elsewhere.err; echo $? > elsewhere.rc
curl -sS --cacert test-ca.pem -H "Authorization: Bearer $GH_TOKEN" OTHER/echo -o other.json
node -e 'const u = require("./undici"); u.setGlobalDispatcher(new u.EnvHttpProxyAgent()); fetch("API/repos/octo/hello/contents/README", { headers: { authorization: "Bearer " + process.env.GH_TOKEN } }).then((r) => r.text()).then((t) => require("fs").writeFileSync("node.json", t), (e) => require("fs").writeFileSync("node.json", String(e.cause || e)))'
env > env.txt
python3 -c 'import os, time, urllib.request as u; r = u.Request("API/repos/octo/hello", headers={"Authorization": "Bearer " + os.environ["GH_TOKEN"]}); u.urlopen(r).read(); open("ready", "w").write("1"); time.sleep(60)'
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_boxed_agent_works_through_the_proxy_with_a_placeholder_and_never_holds_the_token() {
    let gh = github_up();
    let mut ctl = subscribed(&gh.env).await;
    let mut child = gh.run(AGENT, &["GH_TOKEN=github:contents:read"]);
    let card = next_consent(&mut ctl).await;
    assert_eq!(card.provider, "github");
    assert!(card.confinement.is_some(), "the card shows the box");
    decide(&mut ctl, &card.id, Decision::Once, None)
        .await
        .expect("allowed once");
    let ready = gh.env.path("work/ready");
    let waited = wait_until(Duration::from_secs(60), || ready.exists());
    if waited.is_err() {
        let _ = child.kill();
        let out = done(child).await;
        panic!(
            "the agent did not finish: {out:?}\nclone: {}\nlog:\n{}",
            gh.read("clone.err"),
            gh.env.log()
        );
    }

    // The real token is in no process of the box, its environment or its
    // files; the placeholder is (which shows the scan can see).
    let issued = gh.issued();
    assert!(!issued.is_empty(), "the stand-in issued tokens");
    let env_txt = gh.read("env.txt");
    let placeholder = env_txt
        .lines()
        .find_map(|l| l.strip_prefix("GH_TOKEN="))
        .expect("GH_TOKEN in the box")
        .to_owned();
    assert!(placeholder.starts_with("vkp_"), "{placeholder}");
    let procs = descendants(child.id());
    assert!(procs.len() >= 3, "launcher, bwrap, the box: {procs:?}");
    assert!(
        procs.iter().any(|p| in_process(*p, placeholder.as_bytes())),
        "the placeholder is visible to the scan"
    );
    for t in &issued {
        for p in &procs {
            assert!(
                !in_process(*p, t.as_bytes()),
                "a real token is in process {p}"
            );
        }
        for f in [
            "env.txt",
            "contents.json",
            "user.json",
            "delete.json",
            "other.json",
        ] {
            assert!(!gh.read(f).contains(t.as_str()), "a real token is in {f}");
        }
    }
    let _ = child.kill();
    let _ = done(child).await;

    // git cloned with no credential configured; the push was refused.
    assert_eq!(gh.read("clone.rc").trim(), "0", "{}", gh.read("clone.err"));
    assert!(
        gh.read("hello/README")
            .starts_with("hello from the stand-in repository\n"),
        "the clone has the repository's README"
    );
    assert_ne!(gh.read("push.rc").trim(), "0", "a push under contents:read");
    assert!(
        gh.read("push.err").contains("403"),
        "{}",
        gh.read("push.err")
    );
    // curl and Python reached the API with the placeholder swapped.
    assert!(
        gh.read("contents.json").contains("\"content\""),
        "{}",
        gh.read("contents.json")
    );
    assert!(
        gh.read("user.json").contains("octocat"),
        "{}",
        gh.read("user.json")
    );
    // A DELETE outside the grant: 403, saying so.
    assert_eq!(gh.read("delete.code"), "403");
    assert!(
        gh.read("delete.json").contains("request_not_granted"),
        "{}",
        gh.read("delete.json")
    );
    // Another host: refused at CONNECT (curl exits 56).
    assert_eq!(
        gh.read("elsewhere.rc").trim(),
        "56",
        "{}",
        gh.read("elsewhere.err")
    );
    assert!(
        gh.read("elsewhere.err").contains("403"),
        "{}",
        gh.read("elsewhere.err")
    );

    // What the stand-in saw: on every GitHub request that was let through
    // a live token, narrowed at GitHub by the app (`token/scoped`), never a
    // placeholder; the placeholder (unchanged) at the other host; no
    // DELETE and no receive-pack.
    let seen = gh.seen();
    let github: Vec<_> = seen.iter().filter(|s| s.0 != "other").collect();
    assert!(
        github.iter().any(|s| s.2.ends_with("git-upload-pack")),
        "{seen:?}"
    );
    assert!(
        github.iter().any(|s| s.2.ends_with("/contents/README")),
        "{seen:?}"
    );
    assert!(github.iter().any(|s| s.2 == "/user"), "{seen:?}");
    for s in &github {
        assert_eq!(s.3, "scoped", "{s:?}");
        assert_ne!(s.1, "DELETE", "{s:?}");
        assert!(!s.2.ends_with("git-receive-pack"), "{s:?}");
    }
    assert!(
        seen.iter().any(|s| s.0 == "other" && s.3 == "placeholder"),
        "{seen:?}"
    );
    assert!(
        gh.read("other.json").contains("placeholder"),
        "{}",
        gh.read("other.json")
    );

    // Refusals are in the audit trail and counted by the monitor; the
    // first allowed request of a rule is recorded with its status.
    let audit = gh
        .env
        .cli_ok(&["audit", "--kind", "proxy.request", "--json"]);
    assert!(
        audit.contains("refused:request_not_granted")
            && audit.contains("DELETE localhost/repos/octo/hello -> 403"),
        "{audit}"
    );
    assert!(
        audit.contains("refused:host_not_allowed") && audit.contains("example.com:443"),
        "{audit}"
    );
    assert!(
        audit.contains("POST git /{owner}/{repo}.git/git-upload-pack") && audit.contains("-> 200"),
        "{audit}"
    );
    let stats = gh.env.cli_ok(&["agents", "--stats", "--json"]);
    let stats: Value = serde_json::from_str(&stats).expect("stats json");
    let bot = stats
        .as_array()
        .and_then(|a| a.iter().find(|s| s["agent"] == "gitbot"))
        .cloned()
        .unwrap_or_default();
    assert!(bot["refusals"].as_u64().unwrap_or(0) >= 3, "{stats}");
    gh.env.assert_no_leaks(&issued, &[&audit]);
}

/// A box started with nothing: a public clone and read, then a private
/// clone and read, then another private repository.
const UNHELD: &str = r#"set -u
git clone -q GIT/octo/pub.git pub 2> pub.err; echo $? > pub.rc
curl -sS API/repos/octo/pub -o pub.json
echo 1 > public.done
git clone -q GIT/octo/hello.git hello 2> hello.err; echo $? > hello.rc
curl -sS API/repos/octo/hello/contents/README -o contents.json
git clone -q GIT/octo/other.git other 2> other.err; echo $? > other.rc
echo 1 > done
"#;

/// Finding 2 of "the first hour": the README's `valetkey run --net proxy
/// -- git clone https://…` of a private repository did nothing: the
/// request went on with no credential, GitHub said 401, and git "could not
/// read Username", with no card and no audit record. Now the box asks in
/// the rules' words for the narrowest scope, bound to that repository, and
/// the clone goes on after Allow; a public repository needs no card.
#[tokio::test(flavor = "multi_thread")]
async fn a_proxy_box_with_nothing_asks_when_github_turns_it_away_and_public_ones_need_no_card() {
    use valetkey_ipc::control::ConsentList;
    use valetkey_ipc::methods::NoParams;
    let gh = github_up();
    let mut ctl = subscribed(&gh.env).await;
    let child = gh.run(UNHELD, &[]);
    let public = gh.env.path("work/public.done");
    wait_until(Duration::from_secs(60), || public.exists()).expect("the public part ran");
    assert_eq!(gh.read("pub.rc").trim(), "0", "{}", gh.read("pub.err"));
    assert!(gh.read("pub/README").starts_with("hello from the stand-in"));
    let repo: Value = serde_json::from_str(&gh.read("pub.json")).expect("pub.json");
    assert_eq!(repo["private"], false, "{repo}");
    let pending = ctl.call::<ConsentList>(&NoParams {}).await.expect("list");
    assert!(
        pending.consents.is_empty(),
        "no card for a public repository"
    );

    let card = next_consent(&mut ctl).await;
    assert_eq!(card.provider, "github");
    assert_eq!(
        card.scopes,
        vec!["contents:read@octo/hello"],
        "the narrowest, for that repository"
    );
    assert_eq!(card.in_words, vec!["read code in octo/hello"]);
    assert!(card.proxy_only && card.confinement.is_some(), "{card:?}");
    decide(&mut ctl, &card.id, Decision::Once, None)
        .await
        .expect("allowed once");
    let out = done(child).await;
    assert_eq!(
        gh.read("hello.rc").trim(),
        "0",
        "{}\n{out:?}",
        gh.read("hello.err")
    );
    assert!(gh
        .read("hello/README")
        .starts_with("hello from the stand-in"));
    assert!(
        gh.read("contents.json").contains("\"content\""),
        "{}",
        gh.read("contents.json")
    );
    // Another repository is not what was allowed: refused by the rules,
    // before GitHub, and not asked again on its own.
    assert_ne!(gh.read("other.rc").trim(), "0");
    assert!(
        gh.read("other.err").contains("403"),
        "{}",
        gh.read("other.err")
    );
    let seen = gh.seen();
    let hello: Vec<&str> = seen
        .iter()
        .filter(|s| s.2.starts_with("/octo/hello.git/info/refs"))
        .map(|s| s.3.as_str())
        .collect();
    assert_eq!(
        hello.first(),
        Some(&"none"),
        "first sent as the box sent it: {seen:?}"
    );
    assert!(
        hello.iter().any(|a| *a == "scoped" || *a == "issued"),
        "{seen:?}"
    );
    assert!(
        !seen
            .iter()
            .any(|s| s.2.starts_with("/octo/other.git") && s.3 != "none"),
        "{seen:?}"
    );
    let audit = gh.env.cli_ok(&["audit", "--json"]);
    assert!(
        audit.contains("contents:read@octo/hello"),
        "the hand-out is in the audit trail"
    );
    gh.env
        .assert_no_leaks(&gh.issued(), &[&gh.read("contents.json")]);
}

/// The README's GitHub lines for a proxy box, as copied, with only the
/// repository named: `OWNER/REPO` and `OWNER/PRIVATE` become `octo/hello`.
fn readme_github_lines() -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("../README.md")).expect("README.md");
    let lines: Vec<String> = readme
        .lines()
        .filter(|l| l.starts_with("valetkey run --net proxy") && l.contains("github"))
        .map(|l| l.split(" # ").next().unwrap_or(l).trim().to_owned())
        .filter(|l| !l.ends_with('\\'))
        .map(|l| {
            l.replace("OWNER/REPO", "octo/hello")
                .replace("OWNER/PRIVATE", "octo/hello")
        })
        .collect();
    lines
}

/// Finding 3 of "the first hour": the real GitHub CLI (Debian's gh) and
/// git, run as the README shows them in a proxy box, against the stand-in
/// under GitHub's own names. gh used to be unreachable there: it reads
/// `GH_ENTERPRISE_TOKEN` for any host but github.com, and Go never
/// proxies `localhost`.
#[tokio::test(flavor = "multi_thread")]
async fn the_readmes_github_lines_run_as_copied_with_the_real_gh_and_git() {
    let gh = github_named();
    let lines = readme_github_lines();
    let view = lines
        .iter()
        .find(|l| l.contains("-- gh repo view"))
        .expect("the README's gh line");
    let clone = lines
        .iter()
        .find(|l| l.starts_with("valetkey run --net proxy -- git clone"))
        .expect("the README's bare clone");
    let mut ctl = subscribed(&gh.env).await;
    for (i, line) in [view, clone].into_iter().enumerate() {
        let dir = gh.env.path(&format!("work/{i}"));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = format!(
            "{}:{}",
            crate::harness::bin_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let child = gh
            .env
            .command("sh")
            .args(["-c", line])
            .env("PATH", path)
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sh");
        let card = next_consent(&mut ctl).await;
        assert!(card.proxy_only, "{line}: {card:?}");
        decide(&mut ctl, &card.id, Decision::Once, None)
            .await
            .expect("allowed");
        let out = done(child).await;
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success(),
            "{line}\n{stdout}\n{stderr}\n{}",
            gh.env.log()
        );
        if i == 0 {
            assert!(
                stdout.contains("octo/hello"),
                "gh printed the repository: {stdout}"
            );
            assert!(
                stdout.contains("hello from the stand-in repository"),
                "and its README: {stdout}"
            );
        } else {
            let readme = std::fs::read_to_string(dir.join("hello/README")).unwrap_or_default();
            assert!(readme.starts_with("hello from the stand-in"), "{stderr}");
        }
    }
    let seen = gh.seen();
    assert!(
        seen.iter()
            .any(|s| s.0 == "api" && s.2 == "/graphql" && s.3 != "none"),
        "{seen:?}"
    );
    assert!(
        seen.iter().all(|s| s.3 != "placeholder"),
        "no placeholder reached GitHub: {seen:?}"
    );
    gh.env.assert_no_leaks(&gh.issued(), &[]);
}

/// A card denied is not asked again by the same box, for that repository
/// or another: the next requests get GitHub's own answer.
#[tokio::test(flavor = "multi_thread")]
async fn a_denied_ask_is_not_asked_again_by_the_same_box() {
    use valetkey_ipc::control::ConsentList;
    use valetkey_ipc::methods::NoParams;
    let gh = github_up();
    let mut ctl = subscribed(&gh.env).await;
    let script = "git clone -q GIT/octo/hello.git a 2> a.err; echo $? > a.rc\n\
                  git clone -q GIT/octo/hello.git b 2> b.err; echo $? > b.rc\n\
                  git clone -q GIT/octo/other.git c 2> c.err; echo $? > c.rc\n";
    let child = gh.run(script, &[]);
    let card = next_consent(&mut ctl).await;
    assert_eq!(card.scopes, vec!["contents:read@octo/hello"]);
    decide(&mut ctl, &card.id, Decision::Deny { remember: false }, None)
        .await
        .expect("denied");
    let _ = done(child).await;
    assert_ne!(gh.read("a.rc").trim(), "0");
    assert!(gh.read("a.err").contains("403"), "{}", gh.read("a.err"));
    assert_ne!(gh.read("b.rc").trim(), "0");
    assert!(
        gh.read("b.err").contains("could not read Username"),
        "GitHub's 401 came back as it was: {}",
        gh.read("b.err")
    );
    assert!(
        gh.read("c.err").contains("could not read Username"),
        "another repository raised no card: {}",
        gh.read("c.err")
    );
    let pending = ctl.call::<ConsentList>(&NoParams {}).await.expect("list");
    assert!(pending.consents.is_empty(), "{:?}", pending.consents);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grant_for_one_repository_is_held_to_it_by_the_rules_and_by_github() {
    let gh = github_up();
    let mut ctl = subscribed(&gh.env).await;
    let script = "git clone -q GIT/octo/hello.git hello 2> hello.err; echo $? > hello.rc\n\
                  git clone -q GIT/octo/other.git other 2> other.err; echo $? > other.rc\n\
                  curl -sS API/repos/octo/other/contents/README -o other.json -w '%{http_code}' > other.code\n";
    let child = gh.run(script, &["GH_TOKEN=github:contents:read@octo/hello"]);
    let card = next_consent(&mut ctl).await;
    assert_eq!(card.scopes, vec!["contents:read@octo/hello"]);
    assert_eq!(card.in_words, vec!["read code in octo/hello"]);
    assert_eq!(card.limit, Some(valetkey_ipc::control::Limit::GithubApp));
    let listed = gh.env.cli_ok(&["consent", "list"]);
    assert!(
        listed.contains("lets it: read code in octo/hello")
            && listed.contains("limited by: GitHub itself: your GitHub App narrows the token"),
        "{listed}"
    );
    decide(&mut ctl, &card.id, Decision::Always, None)
        .await
        .expect("allowed");
    let out = done(child).await;
    assert!(out.status.success(), "{out:?}\n{}", gh.env.log());
    assert_eq!(gh.read("hello.rc").trim(), "0", "{}", gh.read("hello.err"));
    assert_ne!(gh.read("other.rc").trim(), "0", "another repository");
    assert!(
        gh.read("other.err").contains("403"),
        "{}",
        gh.read("other.err")
    );
    assert_eq!(gh.read("other.code"), "403");
    assert!(
        gh.read("other.json").contains("contents:read@octo/other"),
        "the refusal names the grant that would allow it: {}",
        gh.read("other.json")
    );
    // GitHub saw a token it had itself limited to octo/hello, and nothing
    // for octo/other.
    let seen = gh.standin("seen");
    let seen = seen.as_array().expect("array");
    let clone = seen
        .iter()
        .find(|s| {
            s["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("hello.git/git-upload-pack"))
        })
        .expect("the clone reached the stand-in");
    assert_eq!(clone["auth"], "scoped", "{clone}");
    assert_eq!(clone["repos"], serde_json::json!(["octo/hello"]), "{clone}");
    assert!(
        !seen
            .iter()
            .any(|s| s["path"].as_str().is_some_and(|p| p.contains("other"))),
        "{seen:?}"
    );
    let issued = gh.issued();
    gh.env.assert_no_leaks(&issued, &[&gh.read("other.json")]);
}

#[tokio::test(flavor = "multi_thread")]
async fn github_app_create_makes_the_app_and_keeps_only_its_secret_in_the_keychain() {
    let gh = github_up();
    let out = gh
        .env
        .command(bin("valetkey"))
        .args([
            "provider",
            "github-app",
            "create",
            "--name",
            "valetkey-e2e",
            "--timeout",
            "30s",
        ])
        .env("BROWSER", repo().join("github/fake-browser-form.py"))
        .output()
        .expect("valetkey");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let apps = gh.standin("apps");
    let app = &apps.as_array().expect("apps")[0];
    // The manifest asked for what the rules know, and the loopback callback.
    assert_eq!(app["name"], "valetkey-e2e");
    assert_eq!(app["permissions"]["contents"], "write");
    assert_eq!(
        app["callback_urls"],
        serde_json::json!(["http://127.0.0.1/callback"])
    );
    // The config lines to use it, with its client id.
    let client_id = app["client_id"].as_str().expect("client id");
    assert!(
        stdout.contains(&format!("client_id = \"{client_id}\""))
            && stdout.contains("confidential = true"),
        "{stdout}"
    );
    // The secret is in the keychain, and nowhere else; the private key
    // was dropped unseen.
    let secret = app["client_secret"].as_str().expect("secret").to_owned();
    let kept = gh
        .env
        .command("secret-tool")
        .args([
            "lookup",
            "service",
            "valetkey",
            "username",
            "client-secret:github",
        ])
        .output()
        .expect("secret-tool");
    assert_eq!(String::from_utf8_lossy(&kept.stdout).trim(), secret);
    assert!(!stdout.contains("PRIVATE KEY") && !stderr.contains("PRIVATE KEY"));
    gh.env.assert_no_leaks(&[secret], &[&stdout, &stderr]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unboxed_agent_opens_its_own_proxy_that_only_its_processes_may_use() {
    let gh = github_up();
    let mut ctl = subscribed(&gh.env).await;
    std::fs::create_dir_all(gh.env.path("home/scratch")).expect("scratch");
    let agent = gh
        .env
        .command("python3")
        .arg(repo().join("github/unboxed_agent.py"))
        .arg(format!("https://localhost:{}", gh.api))
        .arg(format!("https://localhost:{}", gh.git))
        .current_dir(gh.env.path("home/scratch"))
        .spawn()
        .expect("python3");
    let mut agent = Proc(agent);
    let card = next_consent(&mut ctl).await;
    assert!(card.confinement.is_none(), "unboxed");
    decide(&mut ctl, &card.id, Decision::Always, None)
        .await
        .expect("allowed");
    let dir = gh.env.path("home/scratch");
    wait_until(Duration::from_secs(60), || dir.join("ready").exists())
        .expect("the agent finished its requests");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    assert!(
        read("curl.json").contains("\"content\""),
        "{}",
        read("curl.json")
    );
    assert_eq!(read("clone.rc"), "0", "{}", read("clone.err"));
    let opened: Value = serde_json::from_str(&read("proxy.json")).expect("proxy.json");
    let url = opened["proxy_url"].as_str().expect("url").to_owned();
    assert!(
        url.starts_with("http://valetkey:vkp_") && url.contains("@127.0.0.1:"),
        "{url}"
    );
    let before = gh.seen().len();
    // The same proxy, credentials and all, from a process the agent did
    // not start: refused before anything is sent upstream.
    let stranger = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--proxy", &url, "--cacert"])
        .arg(opened["ca_bundle"].as_str().expect("bundle"))
        .arg(format!(
            "https://localhost:{}/repos/octo/hello/contents/README",
            gh.api
        ))
        .output()
        .expect("curl");
    assert!(!stranger.status.success(), "{stranger:?}");
    assert_eq!(gh.seen().len(), before, "nothing reached the stand-in");
    let seen = gh.seen();
    assert!(
        seen.iter()
            .any(|s| s.2.ends_with("git-upload-pack") && s.3 == "scoped"),
        "{seen:?}"
    );
    assert!(seen.iter().all(|s| s.3 != "placeholder"), "{seen:?}");
    // The proxy ends with the agent's connection.
    std::fs::write(dir.join("done"), "1").expect("done");
    let _ = tokio::task::spawn_blocking(move || agent.0.wait()).await;
    let port = url.rsplit(':').next().expect("port").to_owned();
    let gone = wait_until(Duration::from_secs(5), || {
        std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err()
    });
    assert!(gone.is_ok(), "the proxy still listens after its agent left");
    gh.env.assert_no_leaks(&gh.issued(), &[&read("curl.json")]);
}

/// The metadata rules of the preset, and the stand-in's reflecting
/// endpoint under them.
const ECHO_RULES: &str = r#"
[providers.github.proxy.rules]
"metadata:read" = ["GET api /repos/{owner}/{repo}", "GET api /user", "GET api /_standin/echo"]
"#;

/// A proxy box that asks for the token every way it has, and has an
/// endpoint reflect the credential the proxy wrote in.
const GREEDY: &str = r#"set -u
curl -sS -H "Authorization: Bearer $GH_TOKEN" -D echo.headers API/_standin/echo -o echo.json
python3 - <<'PY'
import json, sys
sys.path.insert(0, ".")
import valetkey_client as vk
c = vk.ValetKey(vk.socket_path())
c.call("hello", {"protocol": 1, "agent": {"name": "gitbot"}})
def attempt(method, params):
    try:
        return {"result": c.call(method, params)}
    except RuntimeError as e:
        return {"error": e.args[0]}
out = {
    "get": attempt("token.get", {"provider": "github", "scopes": ["metadata:read"]}),
    "wait": attempt("consent.wait", {"consent_id": "c_0"}),
    "delegate": attempt("delegation.create", {"sub_agent": "helper", "provider": "github", "scopes": ["metadata:read"], "ttl_secs": 60}),
}
json.dump(out, open("greedy.json", "w"))
PY
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_proxy_box_gets_placeholders_from_every_method_and_never_the_token_even_echoed() {
    let gh = github_up_with(ECHO_RULES);
    std::fs::copy(
        repo()
            .parent()
            .expect("root")
            .join("examples/python/valetkey_client.py"),
        gh.env.path("work/valetkey_client.py"),
    )
    .expect("client");
    let mut ctl = subscribed(&gh.env).await;
    let child = gh.run(GREEDY, &["GH_TOKEN=github:metadata:read"]);
    let card = next_consent(&mut ctl).await;
    assert!(card.proxy_only, "the card says it serves the proxy only");
    decide(
        &mut ctl,
        &card.id,
        Decision::For {
            duration_secs: 3600,
        },
        None,
    )
    .await
    .expect("allowed for an hour");
    let out = done(child).await;
    assert!(out.status.success(), "{out:?}\n{}", gh.env.log());
    let issued = gh.issued();
    assert!(!issued.is_empty(), "the proxy wrote a real token in");
    // The endpoint reflected what it got, and the box saw a mask.
    let echo = gh.read("echo.json");
    let headers = gh.read("echo.headers");
    assert!(echo.contains("Bearer vkp_"), "{echo}");
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("x-echo-authorization: bearer vkp_"),
        "{headers}"
    );
    // token.get: a placeholder; consent.wait and delegation.create: no.
    let greedy: Value = serde_json::from_str(&gh.read("greedy.json")).expect("greedy.json");
    let got = &greedy["get"]["result"];
    assert_eq!(got["placeholder"], true, "{greedy}");
    assert!(
        got["access_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("vkp_")),
        "{greedy}"
    );
    assert_eq!(
        greedy["wait"]["error"]["data"]["name"], "proxy_only",
        "{greedy}"
    );
    assert_eq!(
        greedy["delegate"]["error"]["data"]["name"], "proxy_only",
        "{greedy}"
    );
    for t in &issued {
        for f in ["echo.json", "echo.headers", "greedy.json"] {
            assert!(!gh.read(f).contains(t.as_str()), "the real token is in {f}");
        }
    }
    let grants = gh.env.cli_ok(&["grant", "list"]);
    assert!(grants.contains("metadata:read (proxy only)"), "{grants}");
    // The same script with the shared network wants the raw token: the
    // hour's grant does not give it; the user is asked.
    let child = gh.run_net("shared", GREEDY, &["GH_TOKEN=github:metadata:read"]);
    let card = next_consent(&mut ctl).await;
    assert!(
        !card.proxy_only && card.confinement.is_some(),
        "asked anew, for a raw token"
    );
    decide(&mut ctl, &card.id, Decision::Deny { remember: false }, None)
        .await
        .expect("denied");
    let out = done(child).await;
    assert!(!out.status.success(), "denied: {out:?}");
    gh.env.assert_no_leaks(&issued, &[&echo, &headers]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_proxy_refuses_paths_that_mean_two_things_and_sends_on_only_what_it_checked() {
    let gh = github_up();
    let mut ctl = subscribed(&gh.env).await;
    let script = r#"set -u
n=0
for p in '/repos/octo/hello/contents/../../other/contents/README' \
         '/repos/octo/hello/contents/%2e%2e/%2E%2E/other/contents/README' \
         '/repos/octo/hello/contents/..%2f..%2fother/contents/README' \
         '/repos/octo/hello/contents/..;/..;/other/contents/README' \
         '/repos/octo/hello/contents//README'; do
  curl -sS --path-as-is "API$p" -o "bad-$n.json" -w '%{http_code}' > "bad-$n.code"
  n=$((n+1))
done
curl -sS API/repos/octo/hello/contents/README -o good.json -w '%{http_code}' > good.code
"#;
    let child = gh.run(script, &["GH_TOKEN=github:contents:read@octo/hello"]);
    let card = next_consent(&mut ctl).await;
    decide(&mut ctl, &card.id, Decision::Always, None)
        .await
        .expect("allowed");
    let out = done(child).await;
    assert!(out.status.success(), "{out:?}");
    for n in 0..5 {
        assert_eq!(
            gh.read(&format!("bad-{n}.code")),
            "400",
            "path {n}: {}",
            gh.read(&format!("bad-{n}.json"))
        );
        assert!(
            gh.read(&format!("bad-{n}.json"))
                .contains("request_malformed"),
            "{}",
            gh.read(&format!("bad-{n}.json"))
        );
    }
    assert_eq!(gh.read("good.code"), "200", "{}", gh.read("good.json"));
    // Nothing of them went upstream; the plain path did, as it was sent.
    let seen = gh.seen();
    assert!(
        seen.iter()
            .any(|s| s.2 == "/repos/octo/hello/contents/README"),
        "{seen:?}"
    );
    for s in &seen {
        assert!(
            !s.2.contains("..")
                && !s.2.contains('%')
                && !s.2.contains("//")
                && !s.2.contains("other"),
            "{s:?}"
        );
    }
    let audit = gh
        .env
        .cli_ok(&["audit", "--kind", "proxy.request", "--json"]);
    assert!(audit.contains("refused:request_malformed"), "{audit}");
}

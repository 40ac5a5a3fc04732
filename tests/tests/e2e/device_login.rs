//! `valetkey login --device` (RFC 8628) against oidc-provider's real device
//! flow: the CLI prints a code, a "person" approves it at /device, and the
//! refresh token lands in the keychain ready for agents.

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::thread::JoinHandle;

/// The rest of the CLI's stderr, read on a thread.
type Rest = JoinHandle<Vec<String>>;

use crate::harness::TestEnv;

/// Starts `login --device`, reads the verification URI and user code from
/// its stderr, and returns them with the still-running child.
fn start_device_login(env: &TestEnv) -> (Child, String, String, Vec<String>, Rest) {
    let mut child = env.spawn_cli(&["login", "local", "--device", "--timeout", "60"]);
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    let (mut uri, mut code) = (None, None);
    for line in lines.by_ref() {
        let line = line.expect("read stderr");
        let t = line.trim().to_owned();
        if t.starts_with("https://") && uri.is_none() {
            uri = Some(t.clone());
        } else if uri.is_some() && code.is_none() && !t.is_empty() && !t.starts_with("and ") {
            code = Some(t.clone());
        }
        seen.push(line);
        if seen
            .last()
            .is_some_and(|l| l.contains("Waiting for approval"))
        {
            break;
        }
    }
    // Keep draining so the child never blocks on a full pipe.
    let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect());
    let uri = uri.unwrap_or_else(|| panic!("no verification URI in {seen:?}"));
    let code = code.unwrap_or_else(|| panic!("no user code in {seen:?}"));
    (child, uri, code, seen, rest)
}

#[tokio::test]
async fn device_login_stores_a_refresh_token_that_serves_agents() {
    let mut env = TestEnv::new().expect("env");
    env.start_daemon().expect("daemon");
    let (child, uri, code, seen, _rest) = start_device_login(&env);
    assert!(uri.ends_with("/device"), "{uri}");
    assert!(
        seen.iter()
            .any(|l| l.contains(&format!("user_code={code}"))),
        "the complete URI is offered too: {seen:?}"
    );

    let approve = env.run_script("device-approve.sh", &[&uri, &code]);
    assert!(
        approve.status.success(),
        "{}\n{seen:?}\n{}",
        String::from_utf8_lossy(&approve.stderr),
        std::fs::read_to_string(env.path("logs/provider.log")).unwrap_or_default()
    );
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "login --device failed: {seen:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Logged in"));
    let rt = env.keychain_refresh_token().expect("refresh token stored");

    // The stored login is a normal one: an agent gets a down-scoped token.
    env.grant_self("device-agent", &["repo:read"]);
    let mut c = env.agent("device-agent").await;
    let t = c.token("local", &["repo:read"]).await.expect("token");
    let intro = env.introspect(t.access_token.expose()).await;
    assert_eq!(intro["active"], true, "{intro}");
    assert_eq!(intro["scope"], "repo:read", "{intro}");
    assert_eq!(intro["aud"], "https://api.valetkey.test", "{intro}");
    env.assert_no_leaks(&[rt, t.access_token.expose().to_owned()], &[]);
}

#[tokio::test]
async fn device_login_denied_by_the_user_fails_cleanly_and_stores_nothing() {
    let mut env = TestEnv::new().expect("env");
    // The daemon records logins (it is the only writer of its database).
    env.start_daemon().expect("daemon");
    let (child, uri, code, _, rest) = start_device_login(&env);
    let deny = env.run_script("device-approve.sh", &[&uri, &code, "deny"]);
    assert!(
        deny.status.success(),
        "{}",
        String::from_utf8_lossy(&deny.stderr)
    );
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1), "a denied login exits 1");
    let err = rest.join().expect("stderr").join("\n");
    assert!(err.contains("access_denied"), "says why: {err}");
    assert!(env.keychain_refresh_token().is_none(), "nothing stored");
    let providers = env.cli_ok(&["providers"]);
    assert!(providers.contains("not logged in"), "{providers}");
}

//! Crash safety under load: `kill -9` the daemon at random moments while
//! agents hammer it, then check that nothing was lost. Long, so ignored in
//! the default run; `scripts/crash.sh [ROUNDS]` runs it (20 rounds by
//! default) and its summary line goes into docs/SECURITY.md.

use std::time::{Duration, Instant};

use crate::harness::TestEnv;

/// A cheap random number from the clock (no extra crate for one test).
fn jitter(max_ms: u64) -> u64 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64 ^ d.as_secs())
        .unwrap_or(7);
    (n.wrapping_mul(6364136223846793005) >> 33) % max_ms
}

fn grants(env: &TestEnv) -> usize {
    env.cli_ok(&["grant", "list"])
        .lines()
        .filter(|l| l.contains("load-"))
        .count()
}

#[tokio::test]
#[ignore = "long: run by scripts/crash.sh"]
async fn kill_9_under_load_loses_no_grant_refresh_token_or_audit_record() {
    let rounds: usize = std::env::var("VK_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut env = TestEnv::new().expect("env");
    env.write_config("[limits]\nrequests_per_second = 100000\nburst = 100000\n")
        .expect("config");
    env.start_daemon().expect("daemon");
    env.login();
    for i in 0..4 {
        env.grant_self(&format!("load-{i}"), &["repo:read", "issues:read"]);
    }
    let want_grants = grants(&env);
    assert_eq!(want_grants, 4);
    let combos: [&[&str]; 3] = [
        &["repo:read"],
        &["issues:read"],
        &["issues:read", "repo:read"],
    ];
    let (mut served, mut lost_rt, mut failures) = (0u64, 0, vec![]);
    let started = Instant::now();
    for round in 0..rounds {
        let mut load = vec![];
        for i in 0..4 {
            let socket = env.socket.clone();
            load.push(tokio::spawn(async move {
                let mut n = 0u64;
                let Ok(mut c) = valetkey_ipc::Client::connect(&socket).await else {
                    return n;
                };
                if c.hello(valetkey_ipc::methods::AgentInfo {
                    name: format!("load-{i}"),
                    version: "1".into(),
                    purpose: "crash test".into(),
                })
                .await
                .is_err()
                {
                    return n;
                }
                for k in 0.. {
                    if c.token("local", combos[(k + i) % 3]).await.is_err() {
                        return n;
                    }
                    n += 1;
                }
                n
            }));
        }
        tokio::time::sleep(Duration::from_millis(50 + jitter(1200))).await;
        let pid = env.daemon().expect("daemon").id();
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
        let _ = env.daemon().expect("daemon").wait();
        for l in load {
            served += l.await.unwrap_or(0);
        }
        env.start_daemon().expect("restart");

        // Grants all there.
        let g = grants(&env);
        if g != want_grants {
            failures.push(format!("round {round}: {g} grants, want {want_grants}"));
        }
        // The chain verifies (the restarted daemon holds it open: WAL).
        let v = env.cli(&["audit", "verify"]);
        if !v.status.success() {
            failures.push(format!(
                "round {round}: {}",
                String::from_utf8_lossy(&v.stdout)
            ));
        }
        // Agents reconnect, and a cold refresh works: the refresh token
        // survived whatever rotation the kill interrupted.
        let mut c = env.agent("load-0").await;
        match c.token("local", &["repo:read"]).await {
            Ok(_) => {}
            Err(e) if crate::harness::code(&e) == Some("provider_login_required") => {
                lost_rt += 1;
                failures.push(format!("round {round}: refresh token lost: {e}"));
                env.login();
            }
            Err(e) => failures.push(format!("round {round}: {e}")),
        }
    }
    eprintln!(
        "crash summary: {rounds} kill -9 rounds in {:.0?}, {served} tokens served under load, {} failed round(s), {lost_rt} lost refresh token(s)",
        started.elapsed(),
        failures.len()
    );
    eprintln!("{}", rotation_windows(&env.log()));
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The rotation windows the daemon logged (from the provider's answer to
/// the keychain holding the new refresh token), summarised.
fn rotation_windows(log: &str) -> String {
    let mut us: Vec<u64> = log
        .lines()
        .filter(|l| l.contains("refresh token rotated and stored"))
        .filter_map(|l| l.split("window_us=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse().ok())
        .collect();
    us.sort_unstable();
    if us.is_empty() {
        return "rotation window: no rotation logged".into();
    }
    let at = |q: f64| us[((us.len() - 1) as f64 * q).round() as usize];
    let replayed = log
        .lines()
        .filter(|l| l.contains("recovered from the rotation journal"))
        .count();
    format!(
        "rotation window: {} rotations, p50 {} us, p99 {} us, max {} us; {replayed} replayed from the journal after a kill",
        us.len(),
        at(0.5),
        at(0.99),
        us[us.len() - 1]
    )
}

//! The socket itself: framing abuse, identity, and daemon lifecycle.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use valetkey_ipc::Client;

use crate::harness::{bin, wait_until, TestEnv};
use crate::raw::{name, Raw, HELLO};

/// Hostile frames: what each gets, and whether the daemon hangs up.
fn hostile() -> Vec<(&'static str, Vec<u8>, &'static str, bool)> {
    vec![
        ("not json", b"this is not json\n".to_vec(), "parse_error", true),
        ("invalid utf-8", vec![0xff, 0xfe, b'\n'], "parse_error", true),
        ("deep nesting", format!("{}\n", "[".repeat(60_000)).into_bytes(), "parse_error", true),
        ("deep objects", format!("{}\n", "{\"a\":".repeat(10_000)).into_bytes(), "parse_error", true),
        ("json, not an object", b"[1,2,3]\n".to_vec(), "bad_request", true),
        ("wrong version", b"{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"hello\"}\n".to_vec(), "bad_request", true),
        ("notification", b"{\"jsonrpc\":\"2.0\",\"method\":\"token.get\"}\n".to_vec(), "bad_request", true),
        ("nul bytes", b"{\"jsonrpc\":\"2.0\",\0\"id\":1}\n".to_vec(), "parse_error", true),
        ("oversized", vec![b'a'; 70 * 1024], "frame_too_large", true),
        ("oversized with newline", [vec![b' '; 65 * 1024], b"\n".to_vec()].concat(), "frame_too_large", true),
        ("wrong param types", b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"token.get\",\"params\":{\"provider\":7}}\n".to_vec(), "invalid_params", false),
        ("huge scope list", format!("{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"token.get\",\"params\":{{\"provider\":\"local\",\"scopes\":[{}\"x\"]}}}}\n", "\"x\",".repeat(5000)).into_bytes(), "invalid_params", false),
        ("unknown method", b"{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tokens.steal\"}\n".to_vec(), "unknown_method", false),
    ]
}

#[tokio::test]
async fn hostile_frames_get_errors_and_a_close_and_others_keep_being_served() {
    let (mut env, mut good) = TestEnv::with_agent("bystander", &["repo:read"]).await;
    good.token("local", &["repo:read"]).await.expect("token");

    // Before hello: only hello and jwks are served.
    let mut raw = Raw::connect(&env.socket).await;
    raw.send(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"token.get\",\"params\":{}}\n")
        .await;
    assert_eq!(name(&raw.recv().await.expect("reply")), "hello_required");
    raw.send(b"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"hello\",\"params\":{\"protocol\":99,\"agent\":{\"name\":\"x\"}}}\n").await;
    let v = raw.recv().await.expect("reply");
    assert_eq!((name(&v), v["id"].as_i64()), ("protocol_mismatch", Some(2)));

    let cases = hostile();
    for (what, bytes, code, closes) in &cases {
        for greeted in [false, true] {
            let mut raw = Raw::connect(&env.socket).await;
            if greeted {
                raw.send(HELLO).await;
                assert!(raw.recv().await.expect("hello")["result"].is_object());
            }
            raw.send(bytes).await;
            let v = raw
                .recv()
                .await
                .unwrap_or_else(|| panic!("{what}: no error before close"));
            let want = if !greeted && matches!(*code, "invalid_params" | "unknown_method") {
                "hello_required"
            } else {
                code
            };
            assert_eq!(name(&v), want, "{what} (greeted: {greeted}): {v}");
            if *closes {
                assert!(raw.recv().await.is_none(), "{what}: connection closed");
            }
        }
    }
    // Unknown methods are tolerated twice; the third closes.
    let mut raw = Raw::connect(&env.socket).await;
    raw.send(HELLO).await;
    raw.recv().await.expect("hello");
    for i in 1..=3 {
        raw.send(format!("{{\"jsonrpc\":\"2.0\",\"id\":{i},\"method\":\"x.{i}\"}}\n").as_bytes())
            .await;
        assert_eq!(name(&raw.recv().await.expect("reply")), "unknown_method");
    }
    assert!(
        raw.recv().await.is_none(),
        "closed after the third unknown method"
    );
    eprintln!("hostile inputs tried: {}", cases.len() * 2 + 5);

    // The well-behaved agent never noticed.
    good.token("local", &["repo:read"])
        .await
        .expect("still served");
    assert!(env.daemon_alive());
}

#[tokio::test]
async fn a_peer_with_another_uid_is_refused() {
    let mut env = TestEnv::new().expect("env");
    env.start_daemon().expect("daemon");
    // A real second user.
    let _ = Command::new("useradd")
        .args(["--system", "--no-create-home", "vk-other"])
        .output();
    let uid = String::from_utf8_lossy(
        &Command::new("id")
            .args(["-u", "vk-other"])
            .output()
            .expect("id")
            .stdout,
    )
    .trim()
    .to_owned();
    assert!(!uid.is_empty(), "could not create user vk-other");
    // A copy of the CLI it can execute.
    let pub_dir = tempfile::Builder::new()
        .prefix("vk-other")
        .tempdir_in("/tmp")
        .expect("dir");
    std::fs::set_permissions(pub_dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let cli = pub_dir.path().join("valetkey");
    crate::harness::copy_bin("valetkey", &cli);
    let run_as_other = || {
        Command::new("setpriv")
            .args(["--reuid", &uid, "--regid", &uid, "--clear-groups", "--"])
            .arg(&cli)
            .args(["--socket"])
            .arg(&env.socket)
            .args(["token", "local", "--scope", "repo:read"])
            .env_clear()
            .output()
            .expect("setpriv")
    };

    // With the default 0700 runtime dir the kernel refuses the connection.
    let o = run_as_other();
    assert_eq!(
        o.status.code(),
        Some(69),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("Permission denied"));

    // Even if the permissions were loosened, the daemon itself refuses.
    let rundir = env.socket.parent().expect("dir").to_owned();
    std::fs::set_permissions(env.path("run"), std::fs::Permissions::from_mode(0o711))
        .expect("chmod");
    std::fs::set_permissions(&rundir, std::fs::Permissions::from_mode(0o711)).expect("chmod");
    std::fs::set_permissions(&env.socket, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let o = run_as_other();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("peer_rejected") && err.contains(&format!("uid {uid}")),
        "{err}"
    );
    assert!(env.daemon_alive());
}

#[tokio::test]
async fn second_daemon_refuses_stale_socket_is_reclaimed_and_sigterm_is_graceful() {
    let mut env = TestEnv::new().expect("env");
    env.start_daemon().expect("first daemon");

    // A second daemon on the same socket refuses with a clear message.
    let mut cmd = Command::new(bin("valetkeyd"));
    cmd.env_clear()
        .envs(env.envs())
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    let o = cmd.output().expect("second daemon");
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("another valetkeyd is already serving"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    Client::connect(&env.socket)
        .await
        .expect("first daemon still serves");

    // SIGTERM: clean exit, socket removed.
    let pid = env.daemon().expect("daemon").id();
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    let status = env.daemon().expect("daemon").wait().expect("wait");
    assert!(status.success(), "graceful exit: {status:?}");
    assert!(!env.socket.exists(), "socket removed on shutdown");
    assert!(env.log().contains("SIGTERM received"));

    // kill -9 leaves a stale socket; the next daemon cleans it up.
    env.start_daemon().expect("restart");
    let pid = env.daemon().expect("daemon").id();
    Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    let _ = env.daemon().expect("daemon").wait();
    assert!(env.socket.exists(), "stale socket left behind by kill -9");
    env.start_daemon().expect("starts over a stale socket");
    assert!(env.log().contains("removing stale socket"));
    wait_until(std::time::Duration::from_secs(5), || env.socket.exists()).expect("socket");

    // A symlink planted at the socket path is refused.
    let mut other = TestEnv::new().expect("env2");
    std::fs::create_dir_all(other.socket.parent().expect("dir")).expect("mkdir");
    std::fs::set_permissions(
        other.socket.parent().expect("dir"),
        std::fs::Permissions::from_mode(0o700),
    )
    .expect("chmod");
    std::os::unix::fs::symlink("/tmp/elsewhere.sock", &other.socket).expect("symlink");
    assert!(other.start_daemon().is_err());
    assert!(other.log().contains("is a symlink"), "{}", other.log());
}

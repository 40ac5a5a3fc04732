//! `box.open`, `box.started`, `box.close` and a daemon's restart over the
//! real filesystem; the box itself (bubblewrap) is exercised by the e2e
//! suite.

use super::*;
use crate::inproc::World;

fn params(dir: &Path, argv: &[&str], explain: bool) -> BoxOpenParams {
    BoxOpenParams {
        profile: None,
        name: None,
        argv: argv.iter().map(|s| s.to_string()).collect(),
        program: "/bin/sh".into(),
        cwd: dir.join("work").display().to_string(),
        home: dir.join("home").display().to_string(),
        data_home: String::new(),
        config_home: String::new(),
        explain,
        network: None,
        report_key_sha256: crate::attest::sha256_hex(b"key"),
    }
}

fn me() -> PeerIdentity {
    let pid = std::process::id();
    let (_, start) = crate::attest::parent_and_start(pid).expect("own stat");
    let w = World::new();
    let mut c = w.connect("valetkey");
    c.identity.pid = pid;
    c.identity.start_time = start;
    c.identity
}

fn layout() -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    for d in ["work", "home/.ssh"] {
        std::fs::create_dir_all(t.path().join(d)).expect("mkdir");
    }
    std::fs::write(t.path().join("work/a.sh"), "echo a\n").expect("write");
    std::fs::write(t.path().join("work/b.sh"), "echo b\n").expect("write");
    t
}

#[test]
fn explain_hashes_what_runs_and_opens_nothing() {
    let w = World::new();
    let t = layout();
    let (plan, session) = open(
        &w.d,
        params(t.path(), &["sh", "a.sh"], true),
        &me(),
        &t.path().join("boxes"),
    )
    .expect("explained");
    assert!(session.is_none() && plan.facts.id.is_empty() && plan.socket_dir.is_empty());
    let script = plan.facts.script.as_ref().expect("script found");
    assert_eq!(
        script.sha256,
        crate::attest::sha256_file(&t.path().join("work/a.sh")).expect("hash")
    );
    assert_eq!(
        plan.network, "filtered",
        "the default box has a network of its own"
    );
    assert!(plan
        .proxy
        .as_ref()
        .is_some_and(|p| p.tunnelled.iter().any(|h| h == "pypi.org:443")));
    assert!(plan
        .hide
        .contains(&t.path().join("home/.ssh").display().to_string()));
    let (other, _) = open(
        &w.d,
        params(t.path(), &["sh", "b.sh"], true),
        &me(),
        &t.path().join("boxes"),
    )
    .expect("explained");
    // Same program, another script: another entry point.
    assert_eq!(other.facts.program, plan.facts.program);
    assert_ne!(other.facts.entry_sha256, plan.facts.entry_sha256);
    assert!(w.d.boxes.is_empty());
}

#[test]
fn bad_requests_are_refused_with_what_to_fix() {
    let w = World::new();
    let t = layout();
    let root = t.path().join("boxes");
    let mut p = params(t.path(), &["sh"], false);
    p.profile = Some("nope".into());
    let e = open(&w.d, p, &me(), &root).expect_err("profile");
    assert!(e.to_string().contains("no box profile"), "{e}");
    let mut p = params(t.path(), &["sh"], false);
    p.cwd = t.path().join("home").display().to_string();
    let e = open(&w.d, p, &me(), &root).expect_err("home");
    assert!(e.to_string().contains("your whole home"), "{e}");
    let mut p = params(t.path(), &["sh"], false);
    p.program = "sh".into();
    let e = open(&w.d, p, &me(), &root).expect_err("relative");
    assert!(e.to_string().contains("absolute path"), "{e}");
    let mut p = params(t.path(), &[], false);
    p.argv.clear();
    assert!(open(&w.d, p, &me(), &root).is_err());
    assert!(w.d.boxes.is_empty());
}

#[test]
fn a_box_is_recorded_survives_a_restart_and_is_closed_by_its_launcher_only() {
    let w = World::new();
    let t = layout();
    let root = t.path().join("boxes");
    let (plan, session) =
        open(&w.d, params(t.path(), &["sh", "a.sh"], false), &me(), &root).expect("opened");
    let s = session.expect("session");
    assert!(plan.facts.id.starts_with("b_") && plan.facts.id.len() == 18);
    assert!(Path::new(&plan.socket_dir).is_dir());
    assert!(root.join(format!("{}.json", plan.facts.id)).is_file());
    assert_eq!(w.audit("box.opened"), vec!["ok"]);
    // Not started: nobody is admitted.
    let e = s.admits(std::process::id()).expect_err("not started");
    assert!(e.contains("has not started"), "{e}");

    // A new daemon finds it again: its launcher (this process) runs.
    let again = World::new();
    let back = again.d.boxes.restore(&root);
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].facts, plan.facts);

    // Another process cannot close it.
    let mut stranger = me();
    stranger.pid += 1;
    assert!(close(&w.d, &plan.facts.id, vec![], &stranger).is_err());
    let mut closed_rx = s.closed();
    close(&w.d, &plan.facts.id, vec![], &me()).expect("closed");
    assert!(*closed_rx.borrow_and_update());
    assert!(!Path::new(&plan.socket_dir).exists());
    assert!(!root.join(format!("{}.json", plan.facts.id)).exists());
    assert_eq!(w.audit("box.closed"), vec!["ok"]);
}

#[test]
fn boxes_of_dead_launchers_are_removed_on_restore() {
    let w = World::new();
    let t = layout();
    let root = t.path().join("boxes");
    let mut gone = me();
    gone.start_time += 1; // this pid, another process
    let (plan, _) = open(&w.d, params(t.path(), &["sh"], false), &gone, &root).expect("opened");
    let again = World::new();
    assert!(again.d.boxes.restore(&root).is_empty());
    assert!(!Path::new(&plan.socket_dir).exists());
    assert!(!root.join(format!("{}.json", plan.facts.id)).exists());
}

#[test]
fn started_refuses_a_process_that_is_not_the_launchers_box() {
    let w = World::new();
    let t = layout();
    let root = t.path().join("boxes");
    let (plan, _) = open(&w.d, params(t.path(), &["sh"], false), &me(), &root).expect("opened");
    // A child of ours, but in our own pid namespace: no box was made.
    let mut child = std::process::Command::new("sleep")
        .arg("5")
        .spawn()
        .expect("sleep");
    let e = started(
        &w.d,
        BoxStartedParams {
            id: plan.facts.id.clone(),
            child_pid: child.id(),
        },
        &me(),
    )
    .expect_err("no namespace");
    assert!(e.to_string().contains("no pid namespace of its own"), "{e}");
    // Not ours at all.
    let e = started(
        &w.d,
        BoxStartedParams {
            id: plan.facts.id.clone(),
            child_pid: 1,
        },
        &me(),
    )
    .expect_err("init");
    assert!(e.to_string().contains("not the launcher's box"), "{e}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn an_open_pins_the_script_and_locks_the_repository() {
    let w = World::new();
    let t = layout();
    let git = std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(t.path().join("work"))
        .status()
        .expect("git");
    assert!(git.success());
    let root = t.path().join("boxes");
    let (plan, _) =
        open(&w.d, params(t.path(), &["sh", "a.sh"], false), &me(), &root).expect("opened");
    let script = t.path().join("work/a.sh").display().to_string();
    let pin = plan
        .pins
        .iter()
        .find(|p| p.path == script)
        .expect("the script pinned");
    assert!(pin.copy.starts_with(&plan.socket_dir), "{pin:?}");
    assert_eq!(
        std::fs::read_to_string(&pin.copy).expect("copy"),
        "echo a\n"
    );
    // /bin/sh is root's to change (the tests may run as root, who can).
    let root = rustix::process::geteuid().is_root();
    assert_eq!(plan.pins.iter().any(|p| p.path == "/bin/sh"), root);
    let g = t.path().join("work/.git");
    let locked: Vec<&str> = plan
        .protection
        .locked
        .iter()
        .map(|l| l.path.as_str())
        .collect();
    assert!(
        locked.contains(&g.join("config").display().to_string().as_str()),
        "{locked:?}"
    );
    assert_eq!(plan.protection.anchored, vec![g.display().to_string()]);
}

#[test]
fn reports_need_the_key_and_come_back_at_close() {
    let w = World::new();
    let t = layout();
    let init = std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(t.path().join("work"))
        .status()
        .expect("git");
    assert!(init.success());
    let root = t.path().join("boxes");
    let (plan, _) =
        open(&w.d, params(t.path(), &["sh", "a.sh"], false), &me(), &root).expect("opened");
    let mut inside = me();
    inside.confinement = Some(plan.facts.clone());
    let event = |kind: &str| valetkey_ipc::control::BoxEvent {
        kind: kind.into(),
        path: "/w/.git/config".into(),
        op: "openat".into(),
    };
    let p = |key: &str, events| valetkey_ipc::control::BoxReportParams {
        key: key.into(),
        events,
    };
    let e =
        report::handle(&w.d, &inside, p("not-the-key", vec![event("locked")])).expect_err("forged");
    assert_eq!(e.code(), ErrorCode::PeerRejected);
    let e = report::handle(&w.d, &me(), p("key", vec![event("locked")])).expect_err("unboxed");
    assert_eq!(e.code(), ErrorCode::InvalidParams);
    let r = report::handle(
        &w.d,
        &inside,
        p("key", vec![event("locked"), event("bogus")]),
    )
    .expect("reported");
    assert_eq!(r.recorded, 1, "the malformed one is dropped");
    assert_eq!(w.audit("box.event"), vec!["refused:locked"]);
    let done = close(&w.d, &plan.facts.id, vec![], &me()).expect("closed");
    assert_eq!(done.events, vec![event("locked")]);
}

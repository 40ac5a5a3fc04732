//! Boxed and unboxed agents told apart: grants bind to a box's entry
//! point, consents carry the box, `require_confinement` refuses the
//! unboxed, a pinned box cannot take another name, and policies see
//! `agent.confined`.

use valetkey_ipc::control::Decision;
use valetkey_ipc::ErrorCode;

use super::*;

#[tokio::test]
async fn two_scripts_under_one_name_are_two_agents_to_consent() {
    let w = World::new();
    w.login("gh", &["read", "write"]);
    let mut a = w.connect_boxed("python3", "a.py", None);
    crate::access::hello::handle(&w.d, &mut a, hello("helper")).expect("hello");
    let (got, asked) = tokio::join!(w.get(&a, "gh", &["read"]), async {
        let p = w.prompt().await;
        w.decide(&p.id, Decision::Always, None).expect("allowed");
        p
    });
    got.expect("a.py's token");
    // The card carried the box, and the consent bound to the entry point.
    let facts = asked.confinement.as_ref().expect("boxed card");
    assert_eq!(
        facts.script.as_ref().map(|s| s.path.as_str()),
        Some("/work/a.py")
    );
    assert_eq!(asked.sha256, facts.entry_sha256);
    assert_ne!(asked.sha256, a.identity.sha256, "not python3's own hash");

    // b.py says hello with the same name: no grant of its own.
    let mut b = w.connect_boxed("python3", "b.py", None);
    crate::access::hello::handle(&w.d, &mut b, hello("helper")).expect("hello");
    let r = crate::access::token::handle(&w.d, g(&b), ask("gh", &["read"], false)).await;
    assert_eq!(code(r), ErrorCode::ConsentRequired);
    // Nor does python3 outside a box, under the same name.
    let c = w.agent("helper", "python3");
    let r = crate::access::token::handle(&w.d, g(&c), ask("gh", &["read"], false)).await;
    assert_eq!(code(r), ErrorCode::ConsentRequired);
    let cards = w.d.consents.list();
    assert_eq!(cards.len(), 2);
    assert!(
        cards.iter().any(|c| c.confinement.is_none()),
        "the unboxed card says so"
    );
    // a.py again, in a new box: its grant stands.
    let mut again = w.connect_boxed("python3", "a.py", None);
    crate::access::hello::handle(&w.d, &mut again, hello("helper")).expect("hello");
    w.get(&again, "gh", &["read"])
        .await
        .expect("granted already");
}

#[tokio::test]
async fn require_confinement_refuses_the_unboxed_only() {
    let w = World::with_policy(None, "[policy]\nrequire_confinement = [\"gh\"]\n");
    w.login("gh", &["read"]);
    w.login("wide", &["a"]);
    let free = w.agent("coder", "coder");
    let r = w.get(&free, "gh", &["read"]).await;
    let e = valetkey_ipc::RpcError::from(r.expect_err("refused"));
    assert_eq!(e.code, ErrorCode::ConfinementRequired.code());
    assert!(e.message.contains("valetkey run"), "{}", e.message);
    assert_eq!(w.d.consents.pending_count(), 0, "nobody was asked");
    assert_eq!(w.audit("token.get"), vec!["refused:confinement_required"]);
    // In a box, the same agent is asked as usual.
    let mut boxed = w.connect_boxed("coder", "run.sh", None);
    crate::access::hello::handle(&w.d, &mut boxed, hello("coder")).expect("hello");
    w.grant(&boxed, "gh", &["read"]).await;
    // Another provider is not affected.
    let r = crate::access::token::handle(&w.d, g(&free), ask("wide", &["a"], false)).await;
    assert_eq!(code(r), ErrorCode::ConsentRequired);
}

#[test]
fn require_confinement_names_configured_providers_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = Config::parse(
        &dir.path().join("c.toml"),
        &format!("{CONFIG}[policy]\nrequire_confinement = [\"nope\"]\n"),
    )
    .expect_err("unknown provider");
    assert!(e.to_string().contains("not a configured provider"), "{e}");
}

#[tokio::test]
async fn a_pinned_box_cannot_say_hello_as_another_agent() {
    let w = World::new();
    let mut c = w.connect_boxed("python3", "a.py", Some("helper"));
    let e = crate::access::hello::handle(&w.d, &mut c, hello("deployer")).expect_err("spoof");
    assert_eq!(e.code(), ErrorCode::InvalidParams);
    assert!(
        e.to_string().contains("started for agent \"helper\""),
        "{e}"
    );
    crate::access::hello::handle(&w.d, &mut c, hello("helper")).expect("its own name");
}

const CONFINED_ONLY: &str = r#"package valetkey.authz
import rego.v1

allow if input.provider in {"gh", "wide"}

deny contains "writes only from a box" if {
	"write" in input.scopes
	not input.agent.confined
}

deny contains "not that script" if {
	input.agent.box.script.path == "/work/evil.py"
}
"#;

#[tokio::test]
async fn policies_see_whether_and_how_an_agent_is_boxed() {
    let w = World::with_policy(Some(CONFINED_ONLY), "");
    w.login("gh", &["read", "write"]);
    let free = w.agent("coder", "coder");
    let r = w.get(&free, "gh", &["write"]).await;
    assert_eq!(code(r), ErrorCode::PolicyDenied);
    let mut evil = w.connect_boxed("python3", "evil.py", None);
    crate::access::hello::handle(&w.d, &mut evil, hello("coder")).expect("hello");
    let e = valetkey_ipc::RpcError::from(w.get(&evil, "gh", &["read"]).await.expect_err("denied"));
    assert!(e.message.contains("not that script"), "{}", e.message);
    let mut boxed = w.connect_boxed("python3", "ok.py", None);
    crate::access::hello::handle(&w.d, &mut boxed, hello("coder")).expect("hello");
    w.grant(&boxed, "gh", &["write"]).await;
}

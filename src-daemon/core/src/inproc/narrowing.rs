//! Tokens limited to a repository (`SCOPE@OWNER/REPO`): narrowed at
//! GitHub where the user's GitHub App can (`token/scoped`, with the app's
//! secret), served only through the egress proxy where it cannot, and a
//! grant of a scope covering the same scope limited to a repository.

use valetkey_ipc::control::Decision;
use valetkey_ipc::ErrorCode;

use super::*;
use crate::keychain::Item;

const GITHUB: &str = r#"
[providers.hub]
preset = "github"
client_id = "Iv1.app"
confidential = true
allowed_scopes = ["metadata:read", "contents:read", "contents:write"]
[providers.hub.proxy]
hosts = { api = "api.hub.test", git = "hub.test" }

[providers.plain]
preset = "github"
client_id = "Iv1.other"
allowed_scopes = ["contents:read"]
"#;

fn world() -> World {
    let w = World::with_policy(None, GITHUB);
    w.login("hub", &["metadata:read", "contents:read", "contents:write"]);
    w.keychain
        .put(Item::ClientSecret("hub"), "fake-keychain-value");
    w.login("plain", &["contents:read"]);
    w
}

#[tokio::test]
async fn github_narrows_a_repository_scope_and_the_token_is_cached_apart() {
    let w = world();
    let a = w.agent("coder", "/usr/bin/coder");
    let t = w.grant(&a, "hub", &["contents:read@octo/hello"]).await;
    assert_eq!(
        token(&t),
        r#"access-1.scoped.{"contents":"read"}"#,
        "the provider's token, narrowed at GitHub"
    );
    assert_eq!(t.0.scopes, vec!["contents:read@octo/hello"]);
    // Again: from the cache, no new refresh and no new narrowing.
    let again = w
        .get(&a, "hub", &["contents:read@octo/hello"])
        .await
        .expect("cached");
    assert_eq!(token(&again), token(&t));
    assert_eq!(
        w.upstream
            .refreshes
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    // The grant covers the scope it was made for, not a wider one.
    let r = crate::access::token::handle(&w.d, g(&a), ask("hub", &["contents:read"], false)).await;
    assert_eq!(code(r), ErrorCode::ScopeNotGranted);
}

#[tokio::test]
async fn a_grant_of_a_scope_covers_it_limited_to_a_repository() {
    let w = world();
    let a = w.agent("coder", "/usr/bin/coder");
    let whole = w.grant(&a, "hub", &["contents:read"]).await;
    assert_eq!(token(&whole), r#"access-1.scoped.{"contents":"read"}"#);
    let one = w
        .get(&a, "hub", &["contents:read@octo/hello"])
        .await
        .expect("covered by the grant");
    assert_eq!(token(&one), r#"access-1.scoped.{"contents":"read"}"#);
    assert_ne!(one.0.id, whole.0.id, "narrowed apart, cached apart");
}

#[tokio::test]
async fn without_the_apps_secret_a_repository_scope_goes_only_through_the_proxy() {
    let w = world();
    let a = w.agent("coder", "/usr/bin/coder");
    let r = w
        .allow(&a, "plain", &["contents:read@octo/hello"], Decision::Always)
        .await;
    let e = r.expect_err("handed to the agent, it would not be limited");
    assert_eq!(e.code(), ErrorCode::ScopeNotAllowed);
    assert!(
        e.to_string().contains("only through the egress proxy"),
        "{e}"
    );
    // Held by the proxy, the full token is fetched for the scope without
    // the repository; the proxy's rules enforce the repository.
    let (t, _) = crate::access::token::for_proxy(
        &w.d,
        g(&a),
        "plain",
        &["contents:read@octo/hello".into()],
        false,
        None,
        None,
    )
    .await
    .expect("the grant stands");
    assert_eq!(token(&t), "access-1");
}

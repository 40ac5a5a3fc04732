//! A box in `proxy` mode never holds a raw token: `token.get` answers it
//! with a placeholder, `consent.wait` and `delegation.create` refuse it
//! (`proxy_only`), and a grant allowed on its card serves the proxy only,
//! so the same script in a box with the shared network is asked anew.

use valetkey_ipc::control::Decision;
use valetkey_ipc::methods::{ConsentWaitParams, DelegationCreateParams};
use valetkey_ipc::ErrorCode;

use super::*;

const CONFIG: &str = r#"
[providers.hub]
preset = "github"
client_id = "Iv1.app"
allowed_scopes = ["metadata:read", "contents:read"]
allow_full_scope = true
[providers.hub.proxy]
hosts = { api = "api.hub.test", git = "hub.test" }

[providers.plain]
issuer = "https://idp.example"
client_id = "valetkey"
allowed_scopes = ["contents:read"]
narrows_on_refresh = true
"#;

/// The world, and a temporary directory for the boxes' records.
fn world() -> (World, tempfile::TempDir) {
    let w = World::with_policy(None, CONFIG);
    w.login("hub", &["metadata:read", "contents:read"]);
    w.login("plain", &["contents:read"]);
    (w, tempfile::tempdir().expect("tempdir"))
}

/// A connection from `agent.py` in an open box with `network`, greeted
/// as `coder`.
fn boxed(w: &World, dir: &tempfile::TempDir, network: &str) -> Caller {
    let mut c = w.connect_boxed("python3", "agent.py", None);
    let facts = c.identity.confinement.as_mut().expect("boxed");
    facts.network = network.into();
    facts.id = format!("b_{network}{:012x}", c.session);
    crate::boxes::open_for_tests(&w.d, facts.clone(), dir.path());
    crate::access::hello::handle(&w.d, &mut c, hello("coder")).expect("hello");
    c
}

async fn proxy_token_get(
    w: &World,
    c: &Caller,
    provider: &str,
    wait: bool,
) -> Result<valetkey_ipc::methods::TokenGetResult, BrokerError> {
    let p = ask(provider, &["contents:read"], wait);
    crate::access::withheld::token_get(&w.d, g(c), p).await
}

#[tokio::test]
async fn a_proxy_box_gets_a_placeholder_and_its_grant_serves_the_proxy_only() {
    let (w, dir) = world();
    let proxied = boxed(&w, &dir, "proxy");
    let (got, card) = tokio::join!(proxy_token_get(&w, &proxied, "hub", true), async {
        let p = w.prompt().await;
        w.decide(
            &p.id,
            Decision::For {
                duration_secs: 3600,
            },
            None,
        )
        .expect("allowed for an hour");
        p
    });
    let got = got.expect("a placeholder");
    assert!(got.placeholder, "said to be one");
    assert!(got.access_token.expose().starts_with("vkp_"));
    assert_eq!(
        w.upstream.refreshes.load(Ordering::SeqCst),
        1,
        "the proxy's token was fetched"
    );
    assert!(
        card.proxy_only,
        "the card says the grant serves the proxy only"
    );
    let grants = w.d.store.list_grants(Some("coder"), true).expect("grants");
    assert!(grants.len() == 1 && grants[0].proxy_only, "{grants:?}");

    // Again, under the hour's grant: still a placeholder, nobody asked.
    let again = proxy_token_get(&w, &proxied, "hub", false)
        .await
        .expect("granted");
    assert!(again.placeholder && again.access_token.expose().starts_with("vkp_"));
    // consent.wait and delegation.create would hand out raw tokens.
    let wait = ConsentWaitParams {
        consent_id: card.id.clone(),
    };
    let r = crate::access::token::handle_wait(&w.d, g(&proxied), wait).await;
    assert_eq!(code(r), ErrorCode::ProxyOnly);
    let del = DelegationCreateParams {
        sub_agent: "helper".into(),
        provider: "hub".into(),
        scopes: vec!["contents:read".into()],
        ttl_secs: 600,
        max_depth: None,
        wait: Some(false),
    };
    let r = crate::access::delegate::create(&w.d, g(&proxied), del).await;
    assert_eq!(code(r), ErrorCode::ProxyOnly);
    // A provider the proxy has no rules for: refused, not a raw token.
    let r = proxy_token_get(&w, &proxied, "plain", false).await;
    assert_eq!(code(r), ErrorCode::ProxyOnly);

    // The same script in a box with the shared network: the grant does
    // not hand it a raw token; the user is asked anew.
    let shared = boxed(&w, &dir, "shared");
    assert_eq!(
        shared.identity.binding(),
        proxied.identity.binding(),
        "same entry point"
    );
    let r =
        crate::access::token::handle(&w.d, g(&shared), ask("hub", &["contents:read"], false)).await;
    assert_eq!(code(r), ErrorCode::ConsentRequired);
    // Allowed there, the grant becomes an ordinary one.
    let pending = w.d.consents.list();
    let card = pending
        .iter()
        .find(|c| !c.proxy_only)
        .expect("the shared box's card");
    w.decide(&card.id.clone(), Decision::Always, None)
        .expect("allowed");
    let raw = w
        .get(&shared, "hub", &["contents:read"])
        .await
        .expect("a token");
    assert!(!token(&raw).starts_with("vkp_"));
    let grants = w.d.store.list_grants(Some("coder"), true).expect("grants");
    assert!(grants.len() == 1 && !grants[0].proxy_only, "{grants:?}");
}

use super::*;
use crate::config::rules::{Operation, Target};
use crate::config::Config;
use std::path::Path;

fn config() -> Config {
    Config::parse(
        Path::new("config.toml"),
        r#"
[providers.github]
preset = "github"
client_id = "c"
allowed_scopes = ["contents:read", "contents:write"]
[providers.github.proxy]
hosts = { api = "api.github.test", git = "github.test:8443" }

[providers.corp]
issuer = "https://idp.corp"
client_id = "c"
allowed_scopes = ["read"]
"#,
    )
    .expect("config")
}

/// Every provider of `c`, as the broker lists them.
fn all(c: &Config) -> Vec<Arc<Provider>> {
    c.providers.values().cloned().collect()
}

fn t<'a>(method: &'a str, role: &'a str, path: &'a str, query: &'a str) -> Target<'a> {
    Target {
        method,
        role,
        path,
        query,
        graphql: None,
    }
}

#[test]
fn doors_open_provider_hosts_tunnel_the_profiles_and_refuse_the_rest() {
    let c = config();
    let bx = BoxProxy::new(
        "b_1",
        &all(&c),
        vec![("pypi.org".into(), 443)],
        1_800_000_000,
    )
    .expect("proxy");
    match bx.door(&all(&c), "API.github.test", 443) {
        Door::Open { provider, host } => assert_eq!(
            (provider.name.as_str(), host.role.as_str()),
            ("github", "api")
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        bx.door(&all(&c), "github.test", 8443),
        Door::Open { .. }
    ));
    assert!(
        matches!(bx.door(&all(&c), "github.test", 443), Door::Refuse(_)),
        "the configured port only"
    );
    assert!(matches!(bx.door(&all(&c), "pypi.org", 443), Door::Tunnel));
    match bx.door(&all(&c), "evil.example", 443) {
        Door::Refuse(why) => assert!(why.contains("may not reach evil.example:443"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(bx.ca.leaf("api.github.test").is_ok());
    assert!(
        bx.ca.leaf("pypi.org").is_err(),
        "tunnelled hosts get no leaf"
    );
    assert_eq!(
        provider_hosts(&all(&c)),
        vec!["api.github.test", "github.test"]
    );
}

#[test]
fn placeholders_belong_to_their_box() {
    let c = config();
    let bx = BoxProxy::new("b_1", &all(&c), vec![], 1_800_000_000).expect("proxy");
    let other = BoxProxy::new("b_2", &all(&c), vec![], 1_800_000_000).expect("proxy");
    let p = Placeholder {
        provider: "github".into(),
        scopes: vec!["contents:read".into()],
        approval: None,
    };
    let v = bx.mint(p.clone());
    assert_eq!(bx.placeholder(&v), Some(p.clone()));
    assert_eq!(other.placeholder(&v), None);
    assert_eq!(bx.placeholders_for("github"), vec![p]);
    assert!(bx.placeholders_for("corp").is_empty());
}

fn held(scopes: &[&str]) -> Held {
    Held {
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        approval: None,
    }
}

#[test]
fn plans_use_the_first_holding_that_allows_the_request() {
    let c = config();
    let rules = &c.providers["github"].proxy.as_ref().expect("proxy").rules;
    let clone = t("POST", "git", "/o/r.git/git-upload-pack", "");
    let push = t("POST", "git", "/o/r.git/git-receive-pack", "");
    match plan(rules, &clone, &[held(&["contents:read"])]) {
        Plan::Inject { held: h, rule } => {
            assert_eq!(h.scopes, vec!["contents:read"]);
            assert_eq!(rule, "POST git /{owner}/{repo}.git/git-upload-pack");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        plan(rules, &push, &[held(&["contents:read"])]),
        Plan::Refuse {
            would: vec!["contents:write@o/r".into(), "repo@o/r".into()]
        }
    );
    let both = [held(&["contents:read"]), held(&["contents:write"])];
    match plan(rules, &push, &both) {
        Plan::Inject { held: h, .. } => assert_eq!(h.scopes, vec!["contents:write"]),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        plan(rules, &push, &[]),
        Plan::Forward,
        "holding nothing: as it is"
    );
    let del = t("DELETE", "api", "/repos/o/r", "");
    assert_eq!(
        plan(rules, &del, &[held(&["contents:write"])]),
        Plan::Refuse { would: vec![] }
    );
    let mut gq = t("POST", "api", "/graphql", "");
    gq.graphql = Some(Operation::Mutation);
    assert!(matches!(
        plan(rules, &gq, &[held(&["contents:read"])]),
        Plan::Refuse { .. }
    ));
    assert!(matches!(
        plan(rules, &gq, &[held(&["contents:write"])]),
        Plan::Inject { .. }
    ));
    assert!(rules.reads_graphql("api", "/graphql"));
    assert!(!rules.reads_graphql("api", "/repos/o/r"));
}

#[test]
fn first_use_per_rule_then_counts() {
    let c = config();
    let bx = BoxProxy::new("b_1", &all(&c), vec![], 1_800_000_000).expect("proxy");
    assert!(bx.first_use("github", "r1"));
    assert!(!bx.first_use("github", "r1"));
    assert!(!bx.first_use("github", "r1"));
    assert!(bx.first_use("github", "r2"));
    assert_eq!(bx.take_counts(), vec![("github".into(), "r1".into(), 2)]);
    assert!(bx.take_counts().is_empty());
}

#[test]
fn cards_say_the_scopes_in_words_and_what_limits_the_token() {
    use valetkey_ipc::control::Limit;
    let c = Config::parse(
        Path::new("config.toml"),
        r#"
[providers.app]
preset = "github"
client_id = "Iv1.app"
confidential = true
allowed_scopes = ["contents:read", "repo"]
[providers.plain]
preset = "github"
client_id = "Iv1.plain"
allowed_scopes = ["contents:read"]
[providers.wide]
preset = "gitlab"
client_id = "x"
allowed_scopes = ["api"]
allow_full_scope = true
[providers.google]
preset = "google"
client_id = "x"
allowed_scopes = ["email"]
"#,
    )
    .expect("config");
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let app = &c.providers["app"];
    assert_eq!(
        in_words(app, &s(&["contents:read@octo/hello", "contents:read"])),
        vec!["read code in octo/hello", "read code in every repository"]
    );
    assert!(in_words(&c.providers["google"], &s(&["email"])).is_empty());
    assert_eq!(
        action(app, &s(&["contents:read"])),
        "read code in every repository on GitHub"
    );
    assert_eq!(
        action(&c.providers["google"], &s(&["email", "openid"])),
        "use Google with email, openid",
        "no words: the provider and the scopes as they are"
    );
    let facts: valetkey_ipc::methods::BoxFacts = serde_json::from_value(serde_json::json!({
        "id": "b_1", "profile": "p", "network": "proxy", "argv": ["x"], "cwd": "/",
        "program": {"path": "/x", "sha256": "00"}, "entry_sha256": "00"
    }))
    .expect("facts");
    let identity: valetkey_ipc::methods::PeerIdentity = serde_json::from_value(serde_json::json!({
        "uid": 1, "pid": 2, "exe": "/x", "sha256": "00", "start_time": 3, "parents": []
    }))
    .expect("identity");
    let none = crate::caller::Caller::new(1, identity.clone());
    let mut boxed = crate::caller::Caller::new(2, identity.clone());
    boxed.identity.confinement = Some(facts);
    let mut opened = crate::caller::Caller::new(3, identity);
    opened.egress = Some(std::sync::Arc::new(
        BoxProxy::new("a_1", &all(&c), vec![], 1_800_000_000).expect("proxy"),
    ));
    let plain = &c.providers["plain"];
    assert_eq!(
        limit(app, &s(&["contents:read"]), none.proxied()),
        Some(Limit::GithubApp)
    );
    assert_eq!(
        limit(app, &s(&["repo"]), boxed.proxied()),
        Some(Limit::ProxyRules),
        "repo is no App permission"
    );
    assert_eq!(
        limit(plain, &s(&["contents:read"]), boxed.proxied()),
        Some(Limit::ProxyRules)
    );
    assert_eq!(
        limit(plain, &s(&["contents:read"]), opened.proxied()),
        Some(Limit::ProxyRules)
    );
    assert_eq!(limit(plain, &s(&["contents:read"]), none.proxied()), None);
    assert_eq!(
        limit(&c.providers["wide"], &s(&["api"]), none.proxied()),
        Some(Limit::WholeLogin)
    );
    assert_eq!(
        limit(&c.providers["google"], &s(&["email"]), none.proxied()),
        Some(Limit::Provider)
    );
}

#[test]
fn entra_graph_rules_by_scope_and_short_name() {
    let c = Config::parse(
        Path::new("config.toml"),
        r#"
[providers.ms]
preset = "microsoft"
client_id = "x"
allowed_scopes = ["https://graph.microsoft.com/Mail.Read", "Calendars.Read"]
"#,
    )
    .expect("config");
    let p = &c.providers["ms"];
    let rules = &p.proxy.as_ref().expect("graph proxy").rules;
    let mail = vec!["https://graph.microsoft.com/Mail.Read".to_string()];
    let cal = vec!["Calendars.Read".to_string()];
    assert!(rules
        .allows(&mail, &t("GET", "graph", "/v1.0/me/messages/AAMk", ""))
        .is_some());
    assert!(rules
        .allows(&mail, &t("POST", "graph", "/v1.0/me/sendMail", ""))
        .is_none());
    assert!(
        rules
            .allows(&cal, &t("GET", "graph", "/v1.0/me/calendarView", ""))
            .is_some(),
        "a short name takes in the long one"
    );
    assert_eq!(
        rules.would_allow(&t("POST", "graph", "/v1.0/me/sendMail", "")),
        vec!["Mail.Send", "https://graph.microsoft.com/Mail.Send"]
    );
    assert_eq!(in_words(p, &mail), vec!["read your mail"]);
    let identity: valetkey_ipc::methods::PeerIdentity = serde_json::from_value(serde_json::json!({
        "uid": 1, "pid": 2, "exe": "/x", "sha256": "00", "start_time": 3, "parents": []
    }))
    .expect("identity");
    let caller = crate::caller::Caller::new(1, identity);
    assert_eq!(
        limit(p, &mail, caller.proxied()),
        Some(valetkey_ipc::control::Limit::Provider)
    );
}

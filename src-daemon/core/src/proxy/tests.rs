use super::rules::{Operation, Target};
use super::*;
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
    let bx =
        BoxProxy::new("b_1", &c, vec![("pypi.org".into(), 443)], 1_800_000_000).expect("proxy");
    match bx.door(&c, "API.github.test", 443) {
        Door::Open { provider, host } => assert_eq!(
            (provider.name.as_str(), host.role.as_str()),
            ("github", "api")
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        bx.door(&c, "github.test", 8443),
        Door::Open { .. }
    ));
    assert!(
        matches!(bx.door(&c, "github.test", 443), Door::Refuse(_)),
        "the configured port only"
    );
    assert!(matches!(bx.door(&c, "pypi.org", 443), Door::Tunnel));
    match bx.door(&c, "evil.example", 443) {
        Door::Refuse(why) => assert!(why.contains("may not reach evil.example:443"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(bx.ca.leaf("api.github.test").is_ok());
    assert!(
        bx.ca.leaf("pypi.org").is_err(),
        "tunnelled hosts get no leaf"
    );
    assert_eq!(provider_hosts(&c), vec!["api.github.test", "github.test"]);
}

#[test]
fn placeholders_belong_to_their_box() {
    let c = config();
    let bx = BoxProxy::new("b_1", &c, vec![], 1_800_000_000).expect("proxy");
    let other = BoxProxy::new("b_2", &c, vec![], 1_800_000_000).expect("proxy");
    let p = Placeholder {
        provider: "github".into(),
        scopes: vec!["contents:read".into()],
    };
    let v = bx.mint(p.clone());
    assert_eq!(bx.placeholder(&v), Some(p));
    assert_eq!(other.placeholder(&v), None);
}

#[test]
fn plans_follow_the_credential_and_the_grant() {
    let c = config();
    let rules = &c.providers["github"].proxy.as_ref().expect("proxy").rules;
    let ph = |s: &str| {
        Credential::Ours(
            "vkp_x".into(),
            Placeholder {
                provider: "github".into(),
                scopes: vec![s.into()],
            },
        )
    };
    let clone = t("POST", "git", "/o/r.git/git-upload-pack", "");
    let push = t("POST", "git", "/o/r.git/git-receive-pack", "");
    match plan(rules, &clone, &ph("contents:read"), None) {
        Plan::Inject { scopes, rule } => {
            assert_eq!(scopes, vec!["contents:read"]);
            assert_eq!(rule, "POST git /{owner}/{repo}.git/git-upload-pack");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        plan(rules, &push, &ph("contents:read"), None),
        Plan::Refuse {
            would: vec!["contents:write@o/r".into(), "repo@o/r".into()]
        }
    );
    assert!(matches!(
        plan(rules, &push, &ph("contents:write"), None),
        Plan::Inject { .. }
    ));
    let grant = vec!["contents:read".to_string()];
    assert!(
        matches!(
            plan(rules, &clone, &Credential::None, Some(&grant)),
            Plan::Inject { .. }
        ),
        "no credential, a grant: injected"
    );
    assert!(matches!(
        plan(rules, &push, &Credential::None, Some(&grant)),
        Plan::Refuse { .. }
    ));
    assert_eq!(
        plan(rules, &push, &Credential::None, None),
        Plan::Forward,
        "anonymous, no grant: as it is"
    );
    assert_eq!(
        plan(rules, &push, &Credential::Theirs, Some(&grant)),
        Plan::Forward,
        "their own credential"
    );
    let del = t("DELETE", "api", "/repos/o/r", "");
    assert_eq!(
        plan(rules, &del, &ph("contents:write"), None),
        Plan::Refuse { would: vec![] }
    );
    let mut gq = t("POST", "api", "/graphql", "");
    gq.graphql = Some(Operation::Mutation);
    assert!(matches!(
        plan(rules, &gq, &ph("contents:read"), None),
        Plan::Refuse { .. }
    ));
    assert!(matches!(
        plan(rules, &gq, &ph("contents:write"), None),
        Plan::Inject { .. }
    ));
    assert!(rules.reads_graphql("api", "/graphql"));
    assert!(!rules.reads_graphql("api", "/repos/o/r"));
}

#[test]
fn first_use_per_rule_then_counts() {
    let c = config();
    let bx = BoxProxy::new("b_1", &c, vec![], 1_800_000_000).expect("proxy");
    assert!(bx.first_use("github", "r1"));
    assert!(!bx.first_use("github", "r1"));
    assert!(!bx.first_use("github", "r1"));
    assert!(bx.first_use("github", "r2"));
    assert_eq!(bx.take_counts(), vec![("github".into(), "r1".into(), 2)]);
    assert!(bx.take_counts().is_empty());
}

use valetkey_ipc::control::{McpServer, Registration};

use super::*;

fn server() -> McpServer {
    McpServer {
        name: "notes".into(),
        url: "https://mcp.ex.com/mcp".into(),
        resource: "https://mcp.ex.com/mcp".into(),
        issuer: "https://auth.ex.com/".into(),
        authorization_endpoint: "https://auth.ex.com/authorize".into(),
        token_endpoint: "https://auth.ex.com/token".into(),
        revocation_endpoint: None,
        scopes: vec!["notes:read".into(), "offline_access".into()],
        scopes_supported: vec!["notes:read".into(), "notes:write".into()],
        client_id: "c1".into(),
        registration: Registration::Dynamic,
        confidential: false,
        ca_file: None,
        handshake: None,
    }
}

#[test]
fn a_server_is_a_provider_bound_to_its_resource() {
    let p = provider_of(&server()).expect("valid");
    assert_eq!(p.resource.as_deref(), Some("https://mcp.ex.com/mcp"));
    assert_eq!(p.allowed_scopes, ["notes:read", "notes:write"]);
    assert_eq!(p.login_scopes, ["notes:read", "offline_access"]);
    assert_eq!(
        p.keychain_key,
        "mcp:https://auth.ex.com https://mcp.ex.com/mcp"
    );
    assert!(
        p.issuer.is_none(),
        "endpoints are used as discovered, not rediscovered"
    );
    assert!(p.mcp.is_some());
    let scopes = ["notes:read".to_string()];
    assert_eq!(
        crate::proxy::in_words(&p, &scopes),
        ["call the tools of notes"],
        "an MCP card has a Lets it line"
    );
    assert_eq!(crate::proxy::action(&p, &scopes), "call the tools of notes");
    // The proxy opens the server's host and allows its endpoint alone.
    let px = p.proxy.as_ref().expect("proxied");
    let host = px.host("mcp.ex.com", 443).expect("its host");
    assert_eq!(host.role, "mcp");
    let t = |path: &'static str| crate::config::rules::Target {
        method: "POST",
        role: "mcp",
        path,
        query: "",
        graphql: None,
    };
    let held = ["notes:read".to_owned()];
    assert!(px.rules.allows(&held, &t("/mcp")).is_some());
    assert!(px.rules.allows(&held, &t("/mcp/other")).is_none());
    assert!(px.rules.allows(&held, &t("/")).is_none());
}

#[test]
fn a_loopback_http_server_has_no_proxy_section() {
    let mut s = server();
    s.url = "http://127.0.0.1:3000/mcp".into();
    s.resource = "http://127.0.0.1:3000/mcp".into();
    let p = provider_of(&s).expect("valid");
    assert!(p.proxy.is_none(), "the egress proxy opens TLS only");
}

#[test]
fn a_bad_record_is_refused_with_what_is_wrong() {
    type Edit = fn(&mut McpServer);
    let cases: Vec<(Edit, &str)> = vec![
        (|s| s.name = "Notes!".into(), "must be 1 to 64"),
        (|s| s.url = "http://mcp.ex.com/mcp".into(), "must be https"),
        (
            |s| s.resource = "https://other.ex.com/mcp".into(),
            "does not cover",
        ),
        (|s| s.token_endpoint = "not a url".into(), "token_endpoint"),
        (
            |s| {
                s.scopes = vec![];
                s.scopes_supported = vec![];
            },
            "names no scopes",
        ),
        (|s| s.client_id = String::new(), "client_id"),
    ];
    for (edit, want) in cases {
        let mut s = server();
        edit(&mut s);
        let e = provider_of(&s).expect_err(want);
        assert!(e.contains(want), "{e} should say {want}");
    }
    let mut local = server();
    local.url = "http://127.0.0.1:3000/mcp".into();
    local.resource = "http://127.0.0.1:3000/mcp".into();
    assert!(
        provider_of(&local).is_ok(),
        "plain http on loopback is fine"
    );
}

#[test]
fn names_are_provider_names() {
    assert!(check_name("notes-1.x_y").is_ok());
    for bad in ["", "Notes", "a b", "a/b", &"x".repeat(65)] {
        assert!(check_name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn the_metadata_document_names_itself_and_a_loopback_redirect() {
    let url = url::Url::parse("https://valetkey.example/client.json").expect("url");
    let doc = register::metadata_document(&url);
    assert_eq!(doc["client_id"], url.as_str());
    assert_eq!(doc["redirect_uris"][0], register::REDIRECT_URI);
    assert_eq!(doc["token_endpoint_auth_method"], "none");
    assert!(register::check_metadata_url(&url).is_ok());
    for bad in [
        "http://valetkey.example/c.json",
        "https://valetkey.example/",
    ] {
        let u = url::Url::parse(bad).expect("url");
        assert!(register::check_metadata_url(&u).is_err(), "{bad}");
    }
}

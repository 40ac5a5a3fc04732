//! GitHub's own ways to narrow, and to make the app that narrows.
//!
//! Narrowing: a GitHub App may turn one of its user tokens into a token
//! limited to some permissions and repositories (`POST
//! /applications/{client_id}/token/scoped`, authenticated with the app's
//! client id and secret). Valet Key asks for exactly the permissions of
//! the scopes in force (`contents:read` is `{"contents": "read"}`) and,
//! when every scope names a repository of one owner
//! (`contents:read@octo/hello`), exactly those repositories.
//!
//! Making the app: GitHub's app-manifest flow. A page on the loopback
//! posts a manifest (name, permissions, the loopback callback) to
//! GitHub's "new app" page; the person confirms there; GitHub redirects
//! back with a code, which `POST /app-manifests/{code}/conversions` turns
//! into the app's id, client id and client secret. The secret goes to the
//! keychain; the app's private key and webhook secret, which Valet Key
//! does not use, are dropped unseen.

use serde_json::{json, Map, Value};

use super::UpstreamError;
use crate::config::Provider;
use crate::secret::Secret;

/// The body of a `token/scoped` request for `scopes`, without the token;
/// `None` if a scope is not a GitHub App permission (`repo`).
pub fn scoped_body(scopes: &[String]) -> Option<Value> {
    let mut perms = Map::new();
    let mut repos: Vec<(&str, &str)> = vec![];
    let mut every_limited = true;
    for s in scopes {
        let base = match crate::scope::limited(s) {
            Some((scope, owner, repo)) => {
                repos.push((owner, repo));
                scope
            }
            None => {
                every_limited = false;
                s.as_str()
            }
        };
        let (name, level) = base.split_once(':')?;
        let known = !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if !known || !matches!(level, "read" | "write") {
            return None;
        }
        if perms.get(name).and_then(Value::as_str) != Some("write") {
            perms.insert(name.into(), level.into());
        }
    }
    let mut body = json!({ "permissions": perms });
    let owner = repos.first().map(|r| r.0);
    if every_limited && owner.is_some() && repos.iter().all(|r| Some(r.0) == owner) {
        let mut names: Vec<&str> = repos.iter().map(|r| r.1).collect();
        names.sort_unstable();
        names.dedup();
        body["target"] = json!(owner);
        body["repositories"] = json!(names);
    }
    Some(body)
}

/// Asks GitHub at `url` for a token like `token`, narrowed as `body` says.
pub async fn scoped_token(
    client: &reqwest::Client,
    p: &Provider,
    secret: &Secret,
    url: &str,
    token: &Secret,
    body: &Value,
) -> Result<Secret, UpstreamError> {
    let mut body = body.clone();
    body["access_token"] = json!(token.expose());
    let sent = client
        .post(url)
        .basic_auth(&p.client_id, Some(secret.expose()))
        .header("Accept", "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28")
        .json(&body)
        .send()
        .await;
    drop(body);
    let unavailable = |detail: String| UpstreamError::Unavailable {
        provider: p.name.clone(),
        detail,
    };
    let resp = sent.map_err(|e| unavailable(format!("token/scoped: {}", e.without_url())))?;
    let status = resp.status();
    if status.is_server_error() || status.as_u16() == 429 {
        return Err(unavailable(format!("token/scoped: HTTP {status}")));
    }
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    match (status.is_success(), v.get("token").and_then(Value::as_str)) {
        (true, Some(t)) => Ok(Secret::new(t.to_owned())),
        _ => Err(UpstreamError::Rejected {
            provider: p.name.clone(),
            error: format!("token/scoped answered HTTP {}", status.as_u16()),
            detail: v.get("message").and_then(Value::as_str).map(str::to_owned),
        }),
    }
}

/// A GitHub App made by the manifest flow: what Valet Key keeps of it.
pub struct AppCreated {
    /// The app's id.
    pub id: u64,
    /// Its URL name.
    pub slug: String,
    /// Its OAuth client id (`Iv1.…`).
    pub client_id: String,
    /// Its client secret.
    pub client_secret: Secret,
    /// Its page on GitHub.
    pub html_url: String,
}

/// The web and API bases of provider `p`'s GitHub (the `git` and `api`
/// host roles of its proxy section).
pub fn bases(p: &Provider) -> Option<(String, String)> {
    let x = p.proxy.as_ref()?;
    let url = |role: &str| {
        x.hosts
            .iter()
            .find(|h| h.role == role)
            .map(|h| match h.port {
                443 => format!("https://{}", h.host),
                port => format!("https://{}:{port}", h.host),
            })
    };
    Some((url("git")?, url("api")?))
}

/// The manifest of an app named `name` that sends people back to
/// `redirect`: the permissions Valet Key's rules know, user tokens that
/// expire, no webhook, private.
pub fn manifest(name: &str, redirect: &str) -> Value {
    json!({
        "name": name,
        "url": "https://github.com/settings/apps",
        "redirect_url": redirect,
        "callback_urls": ["http://127.0.0.1/callback"],
        "request_oauth_on_install": false,
        "public": false,
        "default_permissions": {
            "metadata": "read",
            "contents": "write",
            "issues": "write",
            "pull_requests": "write"
        },
        "default_events": []
    })
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The loopback page that posts `manifest` to `action` (on its own, or
/// with one click where scripts do not run).
pub fn start_page(action: &str, manifest: &Value) -> String {
    format!(
        "<!doctype html><meta charset=utf-8><title>Valet Key: create a GitHub App</title>\n\
         <form id=f method=post action=\"{}\"><input type=hidden name=manifest value=\"{}\">\n\
         <p>Valet Key is about to ask GitHub to create your GitHub App.</p><button>Continue to GitHub</button></form>\n\
         <script>document.getElementById('f').submit()</script>\n",
        html_escape(action),
        html_escape(&manifest.to_string())
    )
}

/// Runs the manifest flow against provider `p`'s GitHub and returns the
/// app made (for an organization with `org`).
pub async fn create_app(
    up: &super::HttpUpstream,
    p: &Provider,
    name: &str,
    org: Option<&str>,
    open: bool,
    timeout: std::time::Duration,
) -> Result<AppCreated, super::login::LoginError> {
    let config = |detail: &str| UpstreamError::Config {
        provider: p.name.clone(),
        detail: detail.into(),
    };
    let (web, api) = bases(p).ok_or_else(|| config("needs [providers.NAME.proxy] hosts with the roles git (github.com) and api (api.github.com)"))?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let port = listener.local_addr()?.port();
    let mut b = [0u8; 16];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    let state = crate::attest::hex(&b);
    let action = match org {
        Some(o) => format!("{web}/organizations/{o}/settings/apps/new?state={state}"),
        None => format!("{web}/settings/apps/new?state={state}"),
    };
    let page = start_page(
        &action,
        &manifest(name, &format!("http://127.0.0.1:{port}/created")),
    );
    // The start page holds the state: only the browser we open knows its
    // address (a process that finds the port cannot guess `k`).
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    let key = crate::attest::hex(&b);
    let start = format!("http://127.0.0.1:{port}/start?k={key}");
    eprintln!("Create the GitHub App in your browser. If it does not open, visit:\n\n  {start}\n");
    if open {
        super::login::open_browser(&start);
    }
    let code = tokio::time::timeout(timeout, wait_for_app(listener, &page, &key, &state))
        .await
        .map_err(|_| super::login::LoginError::Timeout(timeout))??;
    let client = up.client(p)?;
    Ok(convert(&client, p, &api, &code).await?)
}

/// Serves the manifest flow's two pages until GitHub redirects back with
/// our `state`: `/start` once and only with its key `k` (the page holds
/// the state), `/created` with any other state `400` and ignored.
async fn wait_for_app(
    listener: tokio::net::TcpListener,
    page: &str,
    key: &str,
    state: &str,
) -> Result<String, super::login::LoginError> {
    use super::loopback::{not_ours, param, reply, state_is, Requests};
    let mut requests = Requests::serve(listener);
    let mut started = false;
    loop {
        let (sock, url) = requests.next().await?;
        match url.path() {
            "/start" if !started && param(&url, "k").as_deref() == Some(key) => {
                started = true;
                reply(sock, "200 OK", "text/html", page).await;
            }
            "/start" => {
                let why =
                    "Valet Key: this page was already opened, or its address is not this one.";
                reply(sock, "410 Gone", "text/plain", why).await
            }
            "/created" if !state_is(&url, state) => not_ours(sock).await,
            "/created" => match param(&url, "code") {
                Some(c) => {
                    reply(
                        sock,
                        "200 OK",
                        "text/plain",
                        "Valet Key: the GitHub App was created. You can close this tab.",
                    )
                    .await;
                    return Ok(c);
                }
                None => reply(sock, "400 Bad Request", "text/plain", "no code").await,
            },
            _ => reply(sock, "404 Not Found", "text/plain", "").await,
        }
    }
}

/// `POST /app-manifests/{code}/conversions`: the app's credentials.
async fn convert(
    client: &reqwest::Client,
    p: &Provider,
    api: &str,
    code: &str,
) -> Result<AppCreated, UpstreamError> {
    let url = format!("{api}/app-manifests/{code}/conversions");
    let unavailable = |detail: String| UpstreamError::Unavailable {
        provider: p.name.clone(),
        detail,
    };
    let resp = client
        .post(&url)
        .header("Accept", "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28")
        .send()
        .await
        .map_err(|e| unavailable(format!("app-manifests conversions: {}", e.without_url())))?;
    let status = resp.status();
    let mut v: Value = resp.json().await.unwrap_or(Value::Null);
    // Never kept: the app's private key and webhook secret.
    for k in ["pem", "webhook_secret"] {
        if let Some(o) = v.as_object_mut() {
            o.remove(k);
        }
    }
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    match (status.is_success(), s("client_id"), s("client_secret")) {
        (true, Some(client_id), Some(secret)) => Ok(AppCreated {
            id: v.get("id").and_then(Value::as_u64).unwrap_or(0),
            slug: s("slug").unwrap_or_default(),
            client_id,
            client_secret: Secret::new(secret),
            html_url: s("html_url").unwrap_or_default(),
        }),
        _ => Err(UpstreamError::Rejected {
            provider: p.name.clone(),
            error: format!(
                "app-manifests conversions answered HTTP {}",
                status.as_u16()
            ),
            detail: s("message"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn permissions_and_one_owners_repositories() {
        let b = scoped_body(&v(&[
            "contents:read@octo/hello",
            "metadata:read@octo/hello",
            "contents:write@octo/world",
        ]))
        .expect("body");
        assert_eq!(
            b["permissions"],
            json!({"contents": "write", "metadata": "read"})
        );
        assert_eq!(b["target"], "octo");
        assert_eq!(b["repositories"], json!(["hello", "world"]));
        let b = scoped_body(&v(&["contents:read", "issues:write"])).expect("body");
        assert_eq!(
            b["permissions"],
            json!({"contents": "read", "issues": "write"})
        );
        assert!(
            b.get("repositories").is_none(),
            "not limited: every repository"
        );
        let b = scoped_body(&v(&["contents:read@a/x", "contents:read@b/y"])).expect("body");
        assert!(b.get("target").is_none(), "two owners: permissions only");
        let b = scoped_body(&v(&["contents:read@a/x", "metadata:read"])).expect("body");
        assert!(
            b.get("repositories").is_none(),
            "one scope for every repository"
        );
        assert!(scoped_body(&v(&["repo"])).is_none());
        assert!(scoped_body(&v(&["contents:admin"])).is_none());
    }

    #[test]
    fn the_start_page_posts_the_manifest_escaped() {
        let m = manifest("valetkey \"<x>\"", "http://127.0.0.1:1/created");
        assert_eq!(m["default_permissions"]["contents"], "write");
        let page = start_page("https://github.com/settings/apps/new?state=s&x=1", &m);
        assert!(
            page.contains("action=\"https://github.com/settings/apps/new?state=s&amp;x=1\""),
            "{page}"
        );
        assert!(
            page.contains("&quot;name&quot;:&quot;valetkey \\&quot;&lt;x&gt;\\&quot;&quot;"),
            "{page}"
        );
        assert!(!page.contains("<x>"));
    }
}

//! Narrowing at GitHub itself: a GitHub App may turn one of its user
//! tokens into a token limited to some permissions and repositories
//! (`POST /applications/{client_id}/token/scoped`, authenticated with the
//! app's client id and secret). Valet Key asks for exactly the permissions
//! of the scopes in force (`contents:read` is `{"contents": "read"}`) and,
//! when every scope names a repository of one owner
//! (`contents:read@octo/hello`), exactly those repositories.

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
}

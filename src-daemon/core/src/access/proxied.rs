//! One request through a box's proxy, against the broker: which
//! credential it carries, what the box holds, the token to write in (by
//! the `token.get` path), and the audit records.
//!
//! Every refusal is recorded (`proxy.request`, outcome
//! `refused:request_not_granted` or `refused:host_not_allowed`, with the
//! method, host, path and status in `detail`), and so counted by the
//! monitor. The first allowed request per box and rule is recorded with
//! its status; later ones are counted and written as one record a
//! minute, and when the proxy ends. No header, body, query string or
//! token goes into a record.

use valetkey_ipc::methods::{TokenPlaceholderParams, TokenPlaceholderResult};
use valetkey_ipc::{ErrorCode, RpcError};

use crate::broker::Shared;
use crate::caller::Greeted;
use crate::config::proxy::ProxyHost;
use crate::config::rules::Target;
use crate::config::Provider;
use crate::error::BrokerError;
use crate::proxy::{placeholder, plan, BoxProxy, Held, Plan};
use crate::store::AuditRecord;

/// A request to a provider's host, as the proxy hands it over.
#[derive(Debug, Clone)]
pub struct Asked<'a> {
    /// Method, host role, path, query, GraphQL operation.
    pub target: Target<'a>,
    /// Its `Authorization` value, if any.
    pub authorization: Option<&'a str>,
    /// For a remote MCP server's endpoint, the JSON-RPC request read from
    /// the body (policy input `mcp`).
    pub mcp: Option<std::sync::Arc<valetkey_ipc::policy::PolicyMcp>>,
}

/// What the proxy does with the request.
pub enum Answer {
    /// Pass it on unchanged.
    Forward,
    /// Pass it on with this `Authorization` value (it holds a token);
    /// `rule` allowed it and `scopes` were used.
    Authorize {
        /// The header value.
        value: crate::secret::Secret,
        /// The rule.
        rule: String,
        /// The scopes.
        scopes: Vec<String>,
        /// The cached token's id (to drop it, and only it, when the
        /// server says it is no longer valid).
        token_id: u64,
        /// What overwrites every form of the token in the response.
        masker: crate::proxy::mask::Masker,
    },
    /// Answer it with this status and JSON body.
    Refuse {
        /// 403, or 502/503 when the token could not be had.
        status: u16,
        /// `{"error": {code, name, message, …}}`.
        body: String,
    },
}

/// Handles `token.placeholder`: the steps of `token.get` (waiting for
/// the user), then a placeholder of this box's instead of the token.
pub async fn placeholder(
    d: &Shared,
    s: Greeted<'_>,
    p: TokenPlaceholderParams,
) -> Result<TokenPlaceholderResult, BrokerError> {
    placeholder_waiting(d, s, p, true).await
}

/// [`placeholder`], waiting for the user only with `wait` (else a new
/// consent is `consent_required`, as for `token.get`).
pub async fn placeholder_waiting(
    d: &Shared,
    s: Greeted<'_>,
    p: TokenPlaceholderParams,
    wait: bool,
) -> Result<TokenPlaceholderResult, BrokerError> {
    let invalid = |m: String| BrokerError::rpc(ErrorCode::InvalidParams, m);
    let bx = s
        .identity
        .confinement
        .as_ref()
        .and_then(|f| d.boxes.get(&f.id))
        .and_then(|b| b.proxy.clone())
        .or_else(|| s.egress.clone())
        .ok_or_else(|| invalid("token.placeholder needs an egress proxy: inside a box started with --net proxy (valetkey run --net proxy -- …), or after proxy.open on this connection".into()))?;
    let provider = d.provider(&p.provider).ok_or_else(|| {
        BrokerError::rpc(
            ErrorCode::UnknownProvider,
            format!("no provider named {:?} is configured", p.provider),
        )
    })?;
    let Some(px) = provider.proxy.as_ref() else {
        return Err(invalid(format!(
            "{} has no [providers.{}.proxy] hosts and rules, so the proxy cannot use a placeholder for it; use token.get",
            provider.name, provider.name
        )));
    };
    let (placeholder, scopes) = mint(d, &bx, s, &provider.name, &p.scopes, wait).await?;
    Ok(TokenPlaceholderResult {
        placeholder,
        provider: provider.name.clone(),
        scopes,
        hosts: px
            .hosts
            .iter()
            .map(|h| format!("{}:{}", h.host, h.port))
            .collect(),
    })
}

/// The steps of `token.get` for `scopes` (waiting for the user with
/// `wait`), then a placeholder of `bx` for what was granted.
async fn mint(
    d: &Shared,
    bx: &BoxProxy,
    s: Greeted<'_>,
    provider: &str,
    scopes: &[String],
    wait: bool,
) -> Result<(String, Vec<String>), BrokerError> {
    let (tok, consent) =
        crate::access::token::for_proxy(d, s, provider, scopes, wait, None, None).await?;
    let scopes = tok.0.scopes.clone();
    drop(tok);
    // Without a standing grant, the one-time approval covers the box's
    // requests while it runs.
    let granted = d
        .store
        .live_grant(s.id, provider, s.identity.binding())?
        .is_some();
    let approval = consent.filter(|_| !granted).map(|id| (id, scopes.clone()));
    let placeholder = bx.mint(crate::proxy::Placeholder {
        provider: provider.to_owned(),
        scopes: scopes.clone(),
        approval,
    });
    Ok((placeholder, scopes))
}

/// For a request the proxy passed on with no credential, because the box
/// holds nothing for `provider`, and that the provider turned away with
/// `status` (401, or 404 as GitHub answers for a private repository):
/// the scope the box should ask the user for. That is the narrowest
/// scope whose rules allow the request, bound to its repository where
/// the rule names one (`contents:read@octo/hello`), and only once per
/// box and provider (a hostile box could otherwise raise a card for each
/// repository it names). A public repository is answered without a card.
pub fn unheld_scope(
    d: &Shared,
    bx: &BoxProxy,
    s: Greeted<'_>,
    provider: &Provider,
    a: &Asked<'_>,
    status: u16,
) -> Option<String> {
    if !matches!(status, 401 | 404) || a.authorization.is_some() || provider.mcp.is_some() {
        return None;
    }
    let px = provider.proxy.as_ref()?;
    match held(d, bx, s, &provider.name, a) {
        Ok(Some((h, _))) if h.is_empty() => {}
        _ => return None,
    }
    let scope = px.rules.narrowest(&a.target, |x| {
        provider.allowed_scopes.iter().any(|y| y == x)
    })?;
    bx.first_ask(&provider.name).then_some(scope)
}

/// Asks the user for `scope` on the box's behalf (the consent card of
/// `token.placeholder`, waiting), and on Allow keeps a placeholder in
/// `bx`, so that the request, sent again, has the token written in.
pub async fn ask_unheld(
    d: &Shared,
    bx: &BoxProxy,
    s: Greeted<'_>,
    provider: &Provider,
    scope: &str,
) -> Result<(), BrokerError> {
    mint(d, bx, s, &provider.name, &[scope.to_owned()], true)
        .await
        .map(drop)
}

/// What may be written into a request, and the placeholder it carried.
type Holdings = (Vec<Held>, Option<String>);

/// What the box holds that may be written into `a`: the placeholder it
/// carries (`None` if it carries another credential: it is passed on as
/// it is), else every placeholder of the box for this provider and its
/// agent's grant.
fn held(
    d: &Shared,
    bx: &BoxProxy,
    s: Greeted<'_>,
    provider: &str,
    a: &Asked<'_>,
) -> Result<Option<Holdings>, BrokerError> {
    if let Some(auth) = a.authorization {
        return Ok(
            match placeholder::find(auth).and_then(|v| Some((bx.placeholder(&v)?, v))) {
                Some((p, v)) if p.provider == provider => Some((vec![p.into()], Some(v))),
                _ => None,
            },
        );
    }
    let mut v: Vec<Held> = bx
        .placeholders_for(provider)
        .into_iter()
        .map(Held::from)
        .collect();
    if let Some(g) = d.store.live_grant(s.id, provider, s.identity.binding())? {
        v.push(Held {
            scopes: g.scopes.clone(),
            approval: None,
        });
    }
    Ok(Some((v, None)))
}

/// The error body of a refusal.
pub fn body(e: &RpcError) -> String {
    let mut err = serde_json::json!({
        "code": e.code,
        "name": ErrorCode::from_code(e.code).map_or("internal", ErrorCode::name),
        "message": e.message,
    });
    if let Some(serde_json::Value::Object(data)) = &e.data {
        for (k, v) in data {
            if k != "name" {
                err[k] = v.clone();
            }
        }
    }
    serde_json::json!({ "error": err }).to_string()
}

/// Decides `a`, sent to `host` of `provider` from the box whose agent is
/// `s`, and fetches the token it needs.
pub async fn decide(
    d: &Shared,
    bx: &BoxProxy,
    s: Greeted<'_>,
    provider: &Provider,
    host: &ProxyHost,
    a: &Asked<'_>,
) -> Answer {
    let Some(px) = provider.proxy.as_ref() else {
        return Answer::Forward;
    };
    let (holdings, carried) = match held(d, bx, s, &provider.name, a) {
        Ok(Some(h)) => h,
        Ok(None) => return Answer::Forward,
        Err(e) => return unavailable(e.into()),
    };
    let (h, rule) = match plan(&px.rules, &a.target, &holdings) {
        Plan::Forward => return Answer::Forward,
        Plan::Refuse { would } => {
            return not_granted(d, s, provider, host, a, carried.is_some(), would)
        }
        Plan::Inject { held, rule } => (held, rule),
    };
    let got = crate::access::token::for_proxy(
        d,
        s,
        &provider.name,
        &h.scopes,
        false,
        h.approval.clone(),
        a.mcp.clone(),
    )
    .await;
    let tok = match got {
        Ok((t, _)) => t,
        Err(e) => return unavailable(e.into()),
    };
    let token = tok.0.token.expose();
    let token_id = tok.0.id;
    let value = match (&carried, a.authorization) {
        (Some(v), Some(auth)) => placeholder::swap(auth, v, token),
        _ => Some(placeholder::inject(&host.auth, token)),
    };
    match value {
        Some(v) => Answer::Authorize {
            masker: masker_for(token, &v, carried.as_deref()),
            value: crate::secret::Secret::new(v),
            rule,
            scopes: h.scopes,
            token_id,
        },
        None => Answer::Forward,
    }
}

/// The masker of a response to a request that carried `value` (holding
/// `token`): the token and the header's credential part (the scheme is
/// left as it was: `Bearer vkp_…`), masked with the placeholder the box
/// sent (or a stand-in of the same look).
fn masker_for(token: &str, value: &str, placeholder: Option<&str>) -> crate::proxy::mask::Masker {
    let cred = value.split_once(' ').map_or(value, |(_, c)| c);
    crate::proxy::mask::Masker::new(&[token, cred], placeholder.unwrap_or(""))
}

/// The token could not be had: the agent is told why, as `token.get`
/// would tell it.
fn unavailable(e: RpcError) -> Answer {
    let status = match ErrorCode::from_code(e.code) {
        Some(ErrorCode::ProviderUnavailable) => 502,
        Some(ErrorCode::StateUnavailable | ErrorCode::AuditUnavailable | ErrorCode::Internal) => {
            503
        }
        _ => 403,
    };
    Answer::Refuse {
        status,
        body: body(&e),
    }
}

fn action_of(method: &str) -> &'static str {
    match method {
        "GET" | "HEAD" | "OPTIONS" => "read",
        "DELETE" => "delete",
        _ => "write",
    }
}

/// A `proxy.request` record about `s`'s box.
fn record(s: Greeted<'_>, method: &str, what: String, status: u16) -> AuditRecord {
    let mut rec = crate::audit::about(&s, "proxy.request");
    rec.action = Some(action_of(method).into());
    let mut what = what;
    what.truncate(300);
    rec.detail = Some(format!("{method} {what} -> {status}"));
    rec
}

fn not_granted(
    d: &Shared,
    s: Greeted<'_>,
    provider: &Provider,
    host: &ProxyHost,
    a: &Asked<'_>,
    placeholder: bool,
    would: Vec<String>,
) -> Answer {
    let t = &a.target;
    let held = if placeholder {
        "the placeholder's scopes"
    } else {
        "the box's placeholders and grant"
    };
    let hint = match would.first() {
        Some(w) => format!(
            "{} would allow it: start the box with --env VAR={}:{w}, or grant it",
            provider.name, provider.name
        ),
        None => format!(
            "no rule of {} allows it; add one to [providers.{}.proxy.rules]",
            provider.name, provider.name
        ),
    };
    let e = RpcError::new(
        ErrorCode::RequestNotGranted,
        format!(
            "{held} on {} do not allow {} {}{}; {hint}",
            provider.name, t.method, host.host, t.path
        ),
    )
    .with("would_allow", &would);
    let mut rec = record(s, t.method, format!("{}{}", host.host, t.path), 403);
    rec.provider = Some(provider.name.clone());
    rec.outcome = format!("refused:{}", ErrorCode::RequestNotGranted.name());
    let _ = crate::observe::record(d, rec);
    Answer::Refuse {
        status: 403,
        body: body(&e),
    }
}

/// Records a request refused before any rule was matched, because its
/// path cannot be matched one way only ([`crate::proxy::canonical`]),
/// and returns the refusal's body.
pub fn malformed(
    d: &Shared,
    s: Greeted<'_>,
    method: &str,
    host: &str,
    path: &str,
    why: &str,
) -> String {
    let e = RpcError::new(
        ErrorCode::RequestMalformed,
        format!("{why}; the proxy matches rules on plain paths only and sends each one on as it was checked: send {method} {host} with the path written out (no . or .. segments, nothing percent-encoded that means structure)"),
    );
    let mut rec = record(s, method, format!("{host}{path}"), 400);
    rec.outcome = format!("refused:{}", ErrorCode::RequestMalformed.name());
    let _ = crate::observe::record(d, rec);
    body(&e)
}

/// Records a refused host (`CONNECT` or an absolute-form request) and
/// returns the refusal's body.
pub fn host_refused(
    d: &Shared,
    s: Greeted<'_>,
    method: &str,
    host: &str,
    port: u16,
    why: &str,
) -> String {
    let e = RpcError::new(ErrorCode::HostNotAllowed, why).with("host", format!("{host}:{port}"));
    let mut rec = record(s, method, format!("{host}:{port}"), 403);
    rec.outcome = format!("refused:{}", ErrorCode::HostNotAllowed.name());
    let _ = crate::observe::record(d, rec);
    body(&e)
}

/// An allowed request, once its status is known: the first per box and
/// rule is recorded, later ones counted (the token's hand-out itself was
/// recorded, fail closed, before it went in).
pub struct Allowed<'a> {
    /// The provider.
    pub provider: &'a str,
    /// Its host.
    pub host: &'a str,
    /// The rule that allowed it.
    pub rule: &'a str,
    /// The scopes used.
    pub scopes: &'a [String],
}

/// Records `a` with `status` if it is the first of its rule in this box.
pub fn allowed(
    d: &Shared,
    bx: &BoxProxy,
    s: Greeted<'_>,
    t: &Target<'_>,
    a: &Allowed<'_>,
    status: u16,
) {
    if !bx.first_use(a.provider, a.rule) {
        return;
    }
    let mut rec = record(s, t.method, format!("{}{}", a.host, t.path), status);
    rec.provider = Some(a.provider.into());
    rec.scopes = a.scopes.to_vec();
    rec.rule = Some(a.rule.into());
    rec.outcome = "allowed".into();
    let _ = crate::observe::record(d, rec);
}

/// Writes the allowed requests counted since their first record (every
/// minute, and when the proxy ends).
pub fn flush(d: &Shared, bx: &BoxProxy, s: Greeted<'_>) {
    for (provider, rule, n) in bx.take_counts() {
        let mut rec = crate::audit::about(&s, "proxy.request");
        rec.provider = Some(provider);
        rec.rule = Some(rule);
        rec.outcome = "allowed".into();
        rec.detail = Some(format!("{n} more allowed requests under this rule"));
        crate::record::record_best_effort(d, rec);
    }
}

/// Records a `tools/call` to an MCP server (one record per call: the
/// server, the tool, the agent's chain and the status; never the
/// arguments or the result).
pub fn mcp_called(d: &Shared, s: Greeted<'_>, m: &valetkey_ipc::policy::PolicyMcp, status: u16) {
    let Some(tool) = &m.tool else {
        return;
    };
    let mut rec = crate::audit::about(&s, "mcp.call");
    rec.provider = Some(m.server.clone());
    let mut what = format!("{} {tool} -> {status}", m.method);
    what.truncate(300);
    rec.detail = Some(what);
    rec.outcome = if status < 400 {
        "allowed".into()
    } else {
        format!("status:{status}")
    };
    crate::record::record_best_effort(d, rec);
}

/// A server answered `403 insufficient_scope` asking for `wanted`: asks
/// the user (a consent card naming the server, the scopes and the tool),
/// makes the login hold them ([`crate::mcp::stepup`]) and widens the
/// placeholder the request carried, so the proxy can send it again. An
/// agent whose grant already covers them is not asked.
pub async fn step_up(
    d: &Shared,
    bx: &BoxProxy,
    s: Greeted<'_>,
    provider: &Provider,
    a: &Asked<'_>,
    wanted: &[String],
) -> Result<(), BrokerError> {
    let carried = a
        .authorization
        .and_then(placeholder::find)
        .and_then(|v| Some((bx.placeholder(&v)?, v)));
    let grant = d
        .store
        .live_grant(s.id, &provider.name, s.identity.binding())?;
    let held: Vec<String> = match (&carried, &grant) {
        (Some((p, _)), _) => p.scopes.clone(),
        (None, Some(g)) => g.scopes.clone(),
        (None, None) => vec![],
    };
    let mut scopes = crate::scope::ScopeSet::new(held.iter().chain(wanted).cloned()).to_vec();
    scopes.retain(|x| x != "offline_access");
    if let Some(bad) = scopes.iter().find(|x| !provider.allowed_scopes.contains(x)) {
        return Err(BrokerError::rpc(
            ErrorCode::ScopeNotAllowed,
            format!(
                "{} asks for {bad}, which it does not list among its scopes",
                provider.name
            ),
        ));
    }
    let covered = grant
        .as_ref()
        .is_some_and(|g| scopes.iter().all(|x| g.scopes.contains(x)));
    let approval = if covered {
        None
    } else {
        Some(ask_wider(d, s, provider, a, &scopes).await?)
    };
    crate::mcp::stepup::ensure_login(d, provider, &scopes).await?;
    if let Some((_, value)) = &carried {
        // The card just allowed is also the person's approval the policy
        // may want for the wider scopes (an admin scope): it covers this
        // proxy's run, as "allow once" does.
        let allowed = approval.as_ref().map_or(scopes.clone(), |(_, x)| x.clone());
        bx.widen(value, allowed, approval);
    }
    Ok(())
}

/// The consent card of a step-up; the approval it gave.
async fn ask_wider(
    d: &Shared,
    s: Greeted<'_>,
    provider: &Provider,
    a: &Asked<'_>,
    scopes: &[String],
) -> Result<(String, Vec<String>), BrokerError> {
    let tool = a
        .mcp
        .as_ref()
        .and_then(|m| m.tool.as_deref())
        .map(|t| format!(" to call the tool {t}"))
        .unwrap_or_default();
    let why = format!(
        "{} asks for more scopes{tool} (insufficient_scope): {}. If you allow, your browser opens to log in to it again with them",
        provider.display_name,
        scopes.join(" ")
    );
    let ask = crate::consent::flow::Ask {
        provider,
        scopes,
        resource: provider.resource.as_deref(),
        duration_secs: None,
        wait: true,
        kind: valetkey_ipc::control::ConsentKind::Access,
        reasons: vec![why],
        delegation: None,
        proxy_only: true,
    };
    let (id, allowed) = crate::consent::flow::ask(d, s, ask).await?;
    if let Some(missing) = scopes.iter().find(|x| !allowed.contains(x)) {
        return Err(BrokerError::rpc(
            ErrorCode::ConsentDenied,
            format!(
                "you allowed less than {} asked for (not {missing})",
                provider.name
            ),
        ));
    }
    Ok((id, allowed))
}

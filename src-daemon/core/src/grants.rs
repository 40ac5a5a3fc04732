//! Standing grants made ahead of time (`valetkey grant add`) and listed
//! (`valetkey grant list`). A grant binds an agent's name and one binary
//! to a provider and scopes; making one is recorded in the audit trail,
//! announced to the tray, and makes a suspended agent active again, which
//! is recorded as a lifecycle change of its own.

use std::path::Path;

use valetkey_ipc::control::{
    Event, GrantEntry, GrantsAddParams, GrantsAddResult, GrantsListParams, GrantsListResult,
};
use valetkey_ipc::methods::validate_scopes;
use valetkey_ipc::{ErrorCode, RpcError};

use crate::agents::{grant_view, lifecycle_audit};
use crate::broker::Shared;
use crate::error::BrokerError;
use crate::store::{GrantFilter, NewGrant, ACTIVE};

fn invalid(message: String) -> BrokerError {
    BrokerError::rpc(ErrorCode::InvalidParams, message)
}

/// The agent's id, and the binary (hash, path) the grant binds to: the one
/// named, hashed here, or the one the agent last ran as.
/// Refuses a script as an agent's binary ([`crate::shim`]): the agent's
/// process would be its interpreter.
fn refuse_script(path: &Path) -> Result<(), String> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    match crate::shim::shebang(&head[..n]) {
        Some(interp) => Err(crate::shim::script_refusal(
            &path.display().to_string(),
            &interp,
        )),
        None => Ok(()),
    }
}

async fn bind_to(
    d: &Shared,
    agent: &str,
    binary: Option<&str>,
) -> Result<(i64, String, String), BrokerError> {
    if let Some(path) = binary {
        let path = Path::new(path).to_owned();
        let hashed = tokio::task::spawn_blocking(move || {
            let path = std::fs::canonicalize(&path).map_err(|e| {
                format!(
                    "cannot read {}: {e}; pass the agent's executable",
                    path.display()
                )
            })?;
            refuse_script(&path)?;
            let sha = crate::attest::sha256_file(&path)
                .map_err(|e| format!("cannot hash {}: {e}", path.display()))?;
            Ok::<_, String>((path.to_string_lossy().into_owned(), sha))
        })
        .await
        .map_err(|e| BrokerError::rpc(ErrorCode::Internal, format!("hashing failed: {e}")))?;
        let (exe, sha) = hashed.map_err(invalid)?;
        let id = d.store.ensure_agent(agent, &exe, &sha)?;
        return Ok((id, sha, exe));
    }
    let not_found = |m: String| BrokerError::rpc(ErrorCode::NotFound, m);
    let row = d.store.agent_by_name(agent)?.ok_or_else(|| {
        not_found(format!(
            "agent {agent:?} has not connected yet, so its binary is unknown; run it once, or pass --binary PATH"
        ))
    })?;
    let b = d
        .store
        .agent_binaries(row.id)?
        .into_iter()
        .next()
        .ok_or_else(|| {
            not_found(format!(
                "agent {agent:?} has no recorded binary; pass --binary PATH"
            ))
        })?;
    Ok((row.id, b.sha256, b.exe))
}

/// `grants.add`.
pub async fn add(d: &Shared, p: GrantsAddParams) -> Result<GrantsAddResult, BrokerError> {
    let provider = d.provider(&p.provider).ok_or_else(|| {
        BrokerError::rpc(
            ErrorCode::UnknownProvider,
            format!(
                "no provider named {:?} in {}",
                p.provider,
                d.config.path.display()
            ),
        )
    })?;
    validate_scopes(&p.scopes).map_err(invalid)?;
    let outside = crate::scope::missing(&p.scopes, &provider.allowed_scopes);
    if !outside.is_empty() {
        return Err(RpcError::new(
            ErrorCode::ScopeNotAllowed,
            format!(
                "{} does not allow {}; allowed_scopes in the config: {}",
                provider.name,
                outside.join(" "),
                provider.allowed_scopes.join(" ")
            ),
        )
        .with("not_allowed", &outside)
        .into());
    }
    if p.ttl_secs == Some(0) {
        return Err(invalid("ttl_secs must be at least 1".into()));
    }
    let (agent_id, sha, exe) = bind_to(d, &p.agent, p.binary.as_deref()).await?;
    let now = d.clock.now();
    let expires_at = p
        .ttl_secs
        .map(|t| now.saturating_add(i64::try_from(t).unwrap_or(i64::MAX)));
    let id = d.store.upsert_grant(&NewGrant {
        agent_id,
        provider: &provider.name,
        scopes: &p.scopes,
        binary_sha256: &sha,
        expires_at,
        proxy_only: false,
    })?;
    let mut rec = crate::audit::by_user("grant", Some(&p.agent));
    rec.binary_sha256 = Some(sha.clone());
    rec.provider = Some(provider.name.clone());
    rec.granted = p.scopes.clone();
    rec.outcome = "added".into();
    rec.detail = Some(format!(
        "for {exe}, until {}",
        expires_at.map_or_else(|| "revoked".into(), |t| crate::timefmt::when(Some(t)))
    ));
    // Fail closed: a grant that is not on record does not stand.
    if let Err(e) = crate::record::record(d, rec) {
        d.store.delete_grants(GrantFilter::Id(id))?;
        return Err(e);
    }
    let reinstated = reinstate(d, agent_id, &p.agent)?;
    tracing::info!(agent = %p.agent, provider = %provider.name, grant = id, reinstated, "grant added");
    d.events.emit(
        &d.store,
        Event::GrantChanged {
            agent: p.agent.clone(),
            grant_id: id,
            change: "created".into(),
        },
    );
    let row = d
        .store
        .list_grants(Some(&p.agent), true)?
        .into_iter()
        .find(|g| g.id == id)
        .ok_or_else(|| BrokerError::rpc(ErrorCode::Internal, "the new grant vanished"))?;
    Ok(GrantsAddResult {
        grant: grant_view(&row),
        exe,
        reinstated,
    })
}

/// An explicit grant is the user taking the agent back: a suspended or
/// deprecated agent becomes active, and that is recorded.
fn reinstate(d: &Shared, agent_id: i64, name: &str) -> Result<bool, BrokerError> {
    let status = d.store.agent_status(agent_id)?;
    if status.as_deref() == Some(ACTIVE) {
        return Ok(false);
    }
    d.store.set_agent_status(agent_id, ACTIVE)?;
    lifecycle_audit(d, name, "resumed", Some("by a new grant".into()));
    d.events.emit(
        &d.store,
        Event::AgentChanged {
            agent: name.to_owned(),
            change: "resumed".into(),
        },
    );
    Ok(true)
}

/// `grants.list`.
pub fn list(d: &Shared, p: GrantsListParams) -> Result<GrantsListResult, BrokerError> {
    let grants = d
        .store
        .list_grants(p.agent.as_deref(), p.all)?
        .iter()
        .map(|g| GrantEntry {
            agent: g.agent_name.clone(),
            grant: grant_view(g),
        })
        .collect();
    Ok(GrantsListResult { grants })
}

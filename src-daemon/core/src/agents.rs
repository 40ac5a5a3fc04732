//! The agent registry as the user sees and changes it: views of agents
//! with their binaries and grants, edits to the record a person owns, and
//! the lifecycle (suspend, resume, review, deprecate, reinstate) with what
//! each step cuts off at once.

use valetkey_ipc::control::{
    AgentNameParams, AgentView, AgentsEditParams, AgentsLifecycleParams, AgentsLifecycleResult,
    AgentsListResult, BinaryView, Event, GrantView, Lifecycle, RevokeResult, StatusResult,
};
use valetkey_ipc::policy::Classification;
use valetkey_ipc::ErrorCode;

use crate::broker::Shared;
use crate::consent::{flow, revoke as revocation};
use crate::error::BrokerError;
use crate::store::{AgentEdit, GrantFilter, GrantRow, ACTIVE, DEPRECATED, SUSPENDED};

fn view_of(
    d: &Shared,
    a: crate::store::AgentRow,
    grants: &[GrantRow],
) -> Result<AgentView, BrokerError> {
    let binaries = d
        .store
        .agent_binaries(a.id)?
        .into_iter()
        .map(|b| BinaryView {
            exe: b.exe,
            sha256: b.sha256,
            last_seen: b.last_seen,
        })
        .collect();
    Ok(AgentView {
        id: a.id,
        grants: grants
            .iter()
            .filter(|g| g.agent_id == a.id)
            .map(grant_view)
            .collect(),
        classification: Classification::parse(&a.classification).unwrap_or_default(),
        name: a.name,
        purpose: a.purpose,
        version: a.version,
        status: a.status,
        display_name: a.display_name,
        declared_purpose: a.declared_purpose,
        owner: a.owner,
        environment: a.environment,
        tools: a.tools,
        providers: a.providers,
        reviewed_at: a.reviewed_at,
        first_seen: a.created_at,
        last_seen: a.last_seen,
        binaries,
    })
}

/// A grant as the tray and the CLI show it.
pub fn grant_view(g: &GrantRow) -> GrantView {
    GrantView {
        id: g.id,
        provider: g.provider.clone(),
        scopes: g.scopes.clone(),
        binary_sha256: g.binary_sha256.clone(),
        created_at: g.created_at,
        expires_at: g.expires_at,
        last_used_at: g.last_used_at,
        proxy_only: g.proxy_only,
    }
}

fn agent_named(d: &Shared, name: &str) -> Result<crate::store::AgentRow, BrokerError> {
    let a = d.store.agent_by_name(name)?;
    a.map(|a| (*a).clone()).ok_or_else(|| {
        BrokerError::rpc(
            ErrorCode::NotFound,
            format!("no agent named {name:?}; `valetkey agents` lists them"),
        )
    })
}

/// `agents.list`.
pub fn agents_list(d: &Shared) -> Result<AgentsListResult, BrokerError> {
    let grants = d.store.list_grants(None, false)?;
    let agents = d
        .store
        .list_agents()?
        .into_iter()
        .map(|a| view_of(d, a, &grants))
        .collect::<Result<_, _>>()?;
    Ok(AgentsListResult { agents })
}

/// `agents.show`.
pub fn agents_show(d: &Shared, p: AgentNameParams) -> Result<AgentView, BrokerError> {
    let a = agent_named(d, &p.name)?;
    let grants = d.store.list_grants(Some(&p.name), false)?;
    view_of(d, a, &grants)
}

fn text(field: &str, v: &Option<String>, max: usize) -> Result<(), BrokerError> {
    match v {
        Some(v) if v.chars().count() > max || v.chars().any(char::is_control) => {
            Err(BrokerError::rpc(
                ErrorCode::InvalidParams,
                format!("{field} must be at most {max} characters without control characters"),
            ))
        }
        _ => Ok(()),
    }
}

/// `agents.edit`.
pub fn agents_edit(d: &Shared, p: AgentsEditParams) -> Result<AgentView, BrokerError> {
    let a = agent_named(d, &p.name)?;
    text("display_name", &p.display_name, 64)?;
    text("purpose", &p.purpose, 256)?;
    text("owner", &p.owner, 64)?;
    text("environment", &p.environment, 64)?;
    for (field, list) in [("tools", &p.tools), ("providers", &p.providers)] {
        for item in list.iter().flatten() {
            if item.is_empty()
                || item.len() > 128
                || item.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(BrokerError::rpc(
                    ErrorCode::InvalidParams,
                    format!("{field}: {item:?} must be 1 to 128 characters without spaces"),
                ));
            }
        }
    }
    if let Some(ps) = &p.providers {
        if let Some(unknown) = ps.iter().find(|x| d.provider(x).is_none()) {
            return Err(BrokerError::rpc(
                ErrorCode::UnknownProvider,
                format!("no provider named {unknown:?} is configured"),
            ));
        }
    }
    d.store.edit_agent(
        a.id,
        &AgentEdit {
            display_name: p.display_name,
            purpose: p.purpose,
            owner: p.owner,
            classification: p.classification.map(|c| c.as_str().to_owned()),
            environment: p.environment,
            tools: p.tools,
            providers: p.providers,
        },
    )?;
    tracing::info!(agent = %a.name, "agent record edited");
    d.events.emit(
        &d.store,
        Event::AgentChanged {
            agent: a.name.clone(),
            change: "edited".into(),
        },
    );
    lifecycle_audit(d, &a.name, "edited", None);
    agents_show(d, AgentNameParams { name: a.name })
}

pub(crate) fn lifecycle_audit(d: &Shared, name: &str, change: &str, detail: Option<String>) {
    let mut rec = crate::audit::by_user("lifecycle", Some(name));
    rec.outcome = change.to_owned();
    rec.detail = detail;
    crate::record::record_best_effort(d, rec);
}

/// `agents.lifecycle`.
pub async fn agents_lifecycle(
    d: &Shared,
    p: AgentsLifecycleParams,
) -> Result<AgentsLifecycleResult, BrokerError> {
    let a = agent_named(d, &p.name)?;
    let mut revoked = RevokeResult::default();
    let mut delegations = 0;
    let change = match p.step {
        Lifecycle::Suspend | Lifecycle::Deprecate => {
            let (status, change) = if p.step == Lifecycle::Suspend {
                (SUSPENDED, "suspended")
            } else {
                (DEPRECATED, "deprecated")
            };
            d.store.set_agent_status(a.id, status)?;
            // Down the chain first, then the agent itself.
            let names = d.store.revoke_delegations_of_agent(
                a.id,
                &a.name,
                &format!("agent {} {change}", a.name),
            )?;
            delegations = names.len() as u32;
            let (sub_tokens, sub_conns) = revocation::cut_subagents(d, &names);
            if p.step == Lifecycle::Deprecate {
                revoked.grants_removed =
                    d.store.delete_grants(GrantFilter::Agent(a.id))?.len() as u32;
            }
            revoked.tokens_dropped =
                d.tokens.cache.take(Some(a.id), None).len() as u32 + sub_tokens;
            let why = if p.step == Lifecycle::Deprecate {
                crate::live::Cut::Deprecated
            } else {
                crate::live::Cut::Suspended
            };
            revoked.connections_closed = d.live.close(Some(a.id), why) + sub_conns;
            flow::deny_pending(d, Some(a.id));
            change
        }
        Lifecycle::Resume => {
            d.store.set_agent_status(a.id, ACTIVE)?;
            "resumed"
        }
        Lifecycle::Review => {
            d.store.review_agent(a.id)?;
            "reviewed"
        }
    };
    tracing::info!(agent = %a.name, change, ?revoked, delegations, "agent lifecycle");
    d.events.emit(
        &d.store,
        Event::AgentChanged {
            agent: a.name.clone(),
            change: change.into(),
        },
    );
    lifecycle_audit(
        d,
        &a.name,
        change,
        Some(format!(
            "{} grant(s) removed, {} cached token(s) dropped, {} connection(s) closed, {} delegation(s) revoked",
            revoked.grants_removed, revoked.tokens_dropped, revoked.connections_closed, delegations
        )),
    );
    Ok(AgentsLifecycleResult {
        agent: agents_show(d, AgentNameParams { name: a.name })?,
        revoked,
        delegations_revoked: delegations,
    })
}

/// `agents.reinstate`.
pub fn agents_reinstate(d: &Shared, p: AgentNameParams) -> Result<StatusResult, BrokerError> {
    let a = agent_named(d, &p.name)?;
    d.store.set_agent_status(a.id, ACTIVE)?;
    d.store.clear_denials(a.id)?;
    tracing::info!(agent = %a.name, "agent reinstated");
    lifecycle_audit(d, &a.name, "reinstated", None);
    d.events
        .emit(&d.store, Event::StatusChanged { status: d.status() });
    Ok(d.status())
}

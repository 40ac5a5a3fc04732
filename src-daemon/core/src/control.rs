//! What the user does, from the tray or the CLI over the control socket:
//! list and decide consents, revoke, pause, rotate keys, read the activity
//! log, reload policies ([`crate::agents`] has the agents' side). Each
//! function takes typed params and returns a typed result; the daemon's
//! control routes only decode and encode.

use valetkey_ipc::control::{
    ActivityListParams, ActivityListResult, AuditQueryParams, AuditQueryResult,
    ConsentDecideParams, ConsentDecideResult, ConsentListResult, Event, IssuingSetParams,
    KeysRotateResult, RevokeParams, RevokeResult, StatusResult,
};
use valetkey_ipc::{ErrorCode, RpcError};

use crate::broker::Shared;
use crate::config::Config;
use crate::consent::{flow, revoke as revocation};
use crate::error::BrokerError;

/// `consent.list`.
pub fn consent_list(d: &Shared) -> Result<ConsentListResult, BrokerError> {
    Ok(ConsentListResult {
        consents: d.consents.list(),
    })
}

/// `consent.decide`.
pub fn consent_decide(
    d: &Shared,
    p: ConsentDecideParams,
) -> Result<ConsentDecideResult, BrokerError> {
    flow::decide(d, &p.id, p.decision, p.scopes)
}

/// `keys.rotate`.
pub async fn keys_rotate(d: &Shared) -> Result<KeysRotateResult, BrokerError> {
    let (kid, published) = d
        .signer
        .rotate(
            &d.store,
            &*d.keychain,
            crate::delegation::verify::max_ttl_secs(d),
        )
        .await?;
    let mut rec = crate::audit::by_user("keys.rotate", None);
    rec.outcome = "rotated".into();
    rec.detail = Some(format!("new kid {kid}"));
    crate::record::record_best_effort(d, rec);
    Ok(KeysRotateResult { kid, published })
}

/// `revoke`.
pub async fn revoke(d: &Shared, p: RevokeParams) -> Result<RevokeResult, BrokerError> {
    revocation::revoke(d, p.target).await
}

/// `issuing.set`.
pub fn issuing_set(d: &Shared, p: IssuingSetParams) -> Result<StatusResult, BrokerError> {
    if d.set_paused(p.paused) {
        tracing::info!(paused = p.paused, "issuing paused state changed");
        d.events
            .emit(&d.store, Event::StatusChanged { status: d.status() });
    }
    Ok(d.status())
}

/// `activity.list`.
pub fn activity_list(d: &Shared, p: ActivityListParams) -> Result<ActivityListResult, BrokerError> {
    let limit = p.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(RpcError::new(ErrorCode::InvalidParams, "limit must be 1 to 500").into());
    }
    Ok(ActivityListResult {
        entries: d.store.list_activity(limit)?,
    })
}

/// Reloads the policy files now and tells everyone how it went (the
/// audit trail, and the tray and desktop through the event bus).
pub fn reload_policy(d: &Shared) {
    let (ok, files, error) = match d.policies.reload() {
        Ok(files) => (true, files, None),
        Err(e) => (false, d.policies.status().files, Some(e)),
    };
    let mut rec = crate::audit::by_user("policy.reload", None);
    rec.outcome = if ok { "loaded" } else { "refused" }.into();
    rec.detail = error.clone();
    crate::record::record_best_effort(d, rec);
    d.events
        .emit(&d.store, Event::PolicyReloaded { ok, files, error });
}

/// Reloads config.toml after an edit. The box profiles take effect at
/// once; the other sections (providers, limits, the socket) when valetkeyd
/// restarts, and the record says so. A file that does not load keeps the
/// profiles in force, and why is kept for the next refusal that a missing
/// profile gets.
pub fn reload_config(d: &Shared) {
    let mut rec = crate::audit::by_user("config.reload", None);
    match Config::load(&d.config.path) {
        Ok(new) => {
            let names: Vec<&str> = new.boxes.profiles.keys().map(String::as_str).collect();
            rec.outcome = "loaded".into();
            rec.detail = Some(format!(
                "box profiles now: {}; other sections take effect when valetkeyd restarts",
                if names.is_empty() {
                    "the built-in ones".to_owned()
                } else {
                    names.join(", ")
                }
            ));
            tracing::info!(path = %d.config.path.display(), "config.toml reloaded: box profiles in force");
            *d.profiles.write().unwrap_or_else(|e| e.into_inner()) = crate::broker::BoxProfiles {
                section: std::sync::Arc::new(new.boxes),
                refused: None,
            };
        }
        Err(e) => {
            let why = e.to_string();
            tracing::warn!(error = %why, "config.toml changed but does not load; the previous config stays in force");
            rec.outcome = "refused".into();
            rec.detail = Some(why.clone());
            d.profiles
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .refused = Some(why);
        }
    }
    crate::record::record_best_effort(d, rec);
}

/// `audit.query`: the newest records matching the filters.
pub fn audit_query(d: &Shared, p: AuditQueryParams) -> Result<AuditQueryResult, BrokerError> {
    let limit = p.limit.unwrap_or(50);
    if !(1..=10_000).contains(&limit) {
        return Err(RpcError::new(ErrorCode::InvalidParams, "limit must be 1 to 10000").into());
    }
    let filter = crate::store::AuditFilter {
        agent: p.agent,
        provider: p.provider,
        kind: p.kind,
        since: p.since,
        until: p.until,
        after_id: None,
    };
    Ok(AuditQueryResult {
        records: d.store.query_audit(&filter, limit, false)?,
    })
}

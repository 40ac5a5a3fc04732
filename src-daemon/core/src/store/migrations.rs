//! Numbered schema migrations. Append only: never edit a shipped step.

#[cfg(any(test, feature = "writer"))]
use rusqlite::Connection;

#[cfg(any(test, feature = "writer"))]
use super::StoreError;

const STEPS: &[&str] = &[
    // 1: providers, agents, binaries, grants.
    "CREATE TABLE providers (
        name            TEXT PRIMARY KEY,
        logged_in_at    INTEGER,
        login_scopes    TEXT NOT NULL DEFAULT '',
        login_required  INTEGER NOT NULL DEFAULT 0,
        generation      INTEGER NOT NULL DEFAULT 0
     );
     CREATE TABLE agents (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        purpose     TEXT NOT NULL DEFAULT '',
        version     TEXT NOT NULL DEFAULT '',
        created_at  INTEGER NOT NULL,
        last_seen   INTEGER NOT NULL
     );
     CREATE TABLE agent_binaries (
        agent_id    INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
        sha256      TEXT NOT NULL,
        exe         TEXT NOT NULL,
        first_seen  INTEGER NOT NULL,
        last_seen   INTEGER NOT NULL,
        PRIMARY KEY (agent_id, sha256)
     );
     CREATE TABLE grants (
        id             INTEGER PRIMARY KEY,
        agent_id       INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
        provider       TEXT NOT NULL,
        scopes         TEXT NOT NULL,
        binary_sha256  TEXT NOT NULL,
        created_at     INTEGER NOT NULL,
        expires_at     INTEGER,
        last_used_at   INTEGER,
        UNIQUE (agent_id, provider, binary_sha256)
     );
     CREATE INDEX grants_by_agent ON grants (agent_id, provider);",
    // 2: suspension, remembered denials, the activity log.
    "ALTER TABLE agents ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
     CREATE TABLE denials (
        agent_id       INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
        provider       TEXT NOT NULL,
        binary_sha256  TEXT NOT NULL,
        created_at     INTEGER NOT NULL,
        PRIMARY KEY (agent_id, provider, binary_sha256)
     );
     CREATE TABLE activity (
        id       INTEGER PRIMARY KEY,
        ts       INTEGER NOT NULL,
        kind     TEXT NOT NULL,
        agent    TEXT,
        summary  TEXT NOT NULL
     );",
    // 3: the registry's governance fields, delegations, signing keys, the
    // decision audit log.
    "ALTER TABLE agents ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
     ALTER TABLE agents ADD COLUMN declared_purpose TEXT NOT NULL DEFAULT '';
     ALTER TABLE agents ADD COLUMN owner TEXT NOT NULL DEFAULT '';
     ALTER TABLE agents ADD COLUMN classification TEXT NOT NULL DEFAULT 'internal';
     ALTER TABLE agents ADD COLUMN environment TEXT NOT NULL DEFAULT 'local';
     ALTER TABLE agents ADD COLUMN tools TEXT NOT NULL DEFAULT '';
     ALTER TABLE agents ADD COLUMN providers TEXT NOT NULL DEFAULT '';
     ALTER TABLE agents ADD COLUMN reviewed_at INTEGER;
     UPDATE agents SET declared_purpose = purpose;
     CREATE TABLE delegations (
        jti              TEXT PRIMARY KEY,
        parent_jti       TEXT,
        root_grant_id    INTEGER NOT NULL,
        issuer_agent_id  INTEGER NOT NULL,
        sub_agent        TEXT NOT NULL,
        provider         TEXT NOT NULL,
        scopes           TEXT NOT NULL,
        depth            INTEGER NOT NULL,
        max_depth        INTEGER NOT NULL,
        kid              TEXT NOT NULL,
        created_at       INTEGER NOT NULL,
        expires_at       INTEGER NOT NULL,
        bound_sha256     TEXT,
        revoked_at       INTEGER,
        revoked_reason   TEXT
     );
     CREATE INDEX delegations_by_parent ON delegations (parent_jti);
     CREATE INDEX delegations_by_grant ON delegations (root_grant_id);
     CREATE INDEX delegations_by_issuer ON delegations (issuer_agent_id);
     CREATE TABLE signing_keys (
        kid         TEXT PRIMARY KEY,
        public_x    TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        retired_at  INTEGER
     );
     CREATE TABLE meta (
        key    TEXT PRIMARY KEY,
        value  TEXT NOT NULL
     );
     CREATE TABLE audit (
        id             INTEGER PRIMARY KEY,
        ts             INTEGER NOT NULL,
        kind           TEXT NOT NULL,
        chain          TEXT NOT NULL,
        agent          TEXT,
        pid            INTEGER,
        binary_sha256  TEXT,
        provider       TEXT,
        scopes         TEXT,
        verdict        TEXT,
        rule           TEXT,
        reasons        TEXT,
        outcome        TEXT NOT NULL,
        detail         TEXT
     );",
    // 4: the tamper-evident audit trail: hash chain, signed checkpoints,
    // granted scopes and the consent behind a decision.
    "ALTER TABLE audit ADD COLUMN granted TEXT;
     ALTER TABLE audit ADD COLUMN consent_id TEXT;
     ALTER TABLE audit ADD COLUMN action TEXT;
     ALTER TABLE audit ADD COLUMN resource_owner TEXT;
     ALTER TABLE audit ADD COLUMN prev TEXT;
     ALTER TABLE audit ADD COLUMN hash TEXT;
     CREATE INDEX audit_by_ts ON audit (ts);
     CREATE TABLE audit_checkpoints (
        seq   INTEGER PRIMARY KEY,
        hash  TEXT NOT NULL,
        ts    INTEGER NOT NULL,
        kid   TEXT NOT NULL,
        sig   TEXT NOT NULL
     );",
    // 5: find rows written before the chain existed without scanning the
    // whole trail at every start (200k records took 50 ms).
    "CREATE INDEX audit_unchained ON audit (id) WHERE hash IS NULL;",
    // 6: remote MCP servers added with `valetkey mcp add` (what discovery
    // found, as JSON; never a secret).
    "CREATE TABLE mcp_servers (
        name      TEXT PRIMARY KEY,
        record    TEXT NOT NULL,
        added_at  INTEGER NOT NULL
     );",
    // 7: grants allowed on a proxy box's card serve the egress proxy
    // only: never a raw token to the agent.
    "ALTER TABLE grants ADD COLUMN proxy_only INTEGER NOT NULL DEFAULT 0;",
];

/// The schema version this build writes.
pub fn known() -> i64 {
    STEPS.len() as i64
}

/// Brings the schema up to date inside one transaction per step.
#[cfg(any(test, feature = "writer"))]
pub fn run(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = STEPS.len() as i64;
    if current > known {
        return Err(StoreError::TooNew {
            found: current,
            known,
        });
    }
    for (i, step) in STEPS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_is_idempotent() {
        let mut c = Connection::open_in_memory().expect("db");
        run(&mut c).expect("first");
        run(&mut c).expect("second");
        let v: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("v");
        assert_eq!(v, STEPS.len() as i64);
    }

    #[test]
    fn refuses_a_newer_schema() {
        let mut c = Connection::open_in_memory().expect("db");
        c.pragma_update(None, "user_version", 99).expect("set");
        assert!(matches!(
            run(&mut c),
            Err(StoreError::TooNew { found: 99, .. })
        ));
    }
}

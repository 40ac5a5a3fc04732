//! The security sections: `[audit]` (retention and checkpoints),
//! `[monitor]` (anomaly thresholds) and `[limits]` (what one client may
//! cost the daemon). Each has defaults a laptop can live with; tests turn
//! the thresholds down to make rules fire.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(serde::de::Error::custom)
}

/// `[audit]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSection {
    /// Delete records older than this, e.g. "365d"; "0s" keeps everything.
    /// Pruning stops at a signed checkpoint, so the rest still verifies.
    #[serde(deserialize_with = "duration")]
    pub retain: Duration,
    /// Sign a checkpoint after this many new records.
    pub checkpoint_every: u64,
    /// And at least this often while records arrive, e.g. "5m".
    #[serde(deserialize_with = "duration")]
    pub checkpoint_interval: Duration,
}

impl Default for AuditSection {
    fn default() -> Self {
        Self {
            retain: Duration::from_secs(365 * 24 * 3600),
            checkpoint_every: 256,
            checkpoint_interval: Duration::from_secs(300),
        }
    }
}

/// What a fired rule does besides recording and notifying.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnAnomaly {
    /// Record an `anomaly` event and notify the user.
    #[default]
    Alert,
    /// Also suspend the agent (`valetkey agents resume NAME` undoes it).
    Suspend,
}

/// `[monitor]`: the anomaly rules' thresholds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorSection {
    /// Turn the rules off entirely.
    pub enabled: bool,
    /// `alert` or `suspend`.
    pub on_anomaly: OnAnomaly,
    /// Rate spike: this many times the agent's own per-minute baseline…
    pub spike_factor: f64,
    /// …and at least this many requests in the minute.
    pub spike_min: u32,
    /// Velocity: write, delete or admin actions per minute.
    pub velocity_per_minute: u32,
    /// Error rate: refusals in the last 5 minutes…
    pub errors_min: u32,
    /// …making up at least this share of the agent's requests.
    pub error_ratio: f64,
    /// Deep delegation: a chain at least this deep (1 = direct sub-agent).
    pub delegation_depth: u32,
    /// Report the first use of a scope or provider (after the agent's first ever request).
    pub first_use: bool,
    /// A fired rule stays quiet for this agent this long, e.g. "10m".
    #[serde(deserialize_with = "duration")]
    pub cooldown: Duration,
}

impl Default for MonitorSection {
    fn default() -> Self {
        Self {
            enabled: true,
            on_anomaly: OnAnomaly::Alert,
            spike_factor: 5.0,
            spike_min: 60,
            velocity_per_minute: 30,
            errors_min: 20,
            error_ratio: 0.5,
            delegation_depth: 3,
            first_use: true,
            cooldown: Duration::from_secs(600),
        }
    }
}

/// `[limits]`: the most one client may cost the daemon.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Open connections on `agent.sock`.
    pub max_connections: usize,
    /// Open connections on `control.sock`, counted apart: however many
    /// agents connect, the user can still pause, deny and revoke.
    pub control_connections: usize,
    /// Open connections on one box's socket, counted apart for each box:
    /// a box that floods its socket shuts out only itself.
    pub box_connections: usize,
    /// Open connections to one box's egress proxy, counted apart for
    /// each box.
    pub box_proxy_connections: usize,
    /// Sustained requests per second on one connection…
    pub requests_per_second: u32,
    /// …with bursts up to this many.
    pub burst: u32,
    /// A started frame must be finished within this, e.g. "10s".
    #[serde(deserialize_with = "duration")]
    pub frame_timeout: Duration,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            max_connections: 256,
            control_connections: 32,
            box_connections: 64,
            box_proxy_connections: 128,
            requests_per_second: 100,
            burst: 200,
            frame_timeout: Duration::from_secs(10),
        }
    }
}

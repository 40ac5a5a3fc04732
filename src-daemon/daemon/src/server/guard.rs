//! The checks every connection's frames pass, on every socket (agent,
//! control and the boxes'), kept in one place so that no loop has fewer:
//!
//! - a frame begun but not finished within `[limits] frame_timeout`
//!   (slowloris): `frame_timeout`, close;
//! - faster than `[limits] requests_per_second` (a token bucket with
//!   `burst`): `rate_limited` with `retry_after_ms`, the connection kept;
//! - an answer that says the stream cannot be trusted to be JSON-RPC any
//!   more (`parse_error`, `bad_request`), that the peer changed
//!   (`peer_changed`), or a third `unknown_method`: close after it.
//!
//! Time is tokio's, so tests run these with the clock paused.

use std::time::Duration;

use tokio::time::Instant;
use valetkey_core::config::LimitsSection;
use valetkey_ipc::jsonrpc::Response;
use valetkey_ipc::{ErrorCode, RpcError};

/// Unknown methods tolerated on one connection before it is closed.
pub const MAX_UNKNOWN: u32 = 3;

/// A token bucket: `rate` requests a second, bursts up to `burst`.
struct Bucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: u32, burst: u32) -> Self {
        Self {
            tokens: burst as f64,
            rate: rate as f64,
            burst: burst as f64,
            at: Instant::now(),
        }
    }

    /// Takes one token, or says how long until one is there (ms).
    fn take(&mut self) -> Result<(), u64> {
        let now = Instant::now();
        let dt = now.duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - self.tokens) / self.rate) * 1000.0).ceil() as u64)
        }
    }
}

/// One connection's guard.
pub struct Guard {
    bucket: Bucket,
    rate: u32,
    unknown: u32,
    frame_timeout: Duration,
    /// When the unfinished frame in the buffer was first seen.
    partial_since: Option<Instant>,
}

impl Guard {
    /// A guard with the configured limits.
    pub fn new(limits: &LimitsSection) -> Self {
        Self {
            bucket: Bucket::new(limits.requests_per_second, limits.burst),
            rate: limits.requests_per_second,
            unknown: 0,
            frame_timeout: limits.frame_timeout,
            partial_since: None,
        }
    }

    /// How long a loop waits for a frame before calling [`Guard::idle`].
    pub fn check_every(&self) -> Duration {
        self.frame_timeout / 2
    }

    /// No frame came for [`Guard::check_every`]; `buffered` says whether
    /// part of one is in the read buffer. The error to send before
    /// closing when that part has waited `frame_timeout`.
    pub fn idle(&mut self, buffered: bool) -> Option<Response> {
        if !buffered {
            self.partial_since = None;
            return None;
        }
        let since = *self.partial_since.get_or_insert_with(Instant::now);
        if since.elapsed() < self.frame_timeout {
            return None;
        }
        tracing::warn!("a frame was not finished in time; closing");
        Some(Response::err(None, RpcError::new(
            ErrorCode::FrameTimeout,
            format!("a frame was started but not finished within {:?}; the connection is closed. Send each message whole, ending with a newline", self.frame_timeout),
        )))
    }

    /// A whole frame arrived: the error to answer instead of handling it
    /// when it comes too fast (the connection stays open).
    pub fn arrived(&mut self, frame: &[u8]) -> Option<Response> {
        self.partial_since = None;
        let wait_ms = self.bucket.take().err()?;
        let err = RpcError::new(
            ErrorCode::RateLimited,
            format!(
                "more than {} requests a second on this connection; retry in {wait_ms} ms",
                self.rate
            ),
        )
        .with("retry_after_ms", wait_ms);
        Some(Response::err(id_of(frame), err))
    }

    /// Whether the connection closes after answering with `error`.
    pub fn closes_after(&mut self, error: Option<&RpcError>) -> bool {
        let Some(e) = error else {
            return false;
        };
        match ErrorCode::from_code(e.code) {
            Some(ErrorCode::ParseError | ErrorCode::BadRequest | ErrorCode::PeerChanged) => true,
            Some(ErrorCode::UnknownMethod) => {
                self.unknown += 1;
                self.unknown >= MAX_UNKNOWN
            }
            _ => false,
        }
    }
}

/// The id of the request in `frame`, where it has one.
pub fn id_of(frame: &[u8]) -> Option<valetkey_ipc::jsonrpc::Id> {
    valetkey_ipc::jsonrpc::parse_request(frame)
        .ok()
        .and_then(|r| r.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rate: u32, burst: u32) -> LimitsSection {
        LimitsSection {
            requests_per_second: rate,
            burst,
            frame_timeout: Duration::from_secs(10),
            ..LimitsSection::default()
        }
    }

    const FRAME: &[u8] = br#"{"jsonrpc":"2.0","id":7,"method":"status"}"#;

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_served_then_refused_until_the_bucket_refills() {
        let mut g = Guard::new(&limits(10, 3));
        for _ in 0..3 {
            assert!(g.arrived(FRAME).is_none());
        }
        let r = g.arrived(FRAME).expect("refused");
        let e = r.error.expect("error");
        assert_eq!(e.name(), "rate_limited");
        assert_eq!(
            e.data_field("retry_after_ms"),
            Some(&serde_json::json!(100))
        );
        assert_eq!(r.id, Some(valetkey_ipc::jsonrpc::Id::Num(7)));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(g.arrived(FRAME).is_none(), "one token back after 100 ms");
        assert!(g.arrived(FRAME).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_frame_left_unfinished_for_the_timeout_closes_and_a_finished_one_resets() {
        let mut g = Guard::new(&limits(10, 10));
        assert_eq!(g.check_every(), Duration::from_secs(5));
        assert!(g.idle(true).is_none(), "first seen");
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(g.idle(true).is_none(), "9 s: not yet");
        // Finished just in time: the clock starts again for the next one.
        assert!(g.arrived(FRAME).is_none());
        assert!(g.idle(true).is_none());
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(g.idle(true).is_none());
        tokio::time::advance(Duration::from_secs(1)).await;
        let r = g.idle(true).expect("closes");
        assert_eq!(r.error.expect("error").name(), "frame_timeout");
        // An empty buffer is never a slow frame.
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(Guard::new(&limits(10, 10)).idle(false).is_none());
    }

    #[test]
    fn the_third_unknown_method_closes_and_a_broken_stream_closes_at_once() {
        let mut g = Guard::new(&limits(10, 10));
        let unknown = RpcError::new(ErrorCode::UnknownMethod, "x");
        assert!(!g.closes_after(Some(&unknown)));
        assert!(!g.closes_after(Some(&RpcError::new(ErrorCode::InvalidParams, "x"))));
        assert!(!g.closes_after(None));
        assert!(!g.closes_after(Some(&unknown)));
        assert!(g.closes_after(Some(&unknown)), "the third");
        for code in [
            ErrorCode::ParseError,
            ErrorCode::BadRequest,
            ErrorCode::PeerChanged,
        ] {
            let mut g = Guard::new(&limits(10, 10));
            assert!(g.closes_after(Some(&RpcError::new(code, "x"))), "{code:?}");
        }
    }
}

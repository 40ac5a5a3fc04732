//! The token service: the in-memory access-token cache and the
//! single-flight, rotation-safe refresh in front of the provider.

mod cache;
pub mod journal;
pub mod service;

pub use cache::{CacheKey, CachedToken, KeyRef, TokenCache};
pub use service::TokenService;

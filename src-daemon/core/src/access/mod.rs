//! What an agent may do, step by step: `hello` binds a declared name to
//! the attested binary, `token.get` goes through provider, grant or
//! delegation, policy, consent and the token service, `consent.wait`
//! collects a decision, `delegation.create` hands a sub-agent less than the
//! caller holds, and `proxied` takes a request through the egress proxy
//! (`token.placeholder`, and the token written into a box's request). Each function takes the [`Caller`](crate::caller::Caller) and typed params, and returns a typed
//! result or a [`BrokerError`](crate::error::BrokerError) with its wire
//! code; the daemon's handlers only decode and encode.

pub mod delegate;
pub mod gate;
pub mod hello;
pub mod providers;
pub mod proxied;
pub mod token;
pub mod whoami;
pub mod withheld;

//! What both frame loops share: the connection type, writing one
//! response, the per-connection session, and typed results back into
//! JSON (params become typed in [`valetkey_ipc::requests`]).
//!
//! On the agent socket a success is encoded once, straight from the
//! handler's typed result into the frame (no `serde_json::Value` tree),
//! in a buffer that is zeroed when dropped and written to the socket
//! directly: the token in it is copied nowhere else.

use bytes::Bytes;
use interprocess::local_socket::tokio::Stream;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::{Encoder, FramedRead};
use valetkey_core::caller::Caller;
use valetkey_core::error::BrokerError;
use valetkey_ipc::codec::FrameCodec;
use valetkey_ipc::jsonrpc::{Id, Response};
use valetkey_ipc::{ErrorCode, RpcError};
use zeroize::Zeroizing;

/// Per-connection session state.
pub struct Session {
    /// Connection number, for logs.
    pub conn_id: u64,
    /// Who is on the other end: attested, and after `hello` greeted.
    pub caller: Caller,
    /// The daemon's egress proxies (for `proxy.open`; none in tests
    /// that drive dispatch alone).
    pub egress: Option<std::sync::Arc<super::proxy::Proxy>>,
    /// The proxy this connection opened: it lives as long as the session.
    pub opened: Option<super::proxy::agent::Opened>,
}

/// A connection: frames are read through the codec, and written straight
/// to the socket (there is no write buffer to keep).
pub(crate) type Conn = FramedRead<Stream, FrameCodec>;

/// Bytes a connection's read buffer starts with: a `token.get` frame is
/// ~100 bytes, so ten fit before the buffer is compacted (at 256 bytes
/// that happened every other request, ~200 instructions each time). It
/// grows for a bigger frame (up to the 64 KiB cap). (Built as a `Framed`,
/// each connection held the codec's default 8 KiB each way whatever it was
/// given: 16 KiB of a connection's ~27.)
const READ_BUF: usize = 1024;

/// Frames a new connection.
pub(crate) fn framed(stream: Stream) -> Conn {
    FramedRead::with_capacity(stream, FrameCodec::default(), READ_BUF)
}

/// Writes one frame (the codec adds the newline and enforces the size
/// cap); false when it cannot be sent or the connection is gone.
pub(crate) async fn write_frame(framed: &mut Conn, frame: Vec<u8>) -> bool {
    let mut out = bytes::BytesMut::new();
    if framed
        .decoder_mut()
        .encode(Bytes::from(frame), &mut out)
        .is_err()
    {
        return false;
    }
    framed.get_mut().write_all(&out).await.is_ok()
}

pub(crate) async fn send(framed: &mut Conn, resp: &Response) -> bool {
    match serde_json::to_vec(resp) {
        Ok(v) => write_frame(framed, v).await,
        Err(_) => false,
    }
}

/// An answer to one agent request, ready for the wire.
pub enum Answer {
    /// A success, encoded (newline included) into a buffer zeroed on drop.
    Encoded(Zeroizing<Vec<u8>>),
    /// An error.
    Error(Response),
}

impl Answer {
    /// The error, if it is one.
    pub fn error(&self) -> Option<&RpcError> {
        match self {
            Answer::Encoded(_) => None,
            Answer::Error(r) => r.error.as_ref(),
        }
    }

    /// An error answer to request `id`.
    pub fn err(id: Option<Id>, e: impl Into<RpcError>) -> Answer {
        Answer::Error(Response::err(id, e.into()))
    }
}

/// Encodes a handler's outcome for request `id`.
pub(crate) fn encode<T: serde::Serialize>(id: &Option<Id>, r: Result<T, BrokerError>) -> Answer {
    let v = match r {
        Ok(v) => v,
        Err(e) => return Answer::err(id.clone(), e),
    };
    let mut out = Zeroizing::new(Vec::with_capacity(384));
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    let written = serde_json::to_writer(&mut *out, id).and_then(|()| {
        out.extend_from_slice(br#","result":"#);
        serde_json::to_writer(&mut *out, &v)
    });
    match written {
        Ok(()) => {
            out.extend_from_slice(b"}\n");
            Answer::Encoded(out)
        }
        Err(e) => Answer::err(
            id.clone(),
            RpcError::new(ErrorCode::Internal, format!("cannot encode result: {e}")),
        ),
    }
}

/// Sends an answer; false when the connection is gone.
pub(crate) async fn send_answer(framed: &mut Conn, a: &Answer) -> bool {
    match a {
        // Straight to the socket: nothing of it stays in a codec buffer.
        Answer::Encoded(bytes) => framed.get_mut().write_all(bytes).await.is_ok(),
        Answer::Error(r) => send(framed, r).await,
    }
}

pub(crate) fn result<T: serde::Serialize>(r: Result<T, BrokerError>) -> Result<Value, BrokerError> {
    r.and_then(|v| {
        serde_json::to_value(v).map_err(|e| {
            BrokerError::rpc(ErrorCode::Internal, format!("cannot encode result: {e}"))
        })
    })
}

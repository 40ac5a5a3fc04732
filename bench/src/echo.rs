//! The physical-limit baseline: a minimal JSON-RPC server on a Unix socket
//! (tokio current_thread). Per request it parses the JSON, as any real
//! server must, and answers with a fixed-size result carrying the id.

use std::path::Path;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

/// The reply to request `id`, exactly `size` bytes with the newline.
pub fn reply(id: &serde_json::Value, size: usize) -> Vec<u8> {
    let head = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"pad":""#);
    let tail = "\"}}\n";
    let pad = size.saturating_sub(head.len() + tail.len());
    let mut v = Vec::with_capacity(size);
    v.extend_from_slice(head.as_bytes());
    v.resize(head.len() + pad, b'x');
    v.extend_from_slice(tail.as_bytes());
    v
}

/// Serves until killed.
pub async fn serve(socket: &Path, size: usize) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(socket);
    let listener =
        UnixListener::bind(socket).with_context(|| format!("bind {}", socket.display()))?;
    println!("listening {}", socket.display());
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut r = BufReader::new(r);
            let mut line = Vec::with_capacity(512);
            loop {
                line.clear();
                match r.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let id = serde_json::from_slice::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| v.get("id").cloned())
                    .unwrap_or(serde_json::Value::Null);
                if w.write_all(&reply(&id, size)).await.is_err() {
                    return;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn replies_have_the_asked_size_and_are_json() {
        for size in [100, 1024, 1500] {
            let r = super::reply(&serde_json::json!(7), size);
            assert_eq!(r.len(), size);
            let v: serde_json::Value = serde_json::from_slice(&r).expect("json");
            assert_eq!(v["id"], 7);
        }
    }
}

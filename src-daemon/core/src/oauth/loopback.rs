//! The loopback listener of browser flows on 127.0.0.1 (RFC 8252 §7.3):
//! the next request's target, and a one-shot answer. Only the request
//! line is read; the browser is the only client and nothing it sends but
//! the target matters.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The next request on `listener`: its connection and target URL.
pub async fn next(listener: &TcpListener) -> std::io::Result<(TcpStream, url::Url)> {
    loop {
        let (mut sock, _) = listener.accept().await?;
        let mut buf = vec![0u8; 8192];
        let mut len = 0;
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            while len < buf.len() {
                let n = sock.read(&mut buf[len..]).await?;
                if n == 0 {
                    break;
                }
                len += n;
                if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Ok::<_, std::io::Error>(())
        })
        .await;
        if !matches!(read, Ok(Ok(()))) {
            continue;
        }
        let head = String::from_utf8_lossy(&buf[..len]).into_owned();
        let target = head.split_whitespace().nth(1).unwrap_or("");
        if let Ok(url) = url::Url::parse(&format!("http://127.0.0.1{target}")) {
            return Ok((sock, url));
        }
    }
}

/// The query parameter `k` of `url`.
pub fn param(url: &url::Url, k: &str) -> Option<String> {
    url.query_pairs()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.into_owned())
}

/// Answers with `status` and a body of `content_type`, then closes.
pub async fn reply(mut sock: TcpStream, status: &str, content_type: &str, body: &str) {
    let resp = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}; charset=utf-8\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = sock.write_all(resp.as_bytes()).await;
}

//! `valetkey box-bridge`: inside a box in `proxy` mode, the loopback
//! listener the box's HTTP clients are pointed at (`HTTPS_PROXY`). The box
//! has no network, so each connection is passed, byte for byte, to the
//! daemon's proxy on the box's `proxy.sock`; what may go where is decided
//! there, not here. Started by `valetkey box-exec`, never by hand.

use clap::Args;

use super::Failure;

/// Where the bridge listens inside every box (the box's network namespace
/// is its own, so the port is always free).
pub const LISTEN: &str = "127.0.0.1:3128";

/// `valetkey box-bridge` options.
#[derive(Debug, Args)]
pub struct BridgeArgs {
    /// The address to listen on.
    #[arg(long, default_value = LISTEN)]
    pub listen: String,
    /// The proxy socket to forward to.
    #[arg(long)]
    pub to: std::path::PathBuf,
}

/// Runs the bridge: says `ready` on stdout once listening, then serves
/// until the box ends.
pub async fn bridge(a: &BridgeArgs) -> Result<(), Failure> {
    let listener = tokio::net::TcpListener::bind(&a.listen)
        .await
        .map_err(|e| Failure::from(format!("box-bridge: cannot listen on {}: {e}", a.listen)))?;
    {
        use std::io::Write;
        let mut out = std::io::stdout();
        writeln!(out, "ready")?;
        out.flush()?;
    }
    loop {
        let (mut tcp, _) = listener.accept().await?;
        let to = a.to.clone();
        tokio::spawn(async move {
            match tokio::net::UnixStream::connect(&to).await {
                Ok(mut unix) => {
                    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
                }
                Err(e) => {
                    use tokio::io::AsyncWriteExt;
                    let body = format!("{{\"error\":{{\"message\":\"the Valet Key proxy is not reachable ({e}); is valetkeyd running? A daemon restart ends a box's proxy: start the box again\"}}}}");
                    let head = format!("HTTP/1.1 502 Bad Gateway\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
                    let _ = tcp.write_all(head.as_bytes()).await;
                    let _ = tcp.write_all(body.as_bytes()).await;
                }
            }
        });
    }
}

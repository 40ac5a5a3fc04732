//! Boxes' proxies: `valetkey box-exec` makes the listener inside the box
//! and hands it over on the box's `proxy.sock` (see [`super::handover`]);
//! the daemon serves it until the box closes.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::net::{UnixListener, UnixStream};

use valetkey_core::boxes::BoxSession;
use valetkey_core::broker::Shared;

use super::{connection, handover, Ctx, Proxy, Who, FIRST_SESSION};

/// Binds box `session`'s `proxy.sock`, takes the box's listener on it,
/// and serves the box until it closes.
pub fn serve(d: &Shared, proxy: &Arc<Proxy>, session: Arc<BoxSession>) -> Result<(), String> {
    let path = session.socket_dir.join("proxy.sock");
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let (d, proxy2) = (d.clone(), proxy.clone());
    proxy.rt.spawn(async move {
        let proxy = proxy2;
        let listener = match UnixListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => return tracing::warn!(error = %e, "box proxy socket lost"),
        };
        let mut closed = session.closed();
        loop {
            tokio::select! {
                s = listener.accept() => match s {
                    Ok((stream, _)) => {
                        let (d, proxy, session) = (d.clone(), proxy.clone(), session.clone());
                        tokio::spawn(async move { take_listener(d, proxy, session, stream).await });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "proxy accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
                _ = closed.changed() => break,
            }
        }
        finish(&d, &proxy, &session);
    });
    Ok(())
}

/// The box closed: its counted requests are written, its state dropped.
fn finish(d: &Shared, proxy: &Proxy, session: &BoxSession) {
    let id = &session.facts.id;
    let caller = proxy
        .callers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(id);
    if let (Some(c), Some(bx)) = (caller, &session.proxy) {
        if let Some(g) = c.greeted() {
            valetkey_core::access::proxied::flush(d, bx, g);
        }
    }
    proxy.upstreams.forget(id);
}

/// Takes the listener a box hands over on `stream`, answers `k` (or why
/// not), and serves the box's connections on it until the box closes.
async fn take_listener(d: Shared, proxy: Arc<Proxy>, session: Arc<BoxSession>, stream: UnixStream) {
    use std::io::Write;
    let Ok(mut answer) = stream.into_std() else {
        return;
    };
    let taken = async {
        answer.set_nonblocking(false).map_err(|e| e.to_string())?;
        let bx = session.proxy.clone().ok_or("this box has no proxy")?;
        let received = answer.try_clone().map_err(|e| e.to_string())?;
        let (d2, s2) = (d.clone(), session.clone());
        let n = FIRST_SESSION + proxy.next_session.fetch_add(1, Ordering::Relaxed);
        let (listener, caller) =
            tokio::task::spawn_blocking(move || handover::receive(&d2, &s2, received, n))
                .await
                .map_err(|e| e.to_string())??;
        let mut m = proxy.callers.lock().unwrap_or_else(|e| e.into_inner());
        if m.contains_key(&session.facts.id) {
            return Err("this box's proxy listener was handed over already".to_owned());
        }
        m.insert(session.facts.id.clone(), caller.clone());
        Ok((listener, caller, bx))
    }
    .await;
    // `box-exec` reads `k`, or why not, and says so.
    let (listener, caller, bx) = match taken {
        Ok(t) => t,
        Err(why) => {
            tracing::warn!(id = %session.facts.id, %why, "box proxy listener refused");
            let _ = answer.write_all(why.as_bytes());
            return;
        }
    };
    let key: Arc<str> = Arc::from(session.facts.id.as_str());
    let _ = answer.write_all(b"k");
    drop(answer);
    let mut closed = session.closed();
    let mut flush = tokio::time::interval(super::FLUSH_EVERY);
    flush.tick().await;
    // The box's own cap: a box that opens connections without end runs
    // out of its own, never the daemon's.
    let cap = crate::server::Cap::new(
        d.config.limits.box_proxy_connections,
        "box_proxy_connections",
    );
    loop {
        tokio::select! {
            _ = flush.tick() => {
                if let Some(g) = caller.greeted() {
                    valetkey_core::access::proxied::flush(&d, &bx, g);
                }
            }
            s = listener.accept() => match s {
                Ok((tcp, _)) => {
                    let Ok(permit) = cap.take() else {
                        tracing::warn!(id = %session.facts.id, "box proxy connection refused: [limits] box_proxy_connections reached");
                        continue;
                    };
                    let _ = tcp.set_nodelay(true);
                    let ctx = Ctx {
                        d: d.clone(),
                        proxy: proxy.clone(),
                        bx: bx.clone(),
                        key: key.clone(),
                        caller: caller.clone(),
                        who: Arc::new(Who::Boxed),
                    };
                    tokio::spawn(async move {
                        connection(ctx, tcp).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "box proxy accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = closed.changed() => return,
        }
    }
}

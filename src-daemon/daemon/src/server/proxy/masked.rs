//! A response on its way back into a box, with every form of the token the
//! proxy wrote into the request overwritten (the decisions and the
//! caveats are [`valetkey_core::proxy::mask`]'s): the headers at once, the
//! body chunk by chunk as it streams, holding back only the few bytes
//! where a form may continue into the next chunk.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper::header::{HeaderValue, CONTENT_ENCODING};
use hyper::Response;
use valetkey_core::proxy::mask::Masker;

use super::upstream::Body;

/// `resp` with the token masked in its headers and its body; how many
/// forms were found in the headers.
pub fn response(resp: Response<Body>, masker: Masker) -> (Response<Body>, usize) {
    let (mut parts, body) = resp.into_parts();
    let mut hits = 0;
    for v in parts.headers.values_mut() {
        let (masked, n) = masker.whole(v.as_bytes());
        if n > 0 {
            hits += n;
            if let Ok(m) = HeaderValue::from_bytes(&masked) {
                *v = m;
            }
        }
    }
    // A compressed body cannot be read without decoding it; the proxy
    // passes it on as it is (SECURITY.md says so).
    let encoded = parts
        .headers
        .get(CONTENT_ENCODING)
        .is_some_and(|e| !e.as_bytes().eq_ignore_ascii_case(b"identity"));
    let body = if encoded {
        body
    } else {
        Masked {
            inner: body,
            masker,
            trailers: None,
            done: false,
        }
        .boxed()
    };
    (Response::from_parts(parts, body), hits)
}

/// A body with a masker over it.
struct Masked {
    inner: Body,
    masker: Masker,
    /// Trailers that came while bytes were held back: sent after them.
    trailers: Option<Frame<Bytes>>,
    done: bool,
}

impl HttpBody for Masked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if let Some(t) = this.trailers.take() {
            this.done = true;
            return Poll::Ready(Some(Ok(t)));
        }
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    let (out, n) = this.masker.chunk(&data);
                    if n > 0 {
                        tracing::warn!(
                            forms = n,
                            "a response carried the token the proxy wrote in; masked"
                        );
                    }
                    Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
                }
                // Trailers end the data: what was held back goes first.
                Err(trailers) => {
                    let rest = this.masker.finish();
                    if rest.is_empty() {
                        this.done = true;
                        Poll::Ready(Some(Ok(trailers)))
                    } else {
                        this.trailers = Some(trailers);
                        Poll::Ready(Some(Ok(Frame::data(Bytes::from(rest)))))
                    }
                }
            },
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => {
                this.done = true;
                let rest = this.masker.finish();
                if rest.is_empty() {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Ok(Frame::data(Bytes::from(rest)))))
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        // Masks keep every length: the body is exactly as long as before.
        self.inner.size_hint()
    }
}

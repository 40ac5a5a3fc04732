//! Newline-delimited framing with a hard size cap.
//!
//! Reading JSON straight off a stream has dropped messages in other daemons
//! (kanidm's unixd regret). Every byte that crosses the socket therefore goes
//! through this codec first: a frame is one JSON text followed by `\n`, and a
//! frame longer than the cap is an error the moment the cap is passed, so a
//! peer can never make the buffer grow without bound.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::MAX_FRAME_LEN;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer sent more than `limit` bytes without a newline.
    #[error("frame exceeds the {limit}-byte limit")]
    TooLarge {
        /// The cap in force, in bytes.
        limit: usize,
    },
    /// The stream ended in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// The underlying socket failed.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// Splits a byte stream into frames of at most `max_len` bytes (newline
/// included) and writes frames with a trailing newline.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_len: usize,
    /// How far the current buffer has already been scanned for `\n`, so a
    /// slow peer costs O(n) in total rather than O(n²).
    scanned: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(MAX_FRAME_LEN)
    }
}

impl FrameCodec {
    /// A codec with a custom cap; the protocol uses [`MAX_FRAME_LEN`].
    pub fn new(max_len: usize) -> Self {
        Self {
            max_len: max_len.max(2),
            scanned: 0,
        }
    }
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = FrameError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        let limit = buf.len().min(self.max_len);
        let start = self.scanned.min(limit);
        match buf[start..limit].iter().position(|b| *b == b'\n') {
            Some(offset) => {
                let end = start + offset;
                self.scanned = 0;
                let mut frame = buf.split_to(end + 1);
                frame.truncate(end);
                if frame.last() == Some(&b'\r') {
                    frame.truncate(end - 1);
                }
                Ok(Some(frame))
            }
            None if buf.len() >= self.max_len => Err(FrameError::TooLarge {
                limit: self.max_len,
            }),
            None => {
                self.scanned = limit;
                Ok(None)
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        match self.decode(buf)? {
            Some(frame) => Ok(Some(frame)),
            None if buf.iter().all(u8::is_ascii_whitespace) => {
                buf.advance(buf.len());
                Ok(None)
            }
            None => Err(FrameError::Truncated),
        }
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        if item.len() + 1 > self.max_len {
            return Err(FrameError::TooLarge {
                limit: self.max_len,
            });
        }
        dst.reserve(item.len() + 1);
        dst.put(item);
        dst.put_u8(b'\n');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut FrameCodec, input: &[u8]) -> Vec<Result<Vec<u8>, String>> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => out.push(Ok(f.to_vec())),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn splits_on_newlines_and_strips_crlf() {
        let mut c = FrameCodec::new(64);
        let got = decode_all(&mut c, b"{\"a\":1}\n{\"b\":2}\r\npartial");
        assert_eq!(
            got,
            vec![Ok(b"{\"a\":1}".to_vec()), Ok(b"{\"b\":2}".to_vec())]
        );
    }

    #[test]
    fn frame_of_exactly_the_cap_passes_and_one_more_byte_fails() {
        let mut c = FrameCodec::new(8);
        assert_eq!(
            decode_all(&mut c, b"1234567\n"),
            vec![Ok(b"1234567".to_vec())]
        );
        let mut c = FrameCodec::new(8);
        let got = decode_all(&mut c, b"12345678\n");
        assert!(
            matches!(&got[..], [Err(e)] if e.contains("8-byte")),
            "{got:?}"
        );
    }

    #[test]
    fn oversized_frame_fails_before_the_newline_arrives() {
        let mut c = FrameCodec::new(16);
        let mut buf = BytesMut::from(&[b'x'; 16][..]);
        assert!(matches!(
            c.decode(&mut buf),
            Err(FrameError::TooLarge { limit: 16 })
        ));
    }

    #[test]
    fn byte_at_a_time_input_is_reassembled() {
        let mut c = FrameCodec::new(64);
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for b in b"{\"slow\":true}\n" {
            buf.put_u8(*b);
            if let Some(f) = c.decode(&mut buf).expect("no error") {
                frames.push(f.to_vec());
            }
        }
        assert_eq!(frames, vec![b"{\"slow\":true}".to_vec()]);
    }

    #[test]
    fn eof_mid_frame_is_truncated_and_trailing_whitespace_is_fine() {
        let mut c = FrameCodec::new(64);
        let mut buf = BytesMut::from(&b"{\"a\""[..]);
        assert!(matches!(c.decode_eof(&mut buf), Err(FrameError::Truncated)));
        let mut buf = BytesMut::from(&b"  "[..]);
        assert!(matches!(c.decode_eof(&mut buf), Ok(None)));
    }

    #[test]
    fn encoder_refuses_frames_over_the_cap() {
        let mut c = FrameCodec::new(4);
        let mut dst = BytesMut::new();
        c.encode(Bytes::from_static(b"abc"), &mut dst)
            .expect("fits");
        assert_eq!(&dst[..], b"abc\n");
        assert!(c.encode(Bytes::from_static(b"abcd"), &mut dst).is_err());
    }
}

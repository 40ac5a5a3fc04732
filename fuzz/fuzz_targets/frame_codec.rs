//! The frame codec: arbitrary bytes, arriving in arbitrary chunks, with a
//! small cap so the oversized path is reached too. Invariants: no panic,
//! no frame longer than the cap, no newline inside a frame, and once the
//! codec reports an oversized frame the connection is over.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use valetkey_ipc::codec::{FrameCodec, FrameError};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let cap = 64;
    let mut codec = FrameCodec::new(cap);
    let mut buf = BytesMut::new();
    let step = (cut as usize % 17) + 1;
    for chunk in rest.chunks(step) {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= cap, "frame over the cap");
                    assert!(!frame.contains(&b'\n'), "newline inside a frame");
                }
                Ok(None) => break,
                Err(FrameError::TooLarge { .. }) => return,
                Err(_) => return,
            }
        }
    }
});

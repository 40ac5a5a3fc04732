//! Server-sent events, as far as MCP's streamable HTTP uses them: each
//! event's `data` lines make one JSON-RPC message. `event`, `id`, `retry`
//! and comments are read past.

/// Collects bytes until whole events are there.
#[derive(Default)]
pub struct Events {
    buf: String,
}

impl Events {
    /// Adds `chunk`; returns the data of every event it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<String> {
        self.buf.push_str(&String::from_utf8_lossy(chunk));
        let mut out = Vec::new();
        while let Some((end, skip)) = boundary(&self.buf) {
            let event: String = self.buf.drain(..end + skip).collect();
            if let Some(data) = data_of(&event[..end]) {
                out.push(data);
            }
        }
        out
    }
}

/// Where the first event ends (a blank line), and the separator's length.
fn boundary(s: &str) -> Option<(usize, usize)> {
    ["\r\n\r\n", "\n\n", "\r\r"]
        .iter()
        .filter_map(|sep| s.find(sep).map(|i| (i, sep.len())))
        .min()
}

fn data_of(event: &str) -> Option<String> {
    let lines: Vec<&str> = event
        .lines()
        .filter_map(|l| l.strip_prefix("data"))
        .filter_map(|rest| {
            if rest.is_empty() {
                Some("")
            } else {
                rest.strip_prefix(':')
                    .map(|v| v.strip_prefix(' ').unwrap_or(v))
            }
        })
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_come_out_whole() {
        let mut e = Events::default();
        assert!(e.feed(b"event: message\ndata: {\"a\"").is_empty());
        assert_eq!(
            e.feed(b":1}\n\n: comment\n\ndata: x\r\n\r\n"),
            ["{\"a\":1}", "x"]
        );
        assert_eq!(e.feed(b"id: 3\ndata: one\ndata: two\n\n"), ["one\ntwo"]);
        assert!(e.feed(b"retry: 5\n\n").is_empty(), "no data, no message");
    }
}

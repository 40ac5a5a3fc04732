//! Tokens in what comes back: the proxy overwrites them before the box
//! sees the response (as `op run` masks secrets in a program's output).
//!
//! A provider endpoint that echoes the request (`Authorization` in a
//! debug body, a reflected header) would carry the token the proxy wrote
//! in straight into the box. So every response to a request the proxy
//! wrote a credential into goes through a [`Masker`]: each form of that
//! credential (the token, the header value, its credential part, and
//! those again JSON-escaped and percent-encoded) is overwritten, in the
//! headers and in the body as it streams, across chunk boundaries, with a
//! mask of the very same length (the placeholder, cut or repeated). The
//! length of nothing changes, so `Content-Length` stays true.
//!
//! What it cannot catch: a body the provider compressed
//! (`Content-Encoding: gzip`, `br`), and any transformation of the token
//! other than those forms (reversed, split, hashed, re-encoded another
//! way). The proxy cannot read those without decoding them, and does not.

/// One credential's forms and their masks.
#[derive(Clone)]
pub struct Masker {
    /// (form, mask of the same length), longest form first.
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
    /// The longest form's length.
    longest: usize,
    /// Bytes held back at a chunk's end: the start of a form may be there.
    carry: Vec<u8>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Masker(<{} forms redacted>)", self.pairs.len())
    }
}

/// Forms shorter than this are not masked (they would hit by chance).
const SHORTEST: usize = 12;

fn percent_encoded(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl Masker {
    /// A masker for `secrets` (the token, the header value …), masked
    /// with `mask` (the placeholder the box sent, say).
    pub fn new(secrets: &[&str], mask: &str) -> Masker {
        let mut forms: Vec<String> = vec![];
        for s in secrets {
            for f in [s.to_string(), s.replace('/', "\\/"), percent_encoded(s)] {
                if f.len() >= SHORTEST && !forms.contains(&f) {
                    forms.push(f);
                }
            }
        }
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        let fill = if mask.is_empty() {
            "vkp_withheld"
        } else {
            mask
        };
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = forms
            .into_iter()
            .map(|f| {
                let m: Vec<u8> = fill.bytes().cycle().take(f.len()).collect();
                (f.into_bytes(), m)
            })
            .collect();
        let longest = pairs.first().map_or(0, |p| p.0.len());
        Masker {
            pairs,
            longest,
            carry: vec![],
        }
    }

    /// Overwrites every form in `buf`; returns how many were found.
    fn overwrite(&self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        for (form, mask) in &self.pairs {
            let mut at = 0;
            while let Some(i) = memchr::memmem::find(&buf[at..], form) {
                let start = at + i;
                buf[start..start + form.len()].copy_from_slice(mask);
                at = start + form.len();
                n += 1;
            }
        }
        n
    }

    /// A header value or any whole buffer, masked.
    pub fn whole(&self, bytes: &[u8]) -> (Vec<u8>, usize) {
        let mut b = bytes.to_vec();
        let n = self.overwrite(&mut b);
        (b, n)
    }

    /// The next chunk of a body: what may go out now. The last few bytes
    /// are held back until the next chunk (or [`Masker::finish`]), where a
    /// form may continue. Returns the bytes and how many forms were hit.
    pub fn chunk(&mut self, chunk: &[u8]) -> (Vec<u8>, usize) {
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(chunk);
        let n = self.overwrite(&mut buf);
        // A form that is not whole in `buf` starts within its last
        // `longest - 1` bytes: hold those back.
        let keep = self.longest.saturating_sub(1).min(buf.len());
        self.carry = buf.split_off(buf.len() - keep);
        (buf, n)
    }

    /// The bytes held back, at the body's end.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.carry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "gho_16C7e42F292c6912E7710c838347Ae178B4a";

    #[test]
    fn every_form_is_masked_in_place_with_the_same_length() {
        let header = format!("Bearer {TOKEN}");
        let m = Masker::new(&[TOKEN, &header], "vkp_0123456789abcdef");
        let body = format!(
            "{{\"auth\":\"{header}\",\"t\":\"{TOKEN}\",\"q\":\"{}\"}}",
            percent_encoded(&header)
        );
        let (out, n) = m.whole(body.as_bytes());
        let out = String::from_utf8(out).expect("utf8");
        assert_eq!(out.len(), body.len());
        assert!(!out.contains(TOKEN), "{out}");
        assert!(!out.contains("16C7e42F"), "{out}");
        assert!(out.contains("vkp_0123"), "{out}");
        assert_eq!(n, 3);
    }

    #[test]
    fn a_form_split_across_chunks_is_masked_and_nothing_is_lost() {
        let basic = "Basic eC1hY2Nlc3MtdG9rZW46Z2hvXzE2QzdlNDJG/+=";
        let body = format!(
            "prefix {TOKEN} middle {basic} json {} end",
            basic.replace('/', "\\/")
        );
        for cut in 1..body.len() {
            let mut m = Masker::new(&[TOKEN, basic], "vkp_x");
            let (mut out, mut hits) = m.chunk(&body.as_bytes()[..cut]);
            let (more, h) = m.chunk(&body.as_bytes()[cut..]);
            out.extend(more);
            out.extend(m.finish());
            hits += h;
            let out = String::from_utf8(out).expect("utf8");
            assert_eq!(out.len(), body.len(), "cut {cut}");
            assert!(out.starts_with("prefix ") && out.ends_with(" end"), "{out}");
            assert!(
                !out.contains(TOKEN) && !out.contains("eC1hY2Nl"),
                "cut {cut}: {out}"
            );
            assert_eq!(hits, 3, "cut {cut}");
        }
    }

    #[test]
    fn a_body_without_the_token_passes_unchanged_and_debug_names_nothing() {
        let mut m = Masker::new(&[TOKEN], "vkp_x");
        let body = b"no secrets here, just a long enough body to hold something back";
        let (mut out, n) = m.chunk(body);
        out.extend(m.finish());
        assert_eq!((out.as_slice(), n), (&body[..], 0));
        assert!(!format!("{m:?}").contains("gho_"));
    }
}

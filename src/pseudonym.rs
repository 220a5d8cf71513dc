//! Pseudonymous participant ids: `p_` + the first 16 hex digits of
//! HMAC-SHA256(key, id).
//!
//! The same key gives the same pseudonym in every export, so a researcher
//! can join exports of one batch (or of several batches of one operator);
//! without the key the platform's id cannot be recovered or confirmed.
//! The key lives only in this value: it is never written, logged or shown
//! (the `Debug` output hides it).

use std::borrow::Cow;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of every pseudonym.
pub const PSEUDONYM_PREFIX: &str = "p_";

/// The key `participant_id`s are rewritten with, shared by the build's threads.
#[derive(Clone)]
pub(crate) struct Pseudonymiser {
    key: Arc<[u8]>,
}

impl std::fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymiser(<key hidden>)")
    }
}

impl Pseudonymiser {
    pub(crate) fn new(key: &[u8]) -> Pseudonymiser {
        Pseudonymiser { key: key.into() }
    }

    /// The pseudonym of one participant id.
    pub(crate) fn pseudonym(&self, participant_id: &str) -> String {
        pseudonym(&self.key, participant_id)
    }

    /// Pass-through JSON (compact, as [`crate::model::RawJson`] keeps it) with
    /// the string value of every `participant_id` key, at any depth,
    /// replaced by its pseudonym. Borrowed when there is none, which is
    /// nearly always: a quick substring search decides.
    pub(crate) fn rewrite_json<'t>(&self, text: &'t str) -> Cow<'t, str> {
        const KEY: &str = "\"participant_id\":\"";
        if memchr::memmem::find(text.as_bytes(), KEY.as_bytes()).is_none() {
            return Cow::Borrowed(text);
        }
        let bytes = text.as_bytes();
        let mut out = String::with_capacity(text.len() + 32);
        let mut copied = 0;
        for at in memchr::memmem::find_iter(bytes, KEY.as_bytes()) {
            // In compact JSON a key follows `{` or `,`. Inside a string a
            // quote is escaped, so `,"participant_id":"` there would need a
            // backslash before the first quote: this is always a real key.
            if at == 0 || !matches!(bytes[at - 1], b'{' | b',') || at < copied {
                continue;
            }
            let start = at + KEY.len();
            let Some(end) = string_end(bytes, start) else {
                continue;
            };
            let Some(id) = crate::model::raw::decode_json_string::<String>(&text[start - 1..=end])
            else {
                continue;
            };
            out.push_str(&text[copied..start]);
            out.push_str(&self.pseudonym(&id));
            copied = end;
        }
        out.push_str(&text[copied..]);
        Cow::Owned(out)
    }
}

/// The index of the quote closing the JSON string whose content starts at `start`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// `p_` + the first 16 hex digits of HMAC-SHA256(`key`, `participant_id`).
pub fn pseudonym(key: &[u8], participant_id: &str) -> String {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("hmac accepts any key length");
    mac.update(participant_id.as_bytes());
    let digest = mac.finalize().into_bytes();
    format!("{PSEUDONYM_PREFIX}{}", crate::hash::to_hex(&digest[..8]))
}

/// True for text of the form a pseudonym has.
pub fn is_pseudonym(text: &str) -> bool {
    text.strip_prefix(PSEUDONYM_PREFIX).is_some_and(|hex| {
        hex.len() == 16 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonym_is_hmac_sha256_cut_to_16_hex_digits() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            pseudonym(b"Jefe", "what do ya want for nothing?"),
            "p_5bdcc146bf60754e"
        );
        assert!(is_pseudonym(&pseudonym(b"k", "p-1")));
        assert_ne!(pseudonym(b"k1", "p-1"), pseudonym(b"k2", "p-1"));
        assert_eq!(pseudonym(b"k1", "p-1"), pseudonym(b"k1", "p-1"));
    }

    #[test]
    fn rewrites_participant_id_keys_at_any_depth_only() {
        let p = Pseudonymiser::new(b"k");
        let text = r#"{"a":{"participant_id":"p\"1"},"b":"x,\"participant_id\":\"q\"","participant_id":"p-2","n":[{"participant_id":7}]}"#;
        let rewritten = p.rewrite_json(text);
        let expected = format!(
            r#"{{"a":{{"participant_id":"{}"}},"b":"x,\"participant_id\":\"q\"","participant_id":"{}","n":[{{"participant_id":7}}]}}"#,
            p.pseudonym("p\"1"),
            p.pseudonym("p-2")
        );
        assert_eq!(rewritten, expected);
        assert!(matches!(p.rewrite_json(r#"{"x":1}"#), Cow::Borrowed(_)));
    }
}

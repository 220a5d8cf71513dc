//! Hash maps keyed by record ids, with foldhash instead of the standard
//! SipHash: several times faster on short strings, which matters with
//! hundreds of thousands of responses, and still seeded per process so
//! crafted ids cannot aim for collisions. Nothing iterates these maps to
//! produce output (everything written is sorted first), so the seed never
//! reaches the archive's bytes.
//!
//! Also the hexadecimal form that digests, signatures, keys and tokens are
//! written in.

/// A `HashMap` with the fast seeded hasher.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A `HashSet` with the fast seeded hasher.
pub(crate) type HashSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;

/// Lowercase hexadecimal of `bytes`. A few lines here instead of a crate
/// keep the engine's dependency tree small (its budget is 60 crates).
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    text
}

/// The bytes a hexadecimal text spells (either case), or `None` when it has
/// an odd length or a character that is not a hex digit.
// Only the service reads variable-length hex (its signing key).
#[cfg_attr(not(feature = "service"), allow(dead_code))]
pub(crate) fn from_hex(text: &str) -> Option<Vec<u8>> {
    let mut bytes = vec![0; text.len() / 2];
    from_hex_into(text, &mut bytes)?;
    Some(bytes)
}

/// Fills `out` with the bytes `text` spells, or `None` when `text` is not
/// exactly `2 * out.len()` hex digits.
pub(crate) fn from_hex_into(text: &str, out: &mut [u8]) -> Option<()> {
    let digits = text.as_bytes();
    if digits.len() != out.len() * 2 {
        return None;
    }
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
    }
    Some(())
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_every_byte_value() {
        let bytes: Vec<u8> = (0..=255).collect();
        let text = to_hex(&bytes);
        assert_eq!(&text[..8], "00010203");
        assert_eq!(&text[text.len() - 6..], "fdfeff");
        assert_eq!(from_hex(&text), Some(bytes.clone()));
        assert_eq!(from_hex(&text.to_uppercase()), Some(bytes));
        assert_eq!(to_hex(&[0xde, 0xad, 0xbe, 0xef]), "deadbeef");
    }

    #[test]
    fn hex_refuses_odd_lengths_and_non_digits() {
        assert_eq!(from_hex(""), Some(vec![]));
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex("0g"), None);
        assert_eq!(from_hex("+1"), None);
        let mut four = [0u8; 2];
        assert_eq!(from_hex_into("0a0B", &mut four), Some(()));
        assert_eq!(four, [0x0a, 0x0b]);
        assert_eq!(from_hex_into("0a0b0c", &mut four), None);
        assert_eq!(from_hex_into("0a", &mut four), None);
    }
}

//! Pass-through JSON: values kept as their (minified) text, and objects kept
//! as ordered lists of such values.
//!
//! The export never needs to understand most of what it copies, so it does not
//! build `serde_json::Value` trees for it: a value is validated once, its
//! insignificant whitespace removed (so equal records give equal bytes), and
//! its text written back verbatim.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// One JSON value kept as compact text; short values (a timestamp, a
/// number) inline, without an allocation of their own.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RawJson(compact_str::CompactString);

impl RawJson {
    /// Parses and minifies JSON text.
    pub fn parse(text: &str) -> Result<RawJson, serde_json::Error> {
        let raw: &RawValue = serde_json::from_str(text)?;
        Ok(RawJson::from_raw(raw))
    }

    /// A JSON string.
    pub fn string(value: &str) -> RawJson {
        // Serialising a &str cannot fail.
        RawJson(serde_json::to_string(value).unwrap_or_default().into())
    }

    /// Any serialisable value.
    pub fn from_serialize<T: serde::Serialize>(value: &T) -> Result<RawJson, serde_json::Error> {
        Ok(RawJson(serde_json::to_string(value)?.into()))
    }

    pub(crate) fn from_raw(raw: &RawValue) -> RawJson {
        RawJson(match minify(raw.get()) {
            Cow::Borrowed(text) => text.into(),
            Cow::Owned(text) => text.into(),
        })
    }

    /// A value from text this crate minified before (a spilled run's):
    /// not checked again.
    pub(crate) fn from_minified(text: &str) -> RawJson {
        RawJson(text.into())
    }

    /// The compact JSON text.
    pub fn get(&self) -> &str {
        &self.0
    }

    /// True for `null`.
    pub fn is_null(&self) -> bool {
        &*self.0 == "null"
    }

    /// The decoded string, when the value is a JSON string.
    pub fn as_string(&self) -> Option<String> {
        decode_json_string(&self.0)
    }

    /// The value parsed as a tree, for callers that need to look inside.
    pub fn to_value(&self) -> serde_json::Value {
        // The text was valid JSON when this value was made.
        serde_json::from_str(&self.0).unwrap_or(serde_json::Value::Null)
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A string type JSON text can be decoded into: `String` or a
/// [`crate::model::Id`].
pub(crate) trait DecodedString: for<'s> From<&'s str> + From<String> {}

impl<S: for<'s> From<&'s str> + From<String>> DecodedString for S {}

/// The decoded string when `text` (valid JSON) is a JSON string.
pub(crate) fn decode_json_string<S: DecodedString>(text: &str) -> Option<S> {
    // Without a backslash the text between the quotes is the string.
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) if !inner.contains('\\') => Some(S::from(inner)),
        Some(_) => serde_json::from_str::<String>(text).ok().map(S::from),
        None => None,
    }
}

/// Removes whitespace outside strings. The input must be valid JSON.
fn minify(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let Some(first_space) = bytes.iter().position(|&b| is_space(b)) else {
        return Cow::Borrowed(text);
    };
    // Copies runs rather than bytes: strings whole (they keep their
    // whitespace), everything else up to the next space or string.
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let mut scan_from = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'"' {
            let start = i;
            i += 1;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' => i += 2,
                    b'"' => {
                        i += 1;
                        break;
                    }
                    _ => i += 1,
                }
            }
            let end = i.min(bytes.len());
            out.extend_from_slice(&bytes[start..end]);
        } else if is_space(b) {
            i += 1;
        } else {
            let start = i;
            // Before the first space no string can hide one: jump to it.
            if scan_from == 0 && i < first_space && !bytes[i..first_space].contains(&b'"') {
                i = first_space;
            } else {
                while i < bytes.len() && !is_space(bytes[i]) && bytes[i] != b'"' {
                    i += 1;
                }
            }
            scan_from = i;
            out.extend_from_slice(&bytes[start..i]);
        }
    }
    // Only ASCII whitespace was removed, so the bytes are still UTF-8.
    Cow::Owned(String::from_utf8(out).unwrap_or_default())
}

/// A JSON object kept as an ordered list of fields. A repeated key keeps its
/// first position and its last value, as most JSON readers do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawObject {
    fields: Vec<(String, RawJson)>,
}

impl RawObject {
    /// Sets a field, replacing the value of an existing one in place.
    pub fn insert(&mut self, key: &str, value: RawJson) {
        match self.fields.iter_mut().find(|(k, _)| k == key) {
            Some(field) => field.1 = value,
            None => self.fields.push((key.to_owned(), value)),
        }
    }

    /// The value of a field.
    pub fn get(&self, key: &str) -> Option<&RawJson> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Removes a field and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<RawJson> {
        let index = self.fields.iter().position(|(k, _)| k == key)?;
        Some(self.fields.remove(index).1)
    }

    /// The fields, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &RawJson)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Takes the fields out, in order.
    pub fn into_fields(self) -> Vec<(String, RawJson)> {
        self.fields
    }

    /// Writes the object as compact JSON.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (index, (key, value)) in self.fields.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            write_json_string(out, key);
            out.push(b':');
            out.extend_from_slice(value.get().as_bytes());
        }
        out.push(b'}');
    }
}

/// Appends a JSON string literal.
pub(crate) fn write_json_string(out: &mut Vec<u8>, value: &str) {
    // Most strings (ids, types, names) need no escape: copy them as they
    // are, which is what serde_json would write too, only faster.
    if !value.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.reserve(value.len() + 2);
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
        return;
    }
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawObject, D::Error> {
        struct ObjectVisitor;

        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = RawObject;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject, A::Error> {
                let mut object = RawObject::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    object.insert(&key, RawJson::from_raw(value));
                }
                Ok(object)
            }
        }

        deserializer.deserialize_map(ObjectVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minify_keeps_whitespace_inside_strings() {
        let raw = RawJson::parse(r#"{ "a" : [1, 2], "b": "x \" y\\" , "c":{} }"#).unwrap();
        assert_eq!(raw.get(), r#"{"a":[1,2],"b":"x \" y\\","c":{}}"#);
    }

    #[test]
    fn minify_handles_escapes_and_edges() {
        for (text, expected) in [
            (
                r#"{"a b" : "c\\" , "d":"\"e f\""}"#,
                r#"{"a b":"c\\","d":"\"e f\""}"#,
            ),
            (" [ 1 , true , null ] ", "[1,true,null]"),
            (
                r#"{"x":[1,2],"y": {"z": "a  b"}}"#,
                r#"{"x":[1,2],"y":{"z":"a  b"}}"#,
            ),
            (r#""no space""#, r#""no space""#),
            ("12", "12"),
        ] {
            assert_eq!(minify(text), expected, "{text}");
        }
    }

    #[test]
    fn object_keeps_order_and_last_value_of_repeated_key() {
        let object: RawObject = serde_json::from_str(r#"{"z":1,"a":2,"z":3}"#).unwrap();
        let mut out = Vec::new();
        object.write_json(&mut out);
        assert_eq!(out, br#"{"z":3,"a":2}"#);
    }

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        for value in [
            "plain",
            "caf\u{e9} \u{1f98c}",
            "q\"b\\s/\n\t\u{1}\u{7f}",
            "",
        ] {
            let mut out = Vec::new();
            write_json_string(&mut out, value);
            assert_eq!(out, serde_json::to_vec(value).unwrap(), "{value:?}");
        }
    }

    #[test]
    fn as_string_decodes_escapes() {
        assert_eq!(
            RawJson::parse(r#""caf\u00e9""#)
                .unwrap()
                .as_string()
                .unwrap(),
            "café"
        );
        assert_eq!(RawJson::parse("12").unwrap().as_string(), None);
    }
}

//! One JSON object parsed with its keys and values borrowed from its text.
//!
//! A line is parsed once into a [`LineObject`]; a value is copied out only
//! when it is read as a string or kept as pass-through JSON, so a line costs
//! a handful of allocations. It lives beside the records rather than in the
//! dump reader because later stages parse the pass-through JSON they read
//! (an answer's items) the same way.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::model::{RawJson, RawObject};

/// The fields of one JSON object, borrowed from its text, in input order.
/// A repeated key keeps its first position and its last value, as
/// [`RawObject`] does.
pub(crate) struct LineObject<'a> {
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> LineObject<'a> {
    /// Parses the text of one JSON object.
    pub(crate) fn parse(text: &'a str) -> serde_json::Result<LineObject<'a>> {
        serde_json::from_str(text)
    }

    /// The raw value of a field.
    pub(crate) fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// Takes a field out, so that what is left is the fields not read.
    pub(crate) fn remove(&mut self, key: &str) -> Option<&'a RawValue> {
        let index = self.fields.iter().position(|(k, _)| k == key)?;
        Some(self.fields.remove(index).1)
    }

    /// The fields left, in input order.
    pub(crate) fn into_fields(self) -> Vec<(Cow<'a, str>, &'a RawValue)> {
        self.fields
    }

    /// The fields copied out as a [`RawObject`].
    pub(crate) fn to_raw_object(&self) -> RawObject {
        let mut object = RawObject::default();
        for (key, value) in &self.fields {
            object.insert(key, RawJson::from_raw(value));
        }
        object
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for LineObject<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<LineObject<'a>, D::Error> {
        struct ObjectVisitor;

        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = LineObject<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LineObject<'de>, A::Error> {
                let mut fields: Vec<(Cow<'de, str>, &'de RawValue)> =
                    Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    match fields.iter_mut().find(|(k, _)| *k == key) {
                        Some(field) => field.1 = value,
                        None => fields.push((key, value)),
                    }
                }
                Ok(LineObject { fields })
            }
        }

        deserializer.deserialize_map(ObjectVisitor)
    }
}

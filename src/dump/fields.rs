//! Typed access to the fields of one parsed line, collecting a problem for
//! every field that is missing or of the wrong type.
//! The line itself is a [`LineObject`], parsed once with its keys and values
//! borrowed from the line's text.

use serde_json::value::RawValue;

use crate::error::{Problem, ProblemKind};
use crate::model::line::LineObject;
use crate::model::raw::{decode_json_string, DecodedString};
use crate::model::{ExtraFields, RawJson};

/// The fields of one record, consumed as they are read so that what is left
/// over is exactly the record's unknown fields.
pub(crate) struct FieldReader<'a, 't> {
    object: LineObject<'t>,
    file: &'a str,
    line: u64,
    prefix: &'static str,
    pub(crate) problems: Vec<Problem>,
}

impl<'a, 't> FieldReader<'a, 't> {
    pub(crate) fn new(object: LineObject<'t>, file: &'a str, line: u64) -> FieldReader<'a, 't> {
        FieldReader {
            object,
            file,
            line,
            prefix: "",
            problems: Vec::new(),
        }
    }

    /// A reader for a nested object; its fields are named `prefix.field`.
    pub(crate) fn nested(
        &self,
        object: LineObject<'t>,
        prefix: &'static str,
    ) -> FieldReader<'a, 't> {
        FieldReader {
            object,
            file: self.file,
            line: self.line,
            prefix,
            problems: Vec::new(),
        }
    }

    pub(crate) fn problem(&mut self, kind: ProblemKind, field: &str, message: String) {
        let field = if self.prefix.is_empty() {
            field.to_owned()
        } else {
            format!("{}.{field}", self.prefix)
        };
        self.problems.push(Problem {
            kind,
            file: self.file.to_owned(),
            line: Some(self.line),
            field: Some(field),
            message,
        });
    }

    fn missing(&mut self, field: &str) {
        self.problem(
            ProblemKind::MissingField,
            field,
            "required field is missing".to_owned(),
        );
    }

    fn wrong_type(&mut self, field: &str, expected: &str, found: &RawValue) {
        self.problem(
            ProblemKind::WrongType,
            field,
            format!("expected {expected}, found {}", describe(found)),
        );
    }

    /// A field that must be a string.
    pub(crate) fn required_string<S: DecodedString>(&mut self, field: &str) -> Option<S> {
        match self.object.remove(field) {
            None => {
                self.missing(field);
                None
            }
            Some(value) => self.string_value(field, value),
        }
    }

    /// A field that may be absent or null, and otherwise must be a string.
    pub(crate) fn optional_string<S: DecodedString>(&mut self, field: &str) -> Option<S> {
        match self.object.remove(field) {
            Some(value) if value.get() != "null" => self.string_value(field, value),
            _ => None,
        }
    }

    fn string_value<S: DecodedString>(&mut self, field: &str, value: &RawValue) -> Option<S> {
        let string = decode_json_string(value.get());
        if string.is_none() {
            if value.get().starts_with('"') {
                // Valid JSON, yet no Unicode string: serde_json (and so
                // every Rust reader) refuses a lone UTF-16 surrogate.
                self.problem(
                    ProblemKind::WrongType,
                    field,
                    "a string with a lone surrogate escape (\\ud800-\\udfff without its pair), which is not Unicode text".to_owned(),
                );
            } else {
                self.wrong_type(field, "a string", value);
            }
        }
        string
    }

    /// A field that must be a non-negative integer.
    pub(crate) fn required_u64(&mut self, field: &str) -> Option<u64> {
        let value = match self.object.remove(field) {
            None => {
                self.missing(field);
                return None;
            }
            Some(value) => value,
        };
        let number = value.get().parse::<u64>().ok();
        if number.is_none() {
            self.wrong_type(field, "a non-negative integer", value);
        }
        number
    }

    /// A field that must be a JSON object.
    pub(crate) fn required_object(&mut self, field: &str) -> Option<LineObject<'t>> {
        let value = match self.object.remove(field) {
            None => {
                self.missing(field);
                return None;
            }
            Some(value) => value,
        };
        let object = if value.get().starts_with('{') {
            LineObject::parse(value.get()).ok()
        } else {
            None
        };
        if object.is_none() {
            self.wrong_type(field, "an object", value);
        }
        object
    }

    /// A field that must be a JSON array; its items are kept as raw values.
    pub(crate) fn required_array(&mut self, field: &str) -> Option<Vec<RawJson>> {
        let value = match self.object.remove(field) {
            None => {
                self.missing(field);
                return None;
            }
            Some(value) => value,
        };
        let items = if value.get().starts_with('[') {
            serde_json::from_str::<Vec<&serde_json::value::RawValue>>(value.get())
                .ok()
                .map(|items| items.into_iter().map(RawJson::from_raw).collect())
        } else {
            None
        };
        if items.is_none() {
            self.wrong_type(field, "an array", value);
        }
        items
    }

    /// A pass-through field; absent and null both read as `None`.
    pub(crate) fn optional_raw(&mut self, field: &str) -> Option<RawJson> {
        self.object
            .remove(field)
            .filter(|value| value.get() != "null")
            .map(RawJson::from_raw)
    }

    /// The fields not read, in input order.
    pub(crate) fn into_extra(self) -> (ExtraFields, Vec<Problem>) {
        let extra = self
            .object
            .into_fields()
            .into_iter()
            .map(|(key, value)| (key.into_owned(), RawJson::from_raw(value)))
            .collect();
        (extra, self.problems)
    }
}

/// Names a JSON value's type for messages.
pub(crate) fn describe(value: &RawValue) -> &'static str {
    match value.get().as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't') | Some(b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

//! What an error answer's body says, in one line. A client meets three
//! shapes: ours (`{"error": "...", "parameter": "..."}`, see
//! [`ErrorBody`]), Prolific's (`{"error": {"status", "title",
//! "error_code", "detail", "additional_information"}}`) and Prolific's
//! older `{"message", "detail"}`. Anything else is shown as the body's
//! first 200 characters, so an unexpected answer (an HTML page of a
//! proxy) still says something.

use serde::Deserialize;
use serde_json::Value;

use crate::wire::ErrorBody;

/// How much of a body that is no known shape is shown.
const RAW_CHARS: usize = 200;

/// Prolific's error object (every field optional: servers leave some out).
#[derive(Deserialize)]
struct ProlificError {
    title: Option<Value>,
    detail: Option<Value>,
    error_code: Option<Value>,
    additional_information: Option<Value>,
}

/// The body shapes, tried in this order.
#[derive(Deserialize)]
#[serde(untagged)]
enum Shape {
    Ours(ErrorBody),
    Prolific {
        error: ProlificError,
    },
    Older {
        message: Option<Value>,
        detail: Option<Value>,
    },
}

/// The message of an error answer's body.
pub(super) fn error_message(response: ureq::Response) -> String {
    error_text(&response.into_string().unwrap_or_default())
}

/// The message of an error body's text.
pub(super) fn error_text(text: &str) -> String {
    // Only an object is a body of ours or Prolific's (serde would also
    // read a struct from an array).
    let shape = match serde_json::from_str::<Value>(text) {
        Ok(body @ Value::Object(_)) => Shape::deserialize(body),
        _ => return raw(text),
    };
    let found = match shape {
        Ok(Shape::Ours(body)) => Some(match body.parameter {
            Some(parameter) => format!("{} ({parameter})", body.error),
            None => body.error,
        }),
        Ok(Shape::Prolific { error }) => prolific(&error),
        Ok(Shape::Older { message, detail }) => joined(&[message, detail]),
        Err(_) => None,
    };
    found.unwrap_or_else(|| raw(text))
}

/// The start of a body that is no known shape.
fn raw(text: &str) -> String {
    text.chars().take(RAW_CHARS).collect()
}

/// `title: detail (error code N); additional_information`, leaving out
/// what is missing; `None` when nothing is there.
fn prolific(error: &ProlificError) -> Option<String> {
    let mut message = joined(&[error.title.clone(), error.detail.clone()])?;
    if let Some(code) = plain(error.error_code.as_ref()) {
        message.push_str(&format!(" (error code {code})"));
    }
    if let Some(more) = plain(error.additional_information.as_ref()) {
        message.push_str(&format!("; {more}"));
    }
    Some(message)
}

/// The present, distinct parts joined with `: `; `None` when none is.
fn joined(parts: &[Option<Value>]) -> Option<String> {
    let mut texts: Vec<String> = parts.iter().filter_map(|p| plain(p.as_ref())).collect();
    texts.dedup();
    (!texts.is_empty()).then(|| texts.join(": "))
}

/// A value as text: strings as they are, numbers and the like as JSON;
/// `None` for null, an empty string or a missing value.
fn plain(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Null => None,
        Value::String(text) if text.trim().is_empty() => None,
        Value::String(text) => Some(text.trim().to_owned()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_body_names_the_parameter() {
        assert_eq!(
            error_text(r#"{"error": "unknown query parameter", "parameter": "bogus"}"#),
            "unknown query parameter (bogus)"
        );
        assert_eq!(error_text(r#"{"error": "not found"}"#), "not found");
    }

    #[test]
    fn prolifics_body_gives_title_detail_code_and_more() {
        let body = r#"{"error": {"status": 409, "title": "Conflict", "error_code": 140001,
            "detail": "Too many exports for this batch",
            "additional_information": "/api/v1/errors/140001"}}"#;
        assert_eq!(
            error_text(body),
            "Conflict: Too many exports for this batch (error code 140001); /api/v1/errors/140001"
        );
        assert_eq!(
            error_text(r#"{"error": {"status": 400, "detail": "bad filter"}}"#),
            "bad filter"
        );
        // A detail that only repeats the title is said once.
        assert_eq!(
            error_text(r#"{"error": {"title": "Forbidden", "detail": "Forbidden"}}"#),
            "Forbidden"
        );
        // An error object with nothing to say is shown raw.
        assert_eq!(
            error_text(r#"{"error": {"status": 500}}"#),
            r#"{"error": {"status": 500}}"#
        );
    }

    #[test]
    fn the_older_body_falls_back_to_message_and_detail() {
        assert_eq!(
            error_text(r#"{"message": "Not allowed", "detail": "token expired"}"#),
            "Not allowed: token expired"
        );
        assert_eq!(error_text(r#"{"message": "Not allowed"}"#), "Not allowed");
        assert_eq!(
            error_text(r#"{"detail": "token expired"}"#),
            "token expired"
        );
    }

    #[test]
    fn anything_else_is_its_first_characters() {
        assert_eq!(error_text("<html>oops</html>"), "<html>oops</html>");
        assert_eq!(error_text(&"x".repeat(500)).len(), RAW_CHARS);
        assert_eq!(error_text("{}"), "{}");
        assert_eq!(error_text(r#"["a"]"#), r#"["a"]"#);
    }
}

//! The `file_key` of every `file_upload` answer item, decoded once.
//!
//! Answer items are pass-through JSON ([`RawJson`](super::RawJson)): the
//! export copies them as given. Only a file upload's `file_key` is read, by
//! three stages (the reference check, the naming of `files/` and the `path`
//! written into the item), so it is decoded here once per export, before
//! the checks, and those stages read the typed keys. Records handed over
//! through the API have no reading step of their own, which is why this
//! happens when an export starts rather than in the dump reader: both kinds
//! of records take the same path.

use rayon::prelude::*;

use super::line::LineObject;
use super::raw::decode_json_string;
use super::{Id, InstructionType, Records, Response};

/// The decoded keys of the answer items, by response position in
/// [`Records::responses`]. Stored flat (one start offset per response) so
/// that half a million responses without uploads cost 4 bytes each.
#[derive(Debug, Default)]
pub(crate) struct FileKeys {
    /// `starts[i]..starts[i + 1]` are the items of response `i` in `keys`.
    starts: Vec<u32>,
    /// One entry per answer item of a `file_upload` response; `None` for an
    /// item that is not an object with a string `file_key`.
    keys: Vec<Option<Id>>,
}

impl FileKeys {
    /// Decodes the keys of every `file_upload` response, in parallel.
    pub(crate) fn decode(records: &Records) -> FileKeys {
        FileKeys::of_responses(&records.responses)
    }

    /// Decodes the keys of `responses`, by position in the slice.
    pub(crate) fn of_responses(responses: &[Response]) -> FileKeys {
        let per_response: Vec<Vec<Option<Id>>> = responses
            .par_iter()
            .map(|response| decode_response(response).collect())
            .collect();
        let mut starts = Vec::with_capacity(per_response.len() + 1);
        let mut keys = Vec::new();
        starts.push(0);
        for items in per_response {
            keys.extend(items);
            // An archive holds far fewer than 4 billion answer items: the
            // views of that many would not fit any ZIP reader's memory.
            starts.push(u32::try_from(keys.len()).expect("fewer than 2^32 answer items"));
        }
        FileKeys { starts, keys }
    }

    /// The keys of response `index`'s answer items, in answer order; empty
    /// for a response that is not a file upload.
    pub(crate) fn of(&self, index: usize) -> &[Option<Id>] {
        match (self.starts.get(index), self.starts.get(index + 1)) {
            (Some(&start), Some(&end)) => &self.keys[start as usize..end as usize],
            _ => &[],
        }
    }
}

/// The `file_key` of each answer item of a `file_upload` response; nothing
/// for any other type.
pub(crate) fn decode_response(response: &Response) -> impl Iterator<Item = Option<Id>> + '_ {
    let is_upload = response.kind == InstructionType::FileUpload.as_str();
    let items = if is_upload { &response.answer[..] } else { &[] };
    items.iter().map(|item| {
        let object = LineObject::parse(item.get()).ok()?;
        decode_json_string(object.get("file_key")?.get())
    })
}

#[cfg(test)]
mod tests {
    use super::FileKeys;
    use crate::model::{Batch, RawJson, Records, Response};

    fn response(kind: &str, answer: &[&str]) -> Response {
        Response {
            kind: kind.into(),
            answer: answer.iter().map(|a| RawJson::parse(a).unwrap()).collect(),
            ..Response::default()
        }
    }

    #[test]
    fn only_file_upload_items_are_decoded_in_answer_order() {
        let mut records = Records::new(Batch::new("b", "B", "w"));
        records.responses = vec![
            response("free_text", &[r#"{"value": "x", "file_key": "no"}"#]),
            response(
                "file_upload",
                &[
                    r#"{"file_key": "caf\u00e9"}"#,
                    r#"{"file_key": 3}"#,
                    r#"["file_key"]"#,
                    r#"{"file_key": "a", "file_key": "b"}"#,
                ],
            ),
            response("file_upload", &[]),
        ];
        let keys = FileKeys::decode(&records);
        assert!(keys.of(0).is_empty());
        let second: Vec<Option<&str>> = keys.of(1).iter().map(|k| k.as_deref()).collect();
        // A repeated key keeps its last value, as the writer's RawObject does.
        assert_eq!(second, [Some("café"), None, None, Some("b")]);
        assert!(keys.of(2).is_empty());
        assert!(keys.of(3).is_empty(), "past the end is empty");
    }
}

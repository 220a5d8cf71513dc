//! A response as the bytes of a spilled run, and back: length-prefixed
//! strings in field order (lengths as varints), which is all a
//! [`Response`] holds.
//!
//! Runs live only for one build and are read back by the same binary, so
//! the format is private and unversioned.

use crate::model::{RawJson, Response};

/// Appends `response` to `out`.
pub(crate) fn encode(response: &Response, out: &mut Vec<u8>) {
    for text in [
        &response.id,
        &response.submission_id,
        &response.task_id,
        &response.instruction_id,
        &response.kind,
    ] {
        put(out, text);
    }
    put_len(out, response.answer.len());
    for item in &response.answer {
        put(out, item.get());
    }
    put_optional(out, response.participant_id.as_deref());
    put_optional(out, response.correlation_id.as_ref().map(RawJson::get));
    put_optional(out, response.created_at.as_ref().map(RawJson::get));
    put_len(out, response.extra.len());
    for (key, value) in &response.extra {
        put(out, key);
        put(out, value.get());
    }
}

/// The response [`encode`] wrote into `bytes`; `None` when they are not
/// such a record (a run file damaged while the build ran).
pub(crate) fn decode(bytes: &[u8]) -> Option<Response> {
    let mut reader = Reader { bytes };
    let mut response = Response {
        id: reader.text()?.into(),
        submission_id: reader.text()?.into(),
        task_id: reader.text()?.into(),
        instruction_id: reader.text()?.into(),
        kind: reader.text()?.into(),
        ..Response::default()
    };
    let items = reader.len()?;
    response.answer = (0..items)
        .map(|_| reader.text().map(RawJson::from_minified))
        .collect::<Option<_>>()?;
    response.participant_id = reader.optional()?.map(Into::into);
    response.correlation_id = reader.optional()?.map(RawJson::from_minified);
    response.created_at = reader.optional()?.map(RawJson::from_minified);
    let extra = reader.len()?;
    response.extra = (0..extra)
        .map(|_| {
            Some((
                reader.text()?.to_owned(),
                RawJson::from_minified(reader.text()?),
            ))
        })
        .collect::<Option<_>>()?;
    reader.bytes.is_empty().then_some(response)
}

/// A length as a LEB128 varint: seven bits a byte, low bits first, the
/// top bit set on every byte but the last. Most fields are short, so most
/// lengths take one byte, not four: the runs, written twice and read back
/// twice, are that much smaller.
fn put_len(out: &mut Vec<u8>, len: usize) {
    let mut rest = u32::try_from(len).expect("fields under 4 GiB");
    while rest >= 0x80 {
        out.push(rest as u8 | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

fn put(out: &mut Vec<u8>, text: &str) {
    put_len(out, text.len());
    out.extend_from_slice(text.as_bytes());
}

fn put_optional(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        None => out.push(0),
        Some(text) => {
            out.push(1);
            put(out, text);
        }
    }
}

struct Reader<'b> {
    bytes: &'b [u8],
}

impl<'b> Reader<'b> {
    fn len(&mut self) -> Option<usize> {
        let mut len = 0u64;
        for shift in (0..35).step_by(7) {
            let (&byte, rest) = self.bytes.split_first()?;
            self.bytes = rest;
            len |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return u32::try_from(len).ok().map(|len| len as usize);
            }
        }
        // More than five bytes: not a length `put_len` wrote.
        None
    }

    fn text(&mut self) -> Option<&'b str> {
        let len = self.len()?;
        let (text, rest) = self.bytes.split_at_checked(len)?;
        self.bytes = rest;
        std::str::from_utf8(text).ok()
    }

    fn optional(&mut self) -> Option<Option<&'b str>> {
        let (&tag, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        match tag {
            0 => Some(None),
            1 => self.text().map(Some),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{decode, encode};
    use crate::model::{RawJson, Response};

    #[test]
    fn a_response_comes_back_field_for_field() {
        let response = Response {
            id: "r-1".into(),
            submission_id: "s-1".into(),
            task_id: "t-ü".into(),
            instruction_id: "i-1".into(),
            kind: "file_upload".into(),
            answer: vec![
                RawJson::parse(r#"{"file_key":"k","file_name":"a b.txt"}"#).unwrap(),
                RawJson::parse("[]").unwrap(),
            ],
            participant_id: Some("p-1".into()),
            correlation_id: None,
            created_at: Some(RawJson::string("2024-05-01T10:00:00Z")),
            extra: vec![("note".to_owned(), RawJson::parse(r#"{"x":[1,2]}"#).unwrap())],
        };
        let mut bytes = Vec::new();
        encode(&response, &mut bytes);
        let back = decode(&bytes).expect("decodes");
        assert_eq!(format!("{back:?}"), format!("{response:?}"));
        // A cut record is refused, not read as something else.
        assert!(decode(&bytes[..bytes.len() - 1]).is_none());
        bytes.push(0);
        assert!(decode(&bytes).is_none());
    }

    #[test]
    fn lengths_of_every_size_come_back() {
        let mut response = Response::default();
        for len in [0, 1, 127, 128, 300, 16_383, 16_384, 70_000, 2_100_000] {
            response.id = "x".repeat(len).into();
            let mut bytes = Vec::new();
            encode(&response, &mut bytes);
            let back = decode(&bytes).expect("decodes");
            assert_eq!(back.id.len(), len);
        }
        // A short field's length takes one byte: 5 texts, 2 counts and 3
        // absent optionals of an empty response are 10 bytes.
        let mut bytes = Vec::new();
        encode(&Response::default(), &mut bytes);
        assert_eq!(bytes.len(), 10);
        // A length that never ends is refused.
        assert!(decode(&[0xff; 8]).is_none());
    }
}

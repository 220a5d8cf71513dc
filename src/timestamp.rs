//! RFC 3339 timestamps: ordering responses, choosing the archive's
//! `generated_at`, and the MS-DOS times ZIP entries carry.
//!
//! The library never reads the clock: `generated_at` is given by the caller
//! or derived from the records, so the same records give the same bytes.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use rayon::prelude::*;

use crate::model::{RawJson, Records};

/// The `generated_at` of a batch with no timestamps at all.
pub const EPOCH_1980: &str = "1980-01-01T00:00:00Z";

/// Parses an RFC 3339 timestamp.
pub fn parse_rfc3339(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// Nanoseconds since the Unix epoch of a raw JSON timestamp; `None` for a
/// value that is absent, not a string or not RFC 3339.
pub(crate) fn instant(value: Option<&RawJson>) -> Option<i128> {
    let text = value?.as_string()?;
    Some(parse_rfc3339(&text)?.unix_timestamp_nanos())
}

/// The latest `created_at`, `started_at` or `completed_at` of any record,
/// in UTC (`...Z`), or [`EPOCH_1980`] when there is none.
///
/// Written in UTC rather than as found, because two records can name the
/// same instant in different offsets, and which of them came first depends
/// on line order, which must not change the archive.
pub fn latest_timestamp(records: &Records) -> String {
    latest_instant(records).map_or_else(|| EPOCH_1980.to_owned(), utc_rfc3339)
}

/// The instant behind [`latest_timestamp`], `None` when no record has one.
pub(crate) fn latest_instant(records: &Records) -> Option<OffsetDateTime> {
    // Responses are the bulk of a batch: scanned in parallel. The maximum
    // of instants does not depend on the order they are met in.
    let responses = records
        .responses
        .par_iter()
        .filter_map(latest_of_response)
        .max();
    let batch = latest_of(NAMES.iter().filter_map(|n| records.batch.fields.get(n)));
    let instructions = records
        .instructions
        .iter()
        .filter_map(|i| latest_of(NAMES.iter().filter_map(|n| i.fields.get(n))));
    let tasks = records
        .tasks
        .iter()
        .filter_map(|t| latest_of(named(&t.extra)));
    let submissions = records.submissions.iter().filter_map(|s| {
        let fixed = s.started_at.iter().chain(s.completed_at.iter());
        latest_of(fixed.chain(named(&s.extra)))
    });
    let uploads = records
        .uploads
        .iter()
        .filter_map(|u| latest_of(named(&u.extra)));
    [responses, batch]
        .into_iter()
        .flatten()
        .chain(instructions)
        .chain(tasks)
        .chain(submissions)
        .chain(uploads)
        .max()
}

/// The latest instant one response names, `None` when it names none.
pub(crate) fn latest_of_response(response: &crate::model::Response) -> Option<OffsetDateTime> {
    latest_of(response.created_at.iter().chain(named(&response.extra)))
}

/// An instant as RFC 3339 in UTC.
pub(crate) fn utc_rfc3339(time: OffsetDateTime) -> String {
    time.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| EPOCH_1980.to_owned())
}

/// The record fields whose times count towards `generated_at`.
const NAMES: [&str; 3] = ["created_at", "started_at", "completed_at"];

/// The values of unknown fields that carry one of [`NAMES`].
fn named(fields: &[(String, RawJson)]) -> impl Iterator<Item = &RawJson> {
    fields
        .iter()
        .filter(|(key, _)| NAMES.contains(&key.as_str()))
        .map(|(_, value)| value)
}

/// The latest RFC 3339 instant among some values, ignoring the rest.
fn latest_of<'a>(values: impl Iterator<Item = &'a RawJson>) -> Option<OffsetDateTime> {
    values
        .filter_map(|value| parse_rfc3339(&value.as_string()?))
        .max()
}

/// The MS-DOS `(time, date)` pair of an instant, in UTC, clamped to the
/// range the format can hold (1980 to 2107).
pub(crate) fn dos_time(time: OffsetDateTime) -> (u16, u16) {
    let utc = time.to_offset(time::UtcOffset::UTC);
    let year = utc.year();
    if year < 1980 {
        return (0, (1 << 5) | 1);
    }
    if year > 2107 {
        return ((23 << 11) | (59 << 5) | 29, (127 << 9) | (12 << 5) | 31);
    }
    let dos_time =
        ((utc.hour() as u16) << 11) | ((utc.minute() as u16) << 5) | (utc.second() as u16 / 2);
    let dos_date =
        (((year - 1980) as u16) << 9) | ((u8::from(utc.month()) as u16) << 5) | utc.day() as u16;
    (dos_time, dos_date)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dos_time_uses_utc_and_two_second_steps() {
        let time = parse_rfc3339("2024-03-05T12:34:57+02:00").unwrap();
        let (t, d) = dos_time(time);
        assert_eq!(t, (10 << 11) | (34 << 5) | 28);
        assert_eq!(d, (44 << 9) | (3 << 5) | 5);
    }

    #[test]
    fn dos_time_clamps_before_1980() {
        let time = parse_rfc3339("1970-01-01T00:00:00Z").unwrap();
        assert_eq!(dos_time(time), (0, 33));
    }

    #[test]
    fn latest_timestamp_is_written_in_utc() {
        let mut records = Records::new(crate::model::Batch::new("b", "n", "w"));
        assert_eq!(latest_timestamp(&records), EPOCH_1980);
        for (id, at) in [
            ("a", "2024-05-01T11:00:00+02:00"),
            ("b", "2024-05-01T08:59:59.5Z"),
            ("c", "soon"),
        ] {
            records.submissions.push(crate::model::Submission {
                id: id.into(),
                started_at: Some(RawJson::string(at)),
                ..Default::default()
            });
        }
        assert_eq!(latest_timestamp(&records), "2024-05-01T09:00:00Z");
    }

    #[test]
    fn instant_ignores_values_that_are_not_rfc3339() {
        assert!(instant(Some(&RawJson::string("yesterday"))).is_none());
        assert!(instant(Some(&RawJson::string("2024-01-01T00:00:00Z"))).is_some());
    }
}

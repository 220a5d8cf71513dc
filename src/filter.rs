//! [`ExportFilter`]: which responses an export holds, with the one parser
//! and normaliser every layer uses (the build options, the job engine, the
//! service's query string and the client).
//!
//! Two filters that mean the same (`from=2024-05-01T12:00:00+02:00` and
//! `from=2024-05-01T10:00:00Z`) normalise to the same value, so the job
//! engine can key jobs on the normalised filter: timestamps are rewritten
//! in UTC and an empty `study_id` is no filter. A window whose `to` is not
//! after its `from` is refused, since it could only ever hold nothing.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::timestamp::parse_rfc3339;

/// Which responses an export holds, beyond leaving out `no_submission` ones.
/// Terms combine with AND; an empty filter keeps everything.
///
/// Its JSON form (in the service's answers and the job store) names every
/// term, `null` when unset:
/// `{"study_id": "study-1", "from": null, "to": "2024-05-02T00:00:00Z"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExportFilter {
    /// Keep responses whose submission's `study_id` is this.
    pub study_id: Option<String>,
    /// Keep responses created at or after this instant (RFC 3339).
    pub from: Option<String>,
    /// Keep responses created before this instant (RFC 3339).
    pub to: Option<String>,
}

/// A filter term that cannot be used, named as the caller spelled it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {parameter}: {message}")]
pub struct FilterError {
    /// `study_id`, `from` or `to`.
    pub parameter: &'static str,
    /// What is wrong with it.
    pub message: String,
}

/// The checked filter the build reads: instants as nanoseconds since the
/// Unix epoch, so comparing a response's time is one integer comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) study_id: Option<String>,
    pub(crate) from: Option<i128>,
    pub(crate) to: Option<i128>,
}

impl Window {
    /// True when the filter bounds the response's `created_at`.
    pub(crate) fn has_time_bounds(&self) -> bool {
        self.from.is_some() || self.to.is_some()
    }
}

impl ExportFilter {
    /// The names of the filter's terms, as query parameters and JSON keys.
    pub const PARAMETERS: [&'static str; 3] = ["study_id", "from", "to"];

    /// True when the filter keeps every response.
    pub fn is_empty(&self) -> bool {
        self.study_id.is_none() && self.from.is_none() && self.to.is_none()
    }

    /// Sets the term called `parameter` to `value`; `false` when no term
    /// has that name (the caller decides whether that is an error).
    pub fn set(&mut self, parameter: &str, value: String) -> bool {
        let slot = match parameter {
            "study_id" => &mut self.study_id,
            "from" => &mut self.from,
            "to" => &mut self.to,
            _ => return false,
        };
        *slot = Some(value);
        true
    }

    /// The terms that are set, as `(parameter, value)` pairs in
    /// [`Self::PARAMETERS`] order: what a query string carries.
    pub fn parameters(&self) -> impl Iterator<Item = (&'static str, &str)> {
        Self::PARAMETERS
            .into_iter()
            .zip([&self.study_id, &self.from, &self.to])
            .filter_map(|(name, value)| Some((name, value.as_deref()?)))
    }

    /// The filter checked and in canonical form: timestamps in UTC, no
    /// empty `study_id`. Refuses a bound that is not RFC 3339, and a `to`
    /// that is not after `from`.
    pub fn normalized(&self) -> Result<ExportFilter, FilterError> {
        let from = instant("from", self.from.as_deref())?;
        let to = instant("to", self.to.as_deref())?;
        if let (Some(from), Some(to)) = (from, to) {
            if to <= from {
                return Err(FilterError {
                    parameter: "to",
                    message: "must be after from (from is inclusive, to exclusive)".to_owned(),
                });
            }
        }
        Ok(ExportFilter {
            study_id: self.study_id.clone().filter(|s| !s.is_empty()),
            from: from.map(utc),
            to: to.map(utc),
        })
    }

    /// The normalised filter as the build reads it.
    pub(crate) fn window(&self) -> Result<Window, FilterError> {
        let normal = self.normalized()?;
        let nanos = |parameter, text: Option<&str>| {
            Ok::<_, FilterError>(instant(parameter, text)?.map(|t| t.unix_timestamp_nanos()))
        };
        Ok(Window {
            from: nanos("from", normal.from.as_deref())?,
            to: nanos("to", normal.to.as_deref())?,
            study_id: normal.study_id,
        })
    }
}

/// The one place a bound is parsed.
fn instant(
    parameter: &'static str,
    text: Option<&str>,
) -> Result<Option<OffsetDateTime>, FilterError> {
    let Some(text) = text else {
        return Ok(None);
    };
    parse_rfc3339(text).map(Some).ok_or_else(|| FilterError {
        parameter,
        message: format!("{text:?} is not an RFC 3339 timestamp"),
    })
}

fn utc(time: OffsetDateTime) -> String {
    time.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(from: Option<&str>, to: Option<&str>) -> ExportFilter {
        ExportFilter {
            study_id: None,
            from: from.map(str::to_owned),
            to: to.map(str::to_owned),
        }
    }

    #[test]
    fn equal_instants_normalise_alike() {
        let mut a = filter(Some("2024-05-01T12:00:00+02:00"), None);
        a.study_id = Some(String::new());
        let b = filter(Some("2024-05-01T10:00:00Z"), None);
        assert_eq!(a.normalized().unwrap(), b.normalized().unwrap());
        assert_eq!(b.normalized().unwrap(), b);
    }

    #[test]
    fn bad_bounds_name_their_parameter() {
        let err = filter(None, Some("yesterday")).normalized().unwrap_err();
        assert_eq!(err.parameter, "to");
        let err = filter(Some("2024-05-02T00:00:00Z"), Some("2024-05-01T00:00:00Z"))
            .normalized()
            .unwrap_err();
        assert_eq!(err.parameter, "to");
        let same = filter(
            Some("2024-05-01T02:00:00+02:00"),
            Some("2024-05-01T00:00:00Z"),
        );
        assert!(same.normalized().is_err(), "an empty window is refused");
    }

    #[test]
    fn parameters_round_trip_through_set() {
        let mut f = ExportFilter::default();
        assert!(f.set("study_id", "s".into()) && f.set("to", "t".into()));
        assert!(!f.set("bogus", "x".into()));
        let pairs: Vec<_> = f.parameters().collect();
        assert_eq!(pairs, [("study_id", "s"), ("to", "t")]);
    }

    #[test]
    fn json_names_every_term() {
        let json = serde_json::to_string(&ExportFilter::default()).unwrap();
        assert_eq!(json, r#"{"study_id":null,"from":null,"to":null}"#);
    }
}

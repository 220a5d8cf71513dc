//! Export filters as jobs see them: checked, normalized and keyed.
//!
//! Two requests whose filters mean the same (`from=2024-05-01T12:00:00+02:00`
//! and `from=2024-05-01T10:00:00Z`) share a job, so timestamps are
//! normalized to UTC before the filter becomes a key; an empty `study_id`
//! is no filter. The key is the filter as canonical JSON, e.g.
//! `{"study_id":"study-1","from":null,"to":"2024-05-02T00:00:00Z"}`.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;

use super::JobError;
use crate::timestamp::parse_rfc3339;
use crate::ExportFilter;

/// The JSON form of a filter, in responses and in the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterJson {
    /// The submissions' study.
    pub study_id: Option<String>,
    /// Responses created at or after this instant.
    pub from: Option<String>,
    /// Responses created before this instant.
    pub to: Option<String>,
}

impl From<&ExportFilter> for FilterJson {
    fn from(filter: &ExportFilter) -> FilterJson {
        FilterJson {
            study_id: filter.study_id.clone(),
            from: filter.from.clone(),
            to: filter.to.clone(),
        }
    }
}

/// Checks a filter and normalizes it: UTC timestamps, no empty study id.
pub fn normalize(filter: ExportFilter) -> Result<ExportFilter, JobError> {
    let instant = |field: &'static str, value: Option<String>| match value {
        None => Ok(None),
        Some(text) => parse_rfc3339(&text)
            .and_then(|t| t.to_offset(time::UtcOffset::UTC).format(&Rfc3339).ok())
            .map(Some)
            .ok_or_else(|| JobError::InvalidFilter {
                field,
                message: format!("{text:?} is not an RFC 3339 timestamp"),
            }),
    };
    Ok(ExportFilter {
        study_id: filter.study_id.filter(|s| !s.is_empty()),
        from: instant("from", filter.from)?,
        to: instant("to", filter.to)?,
    })
}

/// The canonical JSON of a (normalized) filter.
pub fn key(filter: &ExportFilter) -> String {
    serde_json::to_string(&FilterJson::from(filter)).unwrap_or_default()
}

/// The filter of a stored key; an unreadable key (never written by this
/// code) reads as the empty filter rather than hiding the job.
pub fn from_key(key: &str) -> ExportFilter {
    let json: FilterJson = serde_json::from_str(key).unwrap_or_default();
    ExportFilter {
        study_id: json.study_id,
        from: json.from,
        to: json.to,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_instants_share_a_key() {
        let a = normalize(ExportFilter {
            from: Some("2024-05-01T12:00:00+02:00".into()),
            study_id: Some(String::new()),
            ..ExportFilter::default()
        })
        .unwrap();
        let b = normalize(ExportFilter {
            from: Some("2024-05-01T10:00:00Z".into()),
            ..ExportFilter::default()
        })
        .unwrap();
        assert_eq!(key(&a), key(&b));
        assert_eq!(from_key(&key(&a)), a);
    }

    #[test]
    fn bad_timestamps_are_refused() {
        let err = normalize(ExportFilter {
            to: Some("yesterday".into()),
            ..ExportFilter::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("to"), "{err}");
    }
}

//! Filters as job keys. Two requests whose filters mean the same share a
//! job, so the engine keys jobs on the filter normalised by
//! [`ExportFilter::normalized`], written as canonical JSON, e.g.
//! `{"study_id":"study-1","from":null,"to":"2024-05-02T00:00:00Z"}`.

use crate::ExportFilter;

/// The canonical JSON of a (normalised) filter.
pub fn key(filter: &ExportFilter) -> String {
    serde_json::to_string(filter).unwrap_or_default()
}

/// The filter of a stored key; an unreadable key (never written by this
/// code) reads as the empty filter rather than hiding the job.
pub fn from_key(key: &str) -> ExportFilter {
    serde_json::from_str(key).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_instants_share_a_key() {
        let a = ExportFilter {
            from: Some("2024-05-01T12:00:00+02:00".into()),
            study_id: Some(String::new()),
            ..ExportFilter::default()
        };
        let b = ExportFilter {
            from: Some("2024-05-01T10:00:00Z".into()),
            ..ExportFilter::default()
        };
        let (a, b) = (a.normalized().unwrap(), b.normalized().unwrap());
        assert_eq!(key(&a), key(&b));
        assert_eq!(from_key(&key(&a)), a);
    }
}

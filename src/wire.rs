//! The export service's protocol, written once for the server ([`crate::http`])
//! and the client ([`crate::client`]): the paths, the query string of a
//! request, the JSON bodies of every answer, and the archive's file name.
//!
//! A status answer (of the POST and of a poll) is one [`StatusBody`]:
//!
//! ```json
//! {"status": "generating", "export_id": "9b2…", "created_at": "2024-05-01T12:00:00Z"}
//! {"status": "complete", "url": "https://…", "expires_at": "2024-05-01T13:00:00Z", "export_id": "9b2…", "created_at": "…"}
//! {"status": "failed", "error": "records: 3 problems …", "export_id": "9b2…", "created_at": "…"}
//! ```
//!
//! and every error answer is an [`ErrorBody`],
//! `{"error": "unknown query parameter", "parameter": "bogus"}`, where
//! `parameter` names the query parameter at fault when there is one.

use serde::{Deserialize, Serialize};

pub use crate::filter::{ExportFilter, FilterError};
pub use crate::naming::archive_file_name;

/// Route templates, as the router declares them (and logs and metrics name
/// requests by).
pub mod route {
    /// A batch's exports: POST to request one, GET to list them.
    pub const EXPORTS: &str = "/api/v1/data-collection/batches/{batch_id}/export";
    /// One export job: GET its status, DELETE it.
    pub const EXPORT: &str = "/api/v1/data-collection/batches/{batch_id}/export/{export_id}";
    /// A signed download link's path (its query carries `expires` and `signature`).
    pub const DOWNLOAD: &str = "/api/v1/data-collection/exports/{export_id}/download";
    /// Liveness: 200 when the job store answers.
    pub const HEALTHZ: &str = "/healthz";
    /// The Prometheus text format.
    pub const METRICS: &str = "/metrics";
}

/// The path of a batch's exports ([`route::EXPORTS`]).
pub fn exports_path(batch_id: &str) -> String {
    format!(
        "/api/v1/data-collection/batches/{}/export",
        encode_segment(batch_id)
    )
}

/// The path of one export job ([`route::EXPORT`]).
pub fn export_path(batch_id: &str, export_id: &str) -> String {
    format!("{}/{}", exports_path(batch_id), encode_segment(export_id))
}

/// The path of an export's download ([`route::DOWNLOAD`]), without its query.
pub fn download_path(export_id: &str) -> String {
    format!(
        "/api/v1/data-collection/exports/{}/download",
        encode_segment(export_id)
    )
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so any
/// id is one path segment.
fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Where an export job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Being built, or waiting for a worker.
    Generating,
    /// Built; the archive can be downloaded.
    Complete,
    /// The build failed.
    Failed,
}

impl JobStatus {
    /// Every status, for metrics that show zeros too.
    pub const ALL: [JobStatus; 3] = [
        JobStatus::Generating,
        JobStatus::Complete,
        JobStatus::Failed,
    ];

    /// `generating`, `complete` or `failed`: the wire and store spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Generating => "generating",
            JobStatus::Complete => "complete",
            JobStatus::Failed => "failed",
        }
    }
}

/// The answer to a POST and to a poll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusBody {
    /// The status and what comes with it.
    #[serde(flatten)]
    pub state: ExportState,
    /// The job. Always sent by this server; optional so that a client
    /// reads a server that leaves it out of a complete answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_id: Option<String>,
    /// When the job was requested (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// A job's status with the fields that only that status has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum ExportState {
    /// Not ready yet: poll again.
    Generating,
    /// Ready at `url` until `expires_at`.
    Complete {
        /// The signed download link.
        url: String,
        /// When the link stops working (RFC 3339).
        #[serde(default)]
        expires_at: String,
    },
    /// The build failed.
    Failed {
        /// Why.
        #[serde(default)]
        error: String,
    },
}

impl ExportState {
    /// The status without its fields.
    pub fn status(&self) -> JobStatus {
        match self {
            ExportState::Generating => JobStatus::Generating,
            ExportState::Complete { .. } => JobStatus::Complete,
            ExportState::Failed { .. } => JobStatus::Failed,
        }
    }
}

/// The answer to listing a batch's exports: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListBody {
    /// The batch's jobs.
    pub exports: Vec<ExportSummary>,
}

/// One job of a [`ListBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportSummary {
    /// The job.
    pub export_id: String,
    /// Its (normalised) filter.
    pub filter: ExportFilter,
    /// Its archive options. Defaults when a server leaves them out.
    #[serde(default)]
    pub options: ArchiveOptions,
    /// Where it is.
    pub status: JobStatus,
    /// When it was requested (RFC 3339).
    pub created_at: String,
}

/// Every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What is wrong, in lowercase words.
    pub error: String,
    /// The query parameter at fault, when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

/// The archive options of an export job (SPEC section 8), as the POST's
/// query parameters `tables`, `include_files` and `pseudonymise` set them
/// and the list endpoint shows them. Part of a job's identity, like its
/// filter. The pseudonymisation key is the service's: a job only says
/// whether it uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ArchiveOptions {
    /// `responses.csv` and `codebook.csv` beside the views. Default `false`.
    #[serde(default)]
    pub tables: bool,
    /// The uploaded files in `files/`. Default `true`.
    #[serde(default = "yes")]
    pub include_files: bool,
    /// Participant ids pseudonymised with the service's key. Default `false`.
    #[serde(default)]
    pub pseudonymise: bool,
}

fn yes() -> bool {
    true
}

impl Default for ArchiveOptions {
    fn default() -> ArchiveOptions {
        ArchiveOptions {
            tables: false,
            include_files: true,
            pseudonymise: false,
        }
    }
}

impl ArchiveOptions {
    /// The canonical JSON the job store keys jobs on, e.g.
    /// `{"tables":false,"include_files":true,"pseudonymise":false}`.
    pub fn key(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The options of a stored key; an unreadable key (never written by
    /// this code) reads as the defaults rather than hiding the job.
    pub fn from_key(key: &str) -> ArchiveOptions {
        serde_json::from_str(key).unwrap_or_default()
    }

    /// Sets the option a query parameter names: `None` for a parameter
    /// that is no option, an error for a value other than `true`/`false`.
    fn set(&mut self, name: &str, value: &str) -> Option<Result<(), QueryError>> {
        let field = match name {
            "tables" => &mut self.tables,
            "include_files" => &mut self.include_files,
            "pseudonymise" => &mut self.pseudonymise,
            _ => return None,
        };
        Some(match value {
            "true" => {
                *field = true;
                Ok(())
            }
            "false" => {
                *field = false;
                Ok(())
            }
            _ => Err(QueryError::new(
                name,
                format!("invalid {name}: not true or false"),
            )),
        })
    }

    /// The query parameters of the options that differ from the defaults.
    pub fn parameters(&self) -> impl Iterator<Item = (&'static str, &'static str)> {
        let defaults = ArchiveOptions::default();
        [
            ("tables", self.tables, defaults.tables),
            ("include_files", self.include_files, defaults.include_files),
            ("pseudonymise", self.pseudonymise, defaults.pseudonymise),
        ]
        .into_iter()
        .filter(|(_, value, default)| value != default)
        .map(|(name, value, _)| (name, if value { "true" } else { "false" }))
    }
}

/// The query string of an export request: the filter and the archive options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportQuery {
    /// Which responses the export holds.
    pub filter: ExportFilter,
    /// What the archive holds beyond the default layout.
    pub options: ArchiveOptions,
}

/// A query string the service refuses (400), naming the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}: {parameter}")]
pub struct QueryError {
    /// The parameter at fault, as sent (cut to 100 bytes).
    pub parameter: String,
    /// What is wrong with it.
    pub message: String,
}

impl QueryError {
    fn new(parameter: &str, message: impl Into<String>) -> QueryError {
        let mut end = parameter.len().min(100);
        while !parameter.is_char_boundary(end) {
            end -= 1;
        }
        QueryError {
            parameter: parameter[..end].to_owned(),
            message: message.into(),
        }
    }
}

impl QueryError {
    /// A parameter the route does not take.
    pub fn unknown(parameter: &str) -> QueryError {
        QueryError::new(parameter, "unknown query parameter")
    }

    /// A parameter given more than once.
    pub fn repeated(parameter: &str) -> QueryError {
        QueryError::new(parameter, "query parameter given more than once")
    }
}

impl From<FilterError> for QueryError {
    fn from(err: FilterError) -> QueryError {
        QueryError::new(
            err.parameter,
            format!("invalid {}: {}", err.parameter, err.message),
        )
    }
}

impl ExportQuery {
    /// The request of a decoded query string's pairs, checked: every
    /// parameter known and given once, the filter normalised.
    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Result<ExportQuery, QueryError> {
        let mut seen: Vec<String> = Vec::new();
        let mut filter = ExportFilter::default();
        let mut options = ArchiveOptions::default();
        for (name, value) in pairs {
            if seen.contains(&name) {
                return Err(QueryError::repeated(&name));
            }
            match options.set(&name, &value) {
                Some(result) => result?,
                None if filter.set(&name, value) => {}
                None => return Err(QueryError::unknown(&name)),
            }
            seen.push(name);
        }
        Ok(ExportQuery {
            filter: filter.normalized()?,
            options,
        })
    }

    /// The `(parameter, value)` pairs of the query string, to be
    /// form-encoded by the caller.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        // The options' values are constants; shorten them to the filter's.
        fn shorten<'a>(pair: (&'static str, &'static str)) -> (&'static str, &'a str) {
            pair
        }
        self.filter
            .parameters()
            .chain(self.options.parameters().map(shorten))
    }
}

/// Refuses any query parameter at all: the routes that take none.
pub fn no_parameters(pairs: impl IntoIterator<Item = (String, String)>) -> Result<(), QueryError> {
    match pairs.into_iter().next() {
        Some((name, _)) => Err(QueryError::unknown(&name)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn queries_refuse_unknown_repeated_and_reversed() {
        let err = ExportQuery::from_pairs(pairs(&[("bogus", "1")])).unwrap_err();
        assert_eq!(err.parameter, "bogus");
        let err =
            ExportQuery::from_pairs(pairs(&[("study_id", "a"), ("study_id", "b")])).unwrap_err();
        assert_eq!(err.parameter, "study_id");
        let reversed = [
            ("from", "2024-05-02T00:00:00Z"),
            ("to", "2024-05-01T00:00:00Z"),
        ];
        assert_eq!(
            ExportQuery::from_pairs(pairs(&reversed))
                .unwrap_err()
                .parameter,
            "to"
        );
        let ok = ExportQuery::from_pairs(pairs(&[("from", "2024-05-01T02:00:00+02:00")])).unwrap();
        assert_eq!(ok.filter.from.as_deref(), Some("2024-05-01T00:00:00Z"));
    }

    #[test]
    fn options_are_booleans_with_defaults_and_round_trip() {
        let query = ExportQuery::from_pairs(pairs(&[
            ("tables", "true"),
            ("include_files", "false"),
            ("study_id", "s"),
        ]))
        .unwrap();
        assert!(query.options.tables && !query.options.include_files);
        assert!(!query.options.pseudonymise);
        let sent: Vec<(String, String)> = query
            .pairs()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect();
        assert_eq!(ExportQuery::from_pairs(sent).unwrap(), query);
        let err = ExportQuery::from_pairs(pairs(&[("tables", "yes")])).unwrap_err();
        assert_eq!(err.parameter, "tables");
        let err =
            ExportQuery::from_pairs(pairs(&[("tables", "true"), ("tables", "true")])).unwrap_err();
        assert_eq!(err.parameter, "tables");
        let default = ArchiveOptions::default();
        assert_eq!(ArchiveOptions::from_key(&default.key()), default);
        assert_eq!(
            default.key(),
            r#"{"tables":false,"include_files":true,"pseudonymise":false}"#
        );
        assert_eq!(ExportQuery::default().pairs().count(), 0);
    }

    #[test]
    fn status_bodies_are_tagged_by_status() {
        let body: StatusBody = serde_json::from_str(
            r#"{"status": "complete", "url": "https://x/y", "expires_at": "e"}"#,
        )
        .unwrap();
        assert!(
            matches!(body.state, ExportState::Complete { ref url, .. } if url == "https://x/y")
        );
        assert_eq!(body.export_id, None);
        assert!(serde_json::from_str::<StatusBody>(r#"{"status": "weird"}"#).is_err());
        let failed = StatusBody {
            state: ExportState::Failed {
                error: "boom".into(),
            },
            export_id: Some("e1".into()),
            created_at: None,
        };
        let json = serde_json::to_value(&failed).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"status": "failed", "error": "boom", "export_id": "e1"})
        );
    }

    #[test]
    fn paths_encode_ids_as_one_segment() {
        assert_eq!(
            export_path("b 1/x", "e"),
            "/api/v1/data-collection/batches/b%201%2Fx/export/e"
        );
        assert_eq!(
            route::EXPORT
                .replace("{batch_id}", "b")
                .replace("{export_id}", "e"),
            export_path("b", "e")
        );
    }
}

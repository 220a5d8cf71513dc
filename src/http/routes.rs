//! The JSON endpoints: request, list, status and delete export jobs.
//!
//! Each handler does its work (token check, data-folder scan, SQLite,
//! hashing the dump) on the blocking pool, since all of it is file I/O.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::Service;
use crate::jobs::filter::FilterJson;
use crate::jobs::{BatchInfo, Job, JobError, JobStatus, Requested};
use crate::ExportFilter;

/// An error answer: a status and `{"error": message}`.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// The one answer for a batch that does not exist *or* that the token
    /// may not see: identical bodies, so the two cannot be told apart.
    fn no_batch() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "batch not found")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<JobError> for ApiError {
    fn from(err: JobError) -> ApiError {
        let status = match &err {
            JobError::TooManyJobs { .. } | JobError::StillGenerating { .. } => StatusCode::CONFLICT,
            JobError::NotFound { .. } => StatusCode::NOT_FOUND,
            JobError::InvalidFilter { .. } => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, err.to_string())
    }
}

type ApiResult = Result<Response, ApiError>;

/// Runs `work` on the blocking pool.
async fn blocking(work: impl FnOnce() -> ApiResult + Send + 'static) -> ApiResult {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|_| {
        Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error",
        ))
    })
}

impl Service {
    /// The batch, if the request's token may see it.
    fn authorize(&self, headers: &HeaderMap, batch_id: &str) -> Result<BatchInfo, ApiError> {
        let header = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let access = self
            .tokens
            .check(header)
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "missing or unknown token"))?;
        match self.catalog.find(batch_id)? {
            Some(batch) if access.allows(&batch.workspace_id) => Ok(batch),
            _ => Err(ApiError::no_batch()),
        }
    }

    /// A fresh signed link to a complete job's archive and its expiry.
    pub(super) fn link(&self, job: &Job) -> (String, String) {
        let now = self.jobs.clock().now();
        let expires = now.unix_timestamp() + self.link_ttl.as_secs() as i64;
        let signature = self.signer.sign(&job.id, expires);
        let base = self.public_url.as_deref().unwrap_or("");
        let url = format!(
            "{base}/api/v1/data-collection/exports/{}/download?expires={expires}&signature={signature}",
            job.id
        );
        let expires_at = OffsetDateTime::from_unix_timestamp(expires)
            .map(rfc3339)
            .unwrap_or_default();
        (url, expires_at)
    }

    fn status_body(&self, job: &Job) -> Value {
        let mut body = json!({
            "status": job.status.as_str(),
            "export_id": job.id,
            "created_at": rfc3339(job.created_at),
        });
        match job.status {
            JobStatus::Generating => {}
            JobStatus::Complete => {
                let (url, expires_at) = self.link(job);
                body["url"] = url.into();
                body["expires_at"] = expires_at.into();
            }
            JobStatus::Failed => {
                body["error"] = job.error.clone().unwrap_or_default().into();
            }
        }
        body
    }
}

pub(super) fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// The filter terms of a POST's query string.
#[derive(Debug, Deserialize)]
pub(super) struct FilterQuery {
    study_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

pub(super) async fn request(
    State(service): State<Service>,
    Path(batch_id): Path<String>,
    Query(query): Query<FilterQuery>,
    headers: HeaderMap,
) -> ApiResult {
    blocking(move || {
        let batch = service.authorize(&headers, &batch_id)?;
        let filter = ExportFilter {
            study_id: query.study_id,
            from: query.from,
            to: query.to,
        };
        let requested = service.jobs.request(&batch, filter)?;
        let status = match requested {
            Requested::Ready(_) => StatusCode::OK,
            Requested::Started(_) | Requested::Running(_) => StatusCode::ACCEPTED,
        };
        Ok((status, Json(service.status_body(requested.job()))).into_response())
    })
    .await
}

pub(super) async fn list(
    State(service): State<Service>,
    Path(batch_id): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    blocking(move || {
        let batch = service.authorize(&headers, &batch_id)?;
        let exports: Vec<Value> = service
            .jobs
            .list(&batch.id)?
            .iter()
            .map(|job| {
                json!({
                    "export_id": job.id,
                    "filter": FilterJson::from(&job.filter),
                    "status": job.status.as_str(),
                    "created_at": rfc3339(job.created_at),
                })
            })
            .collect();
        Ok(Json(json!({ "exports": exports })).into_response())
    })
    .await
}

pub(super) async fn status(
    State(service): State<Service>,
    Path((batch_id, export_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    blocking(move || {
        let batch = service.authorize(&headers, &batch_id)?;
        let job = service.jobs.get(&batch.id, &export_id)?;
        Ok(Json(service.status_body(&job)).into_response())
    })
    .await
}

pub(super) async fn delete(
    State(service): State<Service>,
    Path((batch_id, export_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    blocking(move || {
        let batch = service.authorize(&headers, &batch_id)?;
        service.jobs.delete(&batch.id, &export_id)?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

pub(super) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint")
}

//! The JSON endpoints: request, list, status and delete export jobs.
//!
//! Each handler does its work (token check, data-folder scan, SQLite,
//! hashing the dump) on the blocking pool, since all of it is file I/O.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::Service;
use crate::error::display_chain;
use crate::jobs::reason::redact_paths;
use crate::jobs::{BatchInfo, Job, JobError, JobStatus, Requested};
use crate::wire::{
    no_parameters, ErrorBody, ExportQuery, ExportState, ExportSummary, ListBody, QueryError,
    StatusBody,
};

/// The decoded pairs of a query string, or why it could not be decoded.
pub(super) type QueryPairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// An error answer: a status and an [`ErrorBody`].
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                error: message.into(),
                parameter: None,
            },
        }
    }

    /// A 401: RFC 9110 has it name the scheme the client should use.
    fn unauthorized() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "missing or unknown token")
    }

    /// The one answer for a batch that does not exist *or* that the token
    /// may not see: identical bodies, so the two cannot be told apart.
    fn no_batch() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "batch not found")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
        }
        response
    }
}

impl From<QueryError> for ApiError {
    fn from(err: QueryError) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            body: ErrorBody {
                error: err.message,
                parameter: Some(err.parameter),
            },
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(err: QueryRejection) -> ApiError {
        // axum's text says what could not be decoded, never a server detail.
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("unreadable query string: {}", err.body_text()),
        )
    }
}

impl From<PathRejection> for ApiError {
    fn from(err: PathRejection) -> ApiError {
        ApiError::new(
            err.status(),
            format!("unreadable path: {}", err.body_text()),
        )
    }
}

impl From<JobError> for ApiError {
    fn from(err: JobError) -> ApiError {
        let status = match &err {
            JobError::TooManyJobs { .. } | JobError::StillGenerating { .. } => StatusCode::CONFLICT,
            JobError::NotFound { .. } => StatusCode::NOT_FOUND,
            JobError::InvalidFilter(filter) => return QueryError::from(filter.clone()).into(),
            JobError::NoPseudonymKey => {
                return ApiError {
                    status: StatusCode::BAD_REQUEST,
                    body: ErrorBody {
                        error: err.to_string(),
                        parameter: Some("pseudonymise".to_owned()),
                    },
                }
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        // Whatever the error, its answer names no path of the server.
        ApiError::new(status, redact_paths(&display_chain(&err), None))
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
            .ok_or_else(ApiError::unauthorized)?;
        match self.catalog.find(batch_id)? {
            Some(batch) if access.allows(&batch.workspace_id) => Ok(batch),
            _ => Err(ApiError::no_batch()),
        }
    }

    /// A fresh link to a complete job's archive and its expiry: presigned
    /// by the object store when archives are in S3, else signed here.
    pub(super) fn link(&self, job: &Job) -> Result<(String, String), JobError> {
        let now = self.jobs.clock().now();
        let expires = now.unix_timestamp() + self.link_ttl.as_secs() as i64;
        let expires_at = OffsetDateTime::from_unix_timestamp(expires)
            .map(rfc3339)
            .unwrap_or_default();
        if let Some(url) = self.jobs.presigned_link(job, self.link_ttl)? {
            return Ok((url, expires_at));
        }
        let signature = self.signer.sign(&job.id, expires);
        let base = self.public_url.as_deref().unwrap_or("");
        let path = crate::wire::download_path(&job.id);
        let url = format!("{base}{path}?expires={expires}&signature={signature}");
        Ok((url, expires_at))
    }

    fn status_body(&self, job: &Job) -> Result<StatusBody, JobError> {
        let state = match job.status {
            JobStatus::Generating => ExportState::Generating,
            JobStatus::Complete => {
                let (url, expires_at) = self.link(job)?;
                ExportState::Complete { url, expires_at }
            }
            // Reasons recorded before paths were kept out of them, too.
            JobStatus::Failed => ExportState::Failed {
                error: redact_paths(
                    job.error.as_deref().unwrap_or_default(),
                    Some(&job.dump_dir),
                ),
            },
        };
        Ok(StatusBody {
            state,
            export_id: Some(job.id.clone()),
            created_at: Some(rfc3339(job.created_at)),
        })
    }
}

pub(super) fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

pub(super) async fn request(
    State(service): State<Service>,
    path: Result<Path<String>, PathRejection>,
    query: QueryPairs,
    headers: HeaderMap,
) -> ApiResult {
    let Path(batch_id) = path?;
    let Query(pairs) = query?;
    blocking(move || {
        let batch = service.authorize(&headers, &batch_id)?;
        // Parameters are checked after the token, so an anonymous caller
        // learns nothing but 401.
        let query = ExportQuery::from_pairs(pairs)?;
        let requested = service
            .jobs
            .request_with(&batch, query.filter, query.options)?;
        let status = match requested {
            Requested::Ready(_) => StatusCode::OK,
            Requested::Started(_) | Requested::Running(_) => StatusCode::ACCEPTED,
        };
        let mut response = (status, Json(service.status_body(requested.job())?)).into_response();
        let logged = super::telemetry::LoggedExport(requested.job().id.clone());
        response.extensions_mut().insert(logged);
        Ok(response)
    })
    .await
}

pub(super) async fn list(
    State(service): State<Service>,
    path: Result<Path<String>, PathRejection>,
    query: QueryPairs,
    headers: HeaderMap,
) -> ApiResult {
    let Path(batch_id) = path?;
    let Query(pairs) = query?;
    blocking(move || {
        let batch = service.authorize(&headers, &batch_id)?;
        no_parameters(pairs)?;
        let exports = service
            .jobs
            .list(&batch.id)?
            .into_iter()
            .map(|job| ExportSummary {
                created_at: rfc3339(job.created_at),
                export_id: job.id,
                filter: job.filter,
                options: job.options,
                status: job.status,
            })
            .collect();
        Ok(Json(ListBody { exports }).into_response())
    })
    .await
}

pub(super) async fn status(
    State(service): State<Service>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: QueryPairs,
    headers: HeaderMap,
) -> ApiResult {
    let Path((batch_id, export_id)) = path?;
    let Query(pairs) = query?;
    blocking(move || {
        let batch = service.authorize(&headers, &batch_id)?;
        no_parameters(pairs)?;
        let job = service.jobs.get(&batch.id, &export_id)?;
        Ok(Json(service.status_body(&job)?).into_response())
    })
    .await
}

pub(super) async fn delete(
    State(service): State<Service>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: QueryPairs,
    headers: HeaderMap,
) -> ApiResult {
    let Path((batch_id, export_id)) = path?;
    let Query(pairs) = query?;
    blocking(move || {
        let batch = service.authorize(&headers, &batch_id)?;
        no_parameters(pairs)?;
        service.jobs.delete(&batch.id, &export_id)?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

pub(super) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint")
}

pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this path",
    )
}

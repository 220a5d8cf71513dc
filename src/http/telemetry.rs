//! What the service tells its operator: one log line per request,
//! `GET /healthz` and `GET /metrics`.
//!
//! The request line names the route *template* (`.../batches/{batch_id}/export`),
//! never the URI: a download link's query string is its credential, and
//! headers (the `Authorization` token among them) are never logged. Ids
//! are logged with `Debug` quoting, so a CR or LF in a batch id cannot
//! split a line.
//!
//! `/metrics` is the Prometheus text format (OpenMetrics), through the
//! Prometheus project's `prometheus-client` crate:
//!
//! - `batch_export_http_requests_total{method, route, status}`
//! - `batch_export_jobs{status}`: jobs in the store by status, read at scrape time
//! - `batch_export_build_seconds`: a histogram of build durations
//! - `batch_export_builds_total{outcome}` and `batch_export_archive_bytes_total`
//!
//! Neither `/healthz` nor `/metrics` needs a token: they say nothing about
//! any batch, and probes and scrapers rarely carry one.

use std::time::Instant;

use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::routes::ApiError;
use super::Service;
use crate::jobs::BuildMetrics;

type Labels = Vec<(&'static str, String)>;

/// The service's metrics: its own request counts plus the engine's.
#[derive(Debug)]
pub(super) struct Telemetry {
    registry: Registry,
    requests: Family<Labels, Counter>,
    jobs: Family<Labels, Gauge>,
}

impl Telemetry {
    pub(super) fn new(builds: &BuildMetrics) -> Telemetry {
        let mut registry = Registry::with_prefix("batch_export");
        let requests = Family::<Labels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            requests.clone(),
        );
        let jobs = Family::<Labels, Gauge>::default();
        registry.register("jobs", "Export jobs in the store, by status", jobs.clone());
        registry.register(
            "build_seconds",
            "Duration of export builds that ended",
            builds.build_seconds.clone(),
        );
        registry.register(
            "builds",
            "Export builds that ended, by outcome",
            builds.builds.clone(),
        );
        registry.register(
            "archive_bytes",
            "Bytes of the archives completed",
            builds.archive_bytes.clone(),
        );
        Telemetry {
            registry,
            requests,
            jobs,
        }
    }
}

/// The export id a handler created, for the request's log line (a POST's
/// path has none).
#[derive(Debug, Clone)]
pub(super) struct LoggedExport(pub(super) String);

/// Logs and counts every request once it is answered.
pub(super) async fn observe(
    State(service): State<Service>,
    matched: Option<MatchedPath>,
    params: Result<RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = matched.map_or("unmatched".to_owned(), |m| m.as_str().to_owned());
    let param = |name: &str| {
        params
            .as_ref()
            .ok()
            .and_then(|p| p.iter().find(|(key, _)| *key == name))
            .map(|(_, value)| value.to_owned())
    };
    let batch_id = param("batch_id");
    let mut export_id = param("export_id");
    let response = next.run(request).await;
    if let Some(LoggedExport(id)) = response.extensions().get::<LoggedExport>() {
        export_id = Some(id.clone());
    }
    let status = response.status().as_u16();
    service
        .telemetry
        .requests
        .get_or_create(&vec![
            ("method", method.to_string()),
            ("route", route.clone()),
            ("status", status.to_string()),
        ])
        .inc();
    tracing::info!(
        method = %method,
        route = %route,
        status,
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        batch_id = batch_id.as_deref().map(tracing::field::debug),
        export_id = export_id.as_deref().map(tracing::field::debug),
        "request"
    );
    response
}

/// `GET /healthz`: 200 when the job store answers a query, else 503.
pub(super) async fn healthz(State(service): State<Service>) -> Response {
    let jobs = service.jobs.clone();
    match tokio::task::spawn_blocking(move || jobs.count_by_status()).await {
        Ok(Ok(_)) => Json(serde_json::json!({"status": "ok"})).into_response(),
        Ok(Err(err)) => {
            tracing::error!(error = %err, "health check: the job store does not answer");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the job store does not answer",
            )
            .into_response()
        }
        Err(_) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "health check crashed").into_response()
        }
    }
}

/// `GET /metrics`: the Prometheus text format.
pub(super) async fn metrics(State(service): State<Service>) -> Response {
    let jobs = service.jobs.clone();
    // A store that does not answer leaves the job gauges at their last
    // values; /healthz is where that shows.
    if let Ok(Ok(counts)) = tokio::task::spawn_blocking(move || jobs.count_by_status()).await {
        for (status, n) in counts {
            let labels = vec![("status", status.as_str().to_owned())];
            service
                .telemetry
                .jobs
                .get_or_create(&labels)
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
    let mut text = String::new();
    if encode(&mut text, &service.telemetry.registry).is_err() {
        return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "encoding metrics failed")
            .into_response();
    }
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

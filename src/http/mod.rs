//! The export-job web service: [`router`] over a [`Service`] handle, and
//! [`serve`], which runs it on a listener until a shutdown future resolves.
//!
//! # API
//!
//! Every path below `/api/v1/data-collection/batches/{batch_id}` needs
//! `Authorization: Token <token>` (see [`auth`]; the scheme is matched
//! without regard to case, and a 401 carries `WWW-Authenticate: Token`).
//! Every error is JSON, a [`crate::wire::ErrorBody`]:
//! `{"error": "<message>"}`, plus `"parameter"` naming the query parameter
//! at fault for a 400. A query parameter a route does not know, or one
//! given twice, is a 400. The bodies are the types of [`crate::wire`].
//!
//! | request | answer |
//! |---|---|
//! | `POST .../export[?study_id=&from=&to=]` | `202 {"status": "generating", "export_id"}` or `200 {"status": "complete", "export_id", "url", "expires_at"}`; 409 at the job cap |
//! | `GET .../export` | `200 {"exports": [{"export_id", "filter", "status", "created_at"}, ...]}`, newest first |
//! | `GET .../export/{export_id}` | `{"status": "generating"}`, `{"status": "complete", "url", "expires_at"}` or `{"status": "failed", "error"}` (each also with `export_id`, `created_at`) |
//! | `DELETE .../export/{export_id}` | 204; 409 while generating |
//! | `GET /api/v1/data-collection/exports/{export_id}/download?expires=&signature=` | the archive (no token: the signature is the credential); 403 once expired or tampered with |
//!
//! Filters: `study_id` (the submission's study), `from` (inclusive) and
//! `to` (exclusive), RFC 3339 instants on the response's `created_at`;
//! a `to` not after `from` is a 400 (see [`crate::ExportFilter::normalized`]).

pub mod auth;
mod download;
mod routes;
pub mod signing;
mod telemetry;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use tokio::net::TcpListener;

use crate::jobs::{Catalog, Jobs};
use crate::wire::route;
pub use auth::{Access, TokenEntry, TokenFile, TokenFileError, Tokens};
pub use signing::{Signer, SigningKeyError};

/// How long a download link stays valid unless set otherwise.
pub const DEFAULT_LINK_TTL: Duration = Duration::from_secs(3600);

/// The service's state: a cheap, cloneable handle.
#[derive(Clone, Debug)]
pub struct Service {
    jobs: Jobs,
    catalog: Catalog,
    tokens: Arc<Tokens>,
    signer: Arc<Signer>,
    public_url: Option<Arc<str>>,
    link_ttl: Duration,
    telemetry: Arc<telemetry::Telemetry>,
}

impl Service {
    /// A service exporting the batches of `catalog` through `jobs`.
    pub fn new(jobs: Jobs, catalog: Catalog, tokens: Tokens, signer: Signer) -> Service {
        Service {
            telemetry: Arc::new(telemetry::Telemetry::new(jobs.metrics())),
            jobs,
            catalog,
            tokens: Arc::new(tokens),
            signer: Arc::new(signer),
            public_url: None,
            link_ttl: DEFAULT_LINK_TTL,
        }
    }

    /// The base URL download links start with (`https://exports.example`).
    /// Default: `http://<the listener's address>`, set by [`serve`].
    pub fn with_public_url(mut self, url: impl Into<String>) -> Service {
        let url = url.into();
        self.public_url = Some(url.trim_end_matches('/').into());
        self
    }

    /// How long download links stay valid. Default [`DEFAULT_LINK_TTL`].
    pub fn with_link_ttl(mut self, ttl: Duration) -> Service {
        self.link_ttl = ttl;
        self
    }

    /// The job engine.
    pub fn jobs(&self) -> &Jobs {
        &self.jobs
    }
}

/// Every route of the service, `(method, path template)`: what [`router`]
/// serves, and what `docs/openapi.json` must describe.
pub fn endpoints() -> Vec<(Method, &'static str)> {
    table()
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect()
}

/// The one table the router is built from, so [`endpoints`] cannot
/// drift from what is served.
fn table() -> Vec<(Method, &'static str, MethodRouter<Service>)> {
    vec![
        at(Method::POST, route::EXPORTS, routes::request),
        at(Method::GET, route::EXPORTS, routes::list),
        at(Method::GET, route::EXPORT, routes::status),
        at(Method::DELETE, route::EXPORT, routes::delete),
        at(Method::GET, route::DOWNLOAD, download::download),
        at(Method::GET, route::HEALTHZ, telemetry::healthz),
        at(Method::GET, route::METRICS, telemetry::metrics),
    ]
}

/// One row of the table: `handler` answers `method` on `path`.
fn at<H, T>(
    method: Method,
    path: &'static str,
    handler: H,
) -> (Method, &'static str, MethodRouter<Service>)
where
    H: Handler<T, Service>,
    T: 'static,
{
    // Every method of the table is a standard one, which always converts.
    let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
    (method, path, on(filter, handler))
}

/// The service's routes, each request logged and counted.
pub fn router(service: Service) -> Router {
    let mut router = Router::new();
    for (_, path, handler) in table() {
        // Routes of one path merge into one method router.
        router = router.route(path, handler);
    }
    router
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            service.clone(),
            telemetry::observe,
        ))
        .with_state(service)
}

/// Serves `service` on `listener` until `shutdown` resolves, then lets
/// open requests finish and stops the job engine (running builds are
/// resumed by the next start).
pub async fn serve(
    listener: TcpListener,
    mut service: Service,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if service.public_url.is_none() {
        let addr = listener.local_addr()?;
        service = service.with_public_url(format!("http://{addr}"));
    }
    let jobs = service.jobs.clone();
    let served = axum::serve(listener, router(service))
        .with_graceful_shutdown(shutdown)
        .await;
    // Joining the workers blocks until builds notice the cancel flag.
    let _ = tokio::task::spawn_blocking(move || jobs.shutdown()).await;
    served
}

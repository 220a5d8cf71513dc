//! Scale-out (SPEC section 7): the job-store conformance suite on SQLite
//! and PostgreSQL (`store`, and archive options in `store_options`), leases and fencing through the engine, and several
//! `serve` and `worker` processes on one PostgreSQL, with archives in
//! S3 (SeaweedFS). The servers are real
//! (see `servers`), started once per test run.

mod fencing;
mod notify;
mod objects;
mod processes;
mod s3_archives;
mod s3_dumps;
mod s3_fencing;
pub mod servers;
#[macro_use]
mod store;
mod store_options;

//! The integration-test harness: one binary, one module per area.

mod common;

mod architecture;

mod build;
mod oracle;
mod readers;
// Scale-out: the job stores, leases, and processes on one PostgreSQL.
#[cfg(all(feature = "cli", feature = "postgres"))]
mod scale;
// The service and the client, run through the library and the binary.
#[cfg(feature = "cli")]
mod service;
mod synth;
mod verify;

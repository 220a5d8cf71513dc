//! The integration-test harness: one binary, one module per area.

mod common;

mod architecture;

mod build;
mod oracle;
mod readers;
// The service and the client, run through the library and the binary.
#[cfg(feature = "cli")]
mod service;
mod synth;
mod verify;

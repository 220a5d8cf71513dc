//! The integration-test harness: one binary, one module per area.

mod common;

mod build;
mod oracle;
mod readers;
mod service;
mod synth;
mod verify;

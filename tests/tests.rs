//! The integration-test harness: one binary, one module per area.

mod readers;
mod verify;

//! The archive builder (issue 2): the sample dump against golden files,
//! determinism, every refusal rule, embedding, safe names, the CLI, and
//! builds past the memory budget (issue 13).

mod budget;
// The binary past its budget: its spill line, SIGINT and SIGTERM mid-spill.
#[cfg(feature = "cli")]
mod budget_process;
// The binary is built only with the `cli` feature.
#[cfg(feature = "cli")]
mod cli;
mod determinism;
mod embedding;
mod filters;
mod golden;
mod hostile;
// A later run of the binary cleans a killed one's leftovers.
#[cfg(feature = "cli")]
mod leftovers;
mod names;
mod options;
mod refusals;

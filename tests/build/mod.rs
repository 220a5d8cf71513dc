//! The archive builder (issue 2): the sample dump against golden files,
//! determinism, every refusal rule, embedding, safe names and the CLI.

mod cli;
mod determinism;
mod embedding;
mod filters;
mod golden;
mod names;
mod refusals;

//! scenarios: the `dsim` command line and the glue between the library crates.
//!
//! This is the one crate that touches the outside world: it reads files, parses the
//! command line, reads the wall clock for benchmarks and progress, and prints.

pub mod bench;
pub mod check_cmd;
pub mod check_report;
pub mod cli;
pub mod compare_cmd;
pub mod compare_html;
pub mod compare_text;
pub mod experiment;
pub mod fuzz;
pub mod library;
pub mod locate;
pub mod nemesis;
pub mod output;
pub mod recording;
pub mod registry;
pub mod report_cmd;
pub mod run_cmd;
pub mod runner;
pub mod scenario;
pub mod shrink;
pub mod sysinfo;

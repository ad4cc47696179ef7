//! checker: judges histories of client operations for linearizability.
//!
//! A [`History`] comes from an importer ([`import`]: Jepsen EDN, Jepsen console logs,
//! dsim's JSON lines) or from a simulation. [`check`] runs the Wing–Gong–Lowe search
//! ([`search`]) against a [`Model`], split by key where the model allows, within a
//! deterministic budget of steps and memory, and explains a violation by the first
//! operation that cannot be linearized, the longest linearizable prefix and the model
//! states reachable there.
//!
//! This crate depends on no other crate of the workspace: it judges histories recorded
//! on real systems just as well as simulated ones.

pub mod anomalies;
pub mod check;
pub mod edn;
pub mod generate;
pub mod history;
pub mod import;
pub mod model;
pub mod property;
pub mod search;
pub mod value;
pub mod zones;

pub use check::{CheckOptions, Explanation, ModelKind, OpSummary, Report, Verdict, check, check_model, render_text};
pub use history::{Event, EventType, History, HistoryBuilder, Op, Outcome};
pub use model::Model;
pub use property::{Mark, Violation};
pub use search::Budget;
pub use value::Value;

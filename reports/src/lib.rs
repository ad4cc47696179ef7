//! reports: turns a run into documents people read.
//!
//! [`html`] renders one self-contained page (inline CSS and SVG, nothing fetched): the
//! verdict and how to replay it, the first violation explained, a space-time diagram of
//! the messages around it, the clients' operations with the faults shaded, latency over
//! time, each server's role over time and a metrics table. A violation's page leads with
//! its [`causal`] past: only the events and messages that happen before it. [`markdown`] gives the same
//! minus the pictures, for terminals and CI logs. [`perfetto`] converts a trace into the
//! Chrome trace-event format that the Perfetto UI opens.
//!
//! Trace events come as JSON values (sim-core's trace lines), so this crate knows no
//! protocol; roles come as [`RoleChange`]s that the caller derives from observations.
//! Nothing here does I/O: the CLI writes what these functions return.

mod causal;
mod html;
mod markdown;
mod model;
mod perfetto;
mod svg;

pub use causal::{CausalPast, Step, StepKind, causal_past, steps_of};
pub use html::html;
pub use markdown::markdown;
pub use model::{Fault, Message, Report, RoleChange, Scene, Span, overlaps};
pub use perfetto::perfetto;

/// Escapes text for HTML and XML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

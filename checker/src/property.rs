//! Invariant and liveness properties: what a violated one reports.
//!
//! Protocols check their own invariants over their observations (facts stamped with
//! true global time) and report a [`Violation`]; the runner collects them beside the
//! linearizability verdict. Some properties are judged in true global time, which only
//! a simulator knows.

use serde::{Deserialize, Serialize};

/// A property that did not hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The property's name, e.g. `election-safety`, `linearizability`, `liveness`.
    pub kind: String,
    /// What happened, in a sentence.
    pub message: String,
    /// True global time of the first bad event, in nanoseconds.
    pub t_ns: u64,
    /// The node whose event broke the property, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<usize>,
    /// The node's name in its run (`client 3`, `coordinator`), set by whoever knows the
    /// run's topology; without it the node is called `node N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_label: Option<String>,
    /// The number of the first bad event in the run (1-based), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<u64>,
    /// The protocol facts the message names, where and when they happened (the entry a
    /// new leader lacks, where it was applied; the other client's acquisition), for
    /// reports to mark.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub marks: Vec<Mark>,
}

/// A fact a violation names, placed on a node's lane at a time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub node: usize,
    /// True global time, in nanoseconds.
    pub t_ns: u64,
    /// What happened there, in a few words.
    pub label: String,
}

impl Violation {
    pub fn new(kind: &str, message: impl Into<String>, t_ns: u64, node: Option<usize>) -> Self {
        Violation {
            kind: kind.to_owned(),
            message: message.into(),
            t_ns,
            node,
            node_label: None,
            event: None,
            marks: Vec::new(),
        }
    }

    /// The violation with a fact it names marked at `node` and `t_ns`.
    pub fn mark(mut self, node: usize, t_ns: u64, label: impl Into<String>) -> Self {
        self.marks.push(Mark { node, t_ns, label: label.into() });
        self
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {:.3} ms", self.kind, self.t_ns as f64 / 1e6)?;
        if let Some(event) = self.event {
            write!(f, " (event {event})")?;
        }
        match (&self.node_label, self.node) {
            (Some(label), _) => write!(f, " on {label}")?,
            (None, Some(node)) => write!(f, " on node {node}")?,
            (None, None) => {}
        }
        write!(f, ": {}", self.message)
    }
}

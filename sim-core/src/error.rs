//! Typed errors for bad configurations, schedules and protocol requests.

/// What the engine refuses.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SimError {
    #[error("unknown node {node} in {context} (the cluster has {nodes} nodes, numbered from 0)")]
    UnknownNode { node: usize, nodes: usize, context: &'static str },
    #[error("{what} must be a probability between 0 and 1, got {value}")]
    InvalidProbability { what: &'static str, value: f64 },
    #[error("{what} must be a finite, non-negative number of milliseconds, got {value}")]
    InvalidDuration { what: &'static str, value: f64 },
    #[error("{what} must be [min, max] with min <= max, got min {min} and max {max}")]
    InvalidRange { what: &'static str, min: f64, max: f64 },
    #[error("clock drift must be within ±{max_ppm} ppm, got {value_ppm}")]
    InvalidDrift { value_ppm: f64, max_ppm: i64 },
    #[error("a timer cannot be set in the past: deadline {deadline_ns} ns, local now {now_ns} ns")]
    TimerInPast { deadline_ns: u64, now_ns: u64 },
    #[error("{what}: {detail}")]
    InvalidFault { what: &'static str, detail: String },
    #[error("a cluster needs at least one node and at most {max} nodes, got {nodes}")]
    InvalidClusterSize { nodes: usize, max: usize },
}

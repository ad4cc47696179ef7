//! Trace events: what the engine records when recording is on (as JSON lines, by the caller).

use serde::Serialize;

use crate::fault::Fault;

/// Why a message was not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// A cut stood between sender and receiver at send or at delivery time.
    Partitioned,
    /// The link's random loss.
    Loss,
    /// The receiver was crashed when the message arrived.
    NodeDown,
}

impl DropReason {
    pub(crate) fn code(self) -> u64 {
        match self {
            DropReason::Partitioned => 1,
            DropReason::Loss => 2,
            DropReason::NodeDown => 3,
        }
    }
}

/// Why a run stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum StopReason {
    /// Nothing was left to happen.
    Quiescent,
    /// The next event lay past the virtual-time limit.
    TimeLimit { limit_ns: u64 },
    /// The event limit was reached.
    EventLimit { limit: u64 },
    /// More events were pending at once than the queue limit allows.
    QueueLimit { limit: usize },
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Quiescent => write!(f, "no events left"),
            StopReason::TimeLimit { limit_ns } => {
                write!(f, "virtual time limit of {} ms reached", limit_ns / 1_000_000)
            }
            StopReason::EventLimit { limit } => write!(f, "event limit of {limit} events reached"),
            StopReason::QueueLimit { limit } => write!(f, "queue limit of {limit} pending events exceeded"),
        }
    }
}

/// One recorded event. `t_ns` is true global time.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TraceEvent<'a, M, O> {
    Start { t_ns: u64, node: usize, incarnation: u32 },
    Send { t_ns: u64, from: usize, to: usize, msg_id: u64, deliver_ns: u64, msg: &'a M },
    Duplicate { t_ns: u64, from: usize, to: usize, msg_id: u64, deliver_ns: u64 },
    Deliver { t_ns: u64, from: usize, to: usize, msg_id: u64, msg: &'a M },
    Drop { t_ns: u64, from: usize, to: usize, msg_id: u64, reason: DropReason },
    Timer { t_ns: u64, node: usize, timer: u32, tag: u64, local_ns: u64 },
    Fault { t_ns: u64, fault: &'a Fault },
    Resume { t_ns: u64, node: usize },
    Observe { t_ns: u64, node: usize, obs: &'a O },
    Stop { t_ns: u64, stop: StopReason },
}

/// Where recorded events go. The engine builds an event only when a sink is set.
pub trait TraceSink<M, O> {
    fn record(&mut self, event: &TraceEvent<'_, M, O>);
}

/// A sink that keeps every event as a JSON line in memory (for tests and small reports).
#[derive(Clone, Default)]
pub struct MemorySink {
    events: std::rc::Rc<std::cell::RefCell<Vec<serde_json::Value>>>,
}

impl MemorySink {
    /// The events recorded so far, as JSON lines.
    pub fn lines(&self) -> Vec<String> {
        self.events.borrow().iter().map(serde_json::Value::to_string).collect()
    }

    /// Takes the events recorded so far, as JSON values.
    pub fn take_values(&self) -> Vec<serde_json::Value> {
        std::mem::take(&mut *self.events.borrow_mut())
    }
}

impl<M: Serialize, O: Serialize> TraceSink<M, O> for MemorySink {
    fn record(&mut self, event: &TraceEvent<'_, M, O>) {
        let value = serde_json::to_value(event)
            .unwrap_or_else(|e| serde_json::json!({"event": "unserialisable", "error": e.to_string()}));
        self.events.borrow_mut().push(value);
    }
}

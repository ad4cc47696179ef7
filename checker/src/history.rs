//! Histories: client operations with invocation and completion, by Jepsen's conventions.
//!
//! An input is a sequence of entries (op maps, log lines, JSON objects). Each entry is an
//! [`Event`]: an invocation or a completion (`ok`, `fail`, `info`) of one process. A
//! process has at most one operation outstanding; its next completion completes it. An
//! `info` from a process with nothing outstanding (the nemesis) is not an operation, nor
//! is any entry whose process is not an integer. An invocation that is never completed
//! counts as `info`.

use serde::Serialize;

use crate::value::Value;

/// What an entry says happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Invoke,
    Ok,
    Fail,
    Info,
}

impl EventType {
    pub fn parse(name: &str) -> Option<EventType> {
        match name {
            "invoke" => Some(EventType::Invoke),
            "ok" => Some(EventType::Ok),
            "fail" => Some(EventType::Fail),
            "info" => Some(EventType::Info),
            _ => None,
        }
    }
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It happened, and the result is known.
    Ok,
    /// It certainly did not happen.
    Fail,
    /// It may have happened, at any point after its invocation, or never.
    Info,
}

/// One entry of an input history.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The process, if it is an integer; `None` for the nemesis and other non-clients.
    pub process: Option<u64>,
    pub kind: EventType,
    pub f: String,
    pub key: Option<Value>,
    pub value: Value,
    pub time_ns: Option<u64>,
    /// Where the entry starts in the input (1-based).
    pub line: usize,
    pub column: usize,
}

/// One client operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    pub process: u64,
    pub f: String,
    pub key: Option<Value>,
    /// The invocation's value (a write's argument).
    pub value: Value,
    /// The completion's value (a read's result); the invocation's value if none.
    pub result: Value,
    pub outcome: Outcome,
    /// Index of the invocation among the input's entries (0-based).
    pub invoke_index: usize,
    /// Index of the completion, if there was one.
    pub complete_index: Option<usize>,
    pub invoke_line: usize,
    pub complete_line: Option<usize>,
    pub invoke_time_ns: Option<u64>,
    pub complete_time_ns: Option<u64>,
}

impl Op {
    /// The input index where the operation's effect must have been visible: its
    /// completion, or its invocation when it never completed.
    pub fn index(&self) -> usize {
        self.complete_index.unwrap_or(self.invoke_index)
    }
}

/// The operations of one history, in invocation order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    pub ops: Vec<Op>,
    /// Entries read from the input (operations' events, nemesis entries and all).
    pub entries: usize,
}

/// An entry that breaks the conventions.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct HistoryError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Builds a history from entries in real-time order.
#[derive(Default)]
pub struct HistoryBuilder {
    history: History,
    /// Outstanding operation of each process: index into `history.ops`.
    outstanding: std::collections::BTreeMap<u64, usize>,
}

impl HistoryBuilder {
    /// Adds the next entry.
    pub fn push(&mut self, event: Event) -> Result<(), HistoryError> {
        let index = self.history.entries;
        self.history.entries += 1;
        let Some(process) = event.process else {
            return Ok(());
        };
        let error = |message: String| HistoryError { line: event.line, column: event.column, message };
        match event.kind {
            EventType::Invoke => {
                if let Some(open) = self.outstanding.get(&process) {
                    let open = &self.history.ops[*open];
                    return Err(error(format!(
                        "process {process} invokes :{} while its :{} invoked at line {} is still outstanding",
                        event.f, open.f, open.invoke_line
                    )));
                }
                self.outstanding.insert(process, self.history.ops.len());
                self.history.ops.push(Op {
                    process,
                    f: event.f,
                    key: event.key,
                    result: event.value.clone(),
                    value: event.value,
                    outcome: Outcome::Info,
                    invoke_index: index,
                    complete_index: None,
                    invoke_line: event.line,
                    complete_line: None,
                    invoke_time_ns: event.time_ns,
                    complete_time_ns: None,
                });
            }
            kind => {
                let Some(open) = self.outstanding.remove(&process) else {
                    if kind == EventType::Info {
                        return Ok(());
                    }
                    return Err(error(format!(
                        "a :{} completion of :{} by process {process}, which has no operation outstanding",
                        kind_name(kind),
                        event.f
                    )));
                };
                let op = &mut self.history.ops[open];
                if op.f != event.f {
                    return Err(error(format!(
                        "process {process} completes :{} but its outstanding operation is :{} (line {})",
                        event.f, op.f, op.invoke_line
                    )));
                }
                op.outcome = match kind {
                    EventType::Ok => Outcome::Ok,
                    EventType::Fail => Outcome::Fail,
                    _ => Outcome::Info,
                };
                op.result = event.value;
                if op.key.is_none() {
                    op.key = event.key;
                }
                op.complete_index = Some(index);
                op.complete_line = Some(event.line);
                op.complete_time_ns = event.time_ns;
            }
        }
        Ok(())
    }

    /// The history; operations still outstanding are indeterminate.
    pub fn finish(self) -> History {
        self.history
    }
}

fn kind_name(kind: EventType) -> &'static str {
    match kind {
        EventType::Invoke => "invoke",
        EventType::Ok => "ok",
        EventType::Fail => "fail",
        EventType::Info => "info",
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let outcome = match self.outcome {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
        };
        write!(f, "process {} :{}", self.process, self.f)?;
        if let Some(key) = &self.key {
            write!(f, " key {key}")?;
        }
        write!(f, " {} -> :{outcome} {}", self.value, self.result)
    }
}

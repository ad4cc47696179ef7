//! Recording a run's trace with memory bounded by what was asked: JSON lines streamed to
//! a file as events happen, and for a report only the events its pictures can show.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde::Serialize;
use serde_json::Value;
use sim_core::TraceEvent;

/// Which events a report keeps.
#[derive(Clone, Debug, Default)]
pub struct KeepPolicy {
    /// Keep every event (the Perfetto export needs them all).
    pub all: bool,
    /// Keep events in these windows of global time (ns).
    pub windows: Vec<(u64, u64)>,
    /// Keep the events of the last this-many nanoseconds (a run that stops at a
    /// violation ends at it).
    pub tail_ns: Option<u64>,
    /// Keep the causal skeleton of every event (a few words each), for the causal past
    /// of a violation.
    pub steps: bool,
}

impl KeepPolicy {
    /// Whether a report wants any event at all.
    fn keeps_any(&self) -> bool {
        self.all || !self.windows.is_empty() || self.tail_ns.is_some()
    }
}

/// What a recording is writing and keeping.
struct Recorder {
    /// JSON lines streamed to a temporary file, and where they go at the end.
    file: Option<(std::io::BufWriter<std::fs::File>, PathBuf, PathBuf)>,
    error: Option<String>,
    policy: KeepPolicy,
    /// Faults and starts are always kept: reports draw them as intervals across the run.
    kept: Vec<Value>,
    tail: VecDeque<Value>,
    steps: Vec<reports::Step>,
}

/// A trace sink for any protocol; clones share one recording.
#[derive(Clone)]
pub struct Recording(Rc<RefCell<Recorder>>);

fn time_of(value: &Value) -> u64 {
    value.get("t_ns").and_then(Value::as_u64).unwrap_or(0)
}

impl Recording {
    /// Streams JSON lines to `trace` (if given) and keeps what `policy` says.
    pub fn new(trace: Option<&Path>, policy: KeepPolicy) -> Result<Recording, String> {
        let file = match trace {
            Some(path) => {
                // Not `temp_path(path)`: the final write goes through that one while it
                // reads this.
                let temp = crate::output::temp_path(&path.with_extension("events"));
                let file = std::fs::File::create(&temp)
                    .map_err(|e| format!("{} {}: {e}", crate::output::CANNOT_WRITE, path.display()))?;
                Some((std::io::BufWriter::new(file), temp, path.to_owned()))
            }
            None => None,
        };
        let recorder =
            Recorder { file, error: None, policy, kept: Vec::new(), tail: VecDeque::new(), steps: Vec::new() };
        Ok(Recording(Rc::new(RefCell::new(recorder))))
    }

    /// Finishes the file: the `run` header line first, then the streamed events; the
    /// file appears whole or not at all.
    pub fn finish_file(&self, header: &Value) -> Result<Option<u64>, String> {
        let mut recorder = self.0.borrow_mut();
        if let Some(error) = recorder.error.take() {
            return Err(error);
        }
        let Some((mut writer, temp, path)) = recorder.file.take() else { return Ok(None) };
        let failed = |e: std::io::Error| {
            let _ = std::fs::remove_file(&temp);
            format!("{} {}: {e}", crate::output::CANNOT_WRITE, path.display())
        };
        writer.flush().map_err(failed)?;
        drop(writer);
        let events = std::fs::File::open(&temp).map_err(failed)?;
        let mut events = std::io::BufReader::new(events);
        let mut lines = 0u64;
        let result = crate::output::write_atomic_with(&path, |out| {
            writeln!(out, "{header}")?;
            let mut line = String::new();
            while std::io::BufRead::read_line(&mut events, &mut line)? > 0 {
                out.write_all(line.as_bytes())?;
                lines += 1;
                line.clear();
            }
            Ok(())
        });
        let _ = std::fs::remove_file(&temp);
        result.map(|()| Some(lines))
    }

    /// The causal skeleton of every event, in the order they happened.
    pub fn take_steps(&self) -> Vec<reports::Step> {
        std::mem::take(&mut self.0.borrow_mut().steps)
    }

    /// The events kept for a report, in time order.
    pub fn take_kept(&self) -> Vec<Value> {
        let mut recorder = self.0.borrow_mut();
        let mut kept = std::mem::take(&mut recorder.kept);
        kept.extend(recorder.tail.drain(..));
        kept.sort_by_key(time_of);
        kept
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // A recording abandoned before `finish_file` leaves no temporary file behind.
        if let Some((_, temp, _)) = self.file.take() {
            let _ = std::fs::remove_file(temp);
        }
    }
}

impl Recorder {
    fn keep(&mut self, value: Value) {
        let t_ns = time_of(&value);
        let always = matches!(value.get("event").and_then(Value::as_str), Some("fault" | "start" | "stop"));
        if self.policy.all || always || self.policy.windows.iter().any(|(from, to)| (*from..=*to).contains(&t_ns)) {
            self.kept.push(value);
            return;
        }
        if let Some(tail_ns) = self.policy.tail_ns {
            self.tail.push_back(value);
            while self.tail.front().is_some_and(|front| time_of(front) + tail_ns < t_ns) {
                self.tail.pop_front();
            }
        }
    }
}

impl Recording {
    /// Records `event`, with a protocol's short label for its message if it has one
    /// (the registry's sink supplies the labels).
    pub fn record_labelled<M: Serialize, O: Serialize>(&mut self, event: &TraceEvent<'_, M, O>, label: Option<String>) {
        let mut value = serde_json::to_value(event)
            .unwrap_or_else(|e| serde_json::json!({"event": "unserialisable", "error": e.to_string()}));
        if let (Some(label), Value::Object(map)) = (label, &mut value) {
            map.insert("label".to_owned(), Value::String(label));
        }
        let mut recorder = self.0.borrow_mut();
        if let Some((writer, _, path)) = recorder.file.as_mut()
            && let Err(e) = writeln!(writer, "{value}")
        {
            let message = format!("{} {}: {e}", crate::output::CANNOT_WRITE, path.display());
            recorder.error.get_or_insert(message);
        }
        if recorder.policy.steps
            && let Some(step) = reports::Step::of(&value)
        {
            recorder.steps.push(step);
        }
        if recorder.policy.keeps_any() {
            recorder.keep(value);
        }
    }
}

//! Importers: Jepsen EDN histories, Jepsen console logs and dsim's JSON lines.
//!
//! **dsim's JSON history format** is JSON Lines: one object per line, in real-time order,
//! with Jepsen's keys: `process` (integer, or a string such as `"nemesis"`), `type`
//! (`"invoke"`, `"ok"`, `"fail"`, `"info"`), `f` (string), optional `key` and `value`
//! (any JSON), optional `time_ns` (integer). Blank lines are skipped. A JSON array of
//! such objects is accepted too.

use crate::edn::{EdnError, Reader};
use crate::history::{Event, EventType, History, HistoryBuilder, HistoryError};
use crate::value::Value;

/// A history file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// EDN: one collection of op maps, or one map after another.
    Edn,
    /// Jepsen's console log: `INFO  jepsen.util - <process> <type> <f> <value>`.
    JepsenLog,
    /// dsim's JSON lines.
    Json,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Edn => "edn",
            Format::JepsenLog => "jepsen-log",
            Format::Json => "json",
        }
    }
}

/// Bad input, with the place it was found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ImportError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl From<EdnError> for ImportError {
    fn from(e: EdnError) -> Self {
        ImportError { line: e.line, column: e.column, message: e.message }
    }
}

impl From<HistoryError> for ImportError {
    fn from(e: HistoryError) -> Self {
        ImportError { line: e.line, column: e.column, message: e.message }
    }
}

/// Guesses the format from the text (and the file name, if any).
pub fn detect_format(name: Option<&str>, text: &str) -> Format {
    let first_line = text.lines().find(|line| !line.trim().is_empty()).unwrap_or("");
    if first_line.contains("jepsen.util") || name.is_some_and(|n| n.ends_with(".log")) {
        return Format::JepsenLog;
    }
    let trimmed = text.trim_start();
    let after_open = trimmed.get(1..).unwrap_or("").trim_start();
    let json_object = trimmed.starts_with('{') && after_open.starts_with('"');
    let json_array =
        trimmed.starts_with('[') && after_open.starts_with('{') && after_open[1..].trim_start().starts_with('"');
    if json_object || json_array || name.is_some_and(|n| n.ends_with(".json") || n.ends_with(".jsonl")) {
        return Format::Json;
    }
    Format::Edn
}

/// Parses a history in the given format.
pub fn parse_history(text: &str, format: Format) -> Result<History, ImportError> {
    match format {
        Format::Edn => parse_edn(text),
        Format::JepsenLog => parse_jepsen_log(text),
        Format::Json => parse_json(text),
    }
}

fn parse_edn(text: &str) -> Result<History, ImportError> {
    let mut reader = Reader::new(text);
    let mut builder = HistoryBuilder::default();
    let close = match reader.skip_space() {
        Some(b'[') => Some(b']'),
        Some(b'(') => Some(b')'),
        _ => None,
    };
    if close.is_some() {
        reader.eat(b'[');
        reader.eat(b'(');
    }
    loop {
        match (reader.skip_space(), close) {
            (None, None) => break,
            (None, Some(c)) => {
                let (line, column) = reader.position();
                return Err(ImportError {
                    line,
                    column,
                    message: format!("unexpected end of input, expected '{}'", c as char),
                });
            }
            (Some(b), Some(c)) if b == c => {
                reader.eat(c);
                if !reader.at_end() {
                    let (line, column) = reader.position();
                    return Err(ImportError { line, column, message: "unexpected text after the history".into() });
                }
                break;
            }
            _ => {
                let (line, column) = reader.position();
                let value = reader.read()?;
                builder.push(event_from_map(&value, line, column)?)?;
            }
        }
    }
    Ok(builder.finish())
}

/// Reads one op map (EDN or JSON) into an event.
pub fn event_from_map(value: &Value, line: usize, column: usize) -> Result<Event, ImportError> {
    let error = |message: String| ImportError { line, column, message };
    if !matches!(value, Value::Map(_)) {
        return Err(error(format!("expected an op map, found {}", short(value))));
    }
    let type_value = value.get("type").ok_or_else(|| error("op map has no :type".into()))?;
    let kind = type_value
        .as_name()
        .and_then(EventType::parse)
        .ok_or_else(|| error(format!("unknown :type {type_value}, expected :invoke, :ok, :fail or :info")))?;
    let process = match value.get("process") {
        Some(Value::Int(p)) if *p >= 0 => Some(*p as u64),
        Some(Value::Int(p)) => return Err(error(format!("negative :process {p}"))),
        Some(Value::Keyword(_) | Value::Str(_) | Value::Symbol(_)) => None,
        Some(other) => return Err(error(format!("unexpected :process {}", short(other)))),
        None => return Err(error("op map has no :process".into())),
    };
    let f = match value.get("f") {
        Some(f) => f.as_name().map(str::to_owned).ok_or_else(|| error(format!("unexpected :f {}", short(f))))?,
        None if process.is_none() => String::new(),
        None => return Err(error("op map has no :f".into())),
    };
    let time_ns = match value.get("time").or_else(|| value.get("time_ns")) {
        Some(Value::Int(t)) if *t >= 0 => Some(*t as u64),
        _ => None,
    };
    Ok(Event {
        process,
        kind,
        f,
        key: value.get("key").cloned(),
        value: value.get("value").cloned().unwrap_or(Value::Nil),
        time_ns,
        line,
        column,
    })
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 { format!("{}…", text.chars().take(60).collect::<String>()) } else { text }
}

fn parse_jepsen_log(text: &str) -> Result<History, ImportError> {
    const MARKER: &str = "jepsen.util - ";
    let mut builder = HistoryBuilder::default();
    for (number, line) in text.lines().enumerate() {
        let Some(start) = line.find(MARKER) else {
            continue;
        };
        let line_number = number + 1;
        let body = &line[start + MARKER.len()..];
        let column = line[..start + MARKER.len()].chars().count() + 1;
        let error = |message: String| ImportError { line: line_number, column, message };
        let mut fields = body.split_whitespace();
        let (Some(process), Some(kind), Some(f)) = (fields.next(), fields.next(), fields.next()) else {
            return Err(error("expected '<process> <type> <f> <value>' after 'jepsen.util - '".into()));
        };
        let rest = fields.collect::<Vec<_>>().join(" ");
        let process = match crate::edn::parse(process) {
            Ok(Value::Int(p)) if p >= 0 => Some(p as u64),
            Ok(Value::Keyword(_) | Value::Symbol(_)) => None,
            _ => return Err(error(format!("unexpected process '{process}'"))),
        };
        let kind = kind
            .strip_prefix(':')
            .and_then(EventType::parse)
            .ok_or_else(|| error(format!("unknown type '{kind}', expected :invoke, :ok, :fail or :info")))?;
        let f = f.strip_prefix(':').unwrap_or(f).to_owned();
        let value = if rest.is_empty() {
            Value::Nil
        } else {
            crate::edn::parse(&rest).map_err(|e| error(format!("bad value '{rest}': {}", e.message)))?
        };
        builder.push(Event { process, kind, f, key: None, value, time_ns: None, line: line_number, column })?;
    }
    Ok(builder.finish())
}

fn parse_json(text: &str) -> Result<History, ImportError> {
    let json_error = |e: serde_json::Error, line_offset: usize| ImportError {
        line: e.line() + line_offset,
        column: e.column(),
        message: format!("invalid JSON: {e}").replace(&format!(" at line {} column {}", e.line(), e.column()), ""),
    };
    let mut builder = HistoryBuilder::default();
    if text.trim_start().starts_with('[') {
        let values: Vec<serde_json::Value> = serde_json::from_str(text).map_err(|e| json_error(e, 0))?;
        for (index, json) in values.iter().enumerate() {
            // An array has no per-event position: name the event by its index instead.
            let event = event_from_map(&Value::from_json(json), 1, 1)
                .map_err(|e| ImportError { message: format!("event {index}: {}", e.message), ..e })?;
            builder.push(event)?;
        }
        return Ok(builder.finish());
    }
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let json: serde_json::Value = serde_json::from_str(line).map_err(|e| json_error(e, number))?;
        builder.push(event_from_map(&Value::from_json(&json), number + 1, 1)?)?;
    }
    Ok(builder.finish())
}

/// Writes a history as dsim's JSON lines (one event per line, in real-time order).
pub fn to_json_lines(events: &[Event]) -> String {
    let mut out = String::new();
    for event in events {
        let mut object = serde_json::Map::new();
        let process = match event.process {
            Some(p) => serde_json::Value::from(p),
            None => serde_json::Value::from("nemesis"),
        };
        object.insert("process".into(), process);
        object.insert("type".into(), serde_json::to_value(event.kind).expect("serialisable"));
        object.insert("f".into(), serde_json::Value::from(event.f.clone()));
        if let Some(key) = &event.key {
            object.insert("key".into(), key.to_json());
        }
        object.insert("value".into(), event.value.to_json());
        if let Some(t) = event.time_ns {
            object.insert("time_ns".into(), serde_json::Value::from(t));
        }
        out.push_str(&serde_json::Value::Object(object).to_string());
        out.push('\n');
    }
    out
}

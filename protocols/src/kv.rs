//! The replicated key-value state machine, its operations, its clients' workload and
//! the observations that turn into a history.

use std::collections::BTreeMap;

use checker::history::{Event, EventType};
use checker::value::Value;
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::codec::{Reader, Writer};

/// A key-value operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvOp {
    Get { key: String },
    Put { key: String, value: String },
    Append { key: String, value: String },
    Cas { key: String, from: String, to: String },
}

impl KvOp {
    pub fn key(&self) -> &str {
        match self {
            KvOp::Get { key } | KvOp::Put { key, .. } | KvOp::Append { key, .. } | KvOp::Cas { key, .. } => key,
        }
    }

    /// The function's name in histories.
    pub fn function(&self) -> &'static str {
        match self {
            KvOp::Get { .. } => "get",
            KvOp::Put { .. } => "put",
            KvOp::Append { .. } => "append",
            KvOp::Cas { .. } => "cas",
        }
    }

    fn argument(&self) -> Value {
        match self {
            KvOp::Get { .. } => Value::Nil,
            KvOp::Put { value, .. } | KvOp::Append { value, .. } => Value::Str(value.clone()),
            KvOp::Cas { from, to, .. } => Value::Vec(vec![Value::Str(from.clone()), Value::Str(to.clone())]),
        }
    }
}

/// What applying an operation returned.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvResult {
    /// A get's value ("" for a key never written).
    Value(String),
    /// A put or append took effect, or a cas matched.
    Done,
    /// A cas did not match: it certainly did not take effect.
    CasMismatch,
}

/// A command in the replicated log: an operation tagged with its client session.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KvCommand {
    pub client: u64,
    pub seq: u64,
    pub op: KvOp,
}

impl KvCommand {
    /// Appends the command to a durable record.
    pub fn encode(&self, out: &mut Writer) {
        out.u64(self.client);
        out.u64(self.seq);
        let (tag, strings): (u8, Vec<&str>) = match &self.op {
            KvOp::Get { key } => (0, vec![key]),
            KvOp::Put { key, value } => (1, vec![key, value]),
            KvOp::Append { key, value } => (2, vec![key, value]),
            KvOp::Cas { key, from, to } => (3, vec![key, from, to]),
        };
        out.u8(tag);
        for text in strings {
            out.text(text);
        }
    }

    /// Reads a command written by [`KvCommand::encode`]; `None` if torn or corrupt.
    pub fn decode(reader: &mut Reader<'_>) -> Option<KvCommand> {
        let client = reader.u64()?;
        let seq = reader.u64()?;
        let op = match reader.u8()? {
            0 => KvOp::Get { key: reader.text()? },
            1 => KvOp::Put { key: reader.text()?, value: reader.text()? },
            2 => KvOp::Append { key: reader.text()?, value: reader.text()? },
            3 => KvOp::Cas { key: reader.text()?, from: reader.text()?, to: reader.text()? },
            _ => return None,
        };
        Some(KvCommand { client, seq, op })
    }
}

/// The state machine: the map, and each client's last applied sequence number with its
/// result, so that a retried command is applied once and answered the same.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct KvStore {
    data: BTreeMap<String, String>,
    sessions: BTreeMap<u64, (u64, KvResult)>,
}

impl KvStore {
    /// Applies a command; a duplicate of the session's last command returns its result
    /// again without applying it; an older one returns `None`.
    pub fn apply(&mut self, command: &KvCommand) -> Option<KvResult> {
        if let Some((seq, result)) = self.sessions.get(&command.client) {
            if *seq == command.seq {
                return Some(result.clone());
            }
            if *seq > command.seq {
                return None;
            }
        }
        let result = match &command.op {
            KvOp::Get { key } => KvResult::Value(self.data.get(key).cloned().unwrap_or_default()),
            KvOp::Put { key, value } => {
                self.data.insert(key.clone(), value.clone());
                KvResult::Done
            }
            KvOp::Append { key, value } => {
                self.data.entry(key.clone()).or_default().push_str(value);
                KvResult::Done
            }
            KvOp::Cas { key, from, to } => {
                let current = self.data.entry(key.clone()).or_default();
                if current == from {
                    *current = to.clone();
                    KvResult::Done
                } else {
                    KvResult::CasMismatch
                }
            }
        };
        self.sessions.insert(command.client, (command.seq, result.clone()));
        Some(result)
    }

    /// The result already recorded for this session's command, if it was applied.
    pub fn cached(&self, client: u64, seq: u64) -> Option<&KvResult> {
        self.sessions.get(&client).filter(|(s, _)| *s == seq).map(|(_, r)| r)
    }

    /// Every key's value.
    pub fn data(&self) -> &BTreeMap<String, String> {
        &self.data
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.data.get(key).map(String::as_str)
    }

    /// Writes the whole state (map and sessions) into a snapshot record.
    pub fn encode(&self, out: &mut Writer) {
        out.u64(self.data.len() as u64);
        for (key, value) in &self.data {
            out.text(key);
            out.text(value);
        }
        out.u64(self.sessions.len() as u64);
        for (client, (seq, result)) in &self.sessions {
            out.u64(*client);
            out.u64(*seq);
            match result {
                KvResult::Value(value) => {
                    out.u8(0);
                    out.text(value);
                }
                KvResult::Done => out.u8(1),
                KvResult::CasMismatch => out.u8(2),
            }
        }
    }

    /// Reads what [`KvStore::encode`] wrote; `None` if the record is torn or corrupt.
    pub fn decode(reader: &mut Reader<'_>) -> Option<KvStore> {
        let mut store = KvStore::default();
        for _ in 0..reader.u64()? {
            let key = reader.text()?;
            store.data.insert(key, reader.text()?);
        }
        for _ in 0..reader.u64()? {
            let (client, seq) = (reader.u64()?, reader.u64()?);
            let result = match reader.u8()? {
                0 => KvResult::Value(reader.text()?),
                1 => KvResult::Done,
                2 => KvResult::CasMismatch,
                _ => return None,
            };
            store.sessions.insert(client, (seq, result));
        }
        Some(store)
    }
}

/// The operation mix, as relative weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpMix {
    pub get: f64,
    pub put: f64,
    pub append: f64,
    pub cas: f64,
}

impl Default for OpMix {
    fn default() -> Self {
        OpMix { get: 0.4, put: 0.2, append: 0.3, cas: 0.1 }
    }
}

/// What the clients do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KvWorkload {
    /// Operations each client starts per second (on average; a client has one operation
    /// in flight, so one that takes longer than the interval delays the next).
    pub rate_per_client: f64,
    /// Keys the operations spread over.
    pub keys: usize,
    pub mix: OpMix,
    /// Bytes in each value written (values are unique per operation).
    pub value_size: usize,
    /// How long a client waits for one server before trying the next.
    pub request_timeout_ms: f64,
    /// How long a client tries before giving up on an operation (recorded as info).
    pub op_timeout_ms: f64,
    /// How long a client waits before asking the next server when one answered that it
    /// knows no leader.
    pub no_leader_backoff_ms: f64,
    /// From the heal on, clients only read: the writes happen under the faults and every
    /// client reads the final state after the heal (the set-add workload's final reads).
    pub reads_after_heal: bool,
}

impl Default for KvWorkload {
    fn default() -> Self {
        KvWorkload {
            rate_per_client: 10.0,
            keys: 5,
            mix: OpMix::default(),
            value_size: 8,
            request_timeout_ms: 150.0,
            op_timeout_ms: 2_000.0,
            no_leader_backoff_ms: 10.0,
            reads_after_heal: false,
        }
    }
}

impl KvWorkload {
    /// Checks the numbers; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        let within = |name: &str, value: f64, min: f64, max: f64| {
            if value.is_finite() && (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(format!("workload.{name} must be {min} to {max}, got {value}"))
            }
        };
        // At most 1,000 operations per second per client: more floods the event queue
        // and the history without showing anything slower rates do not.
        within("rate_per_client", self.rate_per_client, 0.001, 1_000.0)?;
        within("request_timeout_ms", self.request_timeout_ms, 0.1, 3_600_000.0)?;
        within("op_timeout_ms", self.op_timeout_ms, 0.1, 3_600_000.0)?;
        within("no_leader_backoff_ms", self.no_leader_backoff_ms, 0.1, 3_600_000.0)?;
        if !(1..=1_000_000).contains(&self.keys) {
            return Err(format!("workload.keys must be 1 to 1000000, got {}", self.keys));
        }
        // Values are unique strings per operation; larger ones only cost memory.
        if self.value_size > 4_096 {
            return Err(format!("workload.value_size must be at most 4096 bytes, got {}", self.value_size));
        }
        let weights = [self.mix.get, self.mix.put, self.mix.append, self.mix.cas];
        if weights.iter().any(|w| !w.is_finite() || !(0.0..=1e6).contains(w)) || weights.iter().sum::<f64>() <= 0.0 {
            return Err("workload.mix weights must be 0 to 1000000 and not all zero".into());
        }
        Ok(())
    }

    /// The instant after which clients only read: the heal with `reads_after_heal`.
    pub fn writes_until_ns(&self, heal_ns: u64) -> u64 {
        if self.reads_after_heal { heal_ns } else { u64::MAX }
    }

    /// Draws the next operation; `tag` makes written values unique.
    pub fn next_op(&self, rng: &mut sim_core::SimRng, tag: &str) -> KvOp {
        let key = format!("k{}", rng.random_range(0..self.keys));
        let weights = [self.mix.get, self.mix.put, self.mix.append, self.mix.cas];
        let total: f64 = weights.iter().sum();
        let mut draw = rng.random_range(0.0..total);
        let mut choice = 0;
        for (i, w) in weights.iter().enumerate() {
            if draw < *w {
                choice = i;
                break;
            }
            draw -= w;
        }
        let value = pad(tag, self.value_size);
        match choice {
            0 => KvOp::Get { key },
            1 => KvOp::Put { key, value },
            2 => KvOp::Append { key, value: format!("{value};") },
            // A cas from "" succeeds on a fresh key; otherwise it mostly fails, which
            // exercises the fail outcome. Values read back stay unique.
            _ => KvOp::Cas { key, from: String::new(), to: value },
        }
    }
}

fn pad(tag: &str, size: usize) -> String {
    if tag.len() >= size { tag.to_owned() } else { format!("{tag}{}", ".".repeat(size - tag.len())) }
}

/// A client's invocation or completion, as an observation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct ClientObs {
    pub process: u64,
    pub kind: EventType,
    pub op: KvOp,
    /// A completed get's value.
    pub value: Option<String>,
}

impl ClientObs {
    /// The history event this observation stands for.
    pub fn to_event(&self, t_ns: u64) -> Event {
        let value = match (&self.kind, &self.value) {
            (EventType::Ok, Some(v)) => Value::Str(v.clone()),
            _ => self.op.argument(),
        };
        Event {
            process: Some(self.process),
            kind: self.kind,
            f: self.op.function().to_owned(),
            key: Some(Value::Str(self.op.key().to_owned())),
            value,
            time_ns: Some(t_ns),
            line: 0,
            column: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(client: u64, seq: u64, op: KvOp) -> KvCommand {
        KvCommand { client, seq, op }
    }

    #[test]
    fn retried_commands_apply_once() {
        let mut store = KvStore::default();
        let append = command(1, 1, KvOp::Append { key: "a".into(), value: "x".into() });
        assert_eq!(store.apply(&append), Some(KvResult::Done));
        assert_eq!(store.apply(&append), Some(KvResult::Done));
        assert_eq!(store.get("a"), Some("x"));
        let stale = command(1, 0, KvOp::Append { key: "a".into(), value: "y".into() });
        assert_eq!(store.apply(&stale), None);
        assert_eq!(store.get("a"), Some("x"));
        let cas = command(2, 1, KvOp::Cas { key: "a".into(), from: "z".into(), to: "w".into() });
        assert_eq!(store.apply(&cas), Some(KvResult::CasMismatch));
        let get = command(2, 2, KvOp::Get { key: "a".into() });
        assert_eq!(store.apply(&get), Some(KvResult::Value("x".into())));
    }
}

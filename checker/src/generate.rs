//! Histories that are linearizable by construction, for tests and benchmarks.
//!
//! Clients run concurrently against one true state. Each operation is invoked, takes
//! effect at a single instant chosen later (its linearization point), and completes
//! later still; other clients' events interleave at random between these three points,
//! so the intervals overlap. An operation may instead end indeterminate (`info`), having
//! taken effect or not, after which its client continues as a new process, as Jepsen's
//! clients do.

use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::history::{Event, EventType};
use crate::value::Value;

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// read / write on one register.
    Register,
    /// read / write / cas on one register holding small integers (Jepsen's etcd test).
    CasRegister,
    /// get / put / append on `keys` string registers.
    Kv { keys: usize },
}

/// Generation parameters.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub shape: Shape,
    pub ops: usize,
    pub clients: usize,
    /// Share of operations that end indeterminate.
    pub info_rate: f64,
    pub seed: u64,
}

#[derive(Clone)]
enum Pending {
    Idle,
    Invoked { f: &'static str, key: Option<Value>, value: Value },
    Applied { f: &'static str, key: Option<Value>, value: Value, result: Value, ok: bool },
}

struct Client {
    process: u64,
    pending: Pending,
}

/// Generates events in real-time order.
pub fn generate(config: &Config) -> Vec<Event> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let keys = match config.shape {
        Shape::Kv { keys } => keys.max(1),
        _ => 1,
    };
    let mut state: Vec<Value> = vec![initial(config.shape); keys];
    let mut clients: Vec<Client> =
        (0..config.clients.max(1)).map(|c| Client { process: c as u64, pending: Pending::Idle }).collect();
    let mut next_process = clients.len() as u64;
    let mut invoked = 0;
    let mut events = Vec::with_capacity(config.ops * 2);
    let mut counter = 0u64;
    loop {
        let busy = clients.iter().any(|c| !matches!(c.pending, Pending::Idle));
        if invoked >= config.ops && !busy {
            break;
        }
        let client = rng.random_range(0..clients.len());
        let c = &mut clients[client];
        match c.pending.clone() {
            Pending::Idle => {
                if invoked >= config.ops {
                    continue;
                }
                invoked += 1;
                counter += 1;
                let (f, key, value) = choose(config.shape, keys, counter, &mut rng);
                events.push(event(c.process, EventType::Invoke, f, key.clone(), value.clone()));
                c.pending = Pending::Invoked { f, key, value };
            }
            Pending::Invoked { f, key, value } => {
                if rng.random_bool(config.info_rate / 2.0) {
                    // Crashed before taking effect.
                    events.push(event(c.process, EventType::Info, f, key, value));
                    c.process = next_process;
                    next_process += 1;
                    c.pending = Pending::Idle;
                    continue;
                }
                let slot = key.as_ref().map_or(0, key_index);
                let (result, ok) = apply(&mut state[slot], f, &value);
                c.pending = Pending::Applied { f, key, value, result, ok };
            }
            Pending::Applied { f, key, value, result, ok } => {
                if rng.random_bool(config.info_rate / 2.0) {
                    // Took effect, but the client never heard.
                    events.push(event(c.process, EventType::Info, f, key, value));
                    c.process = next_process;
                    next_process += 1;
                } else {
                    let kind = if ok { EventType::Ok } else { EventType::Fail };
                    events.push(event(c.process, kind, f, key, result));
                }
                c.pending = Pending::Idle;
            }
        }
    }
    events
}

fn initial(shape: Shape) -> Value {
    match shape {
        Shape::Kv { .. } => Value::Str(String::new()),
        _ => Value::Nil,
    }
}

fn key_index(key: &Value) -> usize {
    match key {
        Value::Str(s) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

fn choose(shape: Shape, keys: usize, counter: u64, rng: &mut ChaCha8Rng) -> (&'static str, Option<Value>, Value) {
    match shape {
        Shape::Register => match rng.random_range(0..2) {
            0 => ("read", None, Value::Nil),
            _ => ("write", None, Value::Int(rng.random_range(0..5))),
        },
        Shape::CasRegister => match rng.random_range(0..3) {
            0 => ("read", None, Value::Nil),
            1 => ("write", None, Value::Int(rng.random_range(0..5))),
            _ => {
                ("cas", None, Value::Vec(vec![Value::Int(rng.random_range(0..5)), Value::Int(rng.random_range(0..5))]))
            }
        },
        Shape::Kv { .. } => {
            let key = Some(Value::Str(rng.random_range(0..keys).to_string()));
            match rng.random_range(0..3) {
                0 => ("get", key, Value::Nil),
                1 => ("put", key, Value::Str(format!("p{counter} "))),
                _ => ("append", key, Value::Str(format!("a{counter} "))),
            }
        }
    }
}

/// Applies an operation to the true state: its result, and whether it succeeded.
fn apply(state: &mut Value, f: &str, value: &Value) -> (Value, bool) {
    match f {
        "read" | "get" => (state.clone(), true),
        "write" | "put" => {
            *state = value.clone();
            (value.clone(), true)
        }
        "append" => {
            if let (Value::Str(current), Value::Str(suffix)) = (&mut *state, value) {
                current.push_str(suffix);
            }
            (value.clone(), true)
        }
        "cas" => {
            let pair = value.as_vec().expect("generated cas has a pair");
            if *state == pair[0] {
                *state = pair[1].clone();
                (value.clone(), true)
            } else {
                (value.clone(), false)
            }
        }
        _ => unreachable!("generated operations only"),
    }
}

fn event(process: u64, kind: EventType, f: &str, key: Option<Value>, value: Value) -> Event {
    Event { process: Some(process), kind, f: f.to_owned(), key, value, time_ns: None, line: 0, column: 0 }
}

/// Changes the result of one ok read (chosen by `seed`) to a value never written, so that
/// the history cannot be linearizable. Returns false when the history has no ok read.
pub fn corrupt_one_read(events: &mut [Event], seed: u64) -> bool {
    let reads: Vec<usize> = (0..events.len())
        .filter(|i| events[*i].kind == EventType::Ok && matches!(events[*i].f.as_str(), "read" | "get"))
        .collect();
    if reads.is_empty() {
        return false;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let chosen = reads[(rng.next_u64() % reads.len() as u64) as usize];
    events[chosen].value = match events[chosen].value {
        Value::Str(_) => Value::Str("never written".into()),
        _ => Value::Int(-1),
    };
    true
}

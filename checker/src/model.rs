//! Sequential specifications: the models a history is checked against.
//!
//! A [`Model`] compiles each operation of a history into a compact form once, then the
//! search calls [`Model::step`] millions of times. States are small, hashable values
//! (interned ids), so the search's memo table stays compact.

use std::fmt::Debug;
use std::hash::Hash;

use crate::history::{History, Op, Outcome};
use crate::value::Value;

/// An operation the model cannot interpret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ModelError {
    pub line: usize,
    pub message: String,
}

/// A sequential specification.
pub trait Model: Clone {
    type State: Clone + Eq + Hash + Debug;
    type Op: Clone + Debug + Eq + Hash;

    /// The model's name as the CLI spells it.
    fn name(&self) -> &'static str;

    /// Compiles one operation (never a `fail`). `Ok(None)` drops an operation that
    /// constrains nothing, such as an indeterminate read.
    fn compile(&mut self, op: &Op) -> Result<Option<Self::Op>, ModelError>;

    /// The initial state, called after every operation of the partition was compiled.
    fn init(&mut self) -> Self::State;

    /// The state after `op`, or `None` if `op` with its observed result cannot happen in
    /// `state`.
    fn step(&mut self, state: &Self::State, op: &Self::Op) -> Option<Self::State>;

    /// The key of the independent object this operation touches, if the model is
    /// P-compositional (each key's sub-history can be checked on its own).
    fn partition_key(&self, _op: &Op) -> Option<Value> {
        None
    }

    /// A readable rendering of a state.
    fn describe(&self, state: &Self::State) -> String;

    /// Bytes a state owns on the heap, for the memory budget.
    fn state_heap_bytes(&self, _state: &Self::State) -> usize {
        0
    }

    /// Bytes the model holds (interned values and caches), for the memory budget: it
    /// grows as the search meets new states.
    fn heap_bytes(&self) -> usize {
        0
    }

    /// False only if no sequence of operations from `state` reaches a state in which
    /// `op` succeeds (a read of a value the state can no longer become). The search
    /// asks it of reads that do not fit the current state, and gives up the
    /// configuration when it is false; `true` is always a correct answer.
    fn reachable(&self, _state: &Self::State, _op: &Self::Op) -> bool {
        true
    }

    /// Told by the search each time `op` is linearized (`placed`) or taken back, for
    /// models whose [`Model::reachable`] depends on which operations are still to come.
    fn note_placed(&mut self, _op: &Self::Op, _placed: bool) {}

    /// True if `op` never changes the state it succeeds in (a read). The search then
    /// takes it as soon as it can, without trying the alternatives (see `search`).
    fn read_only(&self, _op: &Self::Op) -> bool {
        false
    }
}

/// Bytes a value owns on the heap, for the memory budget (an estimate from lengths).
pub trait HeapSize {
    fn heap_size(&self) -> usize;
}

impl HeapSize for Box<str> {
    fn heap_size(&self) -> usize {
        self.len()
    }
}

impl HeapSize for Value {
    fn heap_size(&self) -> usize {
        match self {
            Value::Nil | Value::Bool(_) | Value::Int(_) => 0,
            Value::Float(s) | Value::Str(s) | Value::Keyword(s) | Value::Symbol(s) => s.capacity(),
            Value::Vec(items) => items.iter().map(|v| std::mem::size_of::<Value>() + v.heap_size()).sum(),
            Value::Map(entries) => {
                entries.iter().map(|(k, v)| 2 * std::mem::size_of::<Value>() + k.heap_size() + v.heap_size()).sum()
            }
        }
    }
}

/// Interns values as dense `u32` ids. Lookups go through a hash map that is never
/// iterated; the id order is the order of first appearance, so it is deterministic.
/// Each value is held twice (map key and id table), and counted so in [`Interner::bytes`].
#[derive(Clone, Debug)]
pub struct Interner<T: Hash + Eq + Clone + HeapSize> {
    #[allow(clippy::disallowed_types)] // Only looked up, never iterated.
    ids: rustc_hash::FxHashMap<T, u32>,
    values: Vec<T>,
    heap: usize,
}

impl<T: Hash + Eq + Clone + HeapSize> Default for Interner<T> {
    fn default() -> Self {
        Interner { ids: Default::default(), values: Vec::new(), heap: 0 }
    }
}

impl<T: Hash + Eq + Clone + HeapSize> Interner<T> {
    pub fn intern(&mut self, value: &T) -> u32 {
        if let Some(id) = self.ids.get(value) {
            return *id;
        }
        self.intern_owned(value.clone())
    }

    pub fn intern_owned(&mut self, value: T) -> u32 {
        if let Some(id) = self.ids.get(&value) {
            return *id;
        }
        let id = self.values.len() as u32;
        self.heap += 2 * value.heap_size();
        self.ids.insert(value.clone(), id);
        self.values.push(value);
        id
    }

    pub fn get(&self, id: u32) -> &T {
        &self.values[id as usize]
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Bytes held: both tables at their capacity, and what the values own.
    pub fn bytes(&self) -> usize {
        self.ids.capacity() * (std::mem::size_of::<T>() + 5)
            + self.values.capacity() * std::mem::size_of::<T>()
            + self.heap
    }
}

fn bad(op: &Op, message: String) -> ModelError {
    ModelError { line: op.invoke_line, message }
}

// ---------------------------------------------------------------- register, cas-register

/// A single register: `read`, `write` and (for cas-register) `cas [from to]`.
///
/// A `nil` result of an ok read means "no value" when the register starts as `nil`; when
/// it starts with a value, `nil` can never be read, and Knossos treats such a read as
/// unknown, so do we.
#[derive(Clone, Debug)]
pub struct RegisterModel {
    cas: bool,
    /// Every value is a `[key value]` pair (a Jepsen console log of several registers):
    /// each key is a register of its own, checked apart.
    keyed: bool,
    initial: Value,
    values: Interner<Value>,
}

/// A compiled register operation (value ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegisterOp {
    Read(Option<u32>),
    Write(u32),
    Cas(u32, u32),
}

impl RegisterModel {
    /// A read/write register.
    pub fn register(initial: Value) -> Self {
        RegisterModel { cas: false, keyed: false, initial, values: Interner::default() }
    }

    /// A read/write/compare-and-set register.
    pub fn cas_register(initial: Value) -> Self {
        RegisterModel { cas: true, keyed: false, initial, values: Interner::default() }
    }

    /// Read/write registers, one per key, for histories whose values are all `[key
    /// value]` pairs ([`keyed_values`]).
    pub fn keyed_registers(initial: Value) -> Self {
        RegisterModel { cas: false, keyed: true, initial, values: Interner::default() }
    }

    /// The register value inside a keyed pair (nil when the pair has none).
    fn inner(&self, value: &Value) -> Value {
        match value.as_vec() {
            Some([_, inner]) if self.keyed => inner.clone(),
            _ => value.clone(),
        }
    }
}

/// Whether a register history's values are all `[key value]` pairs (reads invoked with
/// `[key nil]` or nil, ok reads returning a pair or nil), with at least one write: a log
/// of several registers, which must be checked per key (one register would see every
/// pair as a different value and judge a linearizable log wrong).
pub fn keyed_values(history: &History) -> bool {
    let pair = |v: &Value| v.as_vec().is_some_and(|items| items.len() == 2);
    let mut writes = 0;
    for op in &history.ops {
        match op.f.as_str() {
            "write" => {
                if !pair(&op.value) {
                    return false;
                }
                writes += 1;
            }
            "read" => {
                let result_ok = op.outcome != Outcome::Ok || op.result.is_nil() || pair(&op.result);
                if !(op.value.is_nil() || pair(&op.value)) || !result_ok {
                    return false;
                }
            }
            _ => return false,
        }
    }
    writes > 0
}

impl Model for RegisterModel {
    type State = u32;
    type Op = RegisterOp;

    fn name(&self) -> &'static str {
        match (self.cas, self.keyed) {
            (true, _) => "cas-register",
            (false, true) => "register per key",
            (false, false) => "register",
        }
    }

    fn partition_key(&self, op: &Op) -> Option<Value> {
        if !self.keyed {
            return None;
        }
        [&op.value, &op.result].into_iter().find_map(|v| v.as_vec().filter(|p| p.len() == 2).map(|p| p[0].clone()))
    }

    fn compile(&mut self, op: &Op) -> Result<Option<RegisterOp>, ModelError> {
        match op.f.as_str() {
            "read" => {
                if op.outcome != Outcome::Ok {
                    return Ok(None);
                }
                let result = self.inner(&op.result);
                if result.is_nil() && !self.initial.is_nil() {
                    return Ok(Some(RegisterOp::Read(None)));
                }
                Ok(Some(RegisterOp::Read(Some(self.values.intern(&result)))))
            }
            "write" => {
                let value = self.inner(&op.value);
                Ok(Some(RegisterOp::Write(self.values.intern(&value))))
            }
            "cas" if self.cas => {
                let pair = op
                    .value
                    .as_vec()
                    .filter(|items| items.len() == 2)
                    .ok_or_else(|| bad(op, format!("a :cas needs a [from to] value, found {}", op.value)))?;
                Ok(Some(RegisterOp::Cas(self.values.intern(&pair[0]), self.values.intern(&pair[1]))))
            }
            other => Err(bad(op, format!("the {} model has no operation :{other}", self.name()))),
        }
    }

    fn init(&mut self) -> u32 {
        self.values.intern(&self.initial.clone())
    }

    fn step(&mut self, state: &u32, op: &RegisterOp) -> Option<u32> {
        match *op {
            RegisterOp::Read(None) => Some(*state),
            RegisterOp::Read(Some(value)) => (value == *state).then_some(*state),
            RegisterOp::Write(value) => Some(value),
            RegisterOp::Cas(from, to) => (from == *state).then_some(to),
        }
    }

    fn describe(&self, state: &u32) -> String {
        self.values.get(*state).to_string()
    }

    fn heap_bytes(&self) -> usize {
        self.values.bytes()
    }

    fn read_only(&self, op: &RegisterOp) -> bool {
        matches!(op, RegisterOp::Read(_))
    }
}

// ---------------------------------------------------------------- kv

/// A map of string registers: `get`, `put`, `append` and `cas [from to]` per key, every
/// key starting as "".
/// P-compositional: each key is checked on its own unless splitting is turned off.
///
/// Appends make new strings, and concurrent appenders make many (every order of every
/// subset). Only strings that some read (a get's value or a cas's `from`) of the key
/// starts with are kept: a value no read starts with can never be read again until a
/// put or cas replaces it, whatever is appended, so all such values behave alike and
/// are one state, [`UNREAD`]. That keeps both the interned strings and the search's
/// states to the prefixes of what clients saw.
#[derive(Clone, Debug, Default)]
pub struct KvModel {
    keys: Interner<Value>,
    strings: Interner<Box<str>>,
    /// Per key id: the string ids its reads saw, sorted by content (built by `init`).
    reads: Vec<Vec<u32>>,
    /// (current, suffix) -> the state after appending; (UNREAD, value) -> the state a put
    /// or cas of `value` leaves. Only looked up, never iterated.
    #[allow(clippy::disallowed_types)]
    joined: rustc_hash::FxHashMap<(u32, u32, u32), u32>,
    /// Per key id: the values a put or cas may still set it to, with how many such
    /// operations are not linearized yet. Between them a key only grows by appends.
    resets: Vec<Vec<(u32, u32)>>,
    /// Bytes of `reads` and `resets`, fixed once `init` has run.
    fixed_bytes: usize,
}

/// The state of a key holding a value that no read of it starts with.
pub const UNREAD: u32 = u32::MAX;

/// Above this many distinct values set by puts and cas on one key, reads are not pruned.
const RESETS_MAX: usize = 64;

/// A kv state: each key's string id (or [`UNREAD`]), by key id. A partition has one key,
/// kept inline.
pub type KvState = smallvec::SmallVec<[u32; 2]>;

/// A compiled kv operation: key id and string id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KvOp {
    Get { key: u32, value: u32 },
    Put { key: u32, value: u32 },
    Append { key: u32, suffix: u32 },
    Cas { key: u32, from: u32, to: u32 },
}

fn text_of(value: &Value) -> String {
    match value {
        Value::Nil => String::new(),
        Value::Str(s) => s.clone(),
        other => other.to_string(),
    }
}

impl KvModel {
    fn string(&mut self, value: &Value) -> u32 {
        self.strings.intern_owned(text_of(value).into())
    }

    /// Whether some read of `key` saw a value starting with `text`.
    fn read_starts_with(&self, key: u32, text: &str) -> bool {
        let reads = &self.reads[key as usize];
        let first = reads.partition_point(|id| &**self.strings.get(*id) < text);
        reads.get(first).is_some_and(|id| self.strings.get(*id).starts_with(text))
    }

    /// The state `key` is in holding `text`: its id if a read starts with it, else UNREAD.
    fn state_of(&mut self, key: u32, text: String) -> u32 {
        if self.read_starts_with(key, &text) { self.strings.intern_owned(text.into_boxed_str()) } else { UNREAD }
    }

    /// The state a put or cas of string `value` leaves `key` in.
    fn replaced(&mut self, key: u32, value: u32) -> u32 {
        if let Some(state) = self.joined.get(&(key, UNREAD, value)) {
            return *state;
        }
        let state = self.state_of(key, self.strings.get(value).to_string());
        self.joined.insert((key, UNREAD, value), state);
        state
    }

    /// The state after appending string `suffix` to `key` in state `current`.
    fn appended(&mut self, key: u32, current: u32, suffix: u32) -> u32 {
        if current == UNREAD {
            return UNREAD;
        }
        if let Some(state) = self.joined.get(&(key, current, suffix)) {
            return *state;
        }
        let text = format!("{}{}", self.strings.get(current), self.strings.get(suffix));
        let state = self.state_of(key, text);
        self.joined.insert((key, current, suffix), state);
        state
    }
}

impl Model for KvModel {
    type State = KvState;
    type Op = KvOp;

    fn name(&self) -> &'static str {
        "kv"
    }

    fn compile(&mut self, op: &Op) -> Result<Option<KvOp>, ModelError> {
        let Some(key) = &op.key else {
            return Err(bad(op, format!("a kv :{} needs a :key", op.f)));
        };
        if self.strings.is_empty() {
            self.strings.intern_owned(Box::from(""));
        }
        let key = self.keys.intern(key);
        if self.resets.len() <= key as usize {
            self.resets.push(Vec::new());
            self.reads.push(Vec::new());
        }
        let compiled = match op.f.as_str() {
            "get" | "read" => {
                if op.outcome != Outcome::Ok {
                    return Ok(None);
                }
                let value = self.string(&op.result);
                self.reads[key as usize].push(value);
                KvOp::Get { key, value }
            }
            "put" | "write" => KvOp::Put { key, value: self.string(&op.value) },
            "append" => KvOp::Append { key, suffix: self.string(&op.value) },
            "cas" => {
                let pair = op
                    .value
                    .as_vec()
                    .filter(|items| items.len() == 2)
                    .ok_or_else(|| bad(op, format!("a kv :cas needs a [from to] value, found {}", op.value)))?;
                let (from, to) = (self.string(&pair[0]), self.string(&pair[1]));
                self.reads[key as usize].push(from);
                KvOp::Cas { key, from, to }
            }
            other => return Err(bad(op, format!("the kv model has no operation :{other}"))),
        };
        if let KvOp::Put { key, value: to } | KvOp::Cas { key, to, .. } = compiled {
            let resets = &mut self.resets[key as usize];
            match resets.iter_mut().find(|(value, _)| *value == to) {
                Some((_, count)) => *count += 1,
                None => resets.push((to, 1)),
            }
        }
        Ok(Some(compiled))
    }

    fn init(&mut self) -> KvState {
        if self.strings.is_empty() {
            self.strings.intern_owned(Box::from(""));
        }
        let strings = &self.strings;
        for reads in &mut self.reads {
            reads.sort_unstable_by(|a, b| strings.get(*a).cmp(strings.get(*b)));
            reads.dedup();
        }
        self.fixed_bytes = self.reads.iter().map(|r| r.capacity() * 4 + 24).sum::<usize>()
            + self.resets.iter().map(|r| r.capacity() * 8 + 24).sum::<usize>();
        (0..self.keys.len() as u32).map(|key| self.state_of(key, String::new())).collect()
    }

    fn step(&mut self, state: &KvState, op: &KvOp) -> Option<KvState> {
        let (key, next) = match *op {
            KvOp::Get { key, value } => return (state[key as usize] == value).then(|| state.clone()),
            KvOp::Cas { key, from, to } => {
                if state[key as usize] != from {
                    return None;
                }
                (key, self.replaced(key, to))
            }
            KvOp::Put { key, value } => (key, self.replaced(key, value)),
            KvOp::Append { key, suffix } => (key, self.appended(key, state[key as usize], suffix)),
        };
        let mut state = state.clone();
        state[key as usize] = next;
        Some(state)
    }

    fn partition_key(&self, op: &Op) -> Option<Value> {
        op.key.clone()
    }

    fn describe(&self, state: &KvState) -> String {
        let entries: Vec<String> = state
            .iter()
            .enumerate()
            .map(|(key, value)| match *value {
                UNREAD => format!("{} (a value no read saw)", self.keys.get(key as u32)),
                value => format!("{} {:?}", self.keys.get(key as u32), self.strings.get(value)),
            })
            .collect();
        format!("{{{}}}", entries.join(", "))
    }

    fn state_heap_bytes(&self, state: &KvState) -> usize {
        if state.spilled() { state.len() * 4 } else { 0 }
    }

    fn heap_bytes(&self) -> usize {
        self.keys.bytes() + self.strings.bytes() + self.joined.capacity() * 17 + self.fixed_bytes
    }

    fn read_only(&self, op: &KvOp) -> bool {
        matches!(op, KvOp::Get { .. })
    }

    /// Between puts a key only grows by appends: a value is reachable if it starts with
    /// the current one, or with what a put or cas not linearized yet would set.
    fn reachable(&self, state: &KvState, op: &KvOp) -> bool {
        let (key, wanted) = match *op {
            KvOp::Get { key, value } => (key, value),
            KvOp::Cas { key, from, .. } => (key, from),
            KvOp::Put { .. } | KvOp::Append { .. } => return true,
        };
        let resets = &self.resets[key as usize];
        let wanted = self.strings.get(wanted);
        let current = state[key as usize];
        resets.len() > RESETS_MAX
            || (current != UNREAD && wanted.starts_with(&**self.strings.get(current)))
            || resets.iter().any(|(value, left)| *left > 0 && wanted.starts_with(&**self.strings.get(*value)))
    }

    fn note_placed(&mut self, op: &KvOp, placed: bool) {
        if let KvOp::Put { key, value: to } | KvOp::Cas { key, to, .. } = *op
            && let Some((_, left)) = self.resets[key as usize].iter_mut().find(|(value, _)| *value == to)
        {
            if placed { *left -= 1 } else { *left += 1 }
        }
    }
}

// ---------------------------------------------------------------- multi-register

/// Named registers read and written by atomic transactions:
/// `:txn [[:read k v] [:write k v] ...]`, applied in order.
#[derive(Clone, Debug)]
pub struct MultiRegisterModel {
    initial: Vec<(Value, Value)>,
    keys: Interner<Value>,
    values: Interner<Value>,
}

/// One step of a compiled transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Micro {
    Read { key: u32, value: Option<u32> },
    Write { key: u32, value: u32 },
}

impl MultiRegisterModel {
    /// Registers start with the values in `initial` (a map), `nil` otherwise.
    pub fn new(initial: &Value) -> Self {
        let initial = match initial {
            Value::Map(entries) => entries.clone(),
            _ => Vec::new(),
        };
        MultiRegisterModel { initial, keys: Interner::default(), values: Interner::default() }
    }

    fn initial_of(&self, key: &Value) -> Value {
        let name = key.as_name();
        self.initial
            .iter()
            .find(|(k, _)| k == key || (name.is_some() && k.as_name() == name))
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Nil)
    }
}

impl Model for MultiRegisterModel {
    type State = Box<[u32]>;
    type Op = Box<[Micro]>;

    fn name(&self) -> &'static str {
        "multi-register"
    }

    fn compile(&mut self, op: &Op) -> Result<Option<Box<[Micro]>>, ModelError> {
        if op.f != "txn" {
            return Err(bad(op, format!("the multi-register model has no operation :{}", op.f)));
        }
        let source = if op.outcome == Outcome::Ok { &op.result } else { &op.value };
        let items =
            source.as_vec().ok_or_else(|| bad(op, format!("a :txn needs a vector of micro-ops, found {source}")))?;
        let mut micros = Vec::with_capacity(items.len());
        for item in items {
            let parts =
                item.as_vec().filter(|p| p.len() == 3).ok_or_else(|| bad(op, format!("bad micro-op {item}")))?;
            let key = self.keys.intern(&parts[1]);
            match parts[0].as_name() {
                Some("read" | "r") => {
                    // A nil read is unknown unless the register starts as nil (see RegisterModel).
                    let nil_is_unknown = parts[2].is_nil() && !self.initial_of(&parts[1]).is_nil();
                    let known = op.outcome == Outcome::Ok && !nil_is_unknown;
                    let value = known.then(|| self.values.intern(&parts[2]));
                    micros.push(Micro::Read { key, value });
                }
                Some("write" | "w") => micros.push(Micro::Write { key, value: self.values.intern(&parts[2]) }),
                _ => return Err(bad(op, format!("bad micro-op {item}, expected :read or :write"))),
            }
        }
        Ok(Some(micros.into_boxed_slice()))
    }

    fn init(&mut self) -> Box<[u32]> {
        (0..self.keys.len() as u32)
            .map(|key| {
                let initial = self.initial_of(&self.keys.get(key).clone());
                self.values.intern(&initial)
            })
            .collect()
    }

    fn step(&mut self, state: &Box<[u32]>, op: &Box<[Micro]>) -> Option<Box<[u32]>> {
        let mut next = state.clone();
        for micro in op.iter() {
            match *micro {
                Micro::Read { key, value: Some(value) } if next[key as usize] != value => return None,
                Micro::Read { .. } => {}
                Micro::Write { key, value } => next[key as usize] = value,
            }
        }
        Some(next)
    }

    fn describe(&self, state: &Box<[u32]>) -> String {
        let entries: Vec<String> = state
            .iter()
            .enumerate()
            .map(|(key, value)| format!("{} {}", self.keys.get(key as u32), self.values.get(*value)))
            .collect();
        format!("{{{}}}", entries.join(", "))
    }

    fn state_heap_bytes(&self, state: &Box<[u32]>) -> usize {
        state.len() * 4
    }

    fn heap_bytes(&self) -> usize {
        self.keys.bytes() + self.values.bytes()
    }

    fn read_only(&self, op: &Box<[Micro]>) -> bool {
        op.iter().all(|micro| matches!(micro, Micro::Read { .. }))
    }
}

// ---------------------------------------------------------------- mutex

/// A lock: `acquire` succeeds only when free, `release` only when held.
#[derive(Clone, Debug, Default)]
pub struct MutexModel;

/// A compiled mutex operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MutexOp {
    Acquire,
    Release,
}

impl Model for MutexModel {
    type State = bool;
    type Op = MutexOp;

    fn name(&self) -> &'static str {
        "mutex"
    }

    fn compile(&mut self, op: &Op) -> Result<Option<MutexOp>, ModelError> {
        match op.f.as_str() {
            "acquire" | "lock" => Ok(Some(MutexOp::Acquire)),
            "release" | "unlock" => Ok(Some(MutexOp::Release)),
            other => Err(bad(op, format!("the mutex model has no operation :{other}"))),
        }
    }

    fn init(&mut self) -> bool {
        false
    }

    fn step(&mut self, held: &bool, op: &MutexOp) -> Option<bool> {
        match op {
            MutexOp::Acquire => (!held).then_some(true),
            MutexOp::Release => held.then_some(false),
        }
    }

    fn describe(&self, held: &bool) -> String {
        if *held { "held".into() } else { "free".into() }
    }
}

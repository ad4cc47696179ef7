//! Checking a history against a model: partitioning, searching, explaining.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::history::{History, Op, Outcome};
use crate::model::{KvModel, Model, ModelError, MultiRegisterModel, MutexModel, RegisterModel};
use crate::search::{self, Budget, Exhausted, SearchOp, Stats};
use crate::value::Value;

/// The models the checker knows by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    Register,
    CasRegister,
    Kv,
    MultiRegister,
    Mutex,
}

impl ModelKind {
    pub const ALL: [ModelKind; 5] =
        [ModelKind::Register, ModelKind::CasRegister, ModelKind::Kv, ModelKind::MultiRegister, ModelKind::Mutex];

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Register => "register",
            ModelKind::CasRegister => "cas-register",
            ModelKind::Kv => "kv",
            ModelKind::MultiRegister => "multi-register",
            ModelKind::Mutex => "mutex",
        }
    }

    pub fn parse(name: &str) -> Option<ModelKind> {
        ModelKind::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// The model a history's operations suggest: transactions, locks, keyed operations,
    /// compare-and-set, else a plain register.
    pub fn infer(history: &History) -> ModelKind {
        let has = |names: &[&str]| history.ops.iter().any(|op| names.contains(&op.f.as_str()));
        if has(&["txn"]) {
            ModelKind::MultiRegister
        } else if has(&["acquire", "release", "lock", "unlock"]) {
            ModelKind::Mutex
        } else if has(&["get", "put", "append"]) || history.ops.iter().any(|op| op.key.is_some()) {
            ModelKind::Kv
        } else if has(&["cas"]) {
            ModelKind::CasRegister
        } else {
            ModelKind::Register
        }
    }
}

/// How to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckOptions {
    pub budget: Budget,
    /// Check each key on its own where the model allows (P-compositionality).
    pub split: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions { budget: Budget::default(), split: true }
    }
}

/// The verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Violation,
    Unknown,
}

/// An operation as an explanation names it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OpSummary {
    /// Input index of the entry where the operation had to be visible (its completion).
    pub index: usize,
    pub invoke_index: usize,
    pub complete_index: Option<usize>,
    pub line: usize,
    pub process: u64,
    pub f: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub value: String,
    pub result: String,
    pub outcome: Outcome,
}

impl OpSummary {
    pub fn of(op: &Op) -> OpSummary {
        OpSummary {
            index: op.index(),
            invoke_index: op.invoke_index,
            complete_index: op.complete_index,
            line: op.complete_line.unwrap_or(op.invoke_line),
            process: op.process,
            f: op.f.clone(),
            key: op.key.as_ref().map(Value::to_string),
            value: op.value.to_string(),
            result: op.result.to_string(),
            outcome: op.outcome,
        }
    }
}

impl std::fmt::Display for OpSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{} (line {}) process {} :{}", self.index, self.line, self.process, self.f)?;
        if let Some(key) = &self.key {
            write!(f, " key {key}")?;
        }
        let outcome = serde_json::to_value(self.outcome).ok().and_then(|v| v.as_str().map(str::to_owned));
        write!(f, " {} -> :{} {}", self.value, outcome.unwrap_or_default(), self.result)
    }
}

/// Why a history is not linearizable.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Explanation {
    /// The key of the sub-history that failed, when the history was split.
    pub partition: Option<String>,
    /// The first operation that cannot be linearized.
    pub op: OpSummary,
    /// The longest linearizable prefix found, in linearization order.
    pub prefix: Vec<OpSummary>,
    /// Model states reachable at that point, just before `op` had to take effect.
    pub states: Vec<String>,
}

impl Report {
    /// A passing report that has checked nothing yet.
    fn passing(model: &'static str, ops: usize, partitions: usize, algorithm: &'static str) -> Report {
        Report {
            verdict: Verdict::Pass,
            model,
            ops,
            ops_checked: 0,
            partitions,
            steps: 0,
            cache_entries_max: 0,
            cache_bytes_max: 0,
            memory_bytes_max: 0,
            unknown_reason: None,
            explanation: None,
            algorithm,
        }
    }
}

impl Verdict {
    /// The verdict in words, as the terminal shows it.
    pub fn describe(self) -> &'static str {
        match self {
            Verdict::Pass => "linearizable",
            Verdict::Violation => "NOT linearizable",
            Verdict::Unknown => "unknown",
        }
    }
}

/// A check's result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub verdict: Verdict,
    pub model: &'static str,
    /// Operations in the history (including failed ones).
    pub ops: usize,
    /// Operations the search had to place (failed ops and indeterminate reads dropped).
    pub ops_checked: usize,
    pub partitions: usize,
    pub steps: u64,
    /// The largest memo table of any partition.
    pub cache_entries_max: usize,
    pub cache_bytes_max: usize,
    /// The most the check held at once while searching, as the memory budget counts it
    /// (memo tables, stacks, lists and interned values of every partition alive).
    pub memory_bytes_max: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explanation>,
    /// What decided the verdict: `search` (Wing-Gong-Lowe), or `unique-writes (zones)`
    /// for a register whose writes carry unique values ([`crate::zones`]).
    pub algorithm: &'static str,
}

/// Checks `history` against the model `kind`, starting from `initial` where the model
/// takes one (`nil` when `None`; a map for multi-register).
pub fn check(
    kind: ModelKind,
    initial: Option<&Value>,
    history: &History,
    options: &CheckOptions,
) -> Result<Report, ModelError> {
    let initial = initial.cloned().unwrap_or(Value::Nil);
    match kind {
        ModelKind::Register => check_register(initial, history, options),
        ModelKind::CasRegister => check_model(RegisterModel::cas_register(initial), history, options),
        ModelKind::Kv => check_model(KvModel::default(), history, options),
        ModelKind::MultiRegister => check_model(MultiRegisterModel::new(&initial), history, options),
        ModelKind::Mutex => check_model(MutexModel, history, options),
    }
}

/// A read/write register: decided by the zones in O(n log n) when every written value is
/// unique ([`crate::zones`]); otherwise, and to explain a violation the zones found, by
/// the search. When the search cannot finish within the budget, the zones' violation
/// stands, with their reason as the explanation.
fn check_register(initial: Value, history: &History, options: &CheckOptions) -> Result<Report, ModelError> {
    if crate::model::keyed_values(history) {
        // A log of several registers (`[key value]` pairs): one register per key.
        return check_model(RegisterModel::keyed_registers(initial), history, options);
    }
    let all: Vec<usize> = (0..history.ops.len()).collect();
    let decided = crate::zones::decide(history, &all, &initial);
    if decided == Some(crate::zones::ZoneVerdict::Linearizable) {
        // What the search would have placed (the zones saw only reads and writes): the
        // writes that did not fail and the reads that returned; counted, not compiled
        // again (interning every value would cost what the zones saved).
        let checked = history
            .ops
            .iter()
            .filter(|op| match op.f.as_str() {
                "write" => op.outcome != Outcome::Fail,
                _ => op.outcome == Outcome::Ok,
            })
            .count();
        return Ok(Report { ops_checked: checked, ..Report::passing("register", history.ops.len(), 1, ZONES) });
    }
    let mut report = check_model(RegisterModel::register(initial), history, options)?;
    if let Some(crate::zones::ZoneVerdict::Violation { op, reason }) = decided {
        if report.verdict == Verdict::Unknown {
            report.verdict = Verdict::Violation;
            report.unknown_reason = None;
            report.algorithm = ZONES;
            report.explanation = Some(Explanation {
                partition: None,
                op: OpSummary::of(&history.ops[op]),
                prefix: Vec::new(),
                states: vec![reason],
            });
        }
        debug_assert!(report.verdict == Verdict::Violation, "the zones and the search agree");
    }
    Ok(report)
}

const ZONES: &str = "unique-writes (zones)";

/// The longest step slice partitions are interleaved with; after it, each runs to its end.
const INTERLEAVE_SLICE_MAX: u64 = 16_384;

/// Checks `history` against any model.
pub fn check_model<M: Model>(model: M, history: &History, options: &CheckOptions) -> Result<Report, ModelError> {
    let partitions = partition(&model, history, options.split);
    let mut report = Report::passing(model.name(), history.ops.len(), partitions.len(), "search");
    let mut steps_left = options.budget.steps_max;
    let mut exhausted: Option<Exhausted> = None;
    // Every partition compiled first, then searched in rounds of doubling step slices
    // (then to the end), in key order within a round: the first partition refuted ends
    // the check. Which one
    // that is depends on the input alone, so the answer is deterministic; a history whose
    // cheapest refutation is in its last partition costs little more than that one.
    let mut models = Vec::with_capacity(partitions.len());
    let mut compiled = Vec::with_capacity(partitions.len());
    for (_, members) in &partitions {
        let mut model = model.clone();
        let (ops, origin) = compile(&mut model, history, members)?;
        report.ops_checked += ops.len();
        models.push(model);
        compiled.push((ops, origin));
    }
    let mut searches: Vec<Option<search::Search<'_, M>>> =
        compiled.iter().zip(models.iter_mut()).map(|((ops, _), model)| Some(search::Search::new(model, ops))).collect();
    // What each partition holds (its search and model), as of its last slice; a
    // partition may grow into what the others leave of the budget.
    let memory_max = options.budget.memory_bytes_max;
    let mut held: Vec<usize> = (0..searches.len()).map(|i| held_by(&searches[i], &models[i])).collect();
    let mut held_total: usize = held.iter().sum();
    report.memory_bytes_max = held_total;
    let mut slice: u64 = 1_024;
    'rounds: while searches.iter().any(Option::is_some) {
        'partitions: for index in 0..searches.len() {
            if searches[index].is_none() {
                continue;
            }
            let outcome = loop {
                let search = searches[index].as_mut().expect("checked above");
                let room = memory_max.saturating_sub(held_total - held[index]);
                let run = search.run(&mut models[index], slice, &mut steps_left, room, options.budget.steps_max);
                report.memory_bytes_max = report.memory_bytes_max.max(held_total - held[index] + search.slice_peak());
                let now = held_by(&searches[index], &models[index]);
                held_total = held_total - held[index] + now;
                held[index] = now;
                report.memory_bytes_max = report.memory_bytes_max.max(held_total);
                match run {
                    search::Run::Slice => continue 'partitions,
                    search::Run::Done(outcome) => break outcome,
                    search::Run::Memory => {}
                }
                // Make room by giving up the progress of the other partitions that have
                // started: they start again from scratch when their turn comes, and this
                // one goes on at once. Only when none is left is its answer unknown.
                let started: Vec<usize> = (0..searches.len())
                    .filter(|j| *j != index && searches[*j].as_ref().is_some_and(|s| s.stats().steps > 0))
                    .collect();
                if started.is_empty() {
                    break search::Outcome::Unknown(Exhausted::Memory { limit_bytes: memory_max });
                }
                for j in started {
                    note_stats(&mut report, &searches[j].as_ref().expect("started").stats());
                    let mut fresh = model.clone();
                    compile(&mut fresh, history, &partitions[j].1)?;
                    models[j] = fresh;
                    searches[j] = Some(search::Search::new(&mut models[j], &compiled[j].0));
                    let now = held_by(&searches[j], &models[j]);
                    held_total = held_total - held[j] + now;
                    held[j] = now;
                }
            };
            let search = searches[index].as_ref().expect("ran just above");
            note_stats(&mut report, &search.stats());
            // A finished partition's memory is given back at once: its search, and what
            // its model interned (the kv model's states), unless an explanation needs it.
            searches[index] = None;
            if !matches!(outcome, search::Outcome::NotLinearizable(_)) {
                models[index] = model.clone();
            }
            held_total -= held[index];
            held[index] = 0;
            match outcome {
                search::Outcome::Linearizable => {}
                search::Outcome::Unknown(reason) => {
                    exhausted.get_or_insert(reason);
                    if matches!(reason, Exhausted::Steps { .. }) {
                        break 'rounds;
                    }
                }
                search::Outcome::NotLinearizable(stuck) => {
                    let (key, origin) = (&partitions[index].0, &compiled[index].1);
                    report.explanation = Some(Explanation {
                        partition: key.as_ref().map(Value::to_string),
                        op: OpSummary::of(&history.ops[origin[stuck.op]]),
                        prefix: stuck.prefix.iter().map(|i| OpSummary::of(&history.ops[origin[*i]])).collect(),
                        states: stuck.states.iter().map(|s| models[index].describe(s)).collect(),
                    });
                    report.verdict = Verdict::Violation;
                    break 'rounds;
                }
            }
        }
        // Interleaving keeps every unfinished partition's memo alive; after slices of
        // 16,384 steps the rest run one at a time, to the end, in key order.
        slice = if slice >= INTERLEAVE_SLICE_MAX { u64::MAX } else { slice * 2 };
    }
    for search in searches.iter().flatten() {
        note_stats(&mut report, &search.stats());
    }
    if report.verdict == Verdict::Pass
        && let Some(reason) = exhausted
    {
        report.verdict = Verdict::Unknown;
        report.unknown_reason = Some(reason.to_string());
    }
    Ok(report)
}

/// Bytes a partition holds: its search, if running, and its model.
fn held_by<M: Model>(search: &Option<search::Search<'_, M>>, model: &M) -> usize {
    search.as_ref().map_or(0, search::Search::bytes) + model.heap_bytes()
}

fn note_stats(report: &mut Report, stats: &Stats) {
    report.steps += stats.steps;
    report.cache_entries_max = report.cache_entries_max.max(stats.cache_entries);
    report.cache_bytes_max = report.cache_bytes_max.max(stats.cache_bytes);
}

type Partitions = Vec<(Option<Value>, Vec<usize>)>;

/// Groups the operations that did not fail by key, when the model and options allow.
fn partition<M: Model>(model: &M, history: &History, split: bool) -> Partitions {
    let live: Vec<usize> = (0..history.ops.len()).filter(|i| history.ops[*i].outcome != Outcome::Fail).collect();
    if split {
        let keys: Option<Vec<Value>> = live.iter().map(|i| model.partition_key(&history.ops[*i])).collect();
        if let Some(keys) = keys {
            let mut groups: BTreeMap<Value, Vec<usize>> = BTreeMap::new();
            for (index, key) in live.iter().zip(keys) {
                groups.entry(key).or_default().push(*index);
            }
            return groups.into_iter().map(|(key, members)| (Some(key), members)).collect();
        }
    }
    vec![(None, live)]
}

/// Compiles a partition's operations; returns them with each one's index in the history.
/// A partition's compiled operations, and each one's index in the history.
type Compiled<O> = (Vec<SearchOp<O>>, Vec<usize>);

fn compile<M: Model>(model: &mut M, history: &History, members: &[usize]) -> Result<Compiled<M::Op>, ModelError> {
    let mut ops = Vec::with_capacity(members.len());
    let mut origin = Vec::with_capacity(members.len());
    for index in members {
        let op = &history.ops[*index];
        if let Some(compiled) = model.compile(op)? {
            let ret = if op.outcome == Outcome::Ok { op.complete_index } else { None };
            ops.push(SearchOp { op: compiled, call: op.invoke_index, ret });
            origin.push(*index);
        }
    }
    Ok((ops, origin))
}

/// The report as text for a terminal.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    let verdict = report.verdict.describe();
    out.push_str(&format!(
        "{verdict}: {} ops ({} checked) against {}, {} partition(s), {} search steps\n",
        report.ops, report.ops_checked, report.model, report.partitions, report.steps
    ));
    if report.algorithm != "search" {
        out.push_str(&format!("decided by: {}\n", report.algorithm));
    }
    if let Some(reason) = &report.unknown_reason {
        out.push_str(&format!("gave up: {reason}\n"));
    }
    if let Some(e) = &report.explanation {
        if let Some(key) = &e.partition {
            out.push_str(&format!("in the sub-history of key {key}:\n"));
        }
        out.push_str(&format!("first operation that cannot be linearized:\n  {}\n", e.op));
        out.push_str(&format!("longest linearizable prefix found: {} ops", e.prefix.len()));
        let shown = e.prefix.len().min(10);
        if shown < e.prefix.len() {
            out.push_str(&format!(", the last {shown}"));
        }
        out.push_str(":\n");
        for op in &e.prefix[e.prefix.len() - shown..] {
            out.push_str(&format!("  {op}\n"));
        }
        out.push_str("model states reachable there:\n");
        for state in &e.states {
            out.push_str(&format!("  {state}\n"));
        }
    }
    out
}

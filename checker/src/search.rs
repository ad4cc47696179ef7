//! The Wing–Gong–Lowe linearizability search.
//!
//! Operations become call and return entries in a doubly linked list, in input order.
//! The search walks the list from the front: a call entry may be linearized now if the
//! model accepts it in the current state; linearizing it lifts its call and return out of
//! the list and restarts from the front. Reaching a return entry means its operation
//! should have been linearized already: backtrack to the last choice and try the next
//! call instead. Lowe's memoization skips every configuration (set of linearized
//! operations, model state) seen before, or dominated by one seen before (see [`Memo`]),
//! which makes the search polynomial in practice.
//!
//! Indeterminate operations have a call and no return: they may be linearized at any
//! point after their invocation, or never, and the search succeeds once every return is
//! passed. They are kept apart from the list, grouped into classes of identical
//! operations (two indeterminate writes of the same value are interchangeable), and a
//! class's members are only ever linearized in invocation order: swapping two identical
//! operations without returns keeps a linearization valid, so this loses nothing and
//! turns 2^k subsets into k+1 counts. They are tried after the determinate candidates.
//!
//! Reads are taken greedily: an operation that never changes the state (a read), invoked
//! before every return still in the list and consistent with the current state, can be
//! linearized first in any linearization from this configuration — every operation that
//! must precede it is linearized already, and moving it earlier changes no other
//! operation's state. So it is linearized at once, and if that fails the configuration
//! has failed: its other alternatives are not tried. Histories that are mostly reads
//! among many concurrent clients shrink the most.
//!
//! The budget is counted in search steps and memo bytes, never in wall-clock time, so the
//! verdict of a check is a function of its input alone.

use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use crate::model::Model;

/// Limits on one check's work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Budget {
    /// Search steps (entries visited) over all partitions.
    pub steps_max: u64,
    /// Bytes the whole check may hold while searching: every partition's memo table,
    /// stack and bookkeeping, and what its model interned (see `check`).
    pub memory_bytes_max: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { steps_max: 200_000_000, memory_bytes_max: 40 << 20 }
    }
}

/// Why a search gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "budget", rename_all = "snake_case")]
pub enum Exhausted {
    Steps { limit: u64 },
    Memory { limit_bytes: usize },
}

impl std::fmt::Display for Exhausted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exhausted::Steps { limit } => write!(f, "the search budget of {limit} steps was spent"),
            Exhausted::Memory { limit_bytes } => {
                write!(
                    f,
                    "the search's memory (memo, states, interned values) reached its limit of {} MiB",
                    limit_bytes >> 20
                )
            }
        }
    }
}

/// One operation as the search sees it.
#[derive(Clone, Debug)]
pub struct SearchOp<O> {
    pub op: O,
    /// Input position of the invocation.
    pub call: usize,
    /// Input position of the completion; `None` for an indeterminate operation.
    pub ret: Option<usize>,
}

/// Where the search got furthest before failing.
#[derive(Clone, Debug)]
pub struct Stuck<S> {
    /// The operation whose return no linearization could pass.
    pub op: usize,
    /// The linearization that got there (operation indices in order).
    pub prefix: Vec<usize>,
    /// Distinct model states in which the search stood there (at most [`STATES_MAX`]).
    pub states: Vec<S>,
}

/// How many distinct states an explanation keeps.
pub const STATES_MAX: usize = 8;

/// A search's answer.
#[derive(Clone, Debug)]
pub enum Outcome<S> {
    Linearizable,
    NotLinearizable(Stuck<S>),
    Unknown(Exhausted),
}

/// Work done by one search.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    pub steps: u64,
    pub cache_entries: usize,
    pub cache_bytes: usize,
}

/// How a slice of search ended.
#[derive(Clone, Debug)]
pub enum Run<S> {
    /// The search is over.
    Done(Outcome<S>),
    /// The slice of steps ran out; the search can go on.
    Slice,
    /// The search and its model hold more than they were allowed; it can go on if given
    /// more room.
    Memory,
}

const HEAD: usize = 0;
const TAIL: usize = 1;
const NONE: u32 = u32::MAX;

/// The determinate operations' call and return entries, as a doubly linked list.
struct List {
    next: Vec<u32>,
    prev: Vec<u32>,
    /// For each entry: its operation, its input position, and whether it is a call.
    op: Vec<u32>,
    pos: Vec<usize>,
    is_call: Vec<bool>,
    /// For a call entry: its return entry.
    partner: Vec<u32>,
}

impl List {
    fn build<O>(ops: &[SearchOp<O>]) -> List {
        let mut events: Vec<(usize, bool, u32)> = Vec::with_capacity(ops.len() * 2);
        for (index, op) in ops.iter().enumerate() {
            if let Some(ret) = op.ret {
                events.push((op.call, true, index as u32));
                events.push((ret, false, index as u32));
            }
        }
        // Input positions are distinct; at a tie (only possible with synthetic positions)
        // calls go first, which makes the operations concurrent: the permissive choice.
        events.sort_by_key(|(pos, is_call, _)| (*pos, !*is_call));
        let count = events.len() + 2;
        let mut list = List {
            next: vec![NONE; count],
            prev: vec![NONE; count],
            op: vec![NONE; count],
            pos: vec![usize::MAX; count],
            is_call: vec![false; count],
            partner: vec![NONE; count],
        };
        let mut call_entry = vec![NONE; ops.len()];
        let mut previous = HEAD;
        for (offset, (pos, is_call, op)) in events.iter().enumerate() {
            let entry = offset + 2;
            list.op[entry] = *op;
            list.pos[entry] = *pos;
            list.is_call[entry] = *is_call;
            if *is_call {
                call_entry[*op as usize] = entry as u32;
            } else {
                list.partner[call_entry[*op as usize] as usize] = entry as u32;
            }
            list.next[previous] = entry as u32;
            list.prev[entry] = previous as u32;
            previous = entry;
        }
        list.next[previous] = TAIL as u32;
        list.prev[TAIL] = previous as u32;
        list
    }

    fn unlink(&mut self, entry: usize) {
        let (prev, next) = (self.prev[entry], self.next[entry]);
        self.next[prev as usize] = next;
        self.prev[next as usize] = prev;
    }

    fn relink(&mut self, entry: usize) {
        let (prev, next) = (self.prev[entry], self.next[entry]);
        self.next[prev as usize] = entry as u32;
        self.prev[next as usize] = entry as u32;
    }

    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.partner[call] as usize);
    }

    fn unlift(&mut self, call: usize) {
        self.relink(self.partner[call] as usize);
        self.relink(call);
    }
}

/// Indeterminate operations, grouped into classes of identical operations, each class in
/// invocation order. `used[c]` members of class `c` are linearized: always the first ones.
struct Classes {
    members: Vec<Vec<u32>>,
    used: Vec<u32>,
}

impl Classes {
    fn build<O: Eq + Hash + Clone>(ops: &[SearchOp<O>]) -> Classes {
        #[allow(clippy::disallowed_types)] // Only looked up, never iterated.
        let mut class_of: rustc_hash::FxHashMap<&O, usize> = Default::default();
        let mut members: Vec<Vec<u32>> = Vec::new();
        for (index, op) in ops.iter().enumerate() {
            if op.ret.is_none() {
                let next = members.len();
                let class = *class_of.entry(&op.op).or_insert(next);
                if class == members.len() {
                    members.push(Vec::new());
                }
                members[class].push(index as u32);
            }
        }
        for class in &mut members {
            class.sort_by_key(|op| ops[*op as usize].call);
        }
        let used = vec![0; members.len()];
        Classes { members, used }
    }

    /// The next member of `class` to linearize, if it was invoked before `before`.
    fn candidate<O>(&self, class: usize, before: usize, ops: &[SearchOp<O>]) -> Option<usize> {
        let op = *self.members[class].get(self.used[class] as usize)? as usize;
        (ops[op].call < before).then_some(op)
    }
}

/// The memo table: configurations already explored.
///
/// A configuration is the set of determinate operations linearized, the model state and
/// how many members of each indeterminate class were linearized. The first two are the
/// key; for the counts a list is kept per key, because a configuration is dominated by an
/// explored one with the same key and no larger counts: everything reachable from more
/// linearized indeterminate operations is reachable from fewer, which may still linearize
/// the difference, or never (they are optional, and have no return to block anything).
///
/// The determinate set is stored compactly: the index of its first word that is not all
/// ones, and the words from there to its last non-zero word. Operations are linearized
/// roughly in order, so this is one or two words whatever the history's length.
struct Memo<S> {
    table: HashTable<Slot<S>>,
    hasher: FxBuildHasher,
    /// Bytes the slots own outside the table (windows, counts, states).
    heap: usize,
    counts_bytes: usize,
}

struct Slot<S> {
    first_word: u32,
    /// Inline up to two words (the usual case): no allocation per slot.
    window: smallvec::SmallVec<[u64; 2]>,
    state: S,
    /// Empty when the history has no indeterminate operations.
    counts: Vec<Box<[u32]>>,
}

/// What one heap allocation costs beyond what it holds (allocator header, rounding).
const ALLOCATION_OVERHEAD: usize = 16;

fn window(bits: &[u64]) -> (u32, &[u64]) {
    let first = bits.iter().position(|w| *w != u64::MAX).unwrap_or(bits.len());
    let last = bits.iter().rposition(|w| *w != 0).map_or(first, |l| (l + 1).max(first));
    (first as u32, &bits[first..last])
}

fn dominates(explored: &[u32], current: &[u32]) -> bool {
    explored.iter().zip(current).all(|(e, c)| e <= c)
}

impl<S: Eq + Hash + Clone> Memo<S> {
    fn new(classes: usize) -> Self {
        let counts_bytes = if classes > 0 { classes * 4 + 16 + 2 * ALLOCATION_OVERHEAD } else { 0 };
        Memo { table: HashTable::new(), hasher: FxBuildHasher, heap: 0, counts_bytes }
    }

    /// Bytes held: the table at its capacity (a control byte per slot) and the slots' own.
    fn bytes(&self) -> usize {
        self.table.capacity() * (std::mem::size_of::<Slot<S>>() + 1) + self.heap
    }

    /// Bytes the next new entry may add: when the table is full it grows to about twice
    /// its buckets, and the old and new tables are both held while it moves.
    fn growth_bytes(&self) -> usize {
        if self.table.len() < self.table.capacity() {
            return 0;
        }
        (self.table.capacity().max(3) * 2 + 16) * (std::mem::size_of::<Slot<S>>() + 1)
    }

    /// Records the configuration; false if it, or one dominating it, was seen before.
    fn insert(&mut self, determinate: &[u64], state: &S, counts: &[u32], state_heap_bytes: usize) -> bool {
        let (first_word, window) = window(determinate);
        let hash = self.hasher.hash_one((first_word, window, state));
        let found = self
            .table
            .find_mut(hash, |slot| slot.first_word == first_word && &slot.window[..] == window && slot.state == *state);
        if let Some(slot) = found {
            if counts.is_empty() || slot.counts.iter().any(|explored| dominates(explored, counts)) {
                return false;
            }
            // The new configuration dominates any explored one it is below.
            slot.counts.retain(|explored| !dominates(counts, explored));
            slot.counts.push(Box::from(counts));
            self.heap += self.counts_bytes;
            return true;
        }
        let hasher = self.hasher;
        let counts = if counts.is_empty() { Vec::new() } else { vec![Box::from(counts)] };
        let slot = Slot { first_word, window: smallvec::SmallVec::from_slice(window), state: state.clone(), counts };
        if slot.window.spilled() {
            self.heap += window.len() * 8 + ALLOCATION_OVERHEAD;
        }
        self.heap += self.counts_bytes + state_heap_bytes;
        self.table.insert_unique(hash, slot, |slot| hasher.hash_one((slot.first_word, &slot.window[..], &slot.state)));
        true
    }
}

/// Which alternative a configuration on the stack took, so the search can resume after it.
#[derive(Clone, Copy)]
enum Choice {
    /// The call entry of a determinate operation.
    Determinate(usize),
    /// The next member of an indeterminate class.
    Indeterminate { class: usize },
}

/// Where the scan of a configuration's alternatives stands: first a read that can be
/// taken at once, then the indeterminate classes (an indeterminate operation that took
/// effect is usually needed soon), then the other determinate calls up to the first
/// return.
#[derive(Clone, Copy)]
enum Cursor {
    Read(usize),
    Class(usize),
    Entry(usize),
}

/// A configuration on the stack: the choice taken from it, whether that choice was a read
/// taken at once (then the configuration has no other alternative), and its state.
struct Frame<S> {
    choice: Choice,
    forced: bool,
    state: S,
}

/// A search that can be run a slice of steps at a time, so that a check can interleave
/// the partitions of a history and stop at the first refuted one.
pub struct Search<'o, M: Model> {
    ops: &'o [SearchOp<M::Op>],
    list: List,
    classes: Classes,
    /// Bit of each determinate operation: its rank in invocation order.
    bit: Vec<usize>,
    linearized: Vec<u64>,
    memo: Memo<M::State>,
    stats: Stats,
    state: M::State,
    stack: Vec<Frame<M::State>>,
    /// Per operation: whether the model says it never changes the state.
    read_only: Vec<bool>,
    returns_left: usize,
    stuck: Option<(usize, Stuck<M::State>)>,
    cursor: Cursor,
    /// Where a new configuration's scan starts (no read phase without reads).
    start: Cursor,
    slice_peak: usize,
    /// Bytes of the list, bit sets and classes, fixed by the operations.
    fixed_bytes: usize,
}

fn start_cursor(read_only: &[bool]) -> Cursor {
    if read_only.contains(&true) { Cursor::Read(HEAD) } else { Cursor::Class(0) }
}

impl<'o, M: Model> Search<'o, M> {
    /// A search for a linearization of `ops` from the model's initial state.
    pub fn new(model: &mut M, ops: &'o [SearchOp<M::Op>]) -> Self {
        let list = List::build(ops);
        let classes = Classes::build(ops);
        let determinate_count = ops.iter().filter(|op| op.ret.is_some()).count();
        let mut bit = vec![usize::MAX; ops.len()];
        let mut determinate_ops: Vec<usize> = (0..ops.len()).filter(|i| ops[*i].ret.is_some()).collect();
        determinate_ops.sort_by_key(|i| ops[*i].call);
        for (rank, op) in determinate_ops.iter().enumerate() {
            bit[*op] = rank;
        }
        let memo = Memo::new(classes.members.len());
        let read_only: Vec<bool> = ops.iter().map(|op| op.ret.is_some() && model.read_only(&op.op)).collect();
        let start = start_cursor(&read_only);
        let fixed_bytes = list.next.len() * 30
            + ops.len() * 9
            + determinate_count.div_ceil(64) * 8
            + classes.members.iter().map(|m| m.capacity() * 4 + 28).sum::<usize>();
        Search {
            ops,
            list,
            classes,
            bit,
            linearized: vec![0u64; determinate_count.div_ceil(64)],
            memo,
            stats: Stats::default(),
            state: model.init(),
            stack: Vec::new(),
            read_only,
            returns_left: determinate_count,
            stuck: None,
            cursor: start,
            start,
            slice_peak: 0,
            fixed_bytes,
        }
    }

    /// The work done so far.
    pub fn stats(&self) -> Stats {
        Stats { steps: self.stats.steps, cache_entries: self.memo.table.len(), cache_bytes: self.memo.bytes() }
    }

    /// Bytes the search holds: memo, stack and its lists (its model's are apart).
    pub fn bytes(&self) -> usize {
        self.memo.bytes() + self.stack.capacity() * std::mem::size_of::<Frame<M::State>>() + self.fixed_bytes
    }

    /// The most the search and its model held during the last call of [`Search::run`]
    /// (memo, stack, lists, interned values).
    pub fn slice_peak(&self) -> usize {
        self.slice_peak
    }

    /// Runs at most `slice` steps (and no more than `steps_left`, which it spends), while
    /// the search and `model` hold at most `memory_max` bytes.
    pub fn run(
        &mut self,
        model: &mut M,
        slice: u64,
        steps_left: &mut u64,
        memory_max: usize,
        steps_limit: u64,
    ) -> Run<M::State> {
        self.slice_peak = 0;
        let ops = self.ops;
        let mut slice_left = slice;
        loop {
            if self.returns_left == 0 {
                return Run::Done(Outcome::Linearizable);
            }
            if *steps_left == 0 {
                return Run::Done(Outcome::Unknown(Exhausted::Steps { limit: steps_limit }));
            }
            if slice_left == 0 {
                return Run::Slice;
            }
            // Before anything grows: what the search and model hold, and what the next
            // memo entry may add, within the room given.
            let stack_bytes = self.stack.capacity() * std::mem::size_of::<Frame<M::State>>();
            let holding = self.memo.bytes() + model.heap_bytes() + stack_bytes + self.fixed_bytes;
            self.slice_peak = self.slice_peak.max(holding);
            if holding + self.memo.growth_bytes() > memory_max {
                return Run::Memory;
            }
            slice_left -= 1;
            *steps_left -= 1;
            self.stats.steps += 1;
            let (choice, op, forced) = match self.cursor {
                Cursor::Read(entry) => {
                    let next = self.list.next[entry] as usize;
                    if !self.list.is_call[next] {
                        self.cursor = Cursor::Class(0);
                        continue;
                    }
                    self.cursor = Cursor::Read(next);
                    let op = self.list.op[next] as usize;
                    if !self.read_only[op] {
                        continue;
                    }
                    (Choice::Determinate(next), op, true)
                }
                Cursor::Class(class) if class < self.classes.members.len() => {
                    self.cursor = Cursor::Class(class + 1);
                    match self.classes.candidate(class, self.list.pos[first_return(&self.list)], ops) {
                        Some(op) => (Choice::Indeterminate { class }, op, false),
                        None => continue,
                    }
                }
                Cursor::Class(_) => {
                    self.cursor = Cursor::Entry(self.list.next[HEAD] as usize);
                    continue;
                }
                Cursor::Entry(entry) if self.list.is_call[entry] => {
                    self.cursor = Cursor::Entry(self.list.next[entry] as usize);
                    let op = self.list.op[entry] as usize;
                    if self.read_only[op] {
                        // Tried in this state by the read phase: it does not fit.
                        continue;
                    }
                    (Choice::Determinate(entry), op, false)
                }
                Cursor::Entry(stop_entry) => {
                    if let Some(outcome) = self.backtrack(model, Some(self.list.op[stop_entry] as usize)) {
                        return Run::Done(outcome);
                    }
                    continue;
                }
            };
            let Some(next_state) = model.step(&self.state, &ops[op].op) else {
                if forced && !model.reachable(&self.state, &ops[op].op) {
                    // A read that no later state can satisfy: it can never be linearized
                    // from here, so this configuration has failed.
                    if let Some(outcome) = self.backtrack(model, Some(op)) {
                        return Run::Done(outcome);
                    }
                }
                continue;
            };
            mark(choice, op, true, &mut self.linearized, &self.bit, &mut self.classes);
            let heap_bytes = model.state_heap_bytes(&next_state);
            if !self.memo.insert(&self.linearized, &next_state, &self.classes.used, heap_bytes) {
                mark(choice, op, false, &mut self.linearized, &self.bit, &mut self.classes);
                if forced {
                    // The read leads where the search has failed before: so does this
                    // configuration, whatever else it tries.
                    if let Some(outcome) = self.backtrack(model, None) {
                        return Run::Done(outcome);
                    }
                }
                continue;
            }
            let state = std::mem::replace(&mut self.state, next_state);
            self.stack.push(Frame { choice, forced, state });
            model.note_placed(&ops[op].op, true);
            if let Choice::Determinate(call) = choice {
                self.list.lift(call);
                self.returns_left -= 1;
            }
            self.cursor = self.start;
        }
    }

    /// Every alternative of the current configuration is exhausted: operation `blocked`
    /// cannot be linearized from it (its return blocks, or it is a read no later state
    /// can satisfy; `None`: a read taken at once leads where the search failed before).
    /// Goes back one choice, past configurations whose only alternative was a read, or
    /// ends the search when none is left.
    fn backtrack(&mut self, model: &mut M, blocked: Option<usize>) -> Option<Outcome<M::State>> {
        if let Some(blocked) = blocked {
            note_stuck(&mut self.stuck, self.ops, blocked, &self.stack, &self.list, &self.classes, &self.state);
        }
        loop {
            let Some(Frame { choice, forced, state }) = self.stack.pop() else {
                let (_, found) = self.stuck.take().expect("a failed search passed a blocking return");
                return Some(Outcome::NotLinearizable(found));
            };
            self.state = state;
            self.cursor = match choice {
                Choice::Determinate(call) => {
                    let op = self.list.op[call] as usize;
                    model.note_placed(&self.ops[op].op, false);
                    mark(choice, op, false, &mut self.linearized, &self.bit, &mut self.classes);
                    self.list.unlift(call);
                    self.returns_left += 1;
                    Cursor::Entry(self.list.next[call] as usize)
                }
                Choice::Indeterminate { class } => {
                    let op = self.classes.members[class][self.classes.used[class] as usize - 1] as usize;
                    model.note_placed(&self.ops[op].op, false);
                    mark(choice, op, false, &mut self.linearized, &self.bit, &mut self.classes);
                    Cursor::Class(class + 1)
                }
            };
            if !forced {
                return None;
            }
        }
    }
}

/// The first return entry in the list: nothing invoked after it can go next.
fn first_return(list: &List) -> usize {
    let mut entry = list.next[HEAD] as usize;
    while list.is_call[entry] {
        entry = list.next[entry] as usize;
    }
    entry
}

/// Marks (`taken`) or unmarks the operation a choice linearizes: its bit for a
/// determinate operation, its class's count for an indeterminate one.
fn mark(choice: Choice, op: usize, taken: bool, linearized: &mut [u64], bit: &[usize], classes: &mut Classes) {
    match choice {
        Choice::Determinate(_) => linearized[bit[op] / 64] ^= 1 << (bit[op] % 64),
        Choice::Indeterminate { class, .. } if taken => classes.used[class] += 1,
        Choice::Indeterminate { class, .. } => classes.used[class] -= 1,
    }
}

/// Remembers the furthest return the search was stopped by: the operation no
/// linearization could get past is the first one that cannot be linearized.
fn note_stuck<O, S: Clone + Eq>(
    stuck: &mut Option<(usize, Stuck<S>)>,
    ops: &[SearchOp<O>],
    op: usize,
    stack: &[Frame<S>],
    list: &List,
    classes: &Classes,
    state: &S,
) {
    let position = ops[op].ret.expect("a return entry has a return position");
    match stuck {
        Some((best, found)) if *best == position => {
            if found.states.len() < STATES_MAX && !found.states.contains(state) {
                found.states.push(state.clone());
            }
        }
        Some((best, _)) if *best > position => {}
        _ => {
            // Replay the stack's choices to name the operations in linearization order.
            let mut taken = vec![0u32; classes.members.len()];
            let prefix = stack
                .iter()
                .map(|frame| match frame.choice {
                    Choice::Determinate(call) => list.op[call] as usize,
                    Choice::Indeterminate { class, .. } => {
                        taken[class] += 1;
                        classes.members[class][taken[class] as usize - 1] as usize
                    }
                })
                .collect();
            *stuck = Some((position, Stuck { op, prefix, states: vec![state.clone()] }));
        }
    }
}

//! The transactions' judge, shared by 2PC and Paxos Commit: atomicity, validity,
//! durable decisions and the business data's isolation after every event; participants
//! out of doubt after the heal; the figures that compare the two protocols.

use std::collections::BTreeMap;

use checker::Violation;
use checker::history::Event;
use sim_core::{NodeId, Observation, Sim};

use super::{Gtid, Line, OrderId, TxnNode, TxnObs};
use crate::order_client::{order_event, percentile};
use crate::protocol::{HistoryCheck, Judge, Span};

#[derive(Clone, Debug, Default)]
struct TxnRecord {
    participants: Vec<NodeId>,
    lines: Vec<Line>,
    begin_ns: u64,
    votes: BTreeMap<NodeId, bool>,
    /// Each participant's decision, and when it applied it.
    decisions: BTreeMap<NodeId, (bool, u64)>,
    coordinator: Option<bool>,
    /// The first decision a coordinator or recovery leader made (not a presumption), by
    /// whom and when: what the client was told.
    decided: Option<(bool, NodeId, u64)>,
    /// The most message delays a participant took to learn the commit, and whether one
    /// learned it off the normal path (then the transaction's delays are not counted).
    delays: u8,
    off_path: bool,
}

/// How long a participant has been up and running (neither crashed nor paused): time in
/// doubt while it is down is its own outage, not blocking, so only time in doubt while
/// running counts as *blocked*.
#[derive(Clone, Copy, Debug, Default)]
struct Uptime {
    running: bool,
    /// When `total_ns` was last brought up to date.
    at_ns: u64,
    /// Time spent running up to `at_ns`.
    total_ns: u64,
}

impl Uptime {
    fn total_at(&self, t_ns: u64) -> u64 {
        self.total_ns + if self.running { t_ns.saturating_sub(self.at_ns) } else { 0 }
    }
}

/// The judge of `2pc` and `paxos-commit`.
pub struct TxnJudge {
    participants: usize,
    initial_stock: i64,
    quiet_ns: u64,
    end_ns: u64,
    lanes: bool,
    txns: BTreeMap<Gtid, TxnRecord>,
    /// Each item's stock as the committed transactions say it must be.
    expected_stock: BTreeMap<u32, i64>,
    orders: BTreeMap<OrderId, Gtid>,
    in_doubt_since: BTreeMap<(NodeId, Gtid), u64>,
    locked_since: BTreeMap<(NodeId, Gtid), u64>,
    in_doubt_ms: BTreeMap<NodeId, Vec<f64>>,
    /// Per server node (index = node), its running time so far.
    uptime: Vec<Uptime>,
    /// Each participant in doubt: its running time when it became so.
    uptime_since: BTreeMap<(NodeId, Gtid), u64>,
    blocked_ms: Vec<f64>,
    commit_delays: Vec<f64>,
    lock_hold_ms: Vec<f64>,
    decision_ms: Vec<f64>,
    abort_causes: BTreeMap<&'static str, u64>,
    commits: u64,
    aborts: u64,
    spans: Vec<Span>,
    success: crate::order_client::OrderSuccess,
    messages_sent: u64,
    forced_writes: u64,
}

impl TxnJudge {
    pub fn new(
        participants: usize,
        initial_stock: i64,
        heal_ns: u64,
        quiet_ns: u64,
        end_ns: u64,
        lanes: bool,
    ) -> TxnJudge {
        TxnJudge {
            participants,
            initial_stock,
            quiet_ns,
            end_ns,
            lanes,
            txns: BTreeMap::new(),
            expected_stock: BTreeMap::new(),
            orders: BTreeMap::new(),
            in_doubt_since: BTreeMap::new(),
            locked_since: BTreeMap::new(),
            in_doubt_ms: BTreeMap::new(),
            uptime: vec![Uptime { running: true, at_ns: 0, total_ns: 0 }; participants + 1],
            uptime_since: BTreeMap::new(),
            blocked_ms: Vec::new(),
            commit_delays: Vec::new(),
            lock_hold_ms: Vec::new(),
            decision_ms: Vec::new(),
            abort_causes: BTreeMap::new(),
            commits: 0,
            aborts: 0,
            spans: Vec::new(),
            success: crate::order_client::OrderSuccess::new(heal_ns),
            messages_sent: 0,
            forced_writes: 0,
        }
    }

    fn on_decided(&mut self, t_ns: u64, node: NodeId, gtid: Gtid, commit: bool, delays: u8) -> Option<Violation> {
        let word = |c: bool| if c { "committed" } else { "aborted" };
        if let Some(since) = self.in_doubt_since.remove(&(node, gtid)) {
            self.in_doubt_ms.entry(node).or_default().push((t_ns - since) as f64 / 1e6);
            let uptime_since = self.uptime_since.remove(&(node, gtid)).unwrap_or(0);
            self.blocked_ms.push(self.uptime[node].total_at(t_ns).saturating_sub(uptime_since) as f64 / 1e6);
            if self.lanes {
                let label = format!("{gtid} in doubt, then {}", word(commit));
                self.spans.push(Span { node, from_ns: since, to_ns: t_ns, label, exclusive: false });
            }
        }
        let record = self.txns.entry(gtid).or_default();
        if let Some(&(before, _)) = record.decisions.get(&node) {
            if before != commit {
                let message = format!("participant {node} {} {gtid} and later {} it", word(before), word(commit));
                return Some(Violation::new("durable-decision", message, t_ns, Some(node)));
            }
            return None;
        }
        if record.decisions.is_empty() {
            // The transaction's outcome, as the first participant to decide applies it.
            if commit {
                self.commits += 1;
            } else {
                self.aborts += 1;
            }
            if record.begin_ns > 0 || !record.participants.is_empty() {
                self.decision_ms.push((t_ns - record.begin_ns.min(t_ns)) as f64 / 1e6);
            }
        }
        let here = (node, t_ns, format!("at participant {node}"));
        if let Some((&other, &(_, other_ns))) = record.decisions.iter().find(|(_, (c, _))| *c != commit) {
            return Some(disagreement(gtid, commit, here, (other, other_ns, format!("at participant {other}"))));
        }
        if let Some((decided, by, at_ns)) = record.decided
            && decided != commit
        {
            return Some(disagreement(gtid, commit, here, (by, at_ns, format!("by node {by}"))));
        }
        record.decisions.insert(node, (commit, t_ns));
        if commit {
            // Message delays: counted for a commit every participant learned on the
            // normal path, as the most any of them took.
            record.delays = record.delays.max(delays);
            record.off_path |= delays == 0;
            if record.decisions.len() == record.participants.len() && !record.off_path {
                self.commit_delays.push(f64::from(record.delays));
            }
        }
        if commit { validity(record, gtid, t_ns, node) } else { None }
    }

    fn on_coordinator_decided(
        &mut self,
        t_ns: u64,
        node: NodeId,
        gtid: Gtid,
        commit: bool,
        cause: &'static str,
    ) -> Option<Violation> {
        let record = self.txns.entry(gtid).or_default();
        if cause.starts_with("presumed") {
            // An answer from a coordinator with no record, not a decision: a late inquiry
            // about a transaction long committed gets "abort", harmlessly. What it does
            // to the participants is judged there.
            if record.coordinator.is_none() {
                record.coordinator = Some(commit);
                *self.abort_causes.entry(cause).or_insert(0) += u64::from(!commit);
            }
            return None;
        }
        match record.coordinator {
            Some(before) if before != commit => {
                let message = format!("{gtid} was decided both ways: {before} first, then {commit} by node {node}");
                return Some(Violation::new("atomicity", message, t_ns, Some(node)));
            }
            Some(_) => return None,
            None => {}
        }
        record.coordinator = Some(commit);
        record.decided.get_or_insert((commit, node, t_ns));
        if let Some((&participant, &(_, at_ns))) = record.decisions.iter().find(|(_, (c, _))| *c != commit) {
            let there = (participant, at_ns, format!("at participant {participant}"));
            return Some(disagreement(gtid, commit, (node, t_ns, format!("by node {node}")), there));
        }
        if commit {
            validity(record, gtid, t_ns, node)
        } else {
            *self.abort_causes.entry(cause).or_insert(0) += 1;
            None
        }
    }

    fn on_stock(&mut self, t_ns: u64, node: NodeId, gtid: Gtid, item: u32, stock: i64) -> Option<Violation> {
        let qty: i64 = self
            .txns
            .get(&gtid)
            .map_or(0, |r| r.lines.iter().filter(|l| l.item == item).map(|l| i64::from(l.qty)).sum());
        let initial = self.initial_stock;
        let expected = self.expected_stock.entry(item).or_insert(initial);
        *expected -= qty;
        if stock < 0 {
            let message = format!("item {item}'s stock went to {stock} at shard {node} when {gtid} committed");
            return Some(Violation::new("isolation", message, t_ns, Some(node)));
        }
        if stock != *expected {
            let message = format!(
                "item {item}'s stock is {stock} at shard {node} after {gtid}, but the committed orders make it \
                 {expected}: a committed order changed it other than exactly once"
            );
            return Some(Violation::new("isolation", message, t_ns, Some(node)));
        }
        None
    }
}

/// An atomicity violation: `gtid` went the way of `commit` `here` and the other way
/// `there` (each a node, the instant and how to say where: "at participant 2", "by node
/// 0"), marked where the other way was taken.
fn disagreement(gtid: Gtid, commit: bool, here: (NodeId, u64, String), there: (NodeId, u64, String)) -> Violation {
    let word = |c: bool| if c { "committed" } else { "aborted" };
    let ((node, t_ns, at), (other, other_ns, other_at)) = (here, there);
    let message = format!("{gtid} {} {at} but {} {other_at}", word(commit), word(!commit));
    Violation::new("atomicity", message, t_ns, Some(node)).mark(
        other,
        other_ns,
        format!("{gtid} {} {other_at}", word(!commit)),
    )
}

/// Commit only if every participant voted yes.
fn validity(record: &TxnRecord, gtid: Gtid, t_ns: u64, node: NodeId) -> Option<Violation> {
    let missing: Vec<NodeId> =
        record.participants.iter().filter(|p| record.votes.get(p) != Some(&true)).copied().collect();
    if missing.is_empty() {
        return None;
    }
    let message = format!("{gtid} committed (at node {node}) though participants {missing:?} did not vote yes");
    Some(Violation::new("validity", message, t_ns, Some(node)))
}

impl Judge<TxnNode> for TxnJudge {
    fn observe(&mut self, observation: &Observation<TxnObs>, _sim: &Sim<TxnNode>) -> Option<Violation> {
        let (t_ns, node) = (observation.t_ns, observation.node);
        match &observation.obs {
            TxnObs::Begin { gtid, participants, lines, .. } => {
                let record = self.txns.entry(*gtid).or_default();
                record.participants = participants.clone();
                record.lines = lines.clone();
                record.begin_ns = t_ns;
                None
            }
            TxnObs::Voted { gtid, yes, .. } => {
                self.txns.entry(*gtid).or_default().votes.insert(node, *yes);
                None
            }
            TxnObs::InDoubt { gtid } => {
                self.in_doubt_since.insert((node, *gtid), t_ns);
                self.uptime_since.insert((node, *gtid), self.uptime[node].total_at(t_ns));
                self.locked_since.insert((node, *gtid), t_ns);
                None
            }
            TxnObs::Released { gtid } => {
                if let Some(since) = self.locked_since.remove(&(node, *gtid)) {
                    self.lock_hold_ms.push((t_ns - since) as f64 / 1e6);
                }
                None
            }
            TxnObs::Decided { gtid, commit, delays } => self.on_decided(t_ns, node, *gtid, *commit, *delays),
            TxnObs::CoordinatorDecided { gtid, commit, cause } => {
                self.on_coordinator_decided(t_ns, node, *gtid, *commit, cause)
            }
            TxnObs::StockApplied { gtid, item, stock } => self.on_stock(t_ns, node, *gtid, *item, *stock),
            TxnObs::OrderRecorded { gtid, order } => match self.orders.insert(*order, *gtid) {
                Some(first) if first != *gtid => {
                    let message = format!("{order} recorded twice: by {first} and by {gtid}");
                    Some(Violation::new("isolation", message, t_ns, Some(node)))
                }
                _ => None,
            },
            TxnObs::Client { order, kind, .. } => {
                self.success.observe(t_ns, *order, *kind);
                None
            }
        }
    }

    fn client_event(&self, observation: &Observation<TxnObs>) -> Option<Event> {
        let TxnObs::Client { process, order, kind } = &observation.obs else {
            return None;
        };
        Some(order_event(observation.t_ns, *process, *order, *kind))
    }

    fn after_step(&mut self, sim: &Sim<TxnNode>) -> Option<Violation> {
        let now = sim.now_ns();
        for (node, uptime) in self.uptime.iter_mut().enumerate() {
            uptime.total_ns = uptime.total_at(now);
            uptime.at_ns = now;
            uptime.running = sim.is_up(node) && !sim.is_paused(node);
        }
        None
    }

    fn role_change(&self, observation: &Observation<TxnObs>) -> Option<(String, Option<u64>)> {
        let node = observation.node;
        let others_in_doubt = |gtid: &Gtid| self.in_doubt_since.keys().any(|(n, g)| *n == node && g != gtid);
        let role = match &observation.obs {
            TxnObs::InDoubt { .. } => "in doubt",
            TxnObs::Decided { gtid, .. } if others_in_doubt(gtid) => "in doubt",
            TxnObs::Decided { commit: true, .. } => "committed",
            TxnObs::Decided { commit: false, .. } => "aborted",
            _ => return None,
        };
        Some((role.to_owned(), None))
    }

    fn initial_role(&self, node: NodeId) -> Option<String> {
        match node {
            0 => Some("coordinator".to_owned()),
            n if n <= self.participants => Some("working".to_owned()),
            _ => None,
        }
    }

    fn history_check(&self) -> HistoryCheck {
        HistoryCheck::None
    }

    fn target(&self, _role: &str, _sim: &Sim<TxnNode>) -> Option<NodeId> {
        Some(0) // The coordinator is node 0 for its whole life.
    }

    /// Every participant up is out of doubt about what it prepared before the faults
    /// ended (2PC's blocking ends when the coordinator is back, as the heal brings it).
    fn recovered(&self, sim: &Sim<TxnNode>) -> Result<(), String> {
        let stuck: Vec<String> = self
            .in_doubt_since
            .iter()
            .filter(|((node, _), since)| **since < self.quiet_ns && sim.is_up(*node))
            .map(|((node, gtid), since)| {
                format!("participant {node} about {gtid} (prepared at {:.3} ms)", *since as f64 / 1e6)
            })
            .collect();
        if stuck.is_empty() {
            return Ok(());
        }
        let shown: Vec<&str> = stuck.iter().take(5).map(String::as_str).collect();
        Err(format!("{} still in doubt after the heal: {}", stuck.len(), shown.join("; ")))
    }

    fn final_check(&mut self, sim: &Sim<TxnNode>) -> Option<Violation> {
        // Still in doubt at the end: blocked until the end, while it was running.
        let end = sim.now_ns();
        for ((node, _), since) in &self.uptime_since {
            self.blocked_ms.push(self.uptime[*node].total_at(end).saturating_sub(*since) as f64 / 1e6);
        }
        self.messages_sent = sim.metrics().messages_sent;
        self.forced_writes = (0..sim.nodes_count())
            .filter_map(|n| sim.process(n))
            .map(|node| match node {
                TxnNode::Coordinator(c) => c.forced_writes,
                TxnNode::Participant(p) => p.forced_writes,
                TxnNode::Client(_) => 0,
            })
            .sum();
        None
    }

    fn metrics(&self) -> BTreeMap<String, f64> {
        let decided = self.commits + self.aborts;
        let mut metrics = BTreeMap::from([
            ("commits".to_owned(), self.commits as f64),
            ("aborts".to_owned(), self.aborts as f64),
            ("commits_per_s".to_owned(), self.commits as f64 / (self.end_ns.max(1) as f64 / 1e9)),
        ]);
        if decided > 0 {
            metrics.insert("abort_rate".to_owned(), self.aborts as f64 / decided as f64);
            metrics.insert("messages_per_txn".to_owned(), self.messages_sent as f64 / self.txns.len().max(1) as f64);
            metrics
                .insert("forced_writes_per_txn".to_owned(), self.forced_writes as f64 / self.txns.len().max(1) as f64);
        }
        if !self.decision_ms.is_empty() {
            metrics.insert("decision_ms_p50".to_owned(), percentile(&self.decision_ms, 0.5));
            metrics.insert("decision_ms_p99".to_owned(), percentile(&self.decision_ms, 0.99));
        }
        for (cause, count) in &self.abort_causes {
            metrics.insert(format!("coordinator aborts: {cause}"), *count as f64);
        }
        let all: Vec<f64> = self.in_doubt_ms.values().flatten().copied().collect();
        if !all.is_empty() {
            metrics.insert("in_doubt_ms_p50".to_owned(), percentile(&all, 0.5));
            metrics.insert("in_doubt_ms_p99".to_owned(), percentile(&all, 0.99));
            metrics.insert("in_doubt_ms_max".to_owned(), percentile(&all, 1.0));
        }
        if !self.commit_delays.is_empty() {
            metrics.insert("message_delays_p50".to_owned(), percentile(&self.commit_delays, 0.5));
            metrics.insert("message_delays_max".to_owned(), percentile(&self.commit_delays, 1.0));
            let normal = self.commit_delays.len() as f64 / self.commits.max(1) as f64;
            metrics.insert("message_delays_counted_share".to_owned(), normal);
        }
        if !self.blocked_ms.is_empty() {
            metrics.insert("blocked_ms_p50".to_owned(), percentile(&self.blocked_ms, 0.5));
            metrics.insert("blocked_ms_p99".to_owned(), percentile(&self.blocked_ms, 0.99));
            metrics.insert("blocked_ms_max".to_owned(), percentile(&self.blocked_ms, 1.0));
        }
        for (node, values) in &self.in_doubt_ms {
            metrics.insert(format!("in_doubt_ms_max_participant_{node}"), percentile(values, 1.0));
        }
        self.success.metrics(&mut metrics);
        if !self.lock_hold_ms.is_empty() {
            metrics.insert("lock_hold_ms_p99".to_owned(), percentile(&self.lock_hold_ms, 0.99));
        }
        metrics
    }

    fn spans(&self, _sim: &Sim<TxnNode>) -> Vec<Span> {
        let mut spans = self.spans.clone();
        // Still in doubt at the end: drawn to the end.
        for ((node, gtid), since) in &self.in_doubt_since {
            let label = format!("{gtid} in doubt");
            spans.push(Span { node: *node, from_ns: *since, to_ns: self.end_ns, label, exclusive: false });
        }
        spans
    }
}

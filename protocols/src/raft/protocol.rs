//! Raft's entry in the protocol registry: its settings, variants, topology and judge.

use std::rc::Rc;

use checker::history::Event;
use checker::{ModelKind, Violation};
use serde::{Deserialize, Serialize};
use sim_core::{MS, NodeId, Observation, Sim};

use super::invariants::check_log_matching;
use super::pre_vote::PreVoteCheck;
use super::server::{Role, Server};
use super::{Answer, Machine, Msg, RaftConfig, RaftInvariants, RaftNode, RaftObs, Settings, SnapshotSource, Variant};
use crate::kv::KvWorkload;
use crate::protocol::{
    Cluster, FieldError, HistoryCheck, Judge, Protocol, RunSpec, Topology, VariantInfo, VariantKind,
};

/// Raft in the registry.
pub struct Raft;

/// A scenario's `"settings"` for Raft: the algorithm's timing and the clients' workload.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftSettings {
    pub raft: RaftConfig,
    pub workload: KvWorkload,
}

impl Protocol for Raft {
    const NAME: &'static str = "raft";
    const DESCRIPTION: &'static str = "Raft consensus with a replicated key-value store (linearizable)";
    const VARIANTS: &'static [VariantInfo] = &[
        VariantInfo { name: "correct", doc: "Raft as the paper specifies it", kind: VariantKind::Correct },
        VariantInfo {
            name: "commit-old-term",
            doc: "the leader commits entries of earlier terms by counting replicas (Figure 8)",
            kind: VariantKind::Bug,
        },
        VariantInfo {
            name: "vote-without-log-check",
            doc: "votes are granted without the log up-to-date check",
            kind: VariantKind::Bug,
        },
        VariantInfo {
            name: "volatile-vote",
            doc: "votedFor is not persisted (the term is): a restarted server can vote twice in a term",
            kind: VariantKind::Bug,
        },
        VariantInfo {
            name: "no-truncate",
            doc: "a follower overwrites conflicting entries but keeps the suffix after them",
            kind: VariantKind::Bug,
        },
        VariantInfo {
            name: "stale-suffix-after-snapshot",
            doc: "recovery trusts every record after the snapshot: a crash between installing a snapshot and \
                  deleting the log it replaced brings back the old log's divergent suffix",
            kind: VariantKind::Bug,
        },
        VariantInfo {
            name: "unsynced-log",
            doc: "log writes are acknowledged without a sync: a crash loses entries the server said it had",
            kind: VariantKind::Bug,
        },
        VariantInfo {
            name: "pre-vote-log-only",
            doc: "pre-votes are granted on the term and the log alone: a server still hearing from a leader says \
                  yes, so one that stopped hearing it deposes it (with raft.pre_vote on)",
            kind: VariantKind::Bug,
        },
        VariantInfo {
            name: "pre-vote-any-round",
            doc: "a granted pre-vote counts in whatever round it arrives: a yes delayed past its round starts an \
                  election while a leader is heard (with raft.pre_vote on)",
            kind: VariantKind::Bug,
        },
        VariantInfo {
            name: "volatile-learned-term",
            doc: "a term learned from a message is not written (only votes and candidacies write it): a crash takes \
                  the server back to its old term",
            kind: VariantKind::Bug,
        },
        VariantInfo {
            name: "stale-snapshot-installed",
            doc: "a snapshot from the leader is installed even when the server already committed past it: a late \
                  duplicate InstallSnapshot takes its state machine back",
            kind: VariantKind::Bug,
        },
    ];
    const SCENARIOS: &'static [(&'static str, &'static str)] = &[
        ("raft", include_str!("scenarios/raft.json")),
        ("raft-crashy", include_str!("scenarios/raft-crashy.json")),
        ("raft-pre-vote", include_str!("scenarios/raft-pre-vote.json")),
        ("raft-leader-isolation", include_str!("scenarios/raft-leader-isolation.json")),
        ("raft-minority-partition", include_str!("scenarios/raft-minority-partition.json")),
        ("raft-crash-restart", include_str!("scenarios/raft-crash-restart.json")),
        ("raft-figure8", include_str!("scenarios/raft-figure8.json")),
        ("raft-disruptive-server", include_str!("scenarios/raft-disruptive-server.json")),
        ("raft-pre-vote-late-answers", include_str!("scenarios/raft-pre-vote-late-answers.json")),
        ("raft-learned-term-crash", include_str!("scenarios/raft-learned-term-crash.json")),
        ("raft-late-snapshot", include_str!("scenarios/raft-late-snapshot.json")),
        ("cap-raft", include_str!("scenarios/cap-raft.json")),
    ];

    type Settings = RaftSettings;
    type Node = RaftNode;
    type Judge = RaftJudge;

    fn validate(settings: &RaftSettings, cluster: Cluster, _variant: &str) -> Result<(), FieldError> {
        settings.raft.validate(cluster.servers).map_err(FieldError::from_message)?;
        settings.workload.validate().map_err(FieldError::from_message)
    }

    fn topology(_settings: &RaftSettings, cluster: Cluster) -> Topology {
        Topology::servers_then_clients("server", cluster, &["leader"])
    }

    fn build(settings: &RaftSettings, run: &RunSpec<'_>) -> (Box<dyn FnMut(NodeId) -> RaftNode>, RaftJudge) {
        let variant = Variant::parse(run.variant).expect("validated variant");
        // Clients stop starting operations early enough for the last ones to finish.
        let op_timeout_ns = (settings.workload.op_timeout_ms * MS as f64) as u64;
        let shared = Rc::new(Settings {
            servers: run.cluster.servers,
            clients: run.cluster.clients,
            variant,
            raft: settings.raft.clone(),
            workload: settings.workload.clone(),
            clients_stop_ns: run.end_ns.saturating_sub(op_timeout_ns),
            writes_until_ns: settings.workload.writes_until_ns(run.heal_ns),
        });
        let catch_up_ns = catch_up_bound_ns(&settings.raft);
        let judge = RaftJudge {
            servers: run.cluster.servers,
            invariants: RaftInvariants::default(),
            catch_up: CatchUp::new(run.quiet_ns, run.end_ns, catch_up_ns),
            calm: Calm::new(run.quiet_ns.saturating_add(catch_up_ns), run.end_ns),
            pre_vote: PreVoteCheck::new(&settings.raft, run.cluster.servers),
            terms: Terms::new(run.cluster.servers),
            applying: Applying::new(run.cluster.servers),
        };
        let factory = move |id| RaftNode::new(id, &shared);
        (Box::new(factory), judge)
    }

    fn message_label(msg: &Msg) -> Option<String> {
        Some(match msg {
            Msg::Request { op, .. } => format!("{} {}", op.function(), op.key()),
            Msg::Reply { answer: Answer::Result(_), .. } => "reply".to_owned(),
            Msg::Reply { answer: Answer::NotLeader { hint }, .. } => {
                hint.map_or_else(|| "not leader".to_owned(), |h| format!("not leader, try {h}"))
            }
            raft => raft_label(raft)?,
        })
    }

    fn shrink(settings: &RaftSettings) -> Vec<RaftSettings> {
        let mut slower = settings.clone();
        slower.workload.rate_per_client = (settings.workload.rate_per_client / 2.0).max(1.0);
        if settings.workload.rate_per_client > 1.0 { vec![slower] } else { Vec::new() }
    }
}

/// Raft's judge: the five safety properties as the run goes, log matching at the end, a
/// leader of the newest term after the heal, every server caught up by the end, and the
/// kv history linearizable.
pub struct RaftJudge {
    servers: usize,
    invariants: RaftInvariants,
    catch_up: CatchUp,
    calm: Calm,
    pre_vote: PreVoteCheck,
    terms: Terms,
    applying: Applying,
}

/// A server's state machine only moves forward: within one incarnation it applies index
/// after index, each once, and a snapshot it installs lies ahead of what it applied (the
/// Figure 2 rule for InstallSnapshot: one this server already committed past changes
/// nothing). A restart starts again from the snapshot it restores. A late duplicate
/// InstallSnapshot obeyed after further appends takes the state machine back, and the
/// entries after it are applied a second time.
pub struct Applying {
    /// Per server: its incarnation when last seen, and the last index its state machine
    /// holds.
    last: Vec<(u32, u64)>,
}

impl Applying {
    pub fn new(servers: usize) -> Applying {
        Applying { last: vec![(0, 0); servers] }
    }

    /// Judges an `Applied` or `Snapshot` observation of a server in `incarnation`.
    pub fn observe(&mut self, observation: &Observation<RaftObs>, incarnation: u32) -> Option<Violation> {
        let (t_ns, node) = (observation.t_ns, observation.node);
        let (seen, last) = self.last.get_mut(node)?;
        if *seen != incarnation {
            (*seen, *last) = (incarnation, 0);
        }
        let violation = |message: String| Some(Violation::new("applied-order", message, t_ns, Some(node)));
        match observation.obs {
            RaftObs::Applied { index, .. } if index != *last + 1 => {
                let what = if index <= *last { "a second time" } else { "skipping entries" };
                violation(format!("server {node} applied index {index} right after index {last} ({what})"))
            }
            RaftObs::Applied { index, .. } => {
                *last = index;
                None
            }
            RaftObs::Snapshot { last_index, source: SnapshotSource::Installed | SnapshotSource::Restored, .. } => {
                if last_index < *last {
                    return violation(format!(
                        "server {node} installed a snapshot up to index {last_index} after applying up to index {last}: its state machine went back"
                    ));
                }
                *last = last_index;
                None
            }
            _ => None,
        }
    }
}

/// `currentTerm` never decreases on a server, not even across a restart: it is durable
/// state (Figure 2), written and synced before the server acts on it. Read after every
/// step from every server up; a write cut short by a crash in that very step leaves the
/// server down, so a term the judge has seen was synced. With a sync latency, a term
/// raised while its sync is pending is not yet durable (the server acts on nothing until
/// the sync returns): it counts once no sync is pending.
pub struct Terms {
    /// Each server's highest term seen, and when it was first seen.
    highest: Vec<(u64, u64)>,
}

impl Terms {
    pub fn new(servers: usize) -> Terms {
        Terms { highest: vec![(0, 0); servers] }
    }

    /// Compares every server's term now (`None`: down) with its highest; the flag says
    /// whether the term is settled (no sync pending).
    pub fn check(&mut self, now_ns: u64, term_of: impl Fn(NodeId) -> Option<(u64, bool)>) -> Option<Violation> {
        for (node, (highest, seen_ns)) in self.highest.iter_mut().enumerate() {
            let Some((term, settled)) = term_of(node) else { continue };
            if term > *highest && settled {
                (*highest, *seen_ns) = (term, now_ns);
            } else if term < *highest {
                let message = format!(
                    "server {node} is in term {term}, but it had been in term {highest} (currentTerm must never decrease, not even across a restart)"
                );
                let fact = format!("server {node} in term {highest}");
                return Some(Violation::new("term-monotonic", message, now_ns, Some(node)).mark(node, *seen_ns, fact));
            }
        }
        None
    }
}

/// Calm after the faults: once the faults have ended and the catch-up bound has passed,
/// a healthy cluster keeps its leader, so elections there are few: at most 2 plus 1 per
/// second of what is left of the run. More is an election storm (timers reset wrongly,
/// a leader that cannot keep its followers).
pub struct Calm {
    from_ns: u64,
    /// How many elections may start from `from_ns` to the end.
    allowed: usize,
    /// Elections started from `from_ns` on, and the first of them (when, which server).
    candidacies: usize,
    first: Option<(u64, NodeId)>,
}

impl Calm {
    pub fn new(from_ns: u64, end_ns: u64) -> Self {
        let allowed = 2 + (end_ns.saturating_sub(from_ns) / 1_000_000_000) as usize;
        Calm { from_ns, allowed, candidacies: 0, first: None }
    }

    /// Notes a candidacy; the violation once there are too many.
    pub fn candidacy(&mut self, t_ns: u64, node: NodeId) -> Option<Violation> {
        if t_ns < self.from_ns {
            return None;
        }
        self.candidacies += 1;
        let (first_ns, first) = *self.first.get_or_insert((t_ns, node));
        if self.candidacies != self.allowed + 1 {
            return None;
        }
        let message = format!(
            "{} elections were started between {:.1} ms (the faults' end plus the catch-up time) and {:.1} ms, where at most {} may be: the cluster does not settle",
            self.candidacies,
            self.from_ns as f64 / 1e6,
            t_ns as f64 / 1e6,
            self.allowed
        );
        Some(Violation::new("election-storm", message, t_ns, Some(node)).mark(
            first,
            first_ns,
            format!("server {first} stood for election"),
        ))
    }
}

/// Catching up after the faults: every server up at the end has applied at least what
/// had been applied anywhere (so committed) `bound_ns` before the end, when that instant
/// is after the faults ended. A follower that stops advancing its commit index, or a
/// leader that stops sending it entries, fails this though every election succeeds.
pub struct CatchUp {
    quiet_ns: u64,
    end_ns: u64,
    bound_ns: u64,
    /// `end_ns - bound_ns`, when that is after the faults ended (else nothing is judged).
    cutoff_ns: Option<u64>,
    /// The highest index applied anywhere by the cut-off.
    applied_by_cutoff: u64,
}

impl CatchUp {
    pub fn new(quiet_ns: u64, end_ns: u64, bound_ns: u64) -> Self {
        let cutoff_ns = end_ns.checked_sub(bound_ns).filter(|cutoff| *cutoff >= quiet_ns);
        CatchUp { quiet_ns, end_ns, bound_ns, cutoff_ns, applied_by_cutoff: 0 }
    }

    /// Notes an entry applied at `t_ns`.
    pub fn applied(&mut self, t_ns: u64, index: u64) {
        if self.cutoff_ns.is_some_and(|cutoff| t_ns <= cutoff) {
            self.applied_by_cutoff = self.applied_by_cutoff.max(index);
        }
    }

    /// At the end of the run (`now_ns`), the first server up (`(id, last applied)`) that
    /// is behind.
    pub fn check(&self, now_ns: u64, up: &[(NodeId, u64)]) -> Option<Violation> {
        let cutoff = self.cutoff_ns?;
        if now_ns < self.end_ns {
            return None; // stopped early (a limit): the end was not reached
        }
        let &(node, applied) = up.iter().find(|(_, applied)| *applied < self.applied_by_cutoff)?;
        let message = format!(
            "server {node} applied only up to index {applied} by the end, but index {} had been applied (so committed) by {:.1} ms, {:.0} ms before the end and after the faults ended at {:.1} ms",
            self.applied_by_cutoff,
            cutoff as f64 / 1e6,
            self.bound_ns as f64 / 1e6,
            self.quiet_ns as f64 / 1e6
        );
        Some(Violation::new("catch-up", message, now_ns, Some(node)))
    }
}

fn server_of(sim: &Sim<RaftNode>, servers: usize, node: NodeId) -> Option<&Server> {
    if node < servers { sim.process(node).and_then(RaftNode::as_server) } else { None }
}

impl Judge<RaftNode> for RaftJudge {
    fn observe(&mut self, observation: &Observation<RaftObs>, sim: &Sim<RaftNode>) -> Option<Violation> {
        match observation.obs {
            RaftObs::Applied { index, .. } => self.catch_up.applied(observation.t_ns, index),
            RaftObs::BecameCandidate { .. } => {
                if let Some(v) = self.calm.candidacy(observation.t_ns, observation.node) {
                    return Some(v);
                }
            }
            _ => {}
        }
        if matches!(observation.obs, RaftObs::Applied { .. } | RaftObs::Snapshot { .. })
            && let Some(v) = self.applying.observe(observation, sim.incarnation(observation.node))
        {
            return Some(v);
        }
        let servers = self.servers;
        let server = |n| server_of(sim, servers, n);
        if let Some(v) = self.pre_vote.observe(observation, sim, &server, &|| self.invariants.newest_leader()) {
            return Some(v);
        }
        self.invariants.observe(observation, &server, servers)
    }

    fn after_step(&mut self, sim: &Sim<RaftNode>) -> Option<Violation> {
        self.pre_vote.after_step(sim);
        let servers = self.servers;
        self.terms.check(sim.now_ns(), |n| {
            server_of(sim, servers, n).map(|s| (s.current_term(), !sim.storage(n).sync_pending()))
        })
    }

    /// The state machine of the server that applied the most.
    fn final_state(&self, sim: &Sim<RaftNode>) -> Option<std::collections::BTreeMap<String, String>> {
        (0..self.servers)
            .filter_map(|n| server_of(sim, self.servers, n))
            .max_by_key(|s| s.last_applied())
            .map(|s| s.store().data().clone())
    }

    fn client_event(&self, observation: &Observation<RaftObs>) -> Option<Event> {
        match &observation.obs {
            RaftObs::Client(client) => Some(client.to_event(observation.t_ns)),
            _ => None,
        }
    }

    fn role_change(&self, observation: &Observation<RaftObs>) -> Option<(String, Option<u64>)> {
        let (role, term) = match observation.obs {
            RaftObs::BecameLeader { term, .. } => ("leader", term),
            RaftObs::BecameCandidate { term } => ("candidate", term),
            RaftObs::BecameFollower { term } | RaftObs::HeardFromLeader { term, .. } => ("follower", term),
            _ => return None,
        };
        Some((role.to_owned(), Some(term)))
    }

    fn initial_role(&self, node: NodeId) -> Option<String> {
        (node < self.servers).then(|| "follower".to_owned())
    }

    fn restart_role(&self, node: NodeId, sim: &Sim<RaftNode>) -> (Option<String>, Option<u64>) {
        let term = server_of(sim, self.servers, node).map(Server::current_term);
        (self.initial_role(node), term)
    }

    fn history_check(&self) -> HistoryCheck {
        HistoryCheck::Required(ModelKind::Kv)
    }

    fn recovered(&self, sim: &Sim<RaftNode>) -> Result<(), String> {
        let servers = self.servers;
        let up: Vec<&Server> = (0..servers).filter_map(|n| server_of(sim, servers, n)).collect();
        let newest = up.iter().map(|s| s.current_term()).max().unwrap_or(0);
        if up.iter().any(|s| s.role() == Role::Leader && s.current_term() == newest) {
            Ok(())
        } else {
            Err(format!("no leader of the newest term ({newest}) among the {} servers up", up.len()))
        }
    }

    fn target(&self, role: &str, sim: &Sim<RaftNode>) -> Option<NodeId> {
        debug_assert_eq!(role, "leader");
        let servers = self.servers;
        (0..servers)
            .filter_map(|n| server_of(sim, servers, n).map(|s| (n, s)))
            .filter(|(_, s)| s.role() == Role::Leader)
            .max_by_key(|(_, s)| s.current_term())
            .map(|(n, _)| n)
    }

    fn final_check(&mut self, sim: &Sim<RaftNode>) -> Option<Violation> {
        let servers = self.servers;
        if let Some(v) = check_log_matching(&|n| server_of(sim, servers, n), servers, sim.now_ns()) {
            return Some(v);
        }
        let up: Vec<(NodeId, u64)> = (0..servers)
            .filter(|n| !sim.is_paused(*n))
            .filter_map(|n| server_of(sim, servers, n).map(|s| (n, s.last_applied())))
            .collect();
        self.catch_up.check(sim.now_ns(), &up)
    }
}

/// The label of one of Raft's own messages (`None` for a client's request or reply,
/// which each state machine labels itself).
pub fn raft_label<M: Machine>(msg: &Msg<M>) -> Option<String> {
    let yes_no = |granted: bool| if granted { "yes" } else { "no" };
    Some(match msg {
        Msg::RequestVote { term, .. } => format!("RV t{term}"),
        Msg::RequestVoteReply { term, granted } => format!("RV t{term} {}", yes_no(*granted)),
        Msg::PreVote { term, .. } => format!("PV t{term}"),
        Msg::PreVoteReply { term, granted, .. } => format!("PV t{term} {}", yes_no(*granted)),
        Msg::AppendEntries { term, prev_log_index, entries, .. } if entries.is_empty() => {
            format!("AE t{term} hb i{prev_log_index}")
        }
        Msg::AppendEntries { term, prev_log_index, entries, .. } => {
            format!("AE t{term} i{}..{}", prev_log_index + 1, prev_log_index + entries.len() as u64)
        }
        Msg::AppendEntriesReply(reply) if reply.success => format!("AE t{} ok i{}", reply.term, reply.match_index),
        Msg::AppendEntriesReply(reply) => format!("AE t{} no i{}", reply.term, reply.rejected_prev),
        Msg::InstallSnapshot { term, snapshot } => format!("IS t{term} i{}", snapshot.last_index),
        Msg::Request { .. } | Msg::Reply { .. } => return None,
    })
}

/// Time enough, once the faults have ended, to elect a leader (a few election timeouts)
/// and for its heartbeats to carry the commit index everywhere: 4 of the longest election
/// timeouts and 4 heartbeats.
fn catch_up_bound_ns(raft: &super::RaftConfig) -> u64 {
    ((4.0 * raft.election_timeout_ms[1] + 4.0 * raft.heartbeat_ms) * MS as f64) as u64
}

#[cfg(test)]
mod tests {
    use super::{Applying, Calm, CatchUp, Terms, catch_up_bound_ns};
    use crate::raft::{RaftObs, SnapshotSource};
    use sim_core::Observation;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_term_never_decreases_and_the_violation_names_when_the_higher_one_was_first_seen() {
        let mut terms = Terms::new(2);
        let settled = |a: u64, b: u64| move |n: usize| Some(([a, b][n], true));
        assert!(terms.check(10 * MS, settled(3, 1)).is_none());
        assert!(terms.check(20 * MS, |n| [Some((3, true)), None][n]).is_none(), "server 1 down");
        assert!(terms.check(30 * MS, settled(4, 2)).is_none());
        assert!(terms.check(35 * MS, settled(4, 2)).is_none(), "still term 2: first seen stays 30 ms");
        // A term raised while its sync is pending is not durable yet: losing it is fine.
        assert!(terms.check(37 * MS, |n| Some(([4, 5][n], n == 0))).is_none());
        let v = terms.check(40 * MS, settled(4, 1)).expect("server 1 went from 2 back to 1");
        assert_eq!((v.kind.as_str(), v.node, v.t_ns), ("term-monotonic", Some(1), 40 * MS));
        assert!(v.message.contains("server 1 is in term 1, but it had been in term 2"), "{}", v.message);
        assert_eq!((v.marks[0].node, v.marks[0].t_ns), (1, 30 * MS), "first seen in term 2 at 30 ms");
    }

    #[test]
    fn a_state_machine_applies_each_index_once_in_order_and_never_goes_back() {
        let applied = |node, index| Observation {
            t_ns: index * MS,
            node,
            obs: RaftObs::Applied { index, term: 1, digest: index, current_term: 1 },
        };
        let snapshot = |node, last_index, source| Observation {
            t_ns: 100 * MS,
            node,
            obs: RaftObs::Snapshot { last_index, last_term: 1, prefix_hash: 0, source },
        };
        let mut applying = Applying::new(2);
        for index in 1..=3 {
            assert!(applying.observe(&applied(0, index), 0).is_none());
        }
        let again = applying.observe(&applied(0, 3), 0).expect("index 3 twice");
        assert!(again.message.contains("applied index 3 right after index 3 (a second time)"), "{}", again.message);
        let skip = applying.observe(&applied(0, 5), 0).expect("index 4 skipped");
        assert!(skip.message.contains("(skipping entries)"), "{}", skip.message);
        // A snapshot ahead is installed and applying goes on after it; one behind is not.
        assert!(applying.observe(&snapshot(0, 10, SnapshotSource::Installed), 0).is_none());
        assert!(applying.observe(&applied(0, 11), 0).is_none());
        assert!(applying.observe(&snapshot(0, 11, SnapshotSource::Taken), 0).is_none());
        let back = applying.observe(&snapshot(0, 8, SnapshotSource::Installed), 0).expect("went back");
        assert_eq!((back.kind.as_str(), back.node), ("applied-order", Some(0)));
        // A restart (a new incarnation) starts again from its restored snapshot, or 1.
        assert!(applying.observe(&snapshot(0, 8, SnapshotSource::Restored), 1).is_none());
        assert!(applying.observe(&applied(0, 9), 1).is_none());
        assert!(applying.observe(&applied(1, 1), 3).is_none());
    }

    #[test]
    fn elections_after_the_faults_are_bounded() {
        // From 7 s to a 10 s end: 2 + 3 elections are allowed.
        let mut calm = Calm::new(7_000 * MS, 10_000 * MS);
        assert!(calm.candidacy(6_000 * MS, 1).is_none(), "during the faults: not counted");
        for k in 0..5 {
            assert!(calm.candidacy((7_100 + k * 10) * MS, 2).is_none());
        }
        let v = calm.candidacy(7_200 * MS, 3).expect("the sixth is a storm");
        assert_eq!((v.kind.as_str(), v.node, v.marks.len()), ("election-storm", Some(3), 1));
        assert!(calm.candidacy(7_300 * MS, 3).is_none(), "reported once");
    }

    #[test]
    fn the_catch_up_bound_is_four_election_timeouts_and_four_heartbeats() {
        let mut raft = super::super::RaftConfig::default();
        (raft.election_timeout_ms, raft.heartbeat_ms) = ([150.0, 300.0], 50.0);
        assert_eq!(catch_up_bound_ns(&raft), 1_400 * MS);
        raft.heartbeat_ms = 10.0;
        assert_eq!(catch_up_bound_ns(&raft), 1_240 * MS);
    }

    #[test]
    fn servers_must_catch_up_with_what_was_committed_before_the_cutoff() {
        // Faults end at 6 s, the run at 10 s, 1.4 s to catch up: the cut-off is 8.6 s.
        let mut catch_up = CatchUp::new(6_000 * MS, 10_000 * MS, 1_400 * MS);
        catch_up.applied(5_000 * MS, 30);
        catch_up.applied(8_600 * MS, 52);
        catch_up.applied(9_000 * MS, 60); // too late to be owed by everyone
        assert!(catch_up.check(10_000 * MS, &[(0, 60), (1, 52), (2, 55)]).is_none());
        let v = catch_up.check(10_000 * MS, &[(0, 60), (1, 51), (2, 40)]).expect("server 1 is behind");
        assert_eq!((v.kind.as_str(), v.node), ("catch-up", Some(1)));
        assert!(v.message.contains("up to index 51") && v.message.contains("index 52"), "{}", v.message);
        // A run stopped early by a limit is not judged.
        assert!(catch_up.check(9_000 * MS, &[(1, 0)]).is_none());
        // Nor one whose faults ended too late to leave the time.
        let mut late = CatchUp::new(9_000 * MS, 10_000 * MS, 1_400 * MS);
        late.applied(1_000 * MS, 52);
        assert!(late.check(10_000 * MS, &[(1, 0)]).is_none());
    }
}

//! Scripted Raft runs with exact expected outcomes: who leads which term, which index
//! commits when, what a stale leader loses.

use std::rc::Rc;

use protocols::kv::KvWorkload;
use protocols::raft::server::Role;
use protocols::raft::{RaftConfig, RaftNode, RaftObs, Settings, SnapshotSource, TimeoutOverride, Variant};
use sim_core::{Fault, Latency, Limits, LinkConfig, LinkOverride, MS, NetworkConfig, Observation, Sim, SimConfig};

fn overrides(timeouts: &[(usize, f64)]) -> Vec<TimeoutOverride> {
    timeouts.iter().map(|(node, ms)| TimeoutOverride { node: *node, election_timeout_ms: [*ms, *ms] }).collect()
}

fn constant(ms: f64) -> LinkConfig {
    LinkConfig { latency: Latency::Constant { ms }, ..LinkConfig::default() }
}

fn cluster(servers: usize, clients: usize, raft: RaftConfig, network: NetworkConfig, seed: u64) -> Sim<RaftNode> {
    let workload = KvWorkload { rate_per_client: 20.0, keys: 1, ..KvWorkload::default() };
    let settings = Rc::new(Settings {
        servers,
        clients,
        variant: Variant::Correct,
        raft,
        workload,
        clients_stop_ns: 60_000 * MS,
        writes_until_ns: u64::MAX,
    });
    let config = SimConfig { seed, nodes: servers + clients, network, limits: Limits::default() };
    Sim::new(config, move |id| RaftNode::new(id, &settings)).unwrap()
}

/// `(ms, node, term)` of every election won.
fn elections(observations: &[Observation<RaftObs>]) -> Vec<(u64, usize, u64)> {
    observations
        .iter()
        .filter_map(|o| match o.obs {
            RaftObs::BecameLeader { term, .. } => Some((o.t_ns / MS, o.node, term)),
            _ => None,
        })
        .collect()
}

/// `(ms, node, index, entry term)` of every entry applied.
fn applied(observations: &[Observation<RaftObs>]) -> Vec<(u64, usize, u64, u64)> {
    observations
        .iter()
        .filter_map(|o| match o.obs {
            RaftObs::Applied { index, term, .. } => Some((o.t_ns / MS, o.node, index, term)),
            _ => None,
        })
        .collect()
}

#[test]
fn clean_election() {
    let raft = RaftConfig {
        election_timeout_overrides: overrides(&[(0, 500.0), (1, 500.0), (2, 100.0), (3, 500.0), (4, 500.0)]),
        ..RaftConfig::default()
    };
    let mut sim = cluster(5, 0, raft, NetworkConfig { default: constant(5.0), links: vec![], kinds: vec![] }, 1);
    sim.run_until(1_000 * MS);
    // Server 2 times out at 100 ms, its votes come back at 110 ms; its no-op reaches the
    // others at 115 ms and commits when their acknowledgements return at 120 ms.
    assert_eq!(elections(sim.observations()), vec![(110, 2, 1)]);
    let leader_applied: Vec<_> = applied(sim.observations()).into_iter().filter(|a| a.1 == 2).collect();
    assert_eq!(leader_applied, vec![(120, 2, 1, 1)]);
    // Followers learn the commit with the next heartbeat (sent at 160 ms).
    let follower_applied: Vec<_> = applied(sim.observations()).into_iter().filter(|a| a.1 != 2).collect();
    assert_eq!(follower_applied, vec![(165, 0, 1, 1), (165, 1, 1, 1), (165, 3, 1, 1), (165, 4, 1, 1)]);
    for node in 0..5 {
        let server = sim.process(node).unwrap().as_server().unwrap();
        assert_eq!(server.current_term(), 1);
        assert_eq!(server.role(), if node == 2 { Role::Leader } else { Role::Follower });
    }
}

#[test]
fn split_vote_resolved_in_a_later_term() {
    // Four servers; 0 and 1 stand at 100 ms. Server 2 hears 0 first, server 3 hears 1
    // first: two votes each, no majority of three. Server 1's next timeout (drawn from
    // its range) comes before server 0's, so term 2 goes to server 1.
    let raft = RaftConfig {
        election_timeout_overrides: vec![
            TimeoutOverride { node: 0, election_timeout_ms: [100.0, 100.0] },
            TimeoutOverride { node: 1, election_timeout_ms: [100.0, 100.0] },
            TimeoutOverride { node: 2, election_timeout_ms: [1000.0, 1000.0] },
            TimeoutOverride { node: 3, election_timeout_ms: [1000.0, 1000.0] },
        ],
        ..RaftConfig::default()
    };
    let slow = constant(20.0);
    let network = NetworkConfig {
        default: constant(1.0),
        links: vec![
            LinkOverride { from: vec![0], to: vec![3], link: slow.clone() },
            LinkOverride { from: vec![1], to: vec![2], link: slow },
        ],
        kinds: vec![],
    };
    let mut sim = cluster(4, 0, raft, network, 1);
    // Let the first round split, then give server 1 an earlier timeout for the next.
    sim.schedule_fault(150 * MS, Fault::ClockDrift { node: 1, drift_ppm: 200_000.0 }).unwrap();
    sim.run_until(1_000 * MS);
    let won = elections(sim.observations());
    assert_eq!(won.len(), 1, "{won:?}");
    let (at_ms, leader, term) = won[0];
    assert_eq!((leader, term), (1, 2));
    // Server 1's 100 local ms from its reset at 100 ms pass at 100 + 50 + 50/1.2 =
    // 191.7 ms global; the votes of servers 2 and 3 are back 2 ms later.
    assert_eq!(at_ms, 193);
    let terms: Vec<u64> = (0..4).map(|n| sim.process(n).unwrap().as_server().unwrap().current_term()).collect();
    assert_eq!(terms, vec![2, 2, 2, 2]);
}

#[test]
fn isolated_leader_is_replaced_and_its_uncommitted_writes_discarded() {
    // Server 0 leads term 1 (shortest timeout), then is cut off together with client 5
    // at 500 ms. The client's writes reach only server 0: appended, never committed.
    // The majority elects server 1 in term 2; at the heal server 0 steps down and its
    // uncommitted suffix is deleted.
    let raft = RaftConfig {
        election_timeout_overrides: overrides(&[(0, 100.0), (1, 300.0), (2, 600.0), (3, 600.0), (4, 600.0)]),
        ..RaftConfig::default()
    };
    let mut sim = cluster(5, 1, raft, NetworkConfig { default: constant(2.0), links: vec![], kinds: vec![] }, 3);
    sim.schedule_fault(500 * MS, Fault::Partition { groups: vec![vec![0, 5]] }).unwrap();
    sim.schedule_fault(1_500 * MS, Fault::Heal).unwrap();
    sim.run_until(3_000 * MS);
    let won = elections(sim.observations());
    assert_eq!(won.iter().map(|w| (w.1, w.2)).collect::<Vec<_>>(), vec![(0, 1), (1, 2)]);
    assert!(won[1].0 > 500 && won[1].0 < 900, "{won:?}");
    let truncated: Vec<(usize, u64)> = sim
        .observations()
        .iter()
        .filter_map(|o| match o.obs {
            RaftObs::Truncated { from_index, as_leader } => {
                assert!(!as_leader);
                Some((o.node, from_index))
            }
            _ => None,
        })
        .collect();
    assert_eq!(truncated.len(), 1, "{truncated:?}");
    assert_eq!(truncated[0].0, 0);
    // No server ever applied an entry of term 1 past the truncation point.
    assert!(applied(sim.observations()).iter().all(|a| a.3 != 1 || a.2 < truncated[0].1));
    // All logs agree at the end.
    let logs: Vec<(u64, Option<u64>)> = (0..5)
        .map(|n| sim.process(n).unwrap().as_server().unwrap().log())
        .map(|log| (log.last_index(), log.prefix_hash(log.last_index())))
        .collect();
    assert!(logs.windows(2).all(|w| w[0] == w[1]), "{logs:?}");
}

/// `(node, last index, source)` of every snapshot taken, installed or restored.
fn snapshots(observations: &[Observation<RaftObs>]) -> Vec<(usize, u64, SnapshotSource)> {
    observations
        .iter()
        .filter_map(|o| match o.obs {
            RaftObs::Snapshot { last_index, source, .. } => Some((o.node, last_index, source)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_follower_behind_the_leaders_snapshot_installs_it_and_a_restart_restores_one() {
    let raft = RaftConfig {
        election_timeout_overrides: overrides(&[(0, 100.0), (1, 500.0), (2, 500.0), (3, 500.0), (4, 500.0)]),
        snapshot_every: 8,
        ..RaftConfig::default()
    };
    let workload = KvWorkload { rate_per_client: 20.0, keys: 2, ..KvWorkload::default() };
    let settings = Rc::new(Settings {
        servers: 5,
        clients: 2,
        variant: Variant::Correct,
        raft,
        workload,
        // Clients stop before server 4 is back: its state can only come from the snapshot
        // and the entries after it.
        clients_stop_ns: 2_500 * MS,
        writes_until_ns: u64::MAX,
    });
    let config = SimConfig {
        seed: 3,
        nodes: 7,
        network: NetworkConfig { default: constant(5.0), links: vec![], kinds: vec![] },
        limits: Limits::default(),
    };
    let mut sim = Sim::new(config, move |id| RaftNode::new(id, &settings)).unwrap();
    // Server 4 is down from 0.5 s to 3 s while the others apply and compact.
    sim.schedule_fault(500 * MS, Fault::Crash { node: 4, torn_write: false }).unwrap();
    sim.schedule_fault(3_000 * MS, Fault::Restart { node: 4 }).unwrap();
    // Server 1 restarts at 4.5 s and reads its latest snapshot back.
    sim.schedule_fault(4_500 * MS, Fault::Crash { node: 1, torn_write: false }).unwrap();
    sim.schedule_fault(4_510 * MS, Fault::Restart { node: 1 }).unwrap();
    sim.run_until(6_000 * MS);

    let taken = snapshots(sim.observations());
    let leader_snapshots: Vec<u64> =
        taken.iter().filter(|s| s.0 == 0 && s.2 == SnapshotSource::Taken).map(|s| s.1).collect();
    assert!(leader_snapshots.len() >= 5, "{leader_snapshots:?}");
    assert!(leader_snapshots.windows(2).all(|w| w[1] - w[0] >= 8), "every 8 applied entries: {leader_snapshots:?}");
    // Server 4 came back behind the leader's compacted log: it got a snapshot first.
    let installed: Vec<_> = taken.iter().filter(|s| s.0 == 4 && s.2 == SnapshotSource::Installed).collect();
    assert_eq!(installed.len(), 1, "{taken:?}");
    assert!(installed[0].1 > 8);
    assert!(taken.iter().any(|s| s.0 == 1 && s.2 == SnapshotSource::Restored), "{taken:?}");
    // At the end every server applied the same log to the same state.
    let servers: Vec<_> = (0..5).map(|n| sim.process(n).unwrap().as_server().unwrap()).collect();
    let leader = servers[0];
    assert_eq!(leader.role(), Role::Leader);
    assert!(leader.log().base_index() > 0, "the leader compacted its log");
    for server in &servers {
        assert_eq!(server.last_applied(), leader.last_applied());
        assert_eq!(server.store(), leader.store());
        let last = server.log().last_index();
        assert_eq!(last, leader.log().last_index());
        assert_eq!(server.log().prefix_hash(last), leader.log().prefix_hash(last));
    }
    assert!(leader.store().get("k0").is_some_and(|v| !v.is_empty()) || leader.store().get("k1").is_some());
}

#[test]
fn a_term_and_vote_record_torn_by_a_crash_falls_back_to_the_previous_one() {
    let raft = RaftConfig {
        election_timeout_overrides: overrides(&[(0, 100.0), (1, 600.0), (2, 450.0)]),
        ..RaftConfig::default()
    };
    let mut sim = cluster(3, 0, raft, NetworkConfig { default: constant(5.0), links: vec![], kinds: vec![] }, 1);
    // Server 0 leads term 1 (server 1 voted for it and wrote that down); at 300 ms it is
    // cut off, and server 2 stands for term 2 at about 750 ms.
    sim.schedule_fault(300 * MS, Fault::Partition { groups: vec![vec![0]] }).unwrap();
    // Server 1 dies making its next storage write, the record of term 2, which lands torn.
    sim.schedule_fault(310 * MS, Fault::CrashDuringWrite { node: 1, writes: 0, torn_write: true }).unwrap();
    sim.schedule_fault(1_000 * MS, Fault::Restart { node: 1 }).unwrap();
    sim.run_until(1_000 * MS + 1);
    let torn: Vec<usize> = ["raft/term-vote/0", "raft/term-vote/1"]
        .iter()
        .filter_map(|key| sim.storage(1).get(key).map(<[u8]>::len))
        .collect();
    assert_eq!(torn.len(), 2, "both slots written");
    assert!(torn.contains(&16) && torn.iter().any(|len| *len < 16), "one whole, one torn: {torn:?}");
    // It recovered term 1 and its vote for server 0 from the whole slot, not an empty
    // state in which it could vote again in term 1.
    let server = sim.process(1).unwrap().as_server().unwrap();
    assert_eq!((server.current_term(), server.voted_for()), (1, Some(0)));
}

/// Five servers on 5 ms links; server 0 times out first (100 ms), the others at 300 ms.
fn five_with_leader_0(pre_vote: bool) -> Sim<RaftNode> {
    let raft = RaftConfig {
        election_timeout_overrides: overrides(&[(0, 100.0), (1, 300.0), (2, 300.0), (3, 300.0), (4, 300.0)]),
        pre_vote,
        ..RaftConfig::default()
    };
    cluster(5, 0, raft, NetworkConfig { default: constant(5.0), links: vec![], kinds: vec![] }, 1)
}

#[test]
fn pre_vote_keeps_a_rejoining_server_from_deposing_the_leader() {
    let run = |pre_vote: bool| {
        let mut sim = five_with_leader_0(pre_vote);
        // Server 4 is cut off from 0.3 s to 2 s; its election timeout fires again and again.
        sim.schedule_fault(300 * MS, Fault::Partition { groups: vec![vec![4]] }).unwrap();
        sim.schedule_fault(2_000 * MS, Fault::Heal).unwrap();
        sim.run_until(1_999 * MS);
        let isolated_term = sim.process(4).unwrap().as_server().unwrap().current_term();
        sim.run_until(4_000 * MS);
        (isolated_term, elections(sim.observations()), sim)
    };
    // Without pre-vote, each timeout raises server 4's term; at the heal that term
    // reaches the others and leader 0 steps down: server 4, whose log is as complete as
    // theirs (it holds the no-op of term 1), wins term 6 after the heal.
    let (term, won, _) = run(false);
    assert_eq!(term, 6, "one term per 300 ms timeout from 0.6 s");
    assert_eq!(won, vec![(110, 0, 1), (2_025, 4, 6)]);
    // With pre-vote, nobody grants server 4 a pre-vote while leader 0 is alive: its term
    // stays 1, and leader 0 leads term 1 to the end. (Its own election took one more
    // round trip, the pre-vote's: 100 ms + 10 ms + 10 ms.)
    let (term, won, sim) = run(true);
    assert_eq!(term, 1);
    assert_eq!(won, vec![(120, 0, 1)]);
    for node in 0..5 {
        let server = sim.process(node).unwrap().as_server().unwrap();
        assert_eq!(server.current_term(), 1);
        assert_eq!(server.role(), if node == 0 { Role::Leader } else { Role::Follower });
    }
}

/// The disruptive server of the thesis (section 9.6): server 4 stops hearing the leader
/// (a one-way cut from 0 to 4) but reaches everyone. Followers that hear from the leader
/// refuse its pre-votes, so its term never rises; without pre-vote it deposes the leader.
#[test]
fn pre_vote_is_refused_by_followers_that_hear_from_the_leader() {
    let run = |pre_vote: bool| {
        let mut sim = five_with_leader_0(pre_vote);
        sim.schedule_fault(300 * MS, Fault::Cut { from: vec![0], to: vec![4] }).unwrap();
        sim.schedule_fault(2_000 * MS, Fault::Heal).unwrap();
        sim.run_until(3_000 * MS);
        let terms: Vec<u64> = (0..5).map(|n| sim.process(n).unwrap().as_server().unwrap().current_term()).collect();
        (elections(sim.observations()), terms)
    };
    let (won, terms) = run(true);
    assert_eq!(won, vec![(120, 0, 1)]);
    assert_eq!(terms, vec![1; 5]);
    // Without pre-vote, server 4's first timeout (0.6 s) already takes the leadership.
    let (won, _) = run(false);
    assert!(won.len() > 1 && won[1].1 != 0 && won[1].0 < 700, "{won:?}");
}

/// A pre-vote answer that arrives after its round is over is not counted in the next:
/// the answers to server 2 travel 400 ms, so the grants of its first round (given at
/// 0.1 s, before any leader existed) arrive during its second round, after leader 0 was
/// elected. Counted, they would start an election that raises the term and deposes it.
#[test]
fn a_pre_vote_answer_counts_only_in_its_own_round() {
    let raft = RaftConfig {
        election_timeout_overrides: overrides(&[(0, 150.0), (1, 1_000.0), (2, 100.0)]),
        pre_vote: true,
        ..RaftConfig::default()
    };
    let slow = LinkOverride { from: vec![0, 1], to: vec![2], link: constant(400.0) };
    let mut sim = cluster(3, 0, raft, NetworkConfig { default: constant(5.0), links: vec![slow], kinds: vec![] }, 1);
    sim.run_until(2_000 * MS);
    let pre_vote_rounds =
        sim.observations().iter().filter(|o| o.node == 2 && matches!(o.obs, RaftObs::BecameCandidate { .. })).count();
    assert_eq!(pre_vote_rounds, 0, "server 2 never stood for election");
    assert_eq!(elections(sim.observations()), vec![(170, 0, 1)]);
    let terms: Vec<u64> = (0..3).map(|n| sim.process(n).unwrap().as_server().unwrap().current_term()).collect();
    assert_eq!(terms, vec![1, 1, 1]);
}

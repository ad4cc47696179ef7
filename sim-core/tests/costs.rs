//! Time that work takes (`sim_core::costs`), scripted with exact expectations: a vote sent
//! after a 5 ms sync leaves 5 ms later; a crash during the sync loses the write and the
//! vote; two syncs queue on one disk; two messages that arrive together are handled one
//! after the other; and with no costs set nothing changes.

use serde::Serialize;
use sim_core::costs::{NodeProcessing, NodeSync};
use sim_core::{
    Costs, Ctx, Fault, Latency, Limits, LinkConfig, MS, NetworkConfig, NodeId, Process, ProcessingCosts, Sim,
    SimConfig, StorageCosts, TimerId,
};

/// Node 0 asks node 1 for votes at the local times in `asks`; node 1 persists its vote
/// (`vote-N`, synced) and answers. Every node reports what it receives.
#[derive(Clone, Default)]
struct Voter {
    asks: Vec<u64>,
}

#[derive(Clone, Debug, Hash, PartialEq, Serialize)]
enum Obs {
    Got { from: NodeId, value: u64 },
    Voted { value: u64 },
    Recovered { votes: usize },
}

impl Process for Voter {
    type Msg = u64;
    type Obs = Obs;

    fn on_start(&mut self, ctx: &mut Ctx<'_, u64, Obs>) {
        let votes = ctx.storage().scan_prefix("vote-").count();
        ctx.observe(Obs::Recovered { votes });
        for (i, at) in self.asks.iter().enumerate() {
            ctx.set_timer_at(*at, i as u64).unwrap();
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, u64, Obs>, from: NodeId, value: u64) {
        ctx.observe(Obs::Got { from, value });
        if ctx.id() == 1 {
            // Figure 2's rule: persist before answering.
            ctx.storage().put(format!("vote-{value}"), vec![1]);
            ctx.storage().sync();
            ctx.observe(Obs::Voted { value });
            ctx.send(from, value + 100);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, u64, Obs>, _timer: TimerId, tag: u64) {
        ctx.send(1, tag);
    }
}

fn sim(asks: Vec<u64>, costs: &Costs) -> Sim<Voter> {
    let network = NetworkConfig {
        default: LinkConfig { latency: Latency::Constant { ms: 1.0 }, ..LinkConfig::default() },
        links: Vec::new(),
        kinds: Vec::new(),
    };
    let config = SimConfig { seed: 1, nodes: 2, network, limits: Limits::default() };
    let mut sim =
        Sim::new(config, move |node| Voter { asks: if node == 0 { asks.clone() } else { Vec::new() } }).unwrap();
    sim.set_costs(costs).unwrap();
    sim
}

fn sync_ms(ms: f64) -> Costs {
    Costs {
        storage: StorageCosts { sync: Some(Latency::Constant { ms }), nodes: Vec::new() },
        processing: ProcessingCosts::default(),
    }
}

/// (time in ms, node, observation) of every observation.
fn seen(sim: &Sim<Voter>) -> Vec<(f64, NodeId, Obs)> {
    sim.observations().iter().map(|o| (o.t_ns as f64 / MS as f64, o.node, o.obs.clone())).collect()
}

#[test]
fn a_vote_sent_after_a_5_ms_sync_leaves_5_ms_later() {
    let mut s = sim(vec![10 * MS], &sync_ms(5.0));
    s.run_until(100 * MS);
    let got: Vec<_> = seen(&s).into_iter().filter(|(_, _, o)| !matches!(o, Obs::Recovered { .. })).collect();
    // Asked at 10 ms, received at 11; the vote is durable and answered at 16; back at 17.
    assert_eq!(
        got,
        vec![
            (11.0, 1, Obs::Got { from: 0, value: 0 }),
            (16.0, 1, Obs::Voted { value: 0 }),
            (17.0, 0, Obs::Got { from: 1, value: 100 }),
        ]
    );
    assert!(s.storage(1).get("vote-0").is_some());
    assert!(!s.storage(1).has_unsynced(), "the completed sync made the vote durable");
}

#[test]
fn without_costs_the_vote_leaves_at_once() {
    let mut s = sim(vec![10 * MS], &Costs::default());
    s.run_until(100 * MS);
    let got: Vec<_> = seen(&s).into_iter().filter(|(_, _, o)| !matches!(o, Obs::Recovered { .. })).collect();
    assert_eq!(got[1], (11.0, 1, Obs::Voted { value: 0 }));
    assert_eq!(got[2], (12.0, 0, Obs::Got { from: 1, value: 100 }));
    // Setting zero costs is no change at all: the same run, the same fingerprint.
    let mut other = sim(vec![10 * MS], &Costs { storage: StorageCosts::default(), ..Costs::default() });
    other.run_until(100 * MS);
    assert_eq!(s.fingerprint(), other.fingerprint());
}

#[test]
fn a_crash_during_the_sync_loses_the_write_and_the_vote() {
    let mut s = sim(vec![10 * MS], &sync_ms(5.0));
    // The vote was written at 11 ms; its sync would complete at 16.
    s.schedule_fault(13 * MS, Fault::Crash { node: 1, torn_write: false }).unwrap();
    s.schedule_fault(20 * MS, Fault::Restart { node: 1 }).unwrap();
    s.run_until(100 * MS);
    let got = seen(&s);
    assert!(!got.iter().any(|(_, _, o)| matches!(o, Obs::Voted { .. })), "{got:?}");
    assert!(!got.iter().any(|(_, n, o)| *n == 0 && matches!(o, Obs::Got { .. })), "no answer left: {got:?}");
    assert_eq!(got.last().unwrap(), &(20.0, 1, Obs::Recovered { votes: 0 }), "the vote was never durable");
}

#[test]
fn two_syncs_queue_on_one_disk() {
    // Two requests arrive at 11 and 12 ms; each sync takes 5 ms, the second waits for the
    // first: durable at 16 and 21, answered then.
    let mut s = sim(vec![10 * MS, 11 * MS], &sync_ms(5.0));
    s.run_until(100 * MS);
    let voted: Vec<(f64, Obs)> =
        seen(&s).into_iter().filter(|(_, _, o)| matches!(o, Obs::Voted { .. })).map(|(t, _, o)| (t, o)).collect();
    assert_eq!(voted, vec![(16.0, Obs::Voted { value: 0 }), (21.0, Obs::Voted { value: 1 })]);
}

#[test]
fn a_crash_after_the_first_sync_keeps_it_and_loses_the_second() {
    let mut s = sim(vec![10 * MS, 11 * MS], &sync_ms(5.0));
    s.schedule_fault(18 * MS, Fault::Crash { node: 1, torn_write: false }).unwrap();
    s.schedule_fault(30 * MS, Fault::Restart { node: 1 }).unwrap();
    s.run_until(100 * MS);
    assert_eq!(seen(&s).last().unwrap(), &(30.0, 1, Obs::Recovered { votes: 1 }));
}

#[test]
fn two_messages_arriving_together_are_handled_one_after_the_other() {
    // Both asks leave at 10 ms and arrive at 11; handling one takes 3 ms on node 1.
    let costs = Costs {
        storage: StorageCosts::default(),
        processing: ProcessingCosts {
            cost: None,
            nodes: vec![NodeProcessing { nodes: vec![1], cost: Latency::Constant { ms: 3.0 } }],
        },
    };
    let mut s = sim(vec![10 * MS, 10 * MS], &costs);
    s.run_until(100 * MS);
    let at_1: Vec<(f64, Obs)> = seen(&s)
        .into_iter()
        .filter(|(_, n, o)| *n == 1 && !matches!(o, Obs::Recovered { .. }))
        .map(|(t, _, o)| (t, o))
        .collect();
    // The first is handled at 11 and its effects leave when its handling ends, at 14; the
    // second waited 3 ms in the queue, is handled at 14 and done at 17.
    assert_eq!(
        at_1,
        vec![
            (14.0, Obs::Got { from: 0, value: 0 }),
            (14.0, Obs::Voted { value: 0 }),
            (17.0, Obs::Got { from: 0, value: 1 }),
            (17.0, Obs::Voted { value: 1 }),
        ]
    );
    assert_eq!(s.queue_delays_ns(), &[3 * MS]);
    assert_eq!(s.metrics().queue_len_max, 1);
}

#[test]
fn sync_and_processing_costs_add_up_and_a_node_out_of_range_is_refused() {
    let costs = Costs {
        storage: StorageCosts {
            sync: None,
            nodes: vec![NodeSync { nodes: vec![1], sync: Latency::Constant { ms: 5.0 } }],
        },
        processing: ProcessingCosts { cost: Some(Latency::Constant { ms: 2.0 }), nodes: Vec::new() },
    };
    let mut s = sim(vec![10 * MS], &costs);
    s.run_until(100 * MS);
    let voted: Vec<f64> =
        seen(&s).into_iter().filter(|(_, _, o)| matches!(o, Obs::Voted { .. })).map(|(t, _, _)| t).collect();
    // Node 0's timer takes 2 ms to handle, so the ask leaves at 12 and arrives at 13;
    // node 1 asks its disk while it handles it (busy until 15), and the sync completes at
    // 18: the answer leaves after both.
    assert_eq!(voted, vec![18.0]);
    let bad = Costs {
        storage: StorageCosts {
            sync: None,
            nodes: vec![NodeSync { nodes: vec![7], sync: Latency::Constant { ms: 5.0 } }],
        },
        ..Costs::default()
    };
    let config = SimConfig { seed: 1, nodes: 2, ..SimConfig::default() };
    let mut s = Sim::new(config, |_| Voter::default()).unwrap();
    let error = s.set_costs(&bad).unwrap_err().to_string();
    assert!(error.contains("unknown node 7 in storage.nodes"), "{error}");
}

//! Scripted engine scenarios with exact expectations: faults, clocks, limits, determinism.

use serde::Serialize;
use sim_core::{
    Ctx, Fault, Latency, Limits, LinkConfig, MS, MemorySink, NetworkConfig, NodeId, Process, SEC, Sim, SimConfig,
    SimError, StopReason, TimerId, TraceSink,
};

/// A node that sends on a script and reports everything that happens to it.
#[derive(Clone, Default)]
struct Probe {
    /// `(local time, destination, value)`: sends made when the local clock reads that time.
    sends: Vec<(u64, NodeId, u64)>,
    /// Local times at which a bare timer fires.
    timers: Vec<u64>,
    /// Write `durable` and sync, then write `volatile` without a sync, at start.
    write_storage: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Serialize)]
enum Obs {
    Got { from: NodeId, value: u64 },
    Timer { tag: u64, local_ns: u64 },
    Recovered { durable: bool, volatile: bool },
}

const SEND_TAG_BASE: u64 = 1_000;

impl Process for Probe {
    type Msg = u64;
    type Obs = Obs;

    fn on_start(&mut self, ctx: &mut Ctx<'_, u64, Obs>) {
        let durable = ctx.storage().get("durable").is_some();
        let volatile = ctx.storage().get("volatile").is_some();
        ctx.observe(Obs::Recovered { durable, volatile });
        if self.write_storage && !durable {
            ctx.storage().put("durable", b"d".to_vec());
            ctx.storage().sync();
            ctx.storage().put("volatile", b"v".to_vec());
        }
        for (index, (at, _, _)) in self.sends.iter().enumerate() {
            if *at >= ctx.now() {
                ctx.set_timer_at(*at, SEND_TAG_BASE + index as u64).unwrap();
            }
        }
        for (tag, at) in self.timers.iter().enumerate() {
            // After a restart, deadlines already passed are skipped.
            if *at >= ctx.now() {
                ctx.set_timer_at(*at, tag as u64).unwrap();
            }
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, u64, Obs>, from: NodeId, value: u64) {
        ctx.observe(Obs::Got { from, value });
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, u64, Obs>, _timer: TimerId, tag: u64) {
        if tag >= SEND_TAG_BASE {
            let (_, to, value) = self.sends[(tag - SEND_TAG_BASE) as usize];
            ctx.send(to, value);
        } else {
            let local_ns = ctx.now();
            ctx.observe(Obs::Timer { tag, local_ns });
        }
    }
}

fn constant_network(ms: f64) -> NetworkConfig {
    NetworkConfig {
        default: LinkConfig { latency: Latency::Constant { ms }, ..LinkConfig::default() },
        links: Vec::new(),
        kinds: Vec::new(),
    }
}

fn sim_of(probes: Vec<Probe>, network: NetworkConfig) -> Sim<Probe> {
    let config = SimConfig { seed: 1, nodes: probes.len(), network, limits: Limits::default() };
    Sim::new(config, move |node| probes[node].clone()).unwrap()
}

/// `(global ms, node, value)` of every delivery.
fn deliveries(sim: &Sim<Probe>) -> Vec<(u64, NodeId, u64)> {
    sim.observations()
        .iter()
        .filter_map(|o| match o.obs {
            Obs::Got { value, .. } => Some((o.t_ns / MS, o.node, value)),
            _ => None,
        })
        .collect()
}

fn timer_fires(sim: &Sim<Probe>) -> Vec<(u64, u64, u64)> {
    sim.observations()
        .iter()
        .filter_map(|o| match o.obs {
            Obs::Timer { tag, local_ns } => Some((o.t_ns, tag, local_ns)),
            _ => None,
        })
        .collect()
}

fn sender(sends: &[(u64, NodeId, u64)]) -> Probe {
    Probe { sends: sends.iter().map(|(ms, to, v)| (ms * MS, *to, *v)).collect(), ..Probe::default() }
}

#[test]
fn partition_blocks_and_heal_restores() {
    // Node 0 sends to 1 at 10 ms (before), 30 ms (during) and 60 ms (after the partition).
    let mut sim = sim_of(vec![sender(&[(10, 1, 1), (30, 1, 2), (60, 1, 3)]), Probe::default()], constant_network(5.0));
    sim.schedule_fault(20 * MS, Fault::Partition { groups: vec![vec![0], vec![1]] }).unwrap();
    sim.schedule_fault(50 * MS, Fault::Heal).unwrap();
    assert_eq!(sim.run(), StopReason::Quiescent);
    assert_eq!(deliveries(&sim), vec![(15, 1, 1), (65, 1, 3)]);
    assert_eq!(sim.metrics().dropped_partition, 1);
}

#[test]
fn message_in_flight_when_partition_starts_is_lost() {
    // Sent at 10 ms, due at 20 ms; the partition starts at 15 ms.
    let mut sim = sim_of(vec![sender(&[(10, 1, 1)]), Probe::default()], constant_network(10.0));
    sim.schedule_fault(15 * MS, Fault::Partition { groups: vec![vec![0], vec![1]] }).unwrap();
    sim.run();
    assert_eq!(deliveries(&sim), vec![]);
    assert_eq!(sim.metrics().dropped_partition, 1);
}

#[test]
fn one_way_cut_blocks_one_direction_only() {
    let mut sim = sim_of(vec![sender(&[(10, 1, 1)]), sender(&[(10, 0, 2)])], constant_network(5.0));
    sim.schedule_fault(0, Fault::Cut { from: vec![0], to: vec![1] }).unwrap();
    sim.run();
    assert_eq!(deliveries(&sim), vec![(15, 0, 2)]);
}

#[test]
fn bridge_node_talks_to_both_sides() {
    let probes = vec![sender(&[(10, 2, 1), (10, 1, 2)]), sender(&[(10, 2, 3)]), Probe::default()];
    let mut sim = sim_of(probes, constant_network(5.0));
    sim.schedule_fault(0, Fault::Bridge { left: vec![0], bridge: 1, right: vec![2] }).unwrap();
    sim.run();
    let mut got = deliveries(&sim);
    got.sort();
    assert_eq!(got, vec![(15, 1, 2), (15, 2, 3)]);
}

#[test]
fn drop_and_duplicate_rates_are_within_bounds() {
    let count = 100_000u64;
    let sends: Vec<(u64, NodeId, u64)> = (0..count).map(|i| (i * 1_000, 1, i)).collect();
    let network = NetworkConfig {
        default: LinkConfig { latency: Latency::Constant { ms: 1.0 }, drop: 0.2, duplicate: 0.1, fifo: false },
        links: Vec::new(),
        kinds: Vec::new(),
    };
    let probes = vec![Probe { sends, ..Probe::default() }, Probe::default()];
    let mut sim = sim_of(probes, network);
    sim.run();
    let metrics = sim.metrics();
    // Binomial standard deviations: drop sqrt(1e5*.2*.8) ~ 126; duplicate of the 80,000
    // survivors sqrt(8e4*.1*.9) ~ 85. Five sigma either way.
    assert!(metrics.dropped_loss.abs_diff(20_000) < 650, "dropped {}", metrics.dropped_loss);
    let survivors = count - metrics.dropped_loss;
    let expected_duplicates = survivors / 10;
    assert!(metrics.messages_duplicated.abs_diff(expected_duplicates) < 450, "{}", metrics.messages_duplicated);
    assert_eq!(metrics.messages_delivered, survivors + metrics.messages_duplicated);
}

#[test]
fn fifo_links_keep_send_order() {
    let sends: Vec<(u64, NodeId, u64)> = (0..200).map(|i| (i * 100, 1, i)).collect();
    let latency = Latency::Uniform { min_ms: 1.0, max_ms: 50.0 };
    let fifo = NetworkConfig {
        default: LinkConfig { latency: latency.clone(), fifo: true, ..LinkConfig::default() },
        links: vec![],
        kinds: vec![],
    };
    let mut sim = sim_of(vec![Probe { sends: sends.clone(), ..Probe::default() }, Probe::default()], fifo);
    sim.run();
    let order: Vec<u64> = deliveries(&sim).iter().map(|d| d.2).collect();
    assert_eq!(order, (0..200).collect::<Vec<_>>());
    // Without FIFO, independent delays reorder.
    let loose =
        NetworkConfig { default: LinkConfig { latency, ..LinkConfig::default() }, links: vec![], kinds: vec![] };
    let mut sim = sim_of(vec![Probe { sends, ..Probe::default() }, Probe::default()], loose);
    sim.run();
    let order: Vec<u64> = deliveries(&sim).iter().map(|d| d.2).collect();
    assert_ne!(order, (0..200).collect::<Vec<_>>());
}

#[test]
fn crash_loses_unsynced_writes_and_keeps_synced() {
    let probes = vec![Probe { write_storage: true, ..Probe::default() }];
    let mut sim = sim_of(probes, constant_network(1.0));
    sim.schedule_fault(10 * MS, Fault::Crash { node: 0, torn_write: false }).unwrap();
    sim.schedule_fault(20 * MS, Fault::Restart { node: 0 }).unwrap();
    sim.run();
    let recovered: Vec<Obs> = sim.observations().iter().map(|o| o.obs.clone()).collect();
    assert_eq!(
        recovered,
        vec![Obs::Recovered { durable: false, volatile: false }, Obs::Recovered { durable: true, volatile: false },]
    );
}

#[test]
fn crash_drops_messages_to_the_node_and_cancels_its_timers() {
    let probes = vec![sender(&[(10, 1, 1), (40, 1, 2)]), Probe { timers: vec![30 * MS], ..Probe::default() }];
    let mut sim = sim_of(probes, constant_network(5.0));
    sim.schedule_fault(12 * MS, Fault::Crash { node: 1, torn_write: false }).unwrap();
    sim.schedule_fault(35 * MS, Fault::Restart { node: 1 }).unwrap();
    sim.run();
    // The message in flight at the crash is lost; the one sent after the restart arrives.
    assert_eq!(deliveries(&sim), vec![(45, 1, 2)]);
    assert_eq!(sim.metrics().dropped_node_down, 1);
    // The 30 ms timer set before the crash died with it (the restarted node skips it).
    assert_eq!(timer_fires(&sim), vec![]);
}

#[test]
fn pause_delays_messages_and_timers_by_its_length() {
    let probes = vec![sender(&[(10, 1, 7)]), Probe { timers: vec![20 * MS], ..Probe::default() }];
    let mut sim = sim_of(probes, constant_network(5.0));
    sim.schedule_fault(12 * MS, Fault::Pause { node: 1, duration_ms: 100.0 }).unwrap();
    sim.run();
    // Both were due inside the pause (15 ms and 20 ms) and run when it ends, in due order.
    assert_eq!(deliveries(&sim), vec![(112, 1, 7)]);
    assert_eq!(timer_fires(&sim), vec![(112 * MS, 0, 112 * MS)]);
    let order: Vec<bool> = sim.observations().iter().skip(2).map(|o| matches!(o.obs, Obs::Got { .. })).collect();
    assert_eq!(order, vec![true, false]);
}

#[test]
fn a_local_second_with_ten_percent_drift() {
    let probes = vec![Probe { timers: vec![SEC], ..Probe::default() }];
    let mut sim = sim_of(probes, constant_network(1.0));
    // The node sets its timer at start; the drift applied at the same instant reschedules it.
    sim.schedule_fault(0, Fault::ClockDrift { node: 0, drift_ppm: 100_000.0 }).unwrap();
    sim.run();
    // Local 1 s is global 1/1.1 s = 909,090,909.09 ns: the timer fires at the first
    // whole nanosecond past it, when the local clock reads 1 s and 1 ns.
    assert_eq!(timer_fires(&sim), vec![(909_090_910, 0, SEC + 1)]);
    assert_eq!(sim.local_time_ns(0), 1_000_000_001);
}

#[test]
fn a_clock_jump_moves_now_at_once_and_fires_due_timers() {
    let probes = vec![Probe { timers: vec![500 * MS, 2 * SEC], ..Probe::default() }];
    let mut sim = sim_of(probes, constant_network(1.0));
    sim.schedule_fault(100 * MS, Fault::ClockJump { node: 0, delta_ms: 1_000.0 }).unwrap();
    assert_eq!(sim.run_until(100 * MS), None);
    assert_eq!(sim.local_time_ns(0), 1_100 * MS);
    sim.run();
    // The 500 ms timer was overtaken by the jump and fires at the jump; the 2 s timer
    // fires when local time reads 2 s, 900 ms of true time later.
    assert_eq!(timer_fires(&sim), vec![(100 * MS, 0, 1_100 * MS), (1_000 * MS, 1, 2 * SEC)]);
}

#[test]
fn a_backward_jump_delays_timers() {
    let probes = vec![Probe { timers: vec![500 * MS], ..Probe::default() }];
    let mut sim = sim_of(probes, constant_network(1.0));
    sim.schedule_fault(100 * MS, Fault::ClockJump { node: 0, delta_ms: -100.0 }).unwrap();
    sim.run();
    assert_eq!(timer_fires(&sim), vec![(600 * MS, 0, 500 * MS)]);
}

#[test]
fn limits_stop_a_run_with_their_reason() {
    let sends: Vec<(u64, NodeId, u64)> = (0..100).map(|i| (i * MS, 1, i)).collect();
    let make = |limits: Limits| {
        let probes = [Probe { sends: sends.clone(), ..Probe::default() }, Probe::default()];
        let config = SimConfig { seed: 1, nodes: 2, network: constant_network(1.0), limits };
        Sim::new(config, move |node| probes[node].clone()).unwrap()
    };
    let mut by_events = make(Limits { max_events: 10, ..Limits::default() });
    assert_eq!(by_events.run(), StopReason::EventLimit { limit: 10 });
    assert_eq!(by_events.metrics().events, 10);
    let mut by_time = make(Limits { max_time_ns: 50 * MS, ..Limits::default() });
    assert_eq!(by_time.run(), StopReason::TimeLimit { limit_ns: 50 * MS });
    assert!(by_time.now_ns() <= 50 * MS);
    let mut by_queue = make(Limits { max_pending: 50, ..Limits::default() });
    assert_eq!(by_queue.run(), StopReason::QueueLimit { limit: 50 });
}

#[test]
fn bad_input_is_a_typed_error() {
    let mut sim = sim_of(vec![Probe::default(), Probe::default()], constant_network(1.0));
    assert_eq!(
        sim.schedule_fault(0, Fault::Crash { node: 5, torn_write: false }),
        Err(SimError::UnknownNode { node: 5, nodes: 2, context: "crash" })
    );
    let bad_link = LinkConfig { drop: -0.5, ..LinkConfig::default() };
    assert!(matches!(
        sim.schedule_fault(0, Fault::SetLinks { from: vec![], to: vec![], link: bad_link }),
        Err(SimError::InvalidProbability { what: "drop", .. })
    ));
    let nan_network = NetworkConfig {
        default: LinkConfig { duplicate: f64::NAN, ..LinkConfig::default() },
        links: vec![],
        kinds: vec![],
    };
    let config = SimConfig { seed: 1, nodes: 1, network: nan_network, limits: Limits::default() };
    assert!(matches!(Sim::new(config, |_| Probe::default()), Err(SimError::InvalidProbability { .. })));
    let config = SimConfig { seed: 1, nodes: 0, ..SimConfig::default() };
    assert!(matches!(Sim::new(config, |_| Probe::default()), Err(SimError::InvalidClusterSize { .. })));
}

#[test]
fn a_timer_in_the_past_is_a_typed_error() {
    struct PastTimer;
    impl Process for PastTimer {
        type Msg = u64;
        type Obs = String;
        fn on_start(&mut self, ctx: &mut Ctx<'_, u64, String>) {
            ctx.set_timer(10 * MS, 0);
        }
        fn on_message(&mut self, _: &mut Ctx<'_, u64, String>, _: NodeId, _: u64) {}
        fn on_timer(&mut self, ctx: &mut Ctx<'_, u64, String>, _: TimerId, _: u64) {
            let result = ctx.set_timer_at(5 * MS, 1);
            ctx.observe(format!("{result:?}"));
        }
    }
    let config = SimConfig { seed: 1, nodes: 1, ..SimConfig::default() };
    let mut sim = Sim::new(config, |_| PastTimer).unwrap();
    sim.run();
    let expected = format!("{:?}", Err::<(), _>(SimError::TimerInPast { deadline_ns: 5 * MS, now_ns: 10 * MS }));
    assert_eq!(sim.observations()[0].obs, expected);
}

#[test]
fn cancelled_timers_do_not_fire() {
    struct Canceller;
    impl Process for Canceller {
        type Msg = u64;
        type Obs = u64;
        fn on_start(&mut self, ctx: &mut Ctx<'_, u64, u64>) {
            let first = ctx.set_timer(10 * MS, 1);
            ctx.set_timer(20 * MS, 2);
            assert!(ctx.cancel_timer(first));
            assert!(!ctx.cancel_timer(first));
        }
        fn on_message(&mut self, _: &mut Ctx<'_, u64, u64>, _: NodeId, _: u64) {}
        fn on_timer(&mut self, ctx: &mut Ctx<'_, u64, u64>, _: TimerId, tag: u64) {
            ctx.observe(tag);
        }
    }
    let config = SimConfig { seed: 1, nodes: 1, ..SimConfig::default() };
    let mut sim = Sim::new(config, |_| Canceller).unwrap();
    sim.run();
    let fired: Vec<u64> = sim.observations().iter().map(|o| o.obs).collect();
    assert_eq!(fired, vec![2]);
}

#[test]
fn same_seed_same_fingerprint_other_seed_other() {
    let a = sim_core::bench::run_relay(42, 5, 4, 50_000);
    let b = sim_core::bench::run_relay(42, 5, 4, 50_000);
    let c = sim_core::bench::run_relay(43, 5, 4, 50_000);
    assert_eq!(a.fingerprint, b.fingerprint);
    assert_ne!(a.fingerprint, c.fingerprint);
    assert_eq!(a.metrics.events, 50_000);
}

/// Pins the fingerprint of one run. A change here means runs recorded with an earlier
/// build no longer replay to the same fingerprint: only change it on purpose, and say so.
#[test]
fn fingerprint_is_stable_across_processes_and_builds() {
    let outcome = sim_core::bench::run_relay(7, 5, 2, 10_000);
    assert_eq!(format!("{:016x}", outcome.fingerprint), PINNED_RELAY_FINGERPRINT);
}

const PINNED_RELAY_FINGERPRINT: &str = "a70966fcb66d7453";

#[test]
fn trace_records_every_kind_of_event() {
    let network = NetworkConfig {
        default: LinkConfig { latency: Latency::Constant { ms: 5.0 }, duplicate: 1.0, ..LinkConfig::default() },
        links: vec![],
        kinds: vec![],
    };
    let mut sim =
        sim_of(vec![sender(&[(10, 1, 1), (30, 1, 2)]), Probe { timers: vec![50 * MS], ..Probe::default() }], network);
    let sink = MemorySink::default();
    let boxed: Box<dyn TraceSink<u64, Obs>> = Box::new(sink.clone());
    sim.set_trace_sink(boxed);
    sim.schedule_fault(20 * MS, Fault::Partition { groups: vec![vec![0]] }).unwrap();
    sim.run();
    let kinds: Vec<String> = sink
        .lines()
        .iter()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["event"].as_str().unwrap().to_owned())
        .collect();
    for kind in ["start", "send", "duplicate", "deliver", "drop", "timer", "fault", "observe", "stop"] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} in {kinds:?}");
    }
}

/// Node 1 pokes node 0 at start and reports what it receives. On a message, node 0
/// writes `k0`, `k1`, `k2`, each synced and followed by a send and an observation; at
/// start, every node reports the length of each key it finds.
#[derive(Clone, Default)]
struct Writer;

impl Process for Writer {
    type Msg = u64;
    type Obs = Vec<usize>;

    fn on_start(&mut self, ctx: &mut Ctx<'_, u64, Vec<usize>>) {
        let lengths = (0..3).map(|k| ctx.storage().get(&format!("k{k}")).map_or(0, <[u8]>::len)).collect();
        ctx.observe(lengths);
        if ctx.id() == 1 {
            ctx.send(0, 99);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, u64, Vec<usize>>, from: NodeId, value: u64) {
        if ctx.id() == 1 {
            ctx.observe(vec![999, value as usize]);
            return;
        }
        for k in 0..3 {
            ctx.storage().put(format!("k{k}"), vec![7; 100]);
            ctx.storage().sync();
            ctx.send(from, k);
            ctx.observe(vec![100 + k as usize]);
        }
    }

    fn on_timer(&mut self, _: &mut Ctx<'_, u64, Vec<usize>>, _: TimerId, _: u64) {}
}

#[test]
fn a_crash_during_a_write_stops_the_handler_there() {
    for torn_write in [false, true] {
        let config = SimConfig { seed: 1, nodes: 2, network: constant_network(1.0), limits: Limits::default() };
        let mut sim = Sim::new(config, |_| Writer).unwrap();
        // Node 0 makes one more write, then dies making the next; it restarts at 50 ms.
        sim.schedule_fault(MS / 2, Fault::CrashDuringWrite { node: 0, writes: 1, torn_write }).unwrap();
        sim.schedule_fault(50 * MS, Fault::Restart { node: 0 }).unwrap();
        sim.run();
        let seen: Vec<(usize, u64, Vec<usize>)> =
            sim.observations().iter().map(|o| (o.node, o.t_ns / MS, o.obs.clone())).collect();
        // The poke arrives at 1 ms: k0 is written, synced, sent and observed; the crash
        // strikes making k1, so neither its send nor anything after it happens.
        assert_eq!(seen[..3], [(0, 0, vec![0, 0, 0]), (1, 0, vec![0, 0, 0]), (0, 1, vec![100])]);
        // Node 1 got k0's message only.
        assert_eq!(seen[3], (1, 2, vec![999, 0]));
        // The restart finds k0 whole and k1 lost, or cut short when torn.
        let (node, at_ms, lengths) = &seen[4];
        assert_eq!((*node, *at_ms), (0, 50));
        assert_eq!(lengths[0], 100);
        if torn_write {
            assert!(lengths[1] < 100, "{lengths:?}");
        } else {
            assert_eq!(lengths[1], 0);
        }
        assert_eq!(lengths[2], 0);
        assert_eq!(seen.len(), 5, "{seen:?}");
        assert_eq!(sim.metrics().messages_sent, 2, "the poke and k0's message");
    }
}

#[test]
fn a_restart_calls_off_a_crash_during_write_that_has_not_struck() {
    let config = SimConfig { seed: 1, nodes: 2, network: constant_network(1.0), limits: Limits::default() };
    let mut sim = Sim::new(config, |_| Writer).unwrap();
    sim.schedule_fault(MS / 4, Fault::CrashDuringWrite { node: 0, writes: 1, torn_write: true }).unwrap();
    sim.schedule_fault(MS / 2, Fault::Restart { node: 0 }).unwrap();
    sim.run();
    let received: Vec<Vec<usize>> = sim.observations().iter().filter(|o| o.node == 1).map(|o| o.obs.clone()).collect();
    assert_eq!(received, vec![vec![0, 0, 0], vec![999, 0], vec![999, 1], vec![999, 2]]);
}

/// A node that sends one message as kind `slow` and one without a kind to node 1.
struct KindSender;

impl Process for KindSender {
    type Msg = u64;
    type Obs = (u64, u64);

    fn on_start(&mut self, ctx: &mut Ctx<'_, u64, (u64, u64)>) {
        if ctx.id() == 0 {
            ctx.send_as(1, 1, "slow");
            ctx.send(1, 2);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, u64, (u64, u64)>, _from: NodeId, msg: u64) {
        let now = ctx.now();
        ctx.observe((msg, now));
    }

    fn on_timer(&mut self, _ctx: &mut Ctx<'_, u64, (u64, u64)>, _timer: TimerId, _tag: u64) {}
}

#[test]
fn a_message_kind_takes_its_own_latency() {
    let network = NetworkConfig {
        default: LinkConfig { latency: Latency::Constant { ms: 1.0 }, ..LinkConfig::default() },
        links: Vec::new(),
        kinds: vec![sim_core::KindLatency { kind: "slow".into(), latency: Latency::Constant { ms: 7.0 } }],
    };
    let config = SimConfig { seed: 1, nodes: 2, network, limits: Limits::default() };
    let mut sim = Sim::new(config, |_| KindSender).unwrap();
    sim.run_until(100 * MS);
    let seen: Vec<(u64, u64)> = sim.observations().iter().map(|o| o.obs).collect();
    assert_eq!(seen, vec![(2, MS), (1, 7 * MS)]);
}

//! The single-instance Redis lock, scripted: a GC pause past the ttl loses an update
//! without fencing, and fencing refuses the stale write.

use std::rc::Rc;

use checker::Violation;
use protocols::locks::{LockNode, LockObs, LockOracle, LockSettings, LockVariant};
use sim_core::{Fault, Latency, Limits, LinkConfig, MS, NetworkConfig, Sim, SimConfig};

/// Server 0, storage 1, clients 2 and 3; a 100 ms ttl. Client 3 acquires first (at 14 ms),
/// reads the counter, works 20 ms and sends its write at 36 ms; from 30 to 40 ms its
/// messages to the storage take 300 ms (what a GC pause between its validity check and
/// its write would do).
fn write_held(variant: LockVariant) -> (Option<Violation>, LockOracle, Vec<LockObs>) {
    let slow = LinkConfig { latency: Latency::Constant { ms: 300.0 }, ..LinkConfig::default() };
    let hold = Fault::SetLinks { from: vec![3], to: vec![1], link: slow };
    run(variant, &[(30, hold), (40, Fault::ResetLinks)])
}

fn run(variant: LockVariant, faults: &[(u64, Fault)]) -> (Option<Violation>, LockOracle, Vec<LockObs>) {
    let settings = Rc::new(LockSettings {
        servers: vec![0],
        redlock: false,
        redlock_request_timeout_ms: 10,
        storage: 1,
        variant,
        persistent: true,
        volatile_servers: vec![],
        ttl_ms: 100,
        retry_ms: [10, 20],
        work_ms: [20, 20],
        request_timeout_ms: 1_000,
        db: None,
        zk: None,
    });
    let network = NetworkConfig {
        default: LinkConfig { latency: Latency::Constant { ms: 1.0 }, ..LinkConfig::default() },
        links: vec![],
        kinds: vec![],
    };
    let config = SimConfig { seed: 1, nodes: 4, network, limits: Limits::default() };
    let mut sim = Sim::new(config, move |id| LockNode::new(id, &settings)).unwrap();
    for (at_ms, fault) in faults {
        sim.schedule_fault(at_ms * MS, fault.clone()).unwrap();
    }
    let mut oracle = LockOracle::new(variant == LockVariant::Fencing, Some(1));
    let mut seen = 0;
    let mut first = None;
    while sim.now_ns() < 600 * MS && sim.step().is_none() {
        let observations = sim.observations();
        for observation in &observations[seen..] {
            if first.is_none() {
                first = oracle.observe(observation, &|node| sim.local_time_ns(node));
            }
        }
        seen = observations.len();
    }
    let facts = sim.observations().iter().map(|o| o.obs.clone()).collect();
    (first, oracle, facts)
}

fn who_acquired(facts: &[LockObs]) -> Vec<String> {
    facts
        .iter()
        .filter_map(|f| match f {
            LockObs::Acquired { token, .. } => Some(token.clone()),
            _ => None,
        })
        .collect()
}

/// A 300 ms pause at 20 ms, before client 3 writes: when it wakes its validity is over by
/// its own clock, so it gives up instead of writing.
#[test]
fn a_pause_before_the_write_is_caught_by_the_clients_validity_check() {
    let (violation, _, facts) = run(LockVariant::Correct, &[(20, Fault::Pause { node: 3, duration_ms: 300.0 })]);
    assert_eq!(violation, None);
    assert!(facts.iter().any(|f| matches!(f, LockObs::Abandoned { token } if token == "c3-1")), "{facts:?}");
    let writes = facts.iter().filter(|f| matches!(f, LockObs::Access { token, write: true } if token == "c3-1"));
    assert_eq!(writes.count(), 0);
}

#[test]
fn a_write_held_in_the_network_loses_an_update_without_fencing() {
    let (violation, _, facts) = write_held(LockVariant::Correct);
    let violation = violation.expect("the stale write is accepted");
    assert_eq!(violation.kind, "unsafe-access");
    assert!(violation.message.contains("accepted a write from c3-1 (lock generation 1)"), "{}", violation.message);
    // Client 3 held first; client 2 acquired only after the key expired at 113 ms.
    let acquired = who_acquired(&facts);
    assert!(acquired[0] == "c3-1" && acquired[1].starts_with("c2-"), "{acquired:?}");
}

#[test]
fn a_write_held_in_the_network_is_refused_with_fencing() {
    let (violation, oracle, facts) = write_held(LockVariant::Fencing);
    assert_eq!(violation, None);
    let refused: Vec<&LockObs> = facts.iter().filter(|f| matches!(f, LockObs::Refused { .. })).collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(matches!(refused[0], LockObs::Refused { holder, fence: 1, .. } if holder == "c3-1"), "{refused:?}");
    // Client 3's belief had ended by its own clock when client 2 acquired: no overlap.
    assert_eq!(oracle.overlaps, 0);
}

/// The server's clock jumps 200 ms ahead at 15 ms, just after client 3 acquired and sent
/// its read: the key expires early, and client 2's next attempt succeeds while client 3's
/// own clock says it still holds the lock.
#[test]
fn server_clock_jump_breaks_mutual_exclusion() {
    let jump = Fault::ClockJump { node: 0, delta_ms: 200.0 };
    let (violation, _, _) = run(LockVariant::Correct, &[(15, jump.clone())]);
    let violation = violation.expect("two clients believe they hold the lock");
    assert_eq!(violation.kind, "mutual-exclusion");
    assert!(violation.message.contains("while client 3 still believed it held it as c3-1"), "{}", violation.message);
    // With fencing the overlapping belief is a warning, but client 3 still writes after
    // its lock really ended (the storage refuses it): that is the violation, fencing or
    // not.
    let (violation, oracle, facts) = run(LockVariant::Fencing, &[(15, jump)]);
    assert_eq!(oracle.overlaps, 1);
    let violation = violation.expect("a write after the lock ended");
    assert_eq!(violation.kind, "mutual-exclusion");
    assert!(
        violation.message.contains("client 3 made a write as c3-1 after its lock had really ended"),
        "{}",
        violation.message
    );
    assert!(facts.iter().any(|f| matches!(f, LockObs::Refused { holder, .. } if holder == "c3-1")), "{facts:?}");
}

/// The server's commands, one by one: GET, INCR, compare-and-delete, DEL, SET NX PX with
/// expiry on the server's own clock.
#[test]
fn redis_commands() {
    use protocols::locks::{LockMsg, RedisReply, RedisServer};
    use sim_core::{Ctx, NodeId, Process, TimerId};

    /// Sends a fixed script of commands to server 0 and keeps the replies.
    struct Script {
        commands: Vec<(u64, LockMsg)>,
        replies: Vec<RedisReply>,
    }
    enum Node {
        Server(RedisServer),
        Client(Script),
    }
    impl Process for Node {
        type Msg = LockMsg;
        type Obs = LockObs;
        fn on_start(&mut self, ctx: &mut Ctx<'_, LockMsg, LockObs>) {
            if let Node::Client(script) = self {
                for (index, (at_ms, _)) in script.commands.iter().enumerate() {
                    ctx.set_timer(at_ms * MS, index as u64);
                }
            }
        }
        fn on_message(&mut self, ctx: &mut Ctx<'_, LockMsg, LockObs>, from: NodeId, msg: LockMsg) {
            match (self, msg) {
                (Node::Server(server), msg) => server.on_message(ctx, from, msg),
                (Node::Client(script), LockMsg::Reply { reply, .. }) => script.replies.push(reply),
                _ => {}
            }
        }
        fn on_timer(&mut self, ctx: &mut Ctx<'_, LockMsg, LockObs>, _: TimerId, tag: u64) {
            if let Node::Client(script) = self {
                ctx.send(0, script.commands[tag as usize].1.clone());
            }
        }
    }
    let s = |v: &str| v.to_owned();
    let commands = vec![
        (10, LockMsg::SetNxPx { req: 1, key: s("k"), value: s("a"), ttl_ms: 50 }),
        (20, LockMsg::SetNxPx { req: 2, key: s("k"), value: s("b"), ttl_ms: 50 }),
        (30, LockMsg::Get { req: 3, key: s("k") }),
        (40, LockMsg::DelIfEquals { req: 4, key: s("k"), value: s("b") }),
        (100, LockMsg::Get { req: 5, key: s("k") }),
        (110, LockMsg::Incr { req: 6, key: s("n") }),
        (120, LockMsg::Incr { req: 7, key: s("n") }),
        (130, LockMsg::Del { req: 8, key: s("n") }),
    ];
    let network = NetworkConfig {
        default: LinkConfig { latency: Latency::Constant { ms: 1.0 }, ..LinkConfig::default() },
        links: vec![],
        kinds: vec![],
    };
    let config = SimConfig { seed: 1, nodes: 2, network, limits: Limits::default() };
    let mut sim = Sim::new(config, move |id| {
        if id == 0 {
            Node::Server(RedisServer::new(false))
        } else {
            Node::Client(Script { commands: commands.clone(), replies: Vec::new() })
        }
    })
    .unwrap();
    sim.run();
    let Some(Node::Client(script)) = sim.process(1) else { panic!("client 1 is up") };
    assert_eq!(
        script.replies,
        vec![
            RedisReply::Ok,
            RedisReply::Nil,
            RedisReply::Bulk(s("a")),
            RedisReply::Int(0),
            // Expired 50 ms after it was set at 11 ms, on the server's clock.
            RedisReply::Nil,
            RedisReply::Int(1),
            RedisReply::Int(2),
            RedisReply::Int(1),
        ]
    );
}

//! The single-instance Redis lock, scripted: a GC pause past the ttl loses an update
//! without fencing, and fencing refuses the stale write.

use std::rc::Rc;

use checker::Violation;
use protocols::locks::{LockNode, LockObs, LockOracle, LockSettings, LockVariant};
use sim_core::{Fault, Latency, Limits, LinkConfig, MS, NetworkConfig, Sim, SimConfig};

/// Server 0, storage 1, clients 2 and 3; a 100 ms ttl. Client 3 acquires first (at 13 ms)
/// and reads the counter; at 20 ms, before it writes, it is paused for 300 ms.
fn gc_pause(variant: LockVariant) -> (Option<Violation>, LockOracle, Vec<LockObs>) {
    run(variant, 20, Fault::Pause { node: 3, duration_ms: 300.0 })
}

fn run(variant: LockVariant, at_ms: u64, fault: Fault) -> (Option<Violation>, LockOracle, Vec<LockObs>) {
    let settings = Rc::new(LockSettings {
        servers: vec![0],
        redlock: false,
        redlock_request_timeout_ms: 10,
        storage: 1,
        variant,
        persistent: true,
        ttl_ms: 100,
        retry_ms: [10, 20],
        work_ms: [20, 20],
        request_timeout_ms: 1_000,
    });
    let network = NetworkConfig {
        default: LinkConfig { latency: Latency::Constant { ms: 1.0 }, ..LinkConfig::default() },
        links: vec![],
    };
    let config = SimConfig { seed: 1, nodes: 4, network, limits: Limits::default() };
    let mut sim = Sim::new(config, move |id| LockNode::new(id, &settings)).unwrap();
    sim.schedule_fault(at_ms * MS, fault).unwrap();
    let mut oracle = LockOracle::new(variant == LockVariant::Fencing, true);
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

#[test]
fn redis_lock_gc_pause_loses_an_update_without_fencing() {
    let (violation, _, facts) = gc_pause(LockVariant::Correct);
    let violation = violation.expect("the stale write is accepted");
    assert_eq!(violation.kind, "unsafe-access");
    assert!(violation.message.contains("accepted a write from c3-1 (lock generation 1)"), "{}", violation.message);
    // Client 3 held first; client 2 acquired only after the key expired at 113 ms.
    let acquired = who_acquired(&facts);
    assert!(acquired[0] == "c3-1" && acquired[1].starts_with("c2-"), "{acquired:?}");
}

#[test]
fn redis_lock_gc_pause_is_safe_with_fencing() {
    let (violation, oracle, facts) = gc_pause(LockVariant::Fencing);
    assert_eq!(violation, None);
    let refused: Vec<&LockObs> = facts.iter().filter(|f| matches!(f, LockObs::Refused { .. })).collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(matches!(refused[0], LockObs::Refused { holder, fence: 1, .. } if holder == "c3-1"), "{refused:?}");
    // Client 3's belief had ended by its own clock when client 2 acquired: no overlap.
    assert_eq!(oracle.overlaps, 0);
}

/// The server's clock jumps 200 ms ahead at 14 ms, just after client 3 acquired: the key
/// expires early, and client 2's next attempt succeeds while client 3's own clock says it
/// still holds the lock.
#[test]
fn server_clock_jump_breaks_mutual_exclusion() {
    let jump = Fault::ClockJump { node: 0, delta_ms: 200.0 };
    let (violation, _, _) = run(LockVariant::Correct, 14, jump.clone());
    let violation = violation.expect("two clients believe they hold the lock");
    assert_eq!(violation.kind, "mutual-exclusion");
    assert!(violation.message.contains("while client 3 still believed it held it as c3-1"), "{}", violation.message);
    // With fencing the overlap is a warning, and the storage keeps the counter safe.
    let (violation, oracle, _) = run(LockVariant::Fencing, 14, jump);
    assert_eq!(violation, None);
    assert_eq!(oracle.overlaps, 1);
}

//! The staleness experiment: Bailis et al.'s "Probabilistically Bounded Staleness"
//! (VLDB 2012) measured on the real store in the simulator rather than computed from a
//! formula.
//!
//! A trial is a fresh cluster of N+1 servers: the key's N home replicas and one more
//! server that coordinates every request (a proxy, as in the paper's WARS model, so that
//! every replica is reached over the network). A probe client writes `v1`, `v2`, ...
//! `vK` one after another, each once the one before committed (W acknowledgements),
//! then reads the key at every offset t of a grid after the last commit. Messages take
//! the latency of their kind: the write request (W), its acknowledgement (A), the read
//! request (R) and the read response (S); the client's own legs take none. Read repair
//! and anti-entropy are off (the paper's model has neither) and the quorum is strict.
//!
//! For each t: the share of reads that returned the last committed version, and the
//! share more than k versions behind. The t at which the first reaches 99.9% is the
//! paper's headline figure.

use std::rc::Rc;

use serde::{Deserialize, Serialize};
use sim_core::{KindLatency, Latency, Limits, LinkConfig, MS, MixturePart, NetworkConfig, Sim, SimConfig};

use super::node::{Probe, Shared};
use super::store::{Resolution, Ring};
use super::{DynObs, DynamoConfig, DynamoNode, Quorum, Variant};
use crate::kv::KvWorkload;
use crate::kv_client::KvClientSettings;

/// The four legs' latencies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Legs {
    pub write_request: Latency,
    pub write_ack: Latency,
    pub read_request: Latency,
    pub read_response: Latency,
}

fn mix(pareto_weight: f64, scale_ms: f64, shape: f64, rate_per_ms: f64) -> Latency {
    Latency::Mixture {
        parts: vec![
            MixturePart { weight: pareto_weight, latency: Latency::Pareto { scale_ms, shape } },
            MixturePart {
                weight: 1.0 - pareto_weight,
                latency: Latency::ExponentialTail { base_ms: 0.0, tail_mean_ms: 1.0 / rate_per_ms },
            },
        ],
    }
}

/// The production latency fits of the paper's Table 3, as published there (mixtures of
/// a Pareto and an exponential; A, R and S share one fit): LinkedIn on SSDs and on
/// disks, and Yammer.
pub fn profile(name: &str) -> Option<Legs> {
    let (write, ars) = match name {
        "lnkd-ssd" => (mix(0.9122, 0.235, 10.0, 1.66), mix(0.0006, 1.05, 1.51, 183.0)),
        "lnkd-disk" => (mix(0.38, 1.05, 1.51, 0.183), mix(0.0006, 1.05, 1.51, 183.0)),
        "ymmr" => (mix(0.939, 3.0, 3.35, 0.0028), mix(0.982, 1.5, 3.8, 0.0217)),
        _ => return None,
    };
    Some(Legs { write_request: write, write_ack: ars.clone(), read_request: ars.clone(), read_response: ars })
}

/// The profiles [`profile`] knows.
pub const PROFILES: [&str; 3] = ["lnkd-ssd", "lnkd-disk", "ymmr"];

/// What to run.
#[derive(Clone, Debug)]
pub struct StalenessSettings {
    pub n: usize,
    pub r: usize,
    pub w: usize,
    pub trials: u64,
    /// Versions written per trial (k-staleness is measured up to `versions - 1`).
    pub versions: u64,
    pub legs: Legs,
    /// The read offsets after the commit, in ms.
    pub t_ms: Vec<f64>,
    pub seed: u64,
}

/// The curve.
#[derive(Clone, Debug, Serialize)]
pub struct Curve {
    pub n: usize,
    pub r: usize,
    pub w: usize,
    pub trials: u64,
    pub t_ms: Vec<f64>,
    /// Per offset: the share of reads that returned the last committed version.
    pub p_consistent: Vec<f64>,
    /// Per k = 1, 2, ...: per offset, the share of reads more than k versions behind.
    pub p_more_than_k_behind: Vec<Vec<f64>>,
    /// The first offset of the grid at which `p_consistent` reaches 99.9%.
    pub t_999_ms: Option<f64>,
    /// Reads that never answered within an hour of virtual time (not counted).
    pub unanswered: u64,
    /// The median and 99th percentile of a put's commit latency, in ms (this store's
    /// version-vector put reads R replicas before it writes, so both phases count).
    pub write_p50_ms: f64,
    pub write_p99_ms: f64,
}

/// A log-spaced grid from 0 to `max_ms` (0, then `points - 1` offsets from `max_ms / 1e4`).
pub fn grid(max_ms: f64, points: usize) -> Vec<f64> {
    let mut t = vec![0.0];
    let low = max_ms / 1e4;
    for i in 0..points.saturating_sub(1) {
        let f = i as f64 / (points.saturating_sub(2).max(1)) as f64;
        t.push(low * (max_ms / low).powf(f));
    }
    t
}

/// Checks the numbers; the message names the flag.
pub fn validate(s: &StalenessSettings) -> Result<(), String> {
    if !(1..=15).contains(&s.n) {
        return Err(format!("--n must be 1 to 15, got {}", s.n));
    }
    if !(1..=s.n).contains(&s.r) || !(1..=s.n).contains(&s.w) {
        return Err(format!("--r and --w must be 1 to --n ({}), got {} and {}", s.n, s.r, s.w));
    }
    if !(1..=10_000_000).contains(&s.trials) {
        return Err(format!("--trials must be 1 to 10000000, got {}", s.trials));
    }
    if !(2..=20).contains(&s.versions) {
        return Err(format!("--versions must be 2 to 20, got {}", s.versions));
    }
    for leg in [&s.legs.write_request, &s.legs.write_ack, &s.legs.read_request, &s.legs.read_response] {
        sim_core::network::LinkModel::new(&LinkConfig { latency: leg.clone(), ..LinkConfig::default() })
            .map_err(|e| format!("--legs: {e}"))?;
    }
    Ok(())
}

/// Runs the experiment.
pub fn run(s: &StalenessSettings) -> Curve {
    let servers = s.n + 1;
    let config = DynamoConfig {
        n: s.n,
        r: s.r,
        w: s.w,
        quorum: Quorum::Strict,
        resolution: Resolution::VersionVectors,
        coordinator_timeout_ms: 3_600_000.0,
        handoff_ms: 3_600_000.0,
        anti_entropy_ms: 0.0,
        read_repair: false,
        ..DynamoConfig::default()
    };
    let ring = Ring::new(servers, config.vnodes);
    let coordinator = ring.walk(super::node::PROBE_KEY)[s.n];
    let shared = Rc::new(Shared {
        servers,
        config,
        variant: Variant::Correct,
        ring,
        clients: Rc::new(KvClientSettings {
            servers: Vec::new(),
            first_client: servers,
            clients: 0,
            workload: KvWorkload::default(),
            clients_stop_ns: 0,
            writes_until_ns: 0,
        }),
    });
    let read_after_ns: Rc<Vec<u64>> = Rc::new(s.t_ms.iter().map(|t| (t * MS as f64) as u64).collect());
    let kinds = [
        ("write_request", &s.legs.write_request),
        ("write_ack", &s.legs.write_ack),
        ("read_request", &s.legs.read_request),
        ("read_response", &s.legs.read_response),
    ];
    let network = NetworkConfig {
        default: LinkConfig { latency: Latency::Constant { ms: 0.0 }, ..LinkConfig::default() },
        links: Vec::new(),
        kinds: kinds
            .iter()
            .map(|(kind, latency)| KindLatency { kind: (*kind).into(), latency: (*latency).clone() })
            .collect(),
    };
    let points = s.t_ms.len();
    let mut consistent = vec![0u64; points];
    let mut answered = vec![0u64; points];
    let mut behind_more = vec![vec![0u64; points]; (s.versions - 1) as usize];
    let mut commits_ms = Vec::new();
    let mut unanswered = 0;
    for trial in 0..s.trials {
        let probe_id = servers;
        let (shared, reads) = (Rc::clone(&shared), Rc::clone(&read_after_ns));
        let versions = s.versions;
        let factory = move |id| {
            if id == probe_id {
                DynamoNode::Probe(Probe::new(coordinator, versions, Rc::clone(&reads)))
            } else {
                DynamoNode::new(id, &shared)
            }
        };
        let limits = Limits { max_time_ns: 3_600_000 * MS, ..Limits::default() };
        let config =
            SimConfig { seed: s.seed.wrapping_add(trial), nodes: servers + 1, network: network.clone(), limits };
        let mut sim = Sim::new(config, factory).expect("validated network");
        let mut seen = 0;
        while seen < points {
            if sim.step().is_some() {
                break;
            }
            for observation in sim.drain_observations() {
                match observation.obs {
                    DynObs::Staleness { read, behind } => {
                        seen += 1;
                        answered[read] += 1;
                        consistent[read] += u64::from(behind == 0);
                        for (k, count) in behind_more.iter_mut().enumerate() {
                            count[read] += u64::from(behind > k as u64 + 1);
                        }
                    }
                    DynObs::Committed { latency_ns } => commits_ms.push(latency_ns as f64 / 1e6),
                    _ => {}
                }
            }
        }
        unanswered += (points - seen) as u64;
    }
    commits_ms.sort_by(f64::total_cmp);
    let percentile = |p: f64| {
        commits_ms
            .get(((p * commits_ms.len() as f64) as usize).min(commits_ms.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    let share = |hits: &[u64]| -> Vec<f64> {
        hits.iter().zip(&answered).map(|(h, a)| if *a == 0 { 0.0 } else { *h as f64 / *a as f64 }).collect()
    };
    let p_consistent = share(&consistent);
    let t_999_ms = s.t_ms.iter().zip(&p_consistent).find(|(_, p)| **p >= 0.999).map(|(t, _)| *t);
    Curve {
        n: s.n,
        r: s.r,
        w: s.w,
        trials: s.trials,
        t_ms: s.t_ms.clone(),
        p_consistent,
        p_more_than_k_behind: behind_more.iter().map(|b| share(b)).collect(),
        t_999_ms,
        unanswered,
        write_p50_ms: percentile(0.5),
        write_p99_ms: percentile(0.99),
    }
}

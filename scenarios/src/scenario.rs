//! Scenario files: one JSON document that fixes a run (with the seed).
//!
//! The format is documented in `docs/scenarios.md`. Unknown fields are rejected, and a
//! bad file is reported with its name, line and column and what was expected.

use std::collections::BTreeMap;

use protocols::kv::KvWorkload;
use protocols::raft::RaftConfig;
use serde::{Deserialize, Serialize};
use sim_core::{Fault, NetworkConfig};

/// A whole scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The protocol: `raft`.
    pub protocol: String,
    /// A known-bug variant, or none for the correct protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// A pinned seed (saved failures have one); `--seed` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    pub cluster: Cluster,
    #[serde(default)]
    pub network: NetworkConfig,
    #[serde(default)]
    pub raft: RaftConfig,
    /// Settings of the lock protocols (`redis-lock`).
    #[serde(default)]
    pub locks: LocksConfig,
    #[serde(default)]
    pub workload: KvWorkload,
    #[serde(default)]
    pub nemesis: Nemesis,
    pub duration: Durations,
    #[serde(default)]
    pub checks: Checks,
}

/// Settings of the lock protocols.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocksConfig {
    pub ttl_ms: u64,
    /// Wait before retrying a taken lock, drawn uniformly.
    pub retry_ms: [u64; 2],
    /// Time inside the critical section, drawn uniformly.
    pub work_ms: [u64; 2],
    pub request_timeout_ms: u64,
    /// RedLock's per-instance timeout while acquiring.
    pub redlock_request_timeout_ms: u64,
    /// The server syncs every write (a restart keeps its keys), or keeps them in memory.
    pub persistent: bool,
    /// Servers that keep their keys in memory only, whatever `persistent` says.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volatile_servers: Vec<usize>,
}

impl Default for LocksConfig {
    fn default() -> Self {
        LocksConfig {
            ttl_ms: 100,
            retry_ms: [10, 20],
            work_ms: [10, 30],
            request_timeout_ms: 1_000,
            redlock_request_timeout_ms: 10,
            persistent: true,
            volatile_servers: Vec::new(),
        }
    }
}

/// The protocols a scenario can name.
pub const PROTOCOLS: [&str; 3] = ["raft", "redis-lock", "redlock"];

/// How many nodes a scenario's cluster has: for `redis-lock`, the protected storage node
/// sits between the servers and the clients.
pub fn nodes_of(scenario: &Scenario) -> usize {
    let extra = usize::from(scenario.protocol != "raft");
    scenario.cluster.servers + extra + scenario.cluster.clients
}

/// How many nodes of each role. Servers have ids `0..servers`, clients follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    pub servers: usize,
    pub clients: usize,
}

/// The fault phase and the healed phase.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Durations {
    /// Faults happen in `[0, faults_ms)`; at `faults_ms` everything is healed.
    pub faults_ms: f64,
    /// After the heal the run goes on this long, to judge liveness.
    pub healed_ms: f64,
}

/// The faults: an explicit schedule, a generator, or both.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nemesis {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedule: Vec<Action>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<Generator>,
}

/// A fault at a point of global time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    pub at_ms: f64,
    pub fault: Fault,
    /// Aim the fault at whichever server leads at that instant (as Jepsen's nemeses
    /// partition the primary): its `node` becomes the leader, and for a partition the
    /// leader joins the first group. Skipped when no server leads.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_leader: bool,
}

/// A fault generator. With `swarm`, each seed first picks which kinds are on (each with
/// probability one half, at least one), so that some runs see one kind of fault alone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generator {
    /// Fault kinds and their relative weights: `partition`, `partition_leader`, `crash`,
    /// `crash_leader`, `pause`, `drop`, `duplicate`, `delay`, `clock_drift`, `clock_jump`.
    pub kinds: BTreeMap<String, f64>,
    /// Time between the starts of two faults, drawn uniformly, in milliseconds.
    #[serde(default = "default_interval")]
    pub interval_ms: [f64; 2],
    /// How long a fault lasts before it is undone, drawn uniformly.
    #[serde(default = "default_fault_duration")]
    pub fault_ms: [f64; 2],
    #[serde(default = "yes")]
    pub swarm: bool,
    /// Crashes, pauses and clock faults may hit clients too, not only servers.
    #[serde(default)]
    pub target_clients: bool,
    /// How long a pause lasts, drawn uniformly.
    #[serde(default = "default_pause")]
    pub pause_ms: [f64; 2],
    /// The largest clock drift a `clock_drift` fault sets, either way.
    #[serde(default = "default_drift")]
    pub drift_ppm_max: f64,
    /// The largest clock jump, either way.
    #[serde(default = "default_jump")]
    pub jump_ms_max: f64,
}

fn default_pause() -> [f64; 2] {
    [50.0, 1_500.0]
}

fn default_drift() -> f64 {
    200_000.0
}

fn default_jump() -> f64 {
    500.0
}

/// The node ids of a scenario's clients (after the servers, and after the storage node
/// for the lock protocols).
pub fn client_ids(scenario: &Scenario) -> std::ops::Range<usize> {
    let first = nodes_of(scenario) - scenario.cluster.clients;
    first..nodes_of(scenario)
}

fn default_interval() -> [f64; 2] {
    [300.0, 1_500.0]
}

fn default_fault_duration() -> [f64; 2] {
    [200.0, 2_000.0]
}

fn yes() -> bool {
    true
}

/// The fault kinds a generator knows.
pub const GENERATOR_KINDS: [&str; 10] = [
    "partition",
    "partition_leader",
    "crash",
    "crash_leader",
    "pause",
    "drop",
    "duplicate",
    "delay",
    "clock_drift",
    "clock_jump",
];

/// What judges the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Checks {
    /// Check the client history for linearizability.
    pub linearizability: bool,
    /// Search-step budget of the linearizability check.
    pub budget_steps: u64,
    /// Liveness after the heal; none to skip.
    pub liveness: Option<Liveness>,
}

impl Default for Checks {
    fn default() -> Self {
        Checks { linearizability: true, budget_steps: 20_000_000, liveness: Some(Liveness::default()) }
    }
}

/// After the heal, a leader must be elected within `leader_within_ms`, and every
/// operation invoked after that must complete within `op_within_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Liveness {
    pub leader_within_ms: f64,
    pub op_within_ms: f64,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness { leader_within_ms: 3_000.0, op_within_ms: 2_000.0 }
    }
}

/// A scenario that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{origin}{position}: {message}")]
pub struct ScenarioError {
    pub origin: String,
    pub position: String,
    pub message: String,
}

impl ScenarioError {
    pub fn new(origin: &str, message: impl Into<String>) -> Self {
        ScenarioError { origin: origin.to_owned(), position: String::new(), message: message.into() }
    }
}

/// Parses and validates a scenario; `origin` names the file in errors.
pub fn parse(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
    let scenario: Scenario = serde_json::from_str(text).map_err(|e| ScenarioError {
        origin: origin.to_owned(),
        position: format!(":{}:{}", e.line(), e.column()),
        message: strip_position(&e.to_string()),
    })?;
    validate(&scenario).map_err(|message| ScenarioError::new(origin, message))?;
    Ok(scenario)
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

fn positive_or_zero(name: &str, value: f64) -> Result<(), String> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(format!("{name} must be a non-negative number of milliseconds, got {value}"))
    }
}

fn range(name: &str, [min, max]: [f64; 2]) -> Result<(), String> {
    positive_or_zero(name, min)?;
    positive_or_zero(name, max)?;
    if max < min {
        return Err(format!("{name} must be [min, max] with min <= max, got [{min}, {max}]"));
    }
    Ok(())
}

/// Checks what the types cannot: known protocol and variant, numbers in range, node ids.
pub fn validate(scenario: &Scenario) -> Result<(), String> {
    if !PROTOCOLS.contains(&scenario.protocol.as_str()) {
        return Err(format!("unknown protocol {:?}; known: {}", scenario.protocol, PROTOCOLS.join(", ")));
    }
    let known: Vec<&str> = match scenario.protocol.as_str() {
        "raft" => protocols::raft::Variant::ALL.iter().map(|v| v.name()).collect(),
        "redis-lock" => vec!["correct", "setnx-then-expire", "unsafe-release", "fencing"],
        // RedLock has no fencing tokens by design.
        _ => vec!["correct", "unsafe-release"],
    };
    if scenario.protocol == "redlock" && scenario.variant.as_deref() == Some("fencing") {
        return Err("redlock has no fencing variant: RedLock hands out no fencing tokens, by design".into());
    }
    if let Some(variant) = &scenario.variant
        && !known.contains(&variant.as_str())
    {
        return Err(format!("unknown variant {variant:?} of {}; known: {}", scenario.protocol, known.join(", ")));
    }
    if scenario.protocol == "redis-lock" && scenario.cluster.servers != 1 {
        return Err(format!("redis-lock uses one server, got cluster.servers = {}", scenario.cluster.servers));
    }
    if scenario.cluster.servers == 0 || scenario.cluster.servers > 64 {
        return Err(format!("cluster.servers must be 1 to 64, got {}", scenario.cluster.servers));
    }
    if scenario.cluster.clients > 256 {
        return Err(format!("cluster.clients must be at most 256, got {}", scenario.cluster.clients));
    }
    positive_or_zero("duration.faults_ms", scenario.duration.faults_ms)?;
    positive_or_zero("duration.healed_ms", scenario.duration.healed_ms)?;
    if scenario.duration.faults_ms + scenario.duration.healed_ms > 3_600_000.0 {
        return Err("a run may last at most one hour of virtual time".into());
    }
    scenario.raft.validate(scenario.cluster.servers)?;
    scenario.workload.validate()?;
    let nodes = nodes_of(scenario);
    for (index, scheduled) in scenario.nemesis.schedule.iter().enumerate() {
        positive_or_zero(&format!("nemesis.schedule[{index}].at_ms"), scheduled.at_ms)?;
        scheduled.fault.validate(nodes).map_err(|e| format!("nemesis.schedule[{index}]: {e}"))?;
    }
    if let Some(generator) = &scenario.nemesis.generator {
        for (kind, weight) in &generator.kinds {
            if !GENERATOR_KINDS.contains(&kind.as_str()) {
                return Err(format!(
                    "unknown fault kind {kind:?} in nemesis.generator.kinds; known: {}",
                    GENERATOR_KINDS.join(", ")
                ));
            }
            if !weight.is_finite() || *weight < 0.0 {
                return Err(format!("nemesis.generator.kinds.{kind} must be a non-negative weight, got {weight}"));
            }
        }
        range("nemesis.generator.interval_ms", generator.interval_ms)?;
        range("nemesis.generator.fault_ms", generator.fault_ms)?;
        if generator.interval_ms[1] <= 0.0 {
            return Err("nemesis.generator.interval_ms must allow a positive interval".into());
        }
    }
    if let Some(liveness) = &scenario.checks.liveness {
        positive_or_zero("checks.liveness.leader_within_ms", liveness.leader_within_ms)?;
        positive_or_zero("checks.liveness.op_within_ms", liveness.op_within_ms)?;
    }
    scenario.network.validate(nodes).map_err(|e| format!("network: {e}"))
}

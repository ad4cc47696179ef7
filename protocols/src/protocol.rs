//! The one trait a protocol folder implements to plug into dsim, and what it returns.
//!
//! A protocol is a folder under `protocols/src/` and one line in the registry
//! (`scenarios/src/registry.rs`). Behind [`Protocol`] it says what it is called, which
//! settings a scenario's `"settings"` object holds, which variants it has (known bugs and
//! design options), which nodes a cluster has and what role each plays ([`Topology`]),
//! how to build its nodes, and how a run of it is judged ([`Judge`]). Nothing outside the
//! folder names the protocol: the runner, the nemesis, fuzzing, shrinking, the CLI and
//! the reports all work through this trait.

use std::collections::BTreeMap;

use checker::history::Event;
use checker::{ModelKind, Violation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sim_core::{NodeId, Observation, Process, Sim};

/// How many servers and clients a scenario asks for; what "server" means is the
/// protocol's (Raft servers, Redis instances, participants).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    pub servers: usize,
    pub clients: usize,
}

/// Whether a variant puts back a classic mistake or chooses a design option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VariantKind {
    /// The correct protocol.
    Correct,
    /// A known bug: the judge must catch it.
    Bug,
    /// A design choice (fencing tokens, say): judged like the correct protocol.
    Option,
}

/// One variant, as data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct VariantInfo {
    pub name: &'static str,
    pub doc: &'static str,
    pub kind: VariantKind,
}

/// One node of a cluster: what it is and how reports label it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node's kind: `server`, `client`, `storage`, `coordinator`, ...
    pub kind: String,
    /// The lane label in reports: `server 0`, `redis 1`, `client 4`.
    pub label: String,
}

/// The nodes of a cluster and who faults may hit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// Node `i` of the simulation is `nodes[i]`.
    pub nodes: Vec<NodeInfo>,
    /// The nodes generated faults hit (crashes, pauses, clocks, partitions): the
    /// protocol's servers, in id order.
    pub servers: Vec<NodeId>,
    /// The client nodes, in id order (faults hit them only when the generator says so).
    pub clients: Vec<NodeId>,
    /// Roles a fault can be aimed at (`"target": "leader"`), resolved during the run by
    /// [`Judge::target`].
    pub target_roles: Vec<String>,
}

impl Topology {
    /// Servers `0..servers` labelled `{server_word} i`, then clients.
    pub fn servers_then_clients(server_word: &str, cluster: Cluster, target_roles: &[&str]) -> Topology {
        let mut nodes: Vec<NodeInfo> = (0..cluster.servers)
            .map(|n| NodeInfo { kind: "server".into(), label: format!("{server_word} {n}") })
            .collect();
        let first_client = nodes.len();
        nodes.extend(
            (0..cluster.clients)
                .map(|c| NodeInfo { kind: "client".into(), label: format!("client {}", first_client + c) }),
        );
        Topology {
            servers: (0..cluster.servers).collect(),
            clients: (first_client..first_client + cluster.clients).collect(),
            nodes,
            target_roles: target_roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }
}

/// Which check the client history gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryCheck {
    /// A CP system: the history must be linearizable under this model.
    Required(ModelKind),
    /// An AP system: the history is checked and the result reported, but it does not
    /// fail the run.
    Measured(ModelKind),
    /// No client history worth checking (the locks judge with their own oracles).
    None,
}

/// A node's role from some instant on, for the role lanes of reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleChange {
    pub t_ns: u64,
    pub node: NodeId,
    pub role: String,
    /// The protocol's epoch of the role (Raft's term), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
}

/// An interval on a node's lane in reports: a client believing it holds a lock, a
/// server's grant being valid. `exclusive` spans must not overlap across nodes; reports
/// highlight where they do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub node: NodeId,
    pub from_ns: u64,
    pub to_ns: u64,
    pub label: String,
    pub exclusive: bool,
}

/// A field that failed validation: its path inside `"settings"` (`ttl_ms`,
/// `raft.heartbeat_ms`) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError { path: path.into(), message: message.into() }
    }

    /// From a message that starts with the field's path (`workload.keys must be ...`).
    pub fn from_message(message: String) -> FieldError {
        let path = message.split_whitespace().next().unwrap_or("").trim_end_matches(':').to_owned();
        FieldError { path, message }
    }
}

/// What a run tells a protocol when it builds one.
#[derive(Clone, Debug)]
pub struct RunSpec<'a> {
    pub cluster: Cluster,
    /// The variant's name (`correct` for none), one of [`Protocol::VARIANTS`].
    pub variant: &'a str,
    /// Faults happen before this instant of global time; everything is healed then.
    pub heal_ns: u64,
    /// When the faults have really ended: the heal, or later when a pause begun before
    /// it outlasts it (a heal does not wake a paused node). Liveness is judged from here.
    pub quiet_ns: u64,
    /// The run ends here.
    pub end_ns: u64,
    /// After the heal, every client operation must complete within this bound (none: no
    /// liveness check).
    pub op_within_ns: Option<u64>,
    /// The run is recorded for a report or a trace: the judge keeps what lanes need
    /// (role changes, spans); otherwise it may skip that work.
    pub lanes: bool,
}

/// A protocol folder's entry point.
pub trait Protocol: 'static {
    /// The name scenario files use (`"protocol": "raft"`).
    const NAME: &'static str;
    /// One line for `dsim list` and `--help`.
    const DESCRIPTION: &'static str;
    /// Every variant, the correct one first.
    const VARIANTS: &'static [VariantInfo];
    /// Built-in scenarios: name and JSON text (files inside the protocol's folder).
    const SCENARIOS: &'static [(&'static str, &'static str)];

    /// The scenario's `"settings"` object (unknown fields rejected, defaults for absent
    /// ones).
    type Settings: Serialize + DeserializeOwned + Default + Clone + std::fmt::Debug;
    type Node: Process + 'static;
    type Judge: Judge<Self::Node>;

    /// Checks what the types cannot; the error names the field's path in the settings.
    fn validate(settings: &Self::Settings, cluster: Cluster, variant: &str) -> Result<(), FieldError>;

    /// The nodes a cluster has.
    fn topology(settings: &Self::Settings, cluster: Cluster) -> Topology;

    /// The node factory (called at start and at every restart) and the run's judge.
    #[allow(clippy::type_complexity)]
    fn build(settings: &Self::Settings, run: &RunSpec<'_>) -> (Box<dyn FnMut(NodeId) -> Self::Node>, Self::Judge);

    /// A short label for a message in reports (`AE t6 i42..44`, `SET NX lock`); none for
    /// the message's kind alone.
    fn message_label(_msg: &<Self::Node as Process>::Msg) -> Option<String> {
        None
    }

    /// Smaller versions of the settings for the shrinker to try, most promising first
    /// (a slower workload, fewer keys). Each must still be valid.
    fn shrink(_settings: &Self::Settings) -> Vec<Self::Settings> {
        Vec::new()
    }
}

/// How a run of a protocol is judged. Safety as it happens, liveness after the heal.
pub trait Judge<N: Process> {
    /// Judges one observation against the safety properties.
    fn observe(&mut self, observation: &Observation<N::Obs>, sim: &Sim<N>) -> Option<Violation>;

    /// The client history event an observation stands for, if any.
    fn client_event(&self, _observation: &Observation<N::Obs>) -> Option<Event> {
        None
    }

    /// The client history events an observation stands for (by default the one of
    /// [`Judge::client_event`]; a protocol whose observation completes an operation at
    /// the instant it starts pushes both).
    fn client_events(&self, observation: &Observation<N::Obs>, out: &mut Vec<Event>) {
        out.extend(self.client_event(observation));
    }

    /// A role change an observation stands for (for report lanes), if any.
    fn role_change(&self, _observation: &Observation<N::Obs>) -> Option<(String, Option<u64>)> {
        None
    }

    /// Called after every step with the simulation as it is now (faults included), for a
    /// judge that measures time under conditions its observations do not show, or checks
    /// state no observation announces (a restart); a violation stops the run as one
    /// found by `observe` does.
    fn after_step(&mut self, _sim: &Sim<N>) -> Option<Violation> {
        None
    }

    /// The role a node has when it starts or restarts, if it has roles at all.
    fn initial_role(&self, _node: NodeId) -> Option<String> {
        None
    }

    /// The role (and epoch) of a node that has just restarted and recovered, read from
    /// its recovered state (Raft: a follower of its durable term).
    fn restart_role(&self, node: NodeId, _sim: &Sim<N>) -> (Option<String>, Option<u64>) {
        (self.initial_role(node), None)
    }

    /// Which check the client history gets.
    fn history_check(&self) -> HistoryCheck;

    /// Whether the system has recovered, judged once the heal has had its time (for
    /// Raft: a leader of the newest term is up).
    fn recovered(&self, _sim: &Sim<N>) -> Result<(), String> {
        Ok(())
    }

    /// The node that plays `role` now (a fault aimed at it), if any does.
    fn target(&self, _role: &str, _sim: &Sim<N>) -> Option<NodeId> {
        None
    }

    /// Checks over the final state: safety that is only judged at the end, liveness of
    /// the protocol's own progress.
    fn final_check(&mut self, _sim: &Sim<N>) -> Option<Violation> {
        None
    }

    /// Each key's value once the system has converged (read from the final state), for
    /// counting lost writes; none when the protocol does not say.
    fn final_state(&self, _sim: &Sim<N>) -> Option<BTreeMap<String, String>> {
        None
    }

    /// The protocol's own figures for the run summary.
    fn metrics(&self) -> BTreeMap<String, f64> {
        BTreeMap::new()
    }

    /// Intervals to draw on the nodes' lanes (for the locks: beliefs and grants), read
    /// once at the end of the run.
    fn spans(&self, _sim: &Sim<N>) -> Vec<Span> {
        Vec::new()
    }
}

/// The variant of `name`, if the protocol has it.
pub fn variant_of<P: Protocol>(name: &str) -> Option<&'static VariantInfo> {
    P::VARIANTS.iter().find(|v| v.name == name)
}

//! Time that work takes: a node's storage sync and its handling of an event can cost
//! virtual time, drawn per node from a latency distribution (any kind the network has).
//!
//! - **Sync latency.** A `sync` asks the node's disk; it completes after a draw of the
//!   node's sync latency, behind any sync still pending (one disk queue per node). The
//!   writes it covers become durable only then, and what the handler does after asking
//!   (sends and observations) leaves only then, in order, as a real server answers after
//!   its `fsync` returns; like a server blocked in `fsync`, the node handles no other
//!   event until then (they wait in its queue). A crash before the completion loses the
//!   writes and the held effects. Timers set after the sync start at once (a
//!   simplification: timers are local and leave nothing).
//! - **Processing time.** Handling a message or a timer takes a draw of the node's
//!   processing cost: what the handler sends and observes leaves at the end, and the node
//!   handles one event at a time, so events that arrive meanwhile wait in its queue (the
//!   queueing delays and the longest queue are metrics).
//!
//! Both default to none: a sync completes in the instant it is asked and a handler takes
//! no time, exactly as before these costs existed, so every existing run keeps its
//! fingerprint.

use serde::{Deserialize, Serialize};

use crate::error::SimError;
use crate::network::{Delay, Latency};

/// Storage costs of a scenario: `"storage": {"sync": LATENCY, "nodes": [...]}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageCosts {
    /// How long a sync takes on every node (none: at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<Latency>,
    /// Per-node overrides, applied in order (a later one wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeSync>,
}

/// A sync latency for some nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSync {
    pub nodes: Vec<usize>,
    pub sync: Latency,
}

/// Processing costs of a scenario: `"processing": {"cost": LATENCY, "nodes": [...]}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessingCosts {
    /// How long handling one message or timer takes on every node (none: no time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Latency>,
    /// Per-node overrides, applied in order (a later one wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeProcessing>,
}

/// A processing cost for some nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeProcessing {
    pub nodes: Vec<usize>,
    pub cost: Latency,
}

/// One node's compiled costs: its sync latency and its processing cost.
pub type NodeCosts = (Option<Delay>, Option<Delay>);

/// Both kinds of cost, as `Sim::set_costs` takes them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Costs {
    pub storage: StorageCosts,
    pub processing: ProcessingCosts,
}

impl Costs {
    /// Whether any cost is set.
    pub fn is_zero(&self) -> bool {
        self.storage == StorageCosts::default() && self.processing == ProcessingCosts::default()
    }

    /// Per node: the compiled sync latency and processing cost (validated; a node id out
    /// of range is an error).
    pub fn compile(&self, nodes_count: usize) -> Result<Vec<NodeCosts>, SimError> {
        let mut sync: Vec<Option<&Latency>> = vec![self.storage.sync.as_ref(); nodes_count];
        for group in &self.storage.nodes {
            for node in &group.nodes {
                *sync.get_mut(*node).ok_or(SimError::UnknownNode {
                    node: *node,
                    nodes: nodes_count,
                    context: "storage.nodes",
                })? = Some(&group.sync);
            }
        }
        let mut cost: Vec<Option<&Latency>> = vec![self.processing.cost.as_ref(); nodes_count];
        for group in &self.processing.nodes {
            for node in &group.nodes {
                *cost.get_mut(*node).ok_or(SimError::UnknownNode {
                    node: *node,
                    nodes: nodes_count,
                    context: "processing.nodes",
                })? = Some(&group.cost);
            }
        }
        sync.into_iter()
            .zip(cost)
            .map(|(s, c)| Ok((s.map(Delay::new).transpose()?, c.map(Delay::new).transpose()?)))
            .collect()
    }
}

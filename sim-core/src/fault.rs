//! The nemesis vocabulary: every fault dsim can inject, as serialisable values.

use serde::{Deserialize, Serialize};

use crate::SimError;
use crate::clock::DRIFT_PPM_MAX;
use crate::network::{LinkConfig, LinkModel, ms_to_ns, signed_ms_to_ns};

/// One fault.
///
/// Topology faults describe the network from that instant on: `partition` and `bridge`
/// replace any earlier cut, `cut` adds one-way cuts to the present ones, `heal` removes all.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Nodes in different groups cannot exchange messages. Nodes named in no group form
    /// one more group together.
    Partition { groups: Vec<Vec<usize>> },
    /// Messages from any node of `from` to any node of `to` are lost; the other direction
    /// still works (an asymmetric, one-way cut).
    Cut { from: Vec<usize>, to: Vec<usize> },
    /// `left` and `right` cannot talk to each other; `bridge` talks to both.
    Bridge { left: Vec<usize>, bridge: usize, right: Vec<usize> },
    /// Every cut is removed.
    Heal,
    /// Links from `from` to `to` (empty: every node) behave as `link` from now on.
    SetLinks {
        #[serde(default)]
        from: Vec<usize>,
        #[serde(default)]
        to: Vec<usize>,
        link: LinkConfig,
    },
    /// Every link returns to the scenario's network configuration.
    ResetLinks,
    /// The node stops: volatile state and timers are gone, messages to it are lost,
    /// unsynced writes are lost (with `torn_write`, the oldest lands cut short).
    Crash {
        node: usize,
        #[serde(default)]
        torn_write: bool,
    },
    /// The node crashes in the middle of its storage I/O (a kill at an I/O point, as
    /// FoundationDB's simulator injects): it makes `writes` more storage writes (puts or
    /// deletes) and dies making the next one. Nothing it would do after that point
    /// happens (no send, no observation); then it crashes as with `crash`: unsynced
    /// writes are lost, and with `torn_write` the oldest of them lands cut short. A
    /// handler that syncs before answering is only ever caught this way with unsynced
    /// writes.
    CrashDuringWrite {
        node: usize,
        #[serde(default)]
        writes: u32,
        #[serde(default)]
        torn_write: bool,
    },
    /// A crashed node is rebuilt from its durable storage and started again; for a node
    /// that is up, a `crash_during_write` that has not struck yet is called off.
    Restart { node: usize },
    /// The node handles nothing for `duration_ms`: messages and timers wait, then run.
    Pause { node: usize, duration_ms: f64 },
    /// The node's local clock reads true time plus `offset_ms` from now on.
    ClockOffset { node: usize, offset_ms: f64 },
    /// The node's clock runs fast (positive) or slow by `drift_ppm` parts per million.
    ClockDrift { node: usize, drift_ppm: f64 },
    /// The node's local clock jumps by `delta_ms` at once (negative: backwards).
    ClockJump { node: usize, delta_ms: f64 },
}

/// A fault at a point of global time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledFault {
    pub at_ms: f64,
    pub fault: Fault,
}

impl Fault {
    /// The fault's kind as it is spelled in scenario files.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Partition { .. } => "partition",
            Fault::Cut { .. } => "cut",
            Fault::Bridge { .. } => "bridge",
            Fault::Heal => "heal",
            Fault::SetLinks { .. } => "set_links",
            Fault::ResetLinks => "reset_links",
            Fault::Crash { .. } => "crash",
            Fault::CrashDuringWrite { .. } => "crash_during_write",
            Fault::Restart { .. } => "restart",
            Fault::Pause { .. } => "pause",
            Fault::ClockOffset { .. } => "clock_offset",
            Fault::ClockDrift { .. } => "clock_drift",
            Fault::ClockJump { .. } => "clock_jump",
        }
    }

    /// The node a node fault targets (through [`Fault::node_mut`], so that one match
    /// lists the node faults).
    pub fn node(&self) -> Option<usize> {
        self.clone().node_mut().copied()
    }

    /// The node a node fault targets, to aim it elsewhere.
    pub fn node_mut(&mut self) -> Option<&mut usize> {
        match self {
            Fault::Crash { node, .. }
            | Fault::CrashDuringWrite { node, .. }
            | Fault::Restart { node }
            | Fault::Pause { node, .. }
            | Fault::ClockOffset { node, .. }
            | Fault::ClockDrift { node, .. }
            | Fault::ClockJump { node, .. } => Some(node),
            _ => None,
        }
    }

    /// Checks node ids and numbers against a cluster of `nodes` nodes.
    pub fn validate(&self, nodes: usize) -> Result<(), SimError> {
        let check = |node: usize| {
            if node < nodes { Ok(()) } else { Err(SimError::UnknownNode { node, nodes, context: self.kind() }) }
        };
        let check_all = |list: &[usize]| list.iter().try_for_each(|n| check(*n));
        match self {
            Fault::Partition { groups } => groups.iter().try_for_each(|g| check_all(g))?,
            Fault::Cut { from, to } => {
                check_all(from)?;
                check_all(to)?;
            }
            Fault::Bridge { left, bridge, right } => {
                check_all(left)?;
                check_all(right)?;
                check(*bridge)?;
                if left.contains(bridge) || right.contains(bridge) {
                    return Err(SimError::InvalidFault {
                        what: "bridge",
                        detail: format!("the bridge node {bridge} is also in a side"),
                    });
                }
            }
            Fault::Heal | Fault::ResetLinks => {}
            Fault::SetLinks { from, to, link } => {
                check_all(from)?;
                check_all(to)?;
                LinkModel::new(link)?;
            }
            Fault::Crash { node, .. } | Fault::CrashDuringWrite { node, .. } | Fault::Restart { node } => check(*node)?,
            Fault::Pause { node, duration_ms } => {
                check(*node)?;
                ms_to_ns("pause duration_ms", *duration_ms)?;
            }
            Fault::ClockOffset { node, offset_ms } => {
                check(*node)?;
                signed_ms_to_ns("clock offset_ms", *offset_ms)?;
            }
            Fault::ClockDrift { node, drift_ppm } => {
                check(*node)?;
                drift_to_ppm(*drift_ppm)?;
            }
            Fault::ClockJump { node, delta_ms } => {
                check(*node)?;
                signed_ms_to_ns("clock jump delta_ms", *delta_ms)?;
            }
        }
        Ok(())
    }
}

/// Validates a drift figure and rounds it to whole parts per million.
pub fn drift_to_ppm(drift_ppm: f64) -> Result<i64, SimError> {
    if !drift_ppm.is_finite() || drift_ppm.abs() > DRIFT_PPM_MAX as f64 {
        return Err(SimError::InvalidDrift { value_ppm: drift_ppm, max_ppm: DRIFT_PPM_MAX });
    }
    Ok(drift_ppm.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_round_trip_through_json() {
        let fault = ScheduledFault { at_ms: 100.0, fault: Fault::Crash { node: 2, torn_write: true } };
        let text = serde_json::to_string(&fault).unwrap();
        assert_eq!(text, r#"{"at_ms":100.0,"fault":{"kind":"crash","node":2,"torn_write":true}}"#);
        let back: ScheduledFault = serde_json::from_str(&text).unwrap();
        assert_eq!(back, fault);
        let heal: Fault = serde_json::from_str(r#"{"kind":"heal"}"#).unwrap();
        assert_eq!(heal, Fault::Heal);
        assert!(serde_json::from_str::<Fault>(r#"{"kind":"crash","node":1,"extra":1}"#).is_err());
    }

    #[test]
    fn validation_names_the_problem() {
        let err = Fault::Crash { node: 9, torn_write: false }.validate(3).unwrap_err();
        assert_eq!(err, SimError::UnknownNode { node: 9, nodes: 3, context: "crash" });
        assert!(Fault::Pause { node: 0, duration_ms: f64::NAN }.validate(3).is_err());
        assert!(Fault::Pause { node: 0, duration_ms: -5.0 }.validate(3).is_err());
        assert!(Fault::ClockDrift { node: 0, drift_ppm: 2e6 }.validate(3).is_err());
        assert!(Fault::Bridge { left: vec![0], bridge: 0, right: vec![1] }.validate(3).is_err());
        assert!(Fault::Partition { groups: vec![vec![0], vec![1, 2]] }.validate(3).is_ok());
    }
}

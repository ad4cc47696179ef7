//! The ZooKeeper lock's entry in the protocol registry: `zookeeper`.

use std::rc::Rc;

use serde::{Deserialize, Serialize};
use sim_core::NodeId;

use super::ZkSettings;
use crate::locks::protocol::{LockJudge, LocksConfig, validate_locks};
use crate::locks::{LockMsg, LockNode, LockSettings, LockVariant};
use crate::protocol::{Cluster, FieldError, NodeInfo, Protocol, RunSpec, Topology, VariantInfo, VariantKind};
use crate::raft::{RaftConfig, ServerSettings, Variant as RaftVariant};

/// A scenario's `"settings"` for `zookeeper`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZooKeeperConfig {
    /// A session whose client the leader has not heard from for this long expires.
    pub session_timeout_ms: u64,
    /// Wait between a release and the next acquisition, drawn uniformly.
    pub retry_ms: [u64; 2],
    /// Time inside the critical section, drawn uniformly.
    pub work_ms: [u64; 2],
    /// A request without an answer counts as a lost connection after this long.
    pub request_timeout_ms: u64,
    /// The coordination servers' Raft timing.
    pub raft: RaftConfig,
}

impl Default for ZooKeeperConfig {
    fn default() -> Self {
        ZooKeeperConfig {
            session_timeout_ms: 2_000,
            retry_ms: [10, 50],
            work_ms: [10, 30],
            request_timeout_ms: 300,
            raft: RaftConfig::default(),
        }
    }
}

/// The ZooKeeper lock recipe on a Raft-replicated coordination service.
pub struct ZooKeeper;

const HOUR_MS: u64 = 3_600_000;

impl Protocol for ZooKeeper {
    const NAME: &'static str = "zookeeper";
    const DESCRIPTION: &'static str =
        "the ZooKeeper lock recipe (ephemeral sequential nodes, watches) on a Raft-replicated coordination service";
    const VARIANTS: &'static [VariantInfo] = &[
        VariantInfo {
            name: "correct",
            doc: "the recipe as ZooKeeper documents it: watch the next lower node, a guid in the node name",
            kind: VariantKind::Correct,
        },
        VariantInfo {
            name: "herd",
            doc: "every waiter watches the lock node's children: each change wakes every waiter",
            kind: VariantKind::Bug,
        },
        VariantInfo {
            name: "no-guid",
            doc: "no guid in the node name: after a lost create reply the client creates another node, and the orphan blocks the lock until its session ends",
            kind: VariantKind::Bug,
        },
        VariantInfo {
            name: "fencing",
            doc: "the holder's lock node zxid is a fencing token the protected storage checks",
            kind: VariantKind::Option,
        },
    ];
    const SCENARIOS: &'static [(&'static str, &'static str)] = &[
        ("zookeeper-lock", include_str!("../scenarios/zookeeper-lock.json")),
        ("zookeeper-lock-hostile", include_str!("../scenarios/zookeeper-lock-hostile.json")),
        ("zookeeper-gc-pause", include_str!("../scenarios/zookeeper-gc-pause.json")),
        ("zookeeper-no-guid", include_str!("../scenarios/zookeeper-no-guid.json")),
        ("zookeeper-herd", include_str!("../scenarios/zookeeper-herd.json")),
    ];

    type Settings = ZooKeeperConfig;
    type Node = LockNode;
    type Judge = LockJudge;

    fn validate(settings: &ZooKeeperConfig, cluster: Cluster, _variant: &str) -> Result<(), FieldError> {
        if !(1..=7).contains(&cluster.servers) {
            return Err(FieldError::new(
                "cluster.servers",
                format!("zookeeper runs 1 to 7 coordination servers, got cluster.servers = {}", cluster.servers),
            ));
        }
        if !(10..=HOUR_MS).contains(&settings.session_timeout_ms) {
            return Err(FieldError::new(
                "session_timeout_ms",
                format!("session_timeout_ms must be 10 to {HOUR_MS}, got {}", settings.session_timeout_ms),
            ));
        }
        // The fields shared with the other locks are checked as theirs are.
        let shared = LocksConfig {
            ttl_ms: settings.session_timeout_ms,
            retry_ms: settings.retry_ms,
            work_ms: settings.work_ms,
            request_timeout_ms: settings.request_timeout_ms,
            ..LocksConfig::default()
        };
        validate_locks(&shared, cluster)?;
        settings.raft.validate(cluster.servers).map_err(|message| {
            let field = message.split_whitespace().next().unwrap_or("raft").to_owned();
            FieldError::new(field, message)
        })
    }

    fn topology(_settings: &ZooKeeperConfig, cluster: Cluster) -> Topology {
        let servers = cluster.servers;
        let mut nodes: Vec<NodeInfo> =
            (0..servers).map(|n| NodeInfo { kind: "server".into(), label: format!("zk {n}") }).collect();
        nodes.push(NodeInfo { kind: "storage".into(), label: format!("storage {servers}") });
        let first_client = servers + 1;
        nodes.extend(
            (0..cluster.clients)
                .map(|c| NodeInfo { kind: "client".into(), label: format!("client {}", first_client + c) }),
        );
        Topology {
            nodes,
            servers: (0..servers).collect(),
            clients: (first_client..first_client + cluster.clients).collect(),
            target_roles: vec!["holder".into(), "leader".into()],
        }
    }

    fn build(settings: &ZooKeeperConfig, run: &RunSpec<'_>) -> (Box<dyn FnMut(NodeId) -> LockNode>, LockJudge) {
        let variant = match run.variant {
            "herd" => LockVariant::Herd,
            "no-guid" => LockVariant::NoGuid,
            "fencing" => LockVariant::Fencing,
            _ => LockVariant::Correct,
        };
        let servers = run.cluster.servers;
        let raft = ServerSettings { servers, variant: RaftVariant::Correct, raft: settings.raft.clone() };
        let shared = Rc::new(LockSettings {
            servers: (0..servers).collect(),
            redlock: false,
            redlock_request_timeout_ms: 10,
            storage: servers,
            variant,
            persistent: true,
            volatile_servers: Vec::new(),
            ttl_ms: settings.session_timeout_ms,
            retry_ms: settings.retry_ms,
            work_ms: settings.work_ms,
            request_timeout_ms: settings.request_timeout_ms,
            db: None,
            zk: Some(ZkSettings { session_timeout_ms: settings.session_timeout_ms, raft: Rc::new(raft) }),
        });
        let judge = LockJudge::new(variant == LockVariant::Fencing, None, run, settings.session_timeout_ms, false)
            .with_zookeeper(servers);
        (Box::new(move |id| LockNode::new(id, &shared)), judge)
    }

    fn message_label(msg: &LockMsg) -> Option<String> {
        crate::locks::protocol::lock_label(msg)
    }
}

#[cfg(test)]
mod tests {
    use sim_core::{Latency, Limits, LinkConfig, NetworkConfig, Observation, Sim, SimConfig};

    use super::*;
    use crate::locks::LockObs;
    use crate::protocol::Judge;
    use crate::raft::RaftObs;

    /// The coordination servers are judged by Raft's invariants: two leaders of one term
    /// reported by the service's servers are an election-safety violation.
    #[test]
    fn raft_invariants_judge_the_coordination_servers() {
        let run = RunSpec {
            cluster: Cluster { servers: 3, clients: 1 },
            variant: "correct",
            heal_ns: 0,
            quiet_ns: 0,
            end_ns: 1_000_000_000,
            op_within_ns: None,
            lanes: false,
        };
        let (factory, mut judge) = ZooKeeper::build(&ZooKeeperConfig::default(), &run);
        let link = LinkConfig { latency: Latency::Constant { ms: 1.0 }, ..LinkConfig::default() };
        let network = NetworkConfig { default: link, links: Vec::new(), kinds: Vec::new() };
        let config = SimConfig { seed: 1, nodes: 5, network, limits: Limits::default() };
        let sim = Sim::new(config, factory).unwrap();
        let leader = |node| Observation {
            t_ns: 5,
            node,
            obs: LockObs::Raft(RaftObs::BecameLeader { term: 4, last_log_index: 0 }),
        };
        assert_eq!(judge.observe(&leader(0), &sim), None);
        let violation = judge.observe(&leader(2), &sim).expect("a violation");
        assert_eq!(violation.kind, "election-safety");
        assert_eq!(violation.message, "servers 0 and 2 were both elected leader of term 4");
    }
}

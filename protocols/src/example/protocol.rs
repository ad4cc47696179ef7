//! `register` in the protocol registry: settings, variants, topology and judge.

use std::rc::Rc;

use checker::history::Event;
use checker::{ModelKind, Violation};
use serde::{Deserialize, Serialize};
use sim_core::{MS, NodeId, Observation, Sim};

use super::{RegisterNode, Shared};
use crate::kv::{ClientObs, KvWorkload};
use crate::kv_client::KvClientSettings;
use crate::protocol::{
    Cluster, FieldError, HistoryCheck, Judge, Protocol, RunSpec, Topology, VariantInfo, VariantKind,
};

/// The example protocol in the registry.
pub struct Register;

/// A scenario's `"settings"` for `register`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegisterSettings {
    /// With `ack-before-sync`, how often the server syncs its storage.
    pub sync_every_ms: f64,
    pub workload: KvWorkload,
}

impl Default for RegisterSettings {
    fn default() -> Self {
        RegisterSettings { sync_every_ms: 100.0, workload: KvWorkload::default() }
    }
}

impl Protocol for Register {
    const NAME: &'static str = "register";
    const DESCRIPTION: &'static str = "one durable key-value server (the worked example of docs/protocols.md)";
    const VARIANTS: &'static [VariantInfo] = &[
        VariantInfo { name: "correct", doc: "writes synced before they are acknowledged", kind: VariantKind::Correct },
        VariantInfo {
            name: "ack-before-sync",
            doc: "writes acknowledged at once and synced in batches: a crash loses acknowledged writes",
            kind: VariantKind::Bug,
        },
    ];
    const SCENARIOS: &'static [(&'static str, &'static str)] =
        &[("register-crash", include_str!("scenarios/register-crash.json"))];

    type Settings = RegisterSettings;
    type Node = RegisterNode;
    type Judge = RegisterJudge;

    fn validate(settings: &RegisterSettings, cluster: Cluster, _variant: &str) -> Result<(), FieldError> {
        if cluster.servers != 1 {
            return Err(FieldError::new(
                "cluster.servers",
                format!("register has one server, got cluster.servers = {}", cluster.servers),
            ));
        }
        if !(settings.sync_every_ms.is_finite() && (1.0..=3_600_000.0).contains(&settings.sync_every_ms)) {
            return Err(FieldError::new(
                "sync_every_ms",
                format!("sync_every_ms must be 1 to 3600000 milliseconds, got {}", settings.sync_every_ms),
            ));
        }
        settings.workload.validate().map_err(FieldError::from_message)
    }

    fn topology(_settings: &RegisterSettings, cluster: Cluster) -> Topology {
        Topology::servers_then_clients("server", cluster, &[])
    }

    fn build(
        settings: &RegisterSettings,
        run: &RunSpec<'_>,
    ) -> (Box<dyn FnMut(NodeId) -> RegisterNode>, RegisterJudge) {
        let op_timeout_ns = (settings.workload.op_timeout_ms * MS as f64) as u64;
        let clients = KvClientSettings {
            servers: vec![0],
            first_client: 1,
            clients: run.cluster.clients,
            workload: settings.workload.clone(),
            clients_stop_ns: run.end_ns.saturating_sub(op_timeout_ns),
            writes_until_ns: settings.workload.writes_until_ns(run.heal_ns),
        };
        let shared = Rc::new(Shared {
            ack_before_sync: run.variant == "ack-before-sync",
            sync_every_ms: settings.sync_every_ms,
            clients: Rc::new(clients),
        });
        (Box::new(move |id| RegisterNode::new(id, &shared)), RegisterJudge)
    }
}

/// The judge: the client history must be linearizable; nothing else to watch.
pub struct RegisterJudge;

impl Judge<RegisterNode> for RegisterJudge {
    fn observe(&mut self, _observation: &Observation<ClientObs>, _sim: &Sim<RegisterNode>) -> Option<Violation> {
        None
    }

    fn client_event(&self, observation: &Observation<ClientObs>) -> Option<Event> {
        Some(observation.obs.to_event(observation.t_ns))
    }

    fn history_check(&self) -> HistoryCheck {
        HistoryCheck::Required(ModelKind::Kv)
    }

    fn recovered(&self, sim: &Sim<RegisterNode>) -> Result<(), String> {
        if sim.is_up(0) { Ok(()) } else { Err("the server is down after the heal".into()) }
    }
}

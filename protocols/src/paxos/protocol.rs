//! Single-decree Paxos in the protocol registry: settings, variants, topology and judge.

use std::collections::BTreeMap;
use std::rc::Rc;

use checker::Violation;
use serde::{Deserialize, Serialize};
use sim_core::{MS, NodeId, Observation, Sim};

use super::invariants::PaxosInvariants;
use super::{Msg, PaxosNode, PaxosObs, ProposerConfig, Shared, Variant, acceptor_name, proposer_name};
use crate::protocol::{
    Cluster, FieldError, HistoryCheck, Judge, NodeInfo, Protocol, RunSpec, Topology, VariantInfo, VariantKind,
};

/// Single-decree Paxos in the registry.
pub struct Paxos;

/// A scenario's `"settings"` for `paxos`. The acceptors are `cluster.servers`; the
/// proposers (who are also the learners) are listed here and come first in node order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaxosSettings {
    pub proposers: Vec<ProposerConfig>,
    /// A round with no decision by then is given up for a new one.
    pub retry_timeout_ms: f64,
    /// The random wait before a new round after a refusal or a pre-emption.
    pub backoff_ms: [f64; 2],
}

impl Default for PaxosSettings {
    fn default() -> Self {
        PaxosSettings {
            proposers: vec![
                ProposerConfig { value: 1, ..ProposerConfig::default() },
                ProposerConfig { value: 2, ..ProposerConfig::default() },
            ],
            retry_timeout_ms: 100.0,
            backoff_ms: [5.0, 50.0],
        }
    }
}

/// The most proposers and acceptors a scenario may have (they are named by letters).
const PROPOSERS_MAX: usize = 8;
const ACCEPTORS_MAX: usize = 9;
const MS_MAX: f64 = 3_600_000.0;

fn check_ms(path: &str, value: f64, min: f64) -> Result<(), FieldError> {
    if value.is_finite() && (min..=MS_MAX).contains(&value) {
        Ok(())
    } else {
        Err(FieldError::new(path, format!("{path} must be {min} to {MS_MAX} milliseconds, got {value}")))
    }
}

impl Protocol for Paxos {
    const NAME: &'static str = "paxos";
    const DESCRIPTION: &'static str = "single-decree Paxos (Paxos Made Simple): proposers, acceptors, learners";
    const VARIANTS: &'static [VariantInfo] = &[
        VariantInfo { name: "correct", doc: "Paxos as Paxos Made Simple specifies it", kind: VariantKind::Correct },
        VariantInfo {
            name: "forget-promise",
            doc: "acceptor state is not durable: a restart forgets the promise and the accepted proposal",
            kind: VariantKind::Bug,
        },
        VariantInfo {
            name: "ignore-accepted",
            doc: "the proposer sends its own value even when a promise reports an accepted one",
            kind: VariantKind::Bug,
        },
        VariantInfo {
            name: "reuse-ballot",
            doc: "proposal numbers are rounds alone, so two proposers can use the same number",
            kind: VariantKind::Bug,
        },
        VariantInfo {
            name: "learn-from-minority",
            doc: "a learner decides on fewer than a majority of Accepted messages",
            kind: VariantKind::Bug,
        },
        VariantInfo {
            name: "value-at-prepare",
            doc: "an acceptor records the value a Prepare carries as its proposal and reports it in promises",
            kind: VariantKind::Bug,
        },
    ];
    const SCENARIOS: &'static [(&'static str, &'static str)] = &[
        ("paxos", include_str!("scenarios/paxos.json")),
        ("paxos-walkthrough", include_str!("scenarios/paxos-walkthrough.json")),
        ("paxos-walkthrough-no-accept", include_str!("scenarios/paxos-walkthrough-no-accept.json")),
        ("paxos-duel", include_str!("scenarios/paxos-duel.json")),
        ("paxos-duel-backoff", include_str!("scenarios/paxos-duel-backoff.json")),
        ("paxos-late-proposer", include_str!("scenarios/paxos-late-proposer.json")),
        ("paxos-acceptor-restart", include_str!("scenarios/paxos-acceptor-restart.json")),
        ("paxos-same-round", include_str!("scenarios/paxos-same-round.json")),
    ];

    type Settings = PaxosSettings;
    type Node = PaxosNode;
    type Judge = PaxosJudge;

    fn validate(settings: &PaxosSettings, cluster: Cluster, _variant: &str) -> Result<(), FieldError> {
        if !(1..=ACCEPTORS_MAX).contains(&cluster.servers) {
            return Err(FieldError::new(
                "cluster.servers",
                format!("cluster.servers (the acceptors) must be 1 to {ACCEPTORS_MAX}, got {}", cluster.servers),
            ));
        }
        if cluster.clients != 0 {
            return Err(FieldError::new(
                "cluster.clients",
                format!(
                    "paxos has no clients (its proposers are settings.proposers): cluster.clients must be 0, got {}",
                    cluster.clients
                ),
            ));
        }
        if !(1..=PROPOSERS_MAX).contains(&settings.proposers.len()) {
            return Err(FieldError::new(
                "proposers",
                format!("proposers must list 1 to {PROPOSERS_MAX} proposers, got {}", settings.proposers.len()),
            ));
        }
        for (i, proposer) in settings.proposers.iter().enumerate() {
            if !(1..=1_000_000_000).contains(&proposer.round) {
                return Err(FieldError::new(
                    format!("proposers[{i}].round"),
                    format!("proposers[{i}].round must be 1 to 1000000000, got {}", proposer.round),
                ));
            }
            check_ms(&format!("proposers[{i}].start_ms"), proposer.start_ms, 0.0)?;
        }
        check_ms("retry_timeout_ms", settings.retry_timeout_ms, 1.0)?;
        check_ms("backoff_ms[0]", settings.backoff_ms[0], 0.0)?;
        check_ms("backoff_ms[1]", settings.backoff_ms[1], 0.0)?;
        if settings.backoff_ms[0] > settings.backoff_ms[1] {
            return Err(FieldError::new(
                "backoff_ms",
                format!("backoff_ms must be [min, max] with min <= max, got {:?}", settings.backoff_ms),
            ));
        }
        Ok(())
    }

    fn topology(settings: &PaxosSettings, cluster: Cluster) -> Topology {
        let proposers = settings.proposers.len();
        let mut nodes: Vec<NodeInfo> = (0..proposers)
            .map(|p| NodeInfo { kind: "proposer".into(), label: format!("proposer {}", proposer_name(p)) })
            .collect();
        nodes.extend((0..cluster.servers).map(|a| NodeInfo {
            kind: "acceptor".into(),
            label: format!("acceptor {}", acceptor_name(a, cluster.servers)),
        }));
        // Faults hit proposers and acceptors alike.
        Topology { servers: (0..nodes.len()).collect(), clients: Vec::new(), nodes, target_roles: Vec::new() }
    }

    fn build(settings: &PaxosSettings, run: &RunSpec<'_>) -> (Box<dyn FnMut(NodeId) -> PaxosNode>, PaxosJudge) {
        let ns = |ms: f64| (ms * MS as f64) as u64;
        let shared = Rc::new(Shared {
            variant: Variant::parse(run.variant).expect("validated variant"),
            proposers: settings.proposers.clone(),
            acceptors: run.cluster.servers,
            retry_timeout_ns: ns(settings.retry_timeout_ms),
            backoff_ns: [ns(settings.backoff_ms[0]), ns(settings.backoff_ms[1])],
        });
        let names = Paxos::topology(settings, run.cluster).nodes.into_iter().map(|n| n.label).collect();
        let judge = PaxosJudge {
            proposers: settings.proposers.len(),
            names,
            invariants: PaxosInvariants::new(run.cluster.servers, settings.proposers.iter().map(|p| p.value)),
            messages_at_choice: None,
        };
        (Box::new(move |id| PaxosNode::new(id, &shared)), judge)
    }

    fn message_label(msg: &Msg) -> Option<String> {
        Some(match msg {
            Msg::Prepare { ballot, value: None } => format!("prepare {ballot}"),
            Msg::Prepare { ballot, value: Some(v) } => format!("prepare {ballot} v{v}"),
            Msg::Promise { ballot, accepted: None } => format!("promise {ballot}"),
            Msg::Promise { ballot, accepted: Some(p) } => format!("promise {ballot} had {p}"),
            Msg::Accept { proposal } => format!("accept {proposal}"),
            Msg::Accepted { proposal } => format!("accepted {proposal}"),
            Msg::Nack { ballot, promised } => format!("nack {ballot} (promised {promised})"),
        })
    }
}

/// The judge: the invariants of [`PaxosInvariants`] as the run goes; after the heal, a
/// chosen value learned by every proposer that is up.
pub struct PaxosJudge {
    proposers: usize,
    names: Vec<String>,
    invariants: PaxosInvariants,
    /// Messages sent when the value was chosen.
    messages_at_choice: Option<u64>,
}

impl PaxosJudge {
    fn unlearned(&self, sim: &Sim<PaxosNode>) -> Vec<String> {
        (0..self.proposers)
            .filter(|&p| sim.process(p).and_then(PaxosNode::as_proposer).is_some_and(|p| p.learned().is_none()))
            .map(|p| self.names[p].clone())
            .collect()
    }
}

impl Judge<PaxosNode> for PaxosJudge {
    fn observe(&mut self, observation: &Observation<PaxosObs>, sim: &Sim<PaxosNode>) -> Option<Violation> {
        let names = &self.names;
        let violation = self.invariants.observe(observation, &|n| names[n].clone());
        if self.messages_at_choice.is_none() && self.invariants.chosen.is_some() {
            self.messages_at_choice = Some(sim.metrics().messages_sent);
        }
        violation
    }

    fn role_change(&self, observation: &Observation<PaxosObs>) -> Option<(String, Option<u64>)> {
        match observation.obs {
            PaxosObs::Prepared { ballot } => Some(("phase 1".to_owned(), Some(ballot.round))),
            PaxosObs::Proposed { proposal } => Some(("phase 2".to_owned(), Some(proposal.ballot.round))),
            PaxosObs::Learned { proposal } => Some(("learned".to_owned(), Some(proposal.ballot.round))),
            PaxosObs::Promised { .. } | PaxosObs::Accepted { .. } => None,
        }
    }

    fn initial_role(&self, node: NodeId) -> Option<String> {
        Some(if node < self.proposers { "proposer" } else { "acceptor" }.to_owned())
    }

    fn history_check(&self) -> HistoryCheck {
        HistoryCheck::None
    }

    fn recovered(&self, sim: &Sim<PaxosNode>) -> Result<(), String> {
        let Some(chosen) = &self.invariants.chosen else {
            return Err(format!(
                "no value was chosen; proposal numbers tried ({}): {}",
                self.invariants.prepared.len(),
                self.invariants.prepared_summary()
            ));
        };
        let unlearned = self.unlearned(sim);
        if unlearned.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} was chosen at {} but {} {} not learned it",
                chosen.proposal.value,
                chosen.proposal.ballot,
                unlearned.join(", "),
                if unlearned.len() == 1 { "has" } else { "have" }
            ))
        }
    }

    fn metrics(&self) -> BTreeMap<String, f64> {
        let inv = &self.invariants;
        let mut metrics = BTreeMap::from([
            ("rounds".to_owned(), inv.prepared.len() as f64),
            ("promises".to_owned(), inv.promises_count as f64),
            ("accepts".to_owned(), inv.accepts_count as f64),
            ("learners_learned".to_owned(), inv.learned.len() as f64),
        ]);
        if let Some(chosen) = &inv.chosen {
            metrics.insert("chosen_value".to_owned(), chosen.proposal.value as f64);
            metrics.insert("chosen_round".to_owned(), chosen.proposal.ballot.round as f64);
            metrics.insert("chosen_proposer".to_owned(), chosen.proposal.ballot.proposer as f64);
            metrics.insert("chosen_at_ms".to_owned(), chosen.t_ns as f64 / 1e6);
            if let Some(first) = inv.first_prepare_ns {
                metrics.insert("decision_latency_ms".to_owned(), (chosen.t_ns - first.min(chosen.t_ns)) as f64 / 1e6);
            }
            metrics.insert("rounds_per_decision".to_owned(), chosen.rounds as f64);
            if let Some(messages) = self.messages_at_choice {
                metrics.insert("messages_per_decision".to_owned(), messages as f64);
            }
        }
        metrics
    }
}

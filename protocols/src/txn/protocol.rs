//! `2pc` and `paxos-commit` in the protocol registry: one settings type, one topology,
//! one judge; the protocols differ in their coordinator's and participants' mode.

use std::rc::Rc;

use serde::{Deserialize, Serialize};
use sim_core::NodeId;

use super::judge::TxnJudge;
use super::{Mode, Msg, Shared, TxnNode, Variant};
use crate::order_client::{OrderClientSettings, check, ms_ok};
use crate::protocol::{Cluster, FieldError, NodeInfo, Protocol, RunSpec, Topology, VariantInfo, VariantKind};

/// A scenario's `"settings"` for `2pc` and `paxos-commit`. `cluster.servers` is the number
/// of participants (the order service and the inventory shards); the coordinator is node 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TxnSettings {
    /// Orders per second per client.
    pub rate_per_client: f64,
    pub items: u32,
    pub initial_stock: i64,
    /// The share of order lines that go to item 0, the hot item.
    pub hot_share: f64,
    pub lines_max: u32,
    pub qty_max: u32,
    /// A client gives up on an order's outcome after this long (recorded `info`).
    pub txn_timeout_ms: f64,
    /// The coordinator aborts (2PC), or starts recovery (Paxos Commit), when votes are
    /// missing this long.
    pub vote_timeout_ms: f64,
    /// A participant in doubt asks (2PC) or leads recovery (Paxos Commit) this often; the
    /// 2PC coordinator resends an unacknowledged Commit this often.
    pub inquiry_ms: f64,
    /// The nodes' timer tick.
    pub tick_ms: f64,
    /// Paxos Commit's F: 2F+1 acceptors on participant nodes 1..=2F+1.
    pub faults_tolerated: usize,
    /// Orders at these instants of each client's clock instead of at `rate_per_client`.
    pub orders_at_ms: Vec<f64>,
    /// 2PC's cooperative termination: a participant in doubt also asks the transaction's
    /// other participants; one that decided tells, one that never voted aborts (forced to
    /// its log first) and tells.
    pub cooperative_termination: bool,
}

impl Default for TxnSettings {
    fn default() -> Self {
        TxnSettings {
            rate_per_client: 5.0,
            items: 8,
            initial_stock: 40,
            hot_share: 0.3,
            lines_max: 2,
            qty_max: 3,
            txn_timeout_ms: 3000.0,
            vote_timeout_ms: 200.0,
            inquiry_ms: 100.0,
            tick_ms: 10.0,
            faults_tolerated: 1,
            orders_at_ms: Vec::new(),
            cooperative_termination: false,
        }
    }
}

impl TxnSettings {
    /// The order clients' settings: the workload, where orders go, who the clients are.
    pub fn clients(&self, service: NodeId, first_client: NodeId, clients: usize, stop_ns: u64) -> OrderClientSettings {
        OrderClientSettings {
            service,
            first_client,
            clients,
            rate_per_client: self.rate_per_client,
            items: self.items,
            hot_share: self.hot_share,
            lines_max: self.lines_max,
            qty_max: self.qty_max,
            txn_timeout_ms: self.txn_timeout_ms,
            orders_at_ms: self.orders_at_ms.clone(),
            clients_stop_ns: stop_ns,
        }
    }
}

fn validate(settings: &TxnSettings, cluster: Cluster, mode: Mode) -> Result<(), FieldError> {
    let s = settings;
    check("cluster.servers", (2..=16).contains(&cluster.servers), "2 to 16 participants", cluster.servers)?;
    check("cluster.clients", cluster.clients <= 64, "0 to 64", cluster.clients)?;
    let ms = ms_ok;
    settings.clients(Shared::COORDINATOR, 0, 0, 0).validate_workload(s.initial_stock)?;
    check("vote_timeout_ms", ms(s.vote_timeout_ms, 1.0), "1 to 3600000", s.vote_timeout_ms)?;
    check("inquiry_ms", ms(s.inquiry_ms, 1.0), "1 to 3600000", s.inquiry_ms)?;
    check("tick_ms", ms(s.tick_ms, 0.1), "0.1 to 3600000", s.tick_ms)?;
    if mode == Mode::PaxosCommit && s.cooperative_termination {
        let why = "false: it is 2PC's (Paxos Commit's participants learn the outcome from the acceptors)";
        return Err(FieldError::new("cooperative_termination", format!("must be {why}")));
    }
    if mode == Mode::PaxosCommit {
        // Checked arithmetic: any number a file holds must be refused, not overflow.
        let acceptors = s.faults_tolerated.checked_mul(2).and_then(|a| a.checked_add(1));
        check(
            "faults_tolerated",
            acceptors.is_some_and(|a| a <= cluster.servers),
            &format!(
                "at most {} (2F+1 acceptors live on the {} participants)",
                (cluster.servers - 1) / 2,
                cluster.servers
            ),
            s.faults_tolerated,
        )?;
    }
    Ok(())
}

fn topology(cluster: Cluster) -> Topology {
    let mut nodes = vec![NodeInfo { kind: "coordinator".into(), label: "coordinator".into() }];
    nodes.push(NodeInfo { kind: "participant".into(), label: "orders 1".into() });
    nodes.extend((2..=cluster.servers).map(|n| NodeInfo { kind: "participant".into(), label: format!("stock {n}") }));
    let first_client = nodes.len();
    nodes.extend(
        (0..cluster.clients).map(|c| NodeInfo { kind: "client".into(), label: format!("client {}", first_client + c) }),
    );
    Topology {
        // Faults hit the coordinator and the participants alike.
        servers: (0..=cluster.servers).collect(),
        clients: (first_client..first_client + cluster.clients).collect(),
        nodes,
        target_roles: vec!["coordinator".to_owned()],
    }
}

#[allow(clippy::type_complexity)]
fn build(settings: &TxnSettings, run: &RunSpec<'_>, mode: Mode) -> (Box<dyn FnMut(NodeId) -> TxnNode>, TxnJudge) {
    let clients_stop_ns = run.end_ns.saturating_sub((settings.txn_timeout_ms * 1e6) as u64);
    let shared = Rc::new(Shared {
        mode,
        variant: Variant::parse(run.variant).expect("validated variant"),
        participants: run.cluster.servers,
        faults_tolerated: if mode == Mode::PaxosCommit { settings.faults_tolerated } else { 0 },
        clients: run.cluster.clients,
        settings: settings.clone(),
        client_settings: Rc::new(settings.clients(
            Shared::COORDINATOR,
            run.cluster.servers + 1,
            run.cluster.clients,
            clients_stop_ns,
        )),
    });
    let judge =
        TxnJudge::new(run.cluster.servers, settings.initial_stock, run.heal_ns, run.quiet_ns, run.end_ns, run.lanes);
    (Box::new(move |id| TxnNode::new(id, &shared)), judge)
}

fn label(msg: &Msg) -> Option<String> {
    Some(match msg {
        Msg::Submit { order, .. } => format!("submit {order}"),
        Msg::Outcome { committed, .. } => if *committed { "committed" } else { "aborted" }.to_owned(),
        Msg::Prepare { work, .. } => format!("prepare {}", work.gtid),
        Msg::Vote { gtid, yes, .. } => format!("vote {} {gtid}", if *yes { "yes" } else { "no" }),
        Msg::Decision { gtid, commit, .. } => format!("{} {gtid}", if *commit { "commit" } else { "abort" }),
        Msg::Ack { gtid } => format!("ack {gtid}"),
        Msg::Inquire { gtid } => format!("inquire {gtid}"),
        Msg::PcPrepare { instance, ballot } => {
            format!("1a {}/{} b{}", instance.gtid, instance.participant, ballot.round)
        }
        Msg::PcPromise { instance, ballot, .. } => {
            format!("1b {}/{} b{}", instance.gtid, instance.participant, ballot.round)
        }
        Msg::PcAccept { instance, ballot, prepared, .. } => format!(
            "2a {}/{} b{} {}",
            instance.gtid,
            instance.participant,
            ballot.round,
            if *prepared { "prepared" } else { "aborted" }
        ),
        Msg::PcAccepted { instance, ballot, .. } => {
            format!("2b {}/{} b{}", instance.gtid, instance.participant, ballot.round)
        }
        Msg::PcQuery { gtid } => format!("query {gtid}"),
        Msg::PcNack { instance, .. } => format!("nack {}/{}", instance.gtid, instance.participant),
    })
}

const BUGS: [VariantInfo; 5] = [
    VariantInfo {
        name: "no-decision-log",
        doc: "the coordinator sends Commit before forcing its commit record; after a crash it answers abort",
        kind: VariantKind::Bug,
    },
    VariantInfo {
        name: "unilateral-abort",
        doc: "a participant in doubt for inquiry_ms aborts on its own",
        kind: VariantKind::Bug,
    },
    VariantInfo {
        name: "early-lock-release",
        doc: "a participant releases its row locks when it prepares, not at the decision",
        kind: VariantKind::Bug,
    },
    VariantInfo {
        name: "presume-commit",
        doc: "a coordinator with no record of a transaction answers commit to an inquiry",
        kind: VariantKind::Bug,
    },
    VariantInfo {
        name: "unforced-cooperative-abort",
        doc: "cooperative termination on, and a participant asked about a transaction it never voted on aborts \
              without forcing the abort to its log: after a crash a late Prepare gets a yes",
        kind: VariantKind::Bug,
    },
];

/// Two-phase commit with presumed abort.
pub struct TwoPc;

impl Protocol for TwoPc {
    const NAME: &'static str = "2pc";
    const DESCRIPTION: &'static str = "two-phase commit with presumed abort over an order service and inventory shards";
    const VARIANTS: &'static [VariantInfo] = &[
        VariantInfo {
            name: "correct",
            doc: "2PC with presumed abort, forced logs, recovery",
            kind: VariantKind::Correct,
        },
        BUGS[0],
        BUGS[1],
        BUGS[2],
        BUGS[3],
        BUGS[4],
    ];
    const SCENARIOS: &'static [(&'static str, &'static str)] = &[
        ("2pc", include_str!("scenarios/2pc.json")),
        ("2pc-coordinator-crash", include_str!("scenarios/2pc-coordinator-crash.json")),
        ("2pc-partial-commit", include_str!("scenarios/2pc-partial-commit.json")),
        ("2pc-participant-crash", include_str!("scenarios/2pc-participant-crash.json")),
        ("2pc-coordinator-outages", include_str!("scenarios/2pc-coordinator-outages.json")),
        ("2pc-presumption", include_str!("scenarios/2pc-presumption.json")),
        ("2pc-last-unit", include_str!("scenarios/2pc-last-unit.json")),
        ("2pc-services-partitioned", include_str!("scenarios/2pc-services-partitioned.json")),
        ("2pc-cooperative-termination", include_str!("scenarios/2pc-cooperative-termination.json")),
        ("2pc-cooperative-abort", include_str!("scenarios/2pc-cooperative-abort.json")),
    ];

    type Settings = TxnSettings;
    type Node = TxnNode;
    type Judge = TxnJudge;

    fn validate(settings: &TxnSettings, cluster: Cluster, _variant: &str) -> Result<(), FieldError> {
        validate(settings, cluster, Mode::TwoPc)
    }

    fn topology(_settings: &TxnSettings, cluster: Cluster) -> Topology {
        topology(cluster)
    }

    fn build(settings: &TxnSettings, run: &RunSpec<'_>) -> (Box<dyn FnMut(NodeId) -> TxnNode>, TxnJudge) {
        build(settings, run, Mode::TwoPc)
    }

    fn message_label(msg: &Msg) -> Option<String> {
        label(msg)
    }
}

/// Paxos Commit: each participant's vote decided by Paxos over 2F+1 acceptors.
pub struct PaxosCommit;

impl Protocol for PaxosCommit {
    const NAME: &'static str = "paxos-commit";
    const DESCRIPTION: &'static str =
        "Paxos Commit (Gray & Lamport): each vote decided by Paxos, no blocking on the coordinator";
    const VARIANTS: &'static [VariantInfo] = &[
        VariantInfo { name: "correct", doc: "Paxos Commit with F+1 of 2F+1 acceptors", kind: VariantKind::Correct },
        BUGS[2],
    ];
    const SCENARIOS: &'static [(&'static str, &'static str)] = &[
        ("paxos-commit", include_str!("scenarios/paxos-commit.json")),
        ("paxos-commit-coordinator-crash", include_str!("scenarios/paxos-commit-coordinator-crash.json")),
        ("paxos-commit-coordinator-outages", include_str!("scenarios/paxos-commit-coordinator-outages.json")),
        ("paxos-commit-last-unit", include_str!("scenarios/paxos-commit-last-unit.json")),
        ("paxos-commit-silent-participant", include_str!("scenarios/paxos-commit-silent-participant.json")),
    ];

    type Settings = TxnSettings;
    type Node = TxnNode;
    type Judge = TxnJudge;

    fn validate(settings: &TxnSettings, cluster: Cluster, _variant: &str) -> Result<(), FieldError> {
        validate(settings, cluster, Mode::PaxosCommit)
    }

    fn topology(_settings: &TxnSettings, cluster: Cluster) -> Topology {
        topology(cluster)
    }

    fn build(settings: &TxnSettings, run: &RunSpec<'_>) -> (Box<dyn FnMut(NodeId) -> TxnNode>, TxnJudge) {
        build(settings, run, Mode::PaxosCommit)
    }

    fn message_label(msg: &Msg) -> Option<String> {
        label(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_fault_count_is_refused_not_overflowed() {
        let settings = TxnSettings { faults_tolerated: usize::MAX, ..TxnSettings::default() };
        let error = validate(&settings, Cluster { servers: 5, clients: 2 }, Mode::PaxosCommit).unwrap_err();
        assert_eq!(error.path, "faults_tolerated");
        let fine = TxnSettings { faults_tolerated: 2, ..TxnSettings::default() };
        assert!(validate(&fine, Cluster { servers: 5, clients: 2 }, Mode::PaxosCommit).is_ok());
    }
}

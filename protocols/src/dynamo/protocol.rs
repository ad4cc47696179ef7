//! `dynamo` in the protocol registry: settings, variants, topology and the judge, which
//! holds the store to what it claims (convergence after the heal; with version vectors,
//! no acknowledged set element lost) and measures the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use checker::history::{Event, EventType};
use checker::{ModelKind, Violation};
use serde::{Deserialize, Serialize};
use sim_core::{MS, NodeId, Observation, Sim};

use super::node::Shared;
use super::store::{self, Resolution, Ring, VClock, Version};
use super::{DynObs, DynamoConfig, DynamoNode, Msg, Variant};
use crate::kv::{KvOp, KvWorkload};
use crate::kv_client::{Answer, KvClientSettings};
use crate::protocol::{
    Cluster, FieldError, HistoryCheck, Judge, Protocol, RunSpec, Topology, VariantInfo, VariantKind,
};

/// The store in the registry.
pub struct Dynamo;

/// A scenario's `"settings"` for `dynamo`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DynamoSettings {
    pub dynamo: DynamoConfig,
    pub workload: KvWorkload,
}

const MS_MAX: f64 = 3_600_000.0;

fn ms_field(path: &str, value: f64, min: f64) -> Result<(), FieldError> {
    if value.is_finite() && (min..=MS_MAX).contains(&value) {
        Ok(())
    } else {
        Err(FieldError::new(path, format!("{path} must be {min} to {MS_MAX} milliseconds, got {value}")))
    }
}

fn validate_config(config: &DynamoConfig, servers: usize) -> Result<(), FieldError> {
    if !(1..=64).contains(&servers) {
        return Err(FieldError::new("cluster.servers", format!("cluster.servers must be 1 to 64, got {servers}")));
    }
    if !(1..=servers).contains(&config.n) {
        return Err(FieldError::new(
            "dynamo.n",
            format!("dynamo.n must be 1 to cluster.servers ({servers}), got {}", config.n),
        ));
    }
    for (path, value) in [("dynamo.r", config.r), ("dynamo.w", config.w)] {
        if !(1..=config.n).contains(&value) {
            return Err(FieldError::new(path, format!("{path} must be 1 to dynamo.n ({}), got {value}", config.n)));
        }
    }
    if !(1..=256).contains(&config.vnodes) {
        return Err(FieldError::new("dynamo.vnodes", format!("dynamo.vnodes must be 1 to 256, got {}", config.vnodes)));
    }
    ms_field("dynamo.fallback_ms", config.fallback_ms, 0.1)?;
    ms_field("dynamo.coordinator_timeout_ms", config.coordinator_timeout_ms, 0.1)?;
    ms_field("dynamo.handoff_ms", config.handoff_ms, 1.0)?;
    if config.anti_entropy_ms != 0.0 {
        ms_field("dynamo.anti_entropy_ms", config.anti_entropy_ms, 1.0)?;
    }
    Ok(())
}

impl Protocol for Dynamo {
    const NAME: &'static str = "dynamo";
    const DESCRIPTION: &'static str = "a Dynamo-style eventually consistent store: consistent hashing, N/R/W quorums, \
                                       hinted handoff, read repair, Merkle anti-entropy (AP: consistency measured)";
    const VARIANTS: &'static [VariantInfo] = &[
        VariantInfo {
            name: "correct",
            doc: "hints handed off, read repair merges, last-write-wins ties broken by node",
            kind: VariantKind::Correct,
        },
        VariantInfo {
            name: "no-hinted-handoff",
            doc: "stand-ins acknowledge hinted writes but never hand them off",
            kind: VariantKind::Bug,
        },
        VariantInfo {
            name: "read-repair-overwrites-newer",
            doc: "read repair replaces a replica's versions instead of merging: a late repair erases a newer write",
            kind: VariantKind::Bug,
        },
        VariantInfo {
            name: "lww-ties-keep-local",
            doc: "equal last-write-wins stamps are not ordered: each replica keeps its own, for ever",
            kind: VariantKind::Bug,
        },
        VariantInfo {
            name: "vv-without-own-version",
            doc: "a coordinator's vector entry comes from its counter alone, not from its own last version: a \
                  version claims to supersede a concurrent one it never saw, and its element is lost",
            kind: VariantKind::Bug,
        },
    ];
    const SCENARIOS: &'static [(&'static str, &'static str)] = &[
        ("dynamo", include_str!("scenarios/dynamo.json")),
        ("dynamo-hinted-handoff", include_str!("scenarios/dynamo-hinted-handoff.json")),
        ("dynamo-clock-skew", include_str!("scenarios/dynamo-clock-skew.json")),
        ("dynamo-siblings", include_str!("scenarios/dynamo-siblings.json")),
        ("dynamo-late-repair", include_str!("scenarios/dynamo-late-repair.json")),
        ("dynamo-same-millisecond", include_str!("scenarios/dynamo-same-millisecond.json")),
        ("dynamo-contended-set-lww", include_str!("scenarios/dynamo-contended-set-lww.json")),
        ("dynamo-contended-set-vv", include_str!("scenarios/dynamo-contended-set-vv.json")),
        ("dynamo-contended-set-lww-strict", include_str!("scenarios/dynamo-contended-set-lww-strict.json")),
        ("dynamo-contended-set-vv-strict", include_str!("scenarios/dynamo-contended-set-vv-strict.json")),
        ("cap-dynamo-311-sloppy", include_str!("scenarios/cap-dynamo-311-sloppy.json")),
        ("cap-dynamo-322-sloppy", include_str!("scenarios/cap-dynamo-322-sloppy.json")),
        ("cap-dynamo-322-strict", include_str!("scenarios/cap-dynamo-322-strict.json")),
        ("cap-dynamo-311-vv", include_str!("scenarios/cap-dynamo-311-vv.json")),
        ("cap-dynamo-322-vv", include_str!("scenarios/cap-dynamo-322-vv.json")),
    ];

    type Settings = DynamoSettings;
    type Node = DynamoNode;
    type Judge = DynamoJudge;

    fn validate(settings: &DynamoSettings, cluster: Cluster, _variant: &str) -> Result<(), FieldError> {
        validate_config(&settings.dynamo, cluster.servers)?;
        settings.workload.validate().map_err(FieldError::from_message)?;
        if settings.workload.mix.cas != 0.0 {
            return Err(FieldError::new(
                "workload.mix.cas",
                format!("dynamo has no compare-and-set: workload.mix.cas must be 0, got {}", settings.workload.mix.cas),
            ));
        }
        Ok(())
    }

    fn topology(_settings: &DynamoSettings, cluster: Cluster) -> Topology {
        Topology::servers_then_clients("server", cluster, &[])
    }

    fn build(settings: &DynamoSettings, run: &RunSpec<'_>) -> (Box<dyn FnMut(NodeId) -> DynamoNode>, DynamoJudge) {
        let op_timeout_ns = (settings.workload.op_timeout_ms * MS as f64) as u64;
        let servers = run.cluster.servers;
        let clients = KvClientSettings {
            servers: (0..servers).collect(),
            first_client: servers,
            clients: run.cluster.clients,
            workload: settings.workload.clone(),
            clients_stop_ns: run.end_ns.saturating_sub(op_timeout_ns),
            writes_until_ns: settings.workload.writes_until_ns(run.heal_ns),
        };
        let variant = Variant::parse(run.variant).expect("validated variant");
        let ring = Ring::new(servers, settings.dynamo.vnodes);
        let shared = Rc::new(Shared {
            servers,
            config: settings.dynamo.clone(),
            variant,
            ring: ring.clone(),
            clients: Rc::new(clients),
        });
        let judge = DynamoJudge {
            servers,
            n: settings.dynamo.n,
            resolution: settings.dynamo.resolution,
            ring,
            heal_ns: run.heal_ns,
            stores: BTreeMap::new(),
            hints: BTreeMap::new(),
            targets: None,
            converged_ns: None,
            reads: 0,
            siblings_total: 0,
            siblings_max: 0,
            reads_with_siblings: 0,
            put_keys: BTreeSet::new(),
            acked_adds: BTreeMap::new(),
            lost: None,
        };
        (Box::new(move |id| DynamoNode::new(id, &shared)), judge)
    }

    fn message_label(msg: &Msg) -> Option<String> {
        Some(match msg {
            Msg::Request { op, .. } => format!("{} {}", op.function(), op.key()),
            Msg::Reply { answer: Answer::Result(_), .. } => "reply".to_owned(),
            Msg::Reply { answer: Answer::NotLeader { .. }, .. } => "unavailable".to_owned(),
            Msg::Read { key, .. } => format!("read {key}"),
            Msg::ReadReply { versions, .. } => format!("{} versions", versions.len()),
            Msg::Write { key, req: 0, .. } => format!("repair {key}"),
            Msg::Write { key, hint: Some(home), .. } => format!("write {key} (hint for {home})"),
            Msg::Write { key, .. } => format!("write {key}"),
            Msg::WriteAck { .. } => "ack".to_owned(),
            Msg::Handoff { key, .. } => format!("handoff {key}"),
            Msg::HandoffAck { key, .. } => format!("handoff ok {key}"),
            Msg::SyncRoot { .. } => "merkle root".to_owned(),
            Msg::SyncLeaves { .. } => "merkle leaves".to_owned(),
            Msg::SyncPush { data, .. } => format!("sync {} keys", data.len()),
            Msg::SyncPull { data } => format!("sync back {} keys", data.len()),
        })
    }

    fn shrink(settings: &DynamoSettings) -> Vec<DynamoSettings> {
        let mut slower = settings.clone();
        slower.workload.rate_per_client = (settings.workload.rate_per_client / 2.0).max(1.0);
        if settings.workload.rate_per_client > 1.0 { vec![slower] } else { Vec::new() }
    }
}

/// Whether `clocks` (a replica's versions) cover `clock`: hold it or something that
/// supersedes it.
fn covers(clocks: &[VClock], clock: &VClock) -> bool {
    clocks.iter().any(|held| match (held, clock) {
        (VClock::Stamp { ms: a, node: na }, VClock::Stamp { ms: b, node: nb }) => (a, na) >= (b, nb),
        (VClock::Vector(a), VClock::Vector(b)) => {
            b.iter().all(|(node, count)| a.iter().any(|(n, c)| n == node && c >= count))
        }
        _ => false,
    })
}

/// The judge.
pub struct DynamoJudge {
    servers: usize,
    n: usize,
    resolution: Resolution,
    ring: Ring,
    heal_ns: u64,
    /// Each replica's versions (their clocks), as observed.
    stores: BTreeMap<(NodeId, String), Vec<VClock>>,
    /// Each stand-in's hints: (holder, home, key).
    hints: BTreeMap<(NodeId, NodeId, String), Vec<VClock>>,
    /// Every version that existed anywhere at the heal, by key; taken at the first
    /// observation after the heal.
    targets: Option<BTreeMap<String, BTreeSet<VClock>>>,
    converged_ns: Option<u64>,
    reads: u64,
    siblings_total: u64,
    siblings_max: usize,
    reads_with_siblings: u64,
    /// Keys some client put to (a put may replace a set, so elements are not owed).
    put_keys: BTreeSet<String>,
    /// Acknowledged set elements: (key, element) and when.
    acked_adds: BTreeMap<(String, String), u64>,
    lost: Option<usize>,
}

impl DynamoJudge {
    /// Why the replicas have not converged, if they have not: a home replica lacks a
    /// version of `targets` (what existed at the heal), two home replicas of a key hold
    /// different versions, or a stand-in still holds a hint.
    fn divergence(&self, targets: &BTreeMap<String, BTreeSet<VClock>>) -> Option<String> {
        for (key, clocks) in targets {
            let homes = self.ring.preference_list(key, self.n);
            for home in &homes {
                let held = self.stores.get(&(*home, key.clone())).map(Vec::as_slice).unwrap_or(&[]);
                if let Some(missing) = clocks.iter().find(|c| !covers(held, c)) {
                    return Some(format!(
                        "server {home}, a home replica of {key}, still lacks the version ({missing}) that existed at \
                         the heal"
                    ));
                }
            }
        }
        let keys: BTreeSet<&String> = self.stores.keys().map(|(_, key)| key).collect();
        for key in keys {
            let homes = self.ring.preference_list(key, self.n);
            let held = |home: NodeId| self.stores.get(&(home, key.clone())).cloned().unwrap_or_default();
            if let Some(other) = homes.iter().find(|h| held(**h) != held(homes[0])) {
                return Some(format!(
                    "servers {} and {other}, home replicas of {key}, hold different versions: {} and {}",
                    homes[0],
                    crate::dynamo::store::clocks_text(&held(homes[0])),
                    crate::dynamo::store::clocks_text(&held(*other))
                ));
            }
        }
        self.hints.keys().next().map(|(holder, home, key)| {
            format!("server {holder} still holds a hint of {key} for server {home} ({} hints held)", self.hints.len())
        })
    }

    /// Every version held now, by key (replicas and hints).
    fn everything_held(&self) -> BTreeMap<String, BTreeSet<VClock>> {
        let mut targets: BTreeMap<String, BTreeSet<VClock>> = BTreeMap::new();
        let all = self
            .stores
            .iter()
            .map(|((_, key), clocks)| (key, clocks))
            .chain(self.hints.iter().map(|((_, _, key), clocks)| (key, clocks)));
        for (key, clocks) in all {
            targets.entry(key.clone()).or_default().extend(clocks.iter().cloned());
        }
        targets
    }

    fn note_convergence(&mut self, t_ns: u64) {
        if self.converged_ns.is_none()
            && t_ns >= self.heal_ns
            && self.targets.as_ref().is_some_and(|targets| self.divergence(targets).is_none())
        {
            self.converged_ns = Some(t_ns.max(self.heal_ns));
        }
    }

    /// Each key's value merged over its home replicas' versions.
    fn converged_state(&self, sim: &Sim<DynamoNode>) -> BTreeMap<String, String> {
        let mut merged: BTreeMap<String, Vec<Version>> = BTreeMap::new();
        for node in 0..self.servers {
            let Some(server) = sim.process(node).and_then(DynamoNode::as_server) else { continue };
            for (key, versions) in server.store() {
                if self.ring.preference_list(key, self.n).contains(&node) {
                    let entry = merged.entry(key.clone()).or_default();
                    *entry = store::reconcile(entry, versions, store::Ties::ByNode);
                }
            }
        }
        merged.into_iter().map(|(key, versions)| (key, store::render(&versions))).collect()
    }
}

impl Judge<DynamoNode> for DynamoJudge {
    fn observe(&mut self, observation: &Observation<DynObs>, _sim: &Sim<DynamoNode>) -> Option<Violation> {
        let t_ns = observation.t_ns;
        if t_ns >= self.heal_ns && self.targets.is_none() {
            // The state at the heal is what was observed before this observation; if it
            // had converged then, it converged at the heal. Later, only what a replica or
            // a stand-in stores can change it (checked below).
            self.targets = Some(self.everything_held());
            self.note_convergence(self.heal_ns);
        }
        match &observation.obs {
            DynObs::Stored { key, clocks } => {
                let slot = (observation.node, key.clone());
                // A replica only ever learns: what it held before must be covered by
                // what it holds now (a newer stamp, or versions that descend from it).
                if let Some(before) = self.stores.get(&slot)
                    && let Some(lost) = before.iter().find(|c| !covers(clocks, c))
                {
                    let message = format!(
                        "server {} replaced its version ({lost}) of {key} with {}, which does not supersede it: \
                         a replica must merge what it receives, never go back",
                        observation.node,
                        crate::dynamo::store::clocks_text(clocks)
                    );
                    return Some(Violation::new("replica-regressed", message, t_ns, Some(observation.node)));
                }
                self.stores.insert(slot, clocks.clone());
            }
            DynObs::Hinted { intended, key, clocks } => {
                let slot = (observation.node, *intended, key.clone());
                if clocks.is_empty() {
                    self.hints.remove(&slot);
                } else {
                    self.hints.insert(slot, clocks.clone());
                }
            }
            DynObs::Served { siblings, .. } => {
                self.reads += 1;
                self.siblings_total += *siblings as u64;
                self.siblings_max = self.siblings_max.max(*siblings);
                self.reads_with_siblings += u64::from(*siblings > 1);
            }
            DynObs::Staleness { .. } | DynObs::Committed { .. } => {}
            DynObs::Client(client) => match (&client.op, client.kind) {
                (KvOp::Put { key, .. }, EventType::Invoke) => {
                    self.put_keys.insert(key.clone());
                }
                (KvOp::Append { key, value }, EventType::Ok) => {
                    let element = value.trim_end_matches(';').to_owned();
                    self.acked_adds.entry((key.clone(), element)).or_insert(t_ns);
                }
                _ => {}
            },
        }
        if t_ns >= self.heal_ns && matches!(observation.obs, DynObs::Stored { .. } | DynObs::Hinted { .. }) {
            self.note_convergence(t_ns);
        }
        None
    }

    fn client_event(&self, observation: &Observation<DynObs>) -> Option<Event> {
        match &observation.obs {
            DynObs::Client(client) => Some(client.to_event(observation.t_ns)),
            _ => None,
        }
    }

    fn history_check(&self) -> HistoryCheck {
        HistoryCheck::Measured(ModelKind::Kv)
    }

    /// Convergence: every version that existed anywhere at the heal (on a replica or as
    /// a hint) has reached every home replica of its key, the home replicas of each key
    /// hold the same versions, and no hint is left.
    fn recovered(&self, _sim: &Sim<DynamoNode>) -> Result<(), String> {
        if self.converged_ns.is_some() {
            return Ok(());
        }
        // Nothing observed after the heal: the state at the heal is the last one seen.
        let targets = self.targets.clone().unwrap_or_else(|| self.everything_held());
        match self.divergence(&targets) {
            None => Ok(()),
            Some(why) => Err(format!("the replicas have not converged: {why}")),
        }
    }

    /// With version vectors the store claims that no acknowledged set element is lost:
    /// every one must be in the converged state of its key's home replicas.
    fn final_check(&mut self, sim: &Sim<DynamoNode>) -> Option<Violation> {
        let state = self.converged_state(sim);
        let lost: Vec<&(String, String)> = self
            .acked_adds
            .keys()
            .filter(|(key, element)| {
                !self.put_keys.contains(key)
                    && !state.get(key).is_some_and(|v| store::elements(v).any(|e| e == element))
            })
            .collect();
        self.lost = Some(lost.len());
        if self.resolution == Resolution::VersionVectors
            && let Some((key, element)) = lost.first()
        {
            let t_ns = self.acked_adds[&(key.clone(), element.clone())];
            let message = format!(
                "{} acknowledged set elements are missing from the converged state; the first: {element} added to \
                 {key} and acknowledged at {:.3} ms",
                lost.len(),
                t_ns as f64 / 1e6
            );
            return Some(Violation::new("lost-write", message, sim.now_ns(), None));
        }
        None
    }

    fn final_state(&self, sim: &Sim<DynamoNode>) -> Option<BTreeMap<String, String>> {
        Some(self.converged_state(sim))
    }

    fn metrics(&self) -> BTreeMap<String, f64> {
        let mut metrics = BTreeMap::from([
            ("reads_served".to_owned(), self.reads as f64),
            ("reads_with_siblings".to_owned(), self.reads_with_siblings as f64),
            ("siblings_max".to_owned(), self.siblings_max as f64),
            ("hints_held_at_end".to_owned(), self.hints.len() as f64),
        ]);
        if self.reads > 0 {
            metrics.insert("siblings_per_read".to_owned(), self.siblings_total as f64 / self.reads as f64);
        }
        if let Some(t) = self.converged_ns {
            metrics.insert("convergence_ms".to_owned(), (t - self.heal_ns) as f64 / 1e6);
        }
        if let Some(lost) = self.lost {
            metrics.insert("set_elements_lost".to_owned(), lost as f64);
        }
        metrics
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::ClientObs;
    use sim_core::SimConfig;

    const HEAL: u64 = 1_000 * MS;

    fn setup(resolution: Resolution) -> (DynamoJudge, Sim<DynamoNode>) {
        let mut settings = DynamoSettings::default();
        settings.dynamo.resolution = resolution;
        let run = RunSpec {
            cluster: Cluster { servers: 3, clients: 0 },
            variant: "correct",
            heal_ns: HEAL,
            quiet_ns: HEAL,
            end_ns: 2 * HEAL,
            op_within_ns: None,
            lanes: false,
        };
        let (factory, judge) = Dynamo::build(&settings, &run);
        let config = SimConfig { seed: 1, nodes: 3, network: Default::default(), limits: Default::default() };
        (judge, Sim::new(config, factory).unwrap())
    }

    fn stamp(ms: u64, node: NodeId) -> VClock {
        VClock::Stamp { ms, node }
    }

    fn stored(
        judge: &mut DynamoJudge,
        sim: &Sim<DynamoNode>,
        t_ns: u64,
        node: NodeId,
        clocks: Vec<VClock>,
    ) -> Option<Violation> {
        let obs = Observation { t_ns, node, obs: DynObs::Stored { key: "k".into(), clocks } };
        judge.observe(&obs, sim)
    }

    #[test]
    fn covering_is_a_newer_stamp_or_a_descending_vector() {
        assert!(covers(&[stamp(5, 1)], &stamp(5, 1)));
        assert!(covers(&[stamp(5, 2)], &stamp(5, 1)));
        assert!(covers(&[stamp(6, 0)], &stamp(5, 1)));
        assert!(!covers(&[stamp(5, 0)], &stamp(5, 1)));
        assert!(!covers(&[stamp(4, 2)], &stamp(5, 1)));
        let v = |e: &[(NodeId, u64)]| VClock::Vector(e.to_vec());
        assert!(covers(&[v(&[(0, 2), (1, 1)])], &v(&[(0, 1)])));
        assert!(covers(&[v(&[(0, 1)]), v(&[(1, 1)])], &v(&[(1, 1)])));
        assert!(!covers(&[v(&[(0, 2)])], &v(&[(0, 1), (1, 1)])));
        assert!(!covers(&[v(&[(0, 1)])], &v(&[(0, 2)])));
        // Another coordinator's entry does not stand in for this one's.
        assert!(!covers(&[v(&[(0, 2)])], &v(&[(1, 1)])));
        assert!(!covers(&[stamp(9, 9)], &v(&[(0, 1)])));
        assert!(!covers(&[], &stamp(0, 0)));
    }

    #[test]
    fn a_replica_that_goes_back_is_a_violation() {
        let (mut judge, sim) = setup(Resolution::Lww);
        assert!(stored(&mut judge, &sim, 10, 0, vec![stamp(5, 1)]).is_none());
        assert!(stored(&mut judge, &sim, 20, 0, vec![stamp(6, 0)]).is_none());
        // Another replica is not compared with this one.
        assert!(stored(&mut judge, &sim, 25, 1, vec![stamp(1, 0)]).is_none());
        let v = stored(&mut judge, &sim, 30, 0, vec![stamp(5, 2)]).expect("a violation");
        assert_eq!(v.kind, "replica-regressed");
        assert_eq!(v.node, Some(0));
        assert!(v.message.starts_with("server 0 replaced its version (stamp 6 ms on server 0) of k"), "{}", v.message);
    }

    #[test]
    fn convergence_needs_every_version_everywhere_equal_and_no_hint() {
        let (mut judge, sim) = setup(Resolution::Lww);
        let homes = judge.ring.preference_list("k", 3);
        assert_eq!(homes.len(), 3);
        for node in &homes[..2] {
            stored(&mut judge, &sim, 10, *node, vec![stamp(5, 0)]);
        }
        let hint = Observation {
            t_ns: 20,
            node: homes[0],
            obs: DynObs::Hinted { intended: homes[2], key: "k".into(), clocks: vec![stamp(5, 0)] },
        };
        judge.observe(&hint, &sim);
        // Nothing observed after the heal yet: the state at the heal is judged.
        let why = judge.recovered(&sim).unwrap_err();
        assert!(why.contains(&format!("server {}, a home replica of k, still lacks", homes[2])), "{why}");
        // The third home replica gets it after the heal: the hint is still held.
        stored(&mut judge, &sim, HEAL + 5 * MS, homes[2], vec![stamp(5, 0)]);
        let why = judge.recovered(&sim).unwrap_err();
        assert!(why.contains("still holds a hint of k"), "{why}");
        assert!(!judge.metrics().contains_key("convergence_ms"));
        let gone = Observation {
            t_ns: HEAL + 7 * MS,
            node: homes[0],
            obs: DynObs::Hinted { intended: homes[2], key: "k".into(), clocks: Vec::new() },
        };
        judge.observe(&gone, &sim);
        assert_eq!(judge.recovered(&sim), Ok(()));
        assert_eq!(judge.metrics()["convergence_ms"], 7.0);
    }

    #[test]
    fn converged_at_the_heal_counts_zero_and_later_writes_do_not_undo_it() {
        let (mut judge, sim) = setup(Resolution::Lww);
        let homes = judge.ring.preference_list("k", 3);
        let first = Observation { t_ns: HEAL + MS, node: 0, obs: DynObs::Served { key: "x".into(), siblings: 0 } };
        judge.observe(&first, &sim);
        stored(&mut judge, &sim, HEAL + 2 * MS, homes[1], vec![stamp(8, 1)]);
        assert_eq!(judge.metrics()["convergence_ms"], 0.0);
        assert_eq!(judge.recovered(&sim), Ok(()));
    }

    fn hinted(judge: &mut DynamoJudge, sim: &Sim<DynamoNode>, t_ns: u64, holder: NodeId, clocks: Vec<VClock>) {
        let obs = Observation { t_ns, node: holder, obs: DynObs::Hinted { intended: 9, key: "k".into(), clocks } };
        judge.observe(&obs, sim);
    }

    #[test]
    fn home_replicas_holding_different_versions_have_not_converged() {
        let (mut judge, sim) = setup(Resolution::Lww);
        let homes = judge.ring.preference_list("k", 3);
        for node in &homes {
            stored(&mut judge, &sim, 10, *node, vec![stamp(3, 2)]);
        }
        hinted(&mut judge, &sim, 20, homes[0], vec![stamp(3, 2)]);
        // A key first written after the heal, on one of its home replicas only.
        let y_home = judge.ring.preference_list("y", 3)[0];
        let late = Observation {
            t_ns: HEAL + MS,
            node: y_home,
            obs: DynObs::Stored { key: "y".into(), clocks: vec![stamp(7, 0)] },
        };
        judge.observe(&late, &sim);
        hinted(&mut judge, &sim, HEAL + 2 * MS, homes[0], Vec::new());
        let why = judge.recovered(&sim).unwrap_err();
        assert!(why.contains("home replicas of y, hold different versions"), "{why}");
        assert!(!judge.metrics().contains_key("convergence_ms"));
    }

    fn acked_add(judge: &mut DynamoJudge, sim: &Sim<DynamoNode>, key: &str, element: &str) {
        let op = KvOp::Append { key: key.into(), value: format!("{element};") };
        let obs = Observation {
            t_ns: 50 * MS,
            node: 3,
            obs: DynObs::Client(ClientObs { process: 0, kind: EventType::Ok, op, value: None }),
        };
        judge.observe(&obs, sim);
    }

    #[test]
    fn an_acknowledged_add_missing_at_the_end_fails_only_with_version_vectors() {
        let (mut judge, sim) = setup(Resolution::VersionVectors);
        acked_add(&mut judge, &sim, "s", "a");
        acked_add(&mut judge, &sim, "s", "b");
        let v = judge.final_check(&sim).expect("a violation");
        assert_eq!(v.kind, "lost-write");
        assert!(v.message.starts_with("2 acknowledged set elements are missing"), "{}", v.message);
        assert!(v.message.contains("the first: a added to s and acknowledged at 50.000 ms"), "{}", v.message);
        assert_eq!(judge.metrics()["set_elements_lost"], 2.0);
        // A key some client put to may have had its set replaced: not owed.
        let (mut judge, sim) = setup(Resolution::VersionVectors);
        acked_add(&mut judge, &sim, "s", "a");
        let put = KvOp::Put { key: "s".into(), value: "x".into() };
        let obs = Observation {
            t_ns: 60 * MS,
            node: 3,
            obs: DynObs::Client(ClientObs { process: 1, kind: EventType::Invoke, op: put, value: None }),
        };
        judge.observe(&obs, &sim);
        assert_eq!(judge.final_check(&sim), None);
        // Last write wins does not claim it: counted, not failed.
        let (mut judge, sim) = setup(Resolution::Lww);
        acked_add(&mut judge, &sim, "s", "a");
        assert_eq!(judge.final_check(&sim), None);
        assert_eq!(judge.metrics()["set_elements_lost"], 1.0);
    }

    #[test]
    fn siblings_per_read_are_counted() {
        let (mut judge, sim) = setup(Resolution::VersionVectors);
        for siblings in [2, 3, 1, 0] {
            let obs = Observation { t_ns: 1, node: 0, obs: DynObs::Served { key: "k".into(), siblings } };
            judge.observe(&obs, &sim);
        }
        let m = judge.metrics();
        assert_eq!((m["reads_served"], m["reads_with_siblings"], m["siblings_max"]), (4.0, 2.0, 3.0));
        assert!((m["siblings_per_read"] - 1.5).abs() < 1e-9);
        assert_eq!(m["hints_held_at_end"], 0.0);
    }
}

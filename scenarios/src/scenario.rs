//! Scenario files: one JSON document that fixes a run (with the seed).
//!
//! The format is documented in `docs/scenarios.md`. Unknown fields are rejected, and a
//! bad file is reported with its name, line and column and what was expected.

use std::collections::BTreeMap;

pub use protocols::protocol::Cluster;
use protocols::protocol::Topology;
use serde::{Deserialize, Serialize};
use sim_core::{Fault, NetworkConfig};

/// A whole scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The protocol, by its registry name (`dsim list` shows them).
    pub protocol: String,
    /// A known-bug variant or a design option, or none for the correct protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// A pinned seed (saved failures have one); `--seed` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    pub cluster: Cluster,
    #[serde(default)]
    pub network: NetworkConfig,
    /// How long a storage sync takes (`"storage": {"sync": LATENCY}`; default: at once).
    #[serde(default, skip_serializing_if = "is_default")]
    pub storage: sim_core::StorageCosts,
    /// How long handling a message or a timer takes (`"processing": {"cost": LATENCY}`;
    /// default: no time).
    #[serde(default, skip_serializing_if = "is_default")]
    pub processing: sim_core::ProcessingCosts,
    /// The protocol's own settings; its type is the protocol's (`Protocol::Settings`),
    /// absent fields take their defaults.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub settings: serde_json::Value,
    #[serde(default)]
    pub nemesis: Nemesis,
    pub duration: Durations,
    #[serde(default)]
    pub checks: Checks,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

impl Scenario {
    /// The time work takes in this scenario (`sim_core::costs`).
    pub fn costs(&self) -> sim_core::Costs {
        sim_core::Costs { storage: self.storage.clone(), processing: self.processing.clone() }
    }

    /// The variant's name, `correct` for none.
    pub fn variant_name(&self) -> &str {
        self.variant.as_deref().unwrap_or("correct")
    }

    /// The protocol's registry entry (validated scenarios always have one).
    pub fn entry(&self) -> Result<&'static dyn crate::registry::DynProtocol, String> {
        crate::registry::find(&self.protocol).ok_or_else(|| {
            format!("unknown protocol {:?}; known: {}", self.protocol, crate::registry::names().join(", "))
        })
    }

    /// The nodes of this scenario's cluster.
    pub fn topology(&self) -> Result<Topology, String> {
        self.entry()?.topology(self)
    }
}

/// Top-level fields of the format before protocol settings moved into `"settings"`.
const MOVED_FIELDS: [(&str, &str); 3] = [
    ("raft", "\"settings\": { \"raft\": {...} }"),
    ("workload", "\"settings\": { \"workload\": {...} }"),
    ("locks", "\"settings\": {...} (the lock settings themselves)"),
];

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
    /// Aim the fault at whichever node plays this role at that instant (`"leader"`, as
    /// Jepsen's nemeses partition the primary; any role the protocol's topology names):
    /// its `node` becomes that node, and for a partition the node joins the first group.
    /// Skipped when no node plays the role then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// A fault generator. With `swarm`, each seed first picks which kinds are on (each with
/// probability one half, at least one), so that some runs see one kind of fault alone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generator {
    /// Fault kinds and their relative weights: `partition`, `crash` (each also aimed at a
    /// role, `partition:leader`), `pause`, `drop`, `duplicate`, `delay`, `clock_drift`,
    /// `clock_jump`, `late_delivery` (now and then a message held for seconds, then
    /// delivered), `cut` (one server stops hearing from another, one way; aimed,
    /// `cut:leader`, the leader's messages stop reaching some servers).
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
    /// The share of generated crashes that strike in the middle of a storage write
    /// (`crash_during_write`, losing or tearing unsynced writes); the rest strike between
    /// events.
    #[serde(default = "default_crash_during_write_share")]
    pub crash_during_write_share: f64,
}

fn default_crash_during_write_share() -> f64 {
    0.5
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

fn default_interval() -> [f64; 2] {
    [300.0, 1_500.0]
}

fn default_fault_duration() -> [f64; 2] {
    [200.0, 2_000.0]
}

fn yes() -> bool {
    true
}

/// The fault kinds a generator knows. `partition` and `crash` can also be aimed at a
/// role the protocol names, as `partition:ROLE` and `crash:ROLE` (`crash:leader`).
pub const GENERATOR_KINDS: [&str; 10] =
    ["partition", "crash", "pause", "drop", "duplicate", "delay", "clock_drift", "clock_jump", "late_delivery", "cut"];

/// The kinds that can be aimed at a role.
pub const AIMABLE_KINDS: [&str; 4] = ["partition", "crash", "pause", "cut"];

/// Every generator kind a protocol with these target roles accepts, in the fixed order
/// the generator draws them: each aimable kind followed by its aimed forms.
pub fn generator_kinds(target_roles: &[String]) -> Vec<String> {
    let mut roles: Vec<&String> = target_roles.iter().collect();
    roles.sort();
    let mut kinds = Vec::new();
    for kind in GENERATOR_KINDS {
        kinds.push(kind.to_owned());
        if AIMABLE_KINDS.contains(&kind) {
            kinds.extend(roles.iter().map(|role| format!("{kind}:{role}")));
        }
    }
    kinds
}

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
    /// The most events a run may handle; a run that reaches it is judged `unknown`
    /// unless it already found a violation.
    pub max_events: u64,
}

impl Default for Checks {
    fn default() -> Self {
        Checks {
            linearizability: true,
            budget_steps: 20_000_000,
            liveness: Some(Liveness::default()),
            max_events: 200_000_000,
        }
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
#[error("{}", self.render())]
pub struct ScenarioError {
    pub origin: String,
    pub position: String,
    pub message: String,
}

impl ScenarioError {
    /// `FILE:LINE:COLUMN: message`; a message that names its place itself stands alone.
    fn render(&self) -> String {
        if self.origin.is_empty() && self.position.is_empty() {
            self.message.clone()
        } else {
            format!("{}{}: {}", self.origin, self.position, self.message)
        }
    }

    pub fn new(origin: &str, message: impl Into<String>) -> Self {
        ScenarioError { origin: origin.to_owned(), position: String::new(), message: message.into() }
    }

    /// An error at a place in `text`, found by its field path (`settings.ttl_ms`,
    /// `nemesis.schedule[2].fault`); without a position if the path is not in the text.
    pub fn at_path(origin: &str, text: &str, path: &str, message: impl Into<String>) -> Self {
        // A field the file lacks (a default found wrong) is placed at the object that
        // lacks it: the nearest enclosing path the file has.
        let mut position = None;
        let mut prefix = path;
        while position.is_none() && !prefix.is_empty() {
            position = crate::locate::locate(text, prefix);
            prefix = prefix.rsplit_once('.').map_or("", |(head, _)| head);
        }
        let position = position.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default();
        ScenarioError { origin: origin.to_owned(), position, message: message.into() }
    }
}

/// Refuses a key given twice in one object, anywhere in the file (serde takes the last of
/// a map's repeated keys silently), with the key's path and position.
fn refuse_duplicate_keys(text: &str) -> Result<(), serde_json::Error> {
    use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, SeqAccess, Visitor};
    struct Seed(String);
    struct Visit(String);
    impl<'de> DeserializeSeed<'de> for Seed {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
            deserializer.deserialize_any(Visit(self.0))
        }
    }
    impl<'de> Visitor<'de> for Visit {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut keys = std::collections::BTreeSet::new();
            while let Some(key) = map.next_key::<String>()? {
                let path = if self.0.is_empty() { key.clone() } else { format!("{}.{key}", self.0) };
                if !keys.insert(key.clone()) {
                    return Err(A::Error::custom(format!("{path}: the key {key:?} is given twice in one object")));
                }
                map.next_value_seed(Seed(path))?;
            }
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut index = 0;
            while seq.next_element_seed(Seed(format!("{}[{index}]", self.0)))?.is_some() {
                index += 1;
            }
            Ok(())
        }
        fn visit_bool<E: Error>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E: Error>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E: Error>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E: Error>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E: Error>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E: Error>(self) -> Result<(), E> {
            Ok(())
        }
    }
    let mut deserializer = serde_json::Deserializer::from_str(text);
    Seed(String::new()).deserialize(&mut deserializer)?;
    deserializer.end()
}

/// Parses and validates a scenario; `origin` names the file in errors.
pub fn parse(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
    let syntax = |e: serde_json::Error| ScenarioError {
        origin: origin.to_owned(),
        position: format!(":{}:{}", e.line(), e.column()),
        message: strip_position(&e.to_string()),
    };
    refuse_duplicate_keys(text).map_err(syntax)?;
    let loose: serde_json::Value = serde_json::from_str(text).map_err(syntax)?;
    moved_fields(&loose).map_err(|(path, message)| ScenarioError::at_path(origin, text, &path, message))?;
    let scenario: Scenario = serde_json::from_str(text).map_err(syntax)?;
    // The settings once more, as text, so that their errors have a position.
    #[derive(Deserialize)]
    struct Raw<'a> {
        #[serde(borrow)]
        settings: Option<&'a serde_json::value::RawValue>,
    }
    let raw: Raw<'_> = serde_json::from_str(text).map_err(syntax)?;
    if let (Some(settings), Ok(entry)) = (raw.settings, scenario.entry()) {
        let offset = settings.get().as_ptr() as usize - text.as_ptr() as usize;
        entry.parse_settings(settings.get()).map_err(|e| {
            let (line, column) = crate::locate::shift(text, offset, e.line(), e.column());
            ScenarioError {
                origin: origin.to_owned(),
                position: format!(":{line}:{column}"),
                message: format!("settings: {}", strip_position(&e.to_string())),
            }
        })?;
    }
    validate(&scenario).map_err(|(path, message)| ScenarioError::at_path(origin, text, &path, message))?;
    Ok(scenario)
}

/// Fields of the older format, with where they went.
fn moved_fields(loose: &serde_json::Value) -> Result<(), (String, String)> {
    for (field, now) in MOVED_FIELDS {
        if loose.get(field).is_some() {
            return Err((
                field.to_owned(),
                format!(
                    "the top-level field {field:?} moved into the protocol's settings: write {now} (docs/scenarios.md)"
                ),
            ));
        }
    }
    let schedule = loose.pointer("/nemesis/schedule").and_then(serde_json::Value::as_array);
    for (index, action) in schedule.into_iter().flatten().enumerate() {
        if action.get("on_leader").is_some() {
            let path = format!("nemesis.schedule[{index}].on_leader");
            return Err((path.clone(), format!("{path} was replaced by \"target\": \"leader\"")));
        }
    }
    if let Some(kinds) = loose.pointer("/nemesis/generator/kinds").and_then(serde_json::Value::as_object) {
        for old in ["partition_leader", "crash_leader"] {
            if kinds.contains_key(old) {
                let now = old.replace('_', ":");
                return Err((
                    format!("nemesis.generator.kinds.{old}"),
                    format!("the fault kind {old:?} is now written {now:?} (any role the protocol names)"),
                ));
            }
        }
    }
    Ok(())
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

type FieldResult = Result<(), (String, String)>;

fn field(path: &str, message: String) -> (String, String) {
    (path.to_owned(), message)
}

fn positive_or_zero(name: &str, value: f64) -> FieldResult {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(field(name, format!("{name} must be a non-negative number of milliseconds, got {value}")))
    }
}

fn range(name: &str, [min, max]: [f64; 2]) -> FieldResult {
    positive_or_zero(name, min)?;
    positive_or_zero(name, max)?;
    if max < min {
        return Err(field(name, format!("{name} must be [min, max] with min <= max, got [{min}, {max}]")));
    }
    Ok(())
}

/// Checks what the types cannot: known protocol and variant, the protocol's settings,
/// numbers in range, node ids and roles. The error is a field path and a message.
pub fn validate(scenario: &Scenario) -> Result<(), (String, String)> {
    validate_name(&scenario.name)?;
    let entry = scenario.entry().map_err(|m| field("protocol", m))?;
    let variant = scenario.variant_name();
    if !entry.variants().iter().any(|v| v.name == variant) {
        let known: Vec<&str> = entry.variants().iter().map(|v| v.name).collect();
        return Err(field(
            "variant",
            format!("unknown variant {variant:?} of {}; known: {}", scenario.protocol, known.join(", ")),
        ));
    }
    if scenario.cluster.servers == 0 || scenario.cluster.servers > 64 {
        return Err(field(
            "cluster.servers",
            format!("cluster.servers must be 1 to 64, got {}", scenario.cluster.servers),
        ));
    }
    if scenario.cluster.clients > 256 {
        return Err(field(
            "cluster.clients",
            format!("cluster.clients must be at most 256, got {}", scenario.cluster.clients),
        ));
    }
    entry.validate(scenario).map_err(|e| {
        // The protocol names fields inside its settings; the cluster and the variant
        // are the scenario's.
        if e.path.starts_with("cluster.") || e.path == "variant" {
            return (e.path, e.message);
        }
        let path = format!("settings.{}", e.path);
        let message = if e.message.starts_with(&e.path) {
            format!("settings.{}", e.message)
        } else {
            format!("{path}: {}", e.message)
        };
        (path, message)
    })?;
    positive_or_zero("duration.faults_ms", scenario.duration.faults_ms)?;
    positive_or_zero("duration.healed_ms", scenario.duration.healed_ms)?;
    if scenario.duration.faults_ms + scenario.duration.healed_ms > 3_600_000.0 {
        return Err(field("duration", "a run may last at most one hour of virtual time".into()));
    }
    let topology = scenario.topology().map_err(|m| field("settings", m))?;
    validate_nemesis(scenario, &topology)?;
    if !(1..=1_000_000_000).contains(&scenario.checks.max_events) {
        return Err(field("checks.max_events", "checks.max_events must be 1 to 1000000000".into()));
    }
    if scenario.checks.budget_steps == 0 {
        return Err(field("checks.budget_steps", "checks.budget_steps must be at least 1".into()));
    }
    if let Some(liveness) = &scenario.checks.liveness {
        for (name, value) in [
            ("checks.liveness.leader_within_ms", liveness.leader_within_ms),
            ("checks.liveness.op_within_ms", liveness.op_within_ms),
        ] {
            positive_or_zero(name, value)?;
            if value > 3_600_000.0 {
                return Err(field(name, format!("{name} must be at most an hour (3600000), got {value}")));
            }
        }
    }
    scenario.network.validate(topology.nodes.len()).map_err(|e| field("network", format!("network: {e}")))?;
    let costs = sim_core::Costs { storage: scenario.storage.clone(), processing: sim_core::ProcessingCosts::default() };
    costs.compile(topology.nodes.len()).map_err(|e| field("storage", format!("storage: {e}")))?;
    let costs = sim_core::Costs { storage: sim_core::StorageCosts::default(), processing: scenario.processing.clone() };
    costs.compile(topology.nodes.len()).map_err(|e| field("processing", format!("processing: {e}")))?;
    Ok(())
}

/// Scenario names become file names (`NAME-seedN.json`): letters, digits, `.`, `_`, `-`,
/// not starting with a dot, at most 100 characters.
fn validate_name(name: &str) -> FieldResult {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > 100 || name.starts_with('.') || !name.chars().all(allowed) {
        return Err(field(
            "name",
            format!(
                "name must be 1 to 100 letters, digits, '.', '_' or '-', not starting with '.' (it names saved files), got {name:?}"
            ),
        ));
    }
    Ok(())
}

/// The most fault actions a generator may draw in one run.
const GENERATED_FAULTS_MAX: f64 = 100_000.0;

/// Bounds on one scheduled fault beyond what sim-core checks: within the fault phase,
/// partitions naming each node once, clock changes of at most an hour.
fn validate_action(path: &str, action: &Action, faults_ms: f64) -> FieldResult {
    if action.at_ms > faults_ms {
        return Err(field(
            &format!("{path}.at_ms"),
            format!(
                "{path}.at_ms is {}, after the fault phase ends (duration.faults_ms = {faults_ms}): it would strike after the heal",
                action.at_ms
            ),
        ));
    }
    let hour = 3_600_000.0;
    match &action.fault {
        Fault::Partition { groups } => {
            let mut seen = std::collections::BTreeSet::new();
            if let Some(node) = groups.iter().flatten().find(|n| !seen.insert(**n)) {
                return Err(field(&format!("{path}.fault"), format!("{path}: node {node} is in two partition groups")));
            }
        }
        Fault::ClockJump { delta_ms: ms, .. } | Fault::ClockOffset { offset_ms: ms, .. } if ms.abs() > hour => {
            return Err(field(&format!("{path}.fault"), format!("{path}: a clock change of {ms} ms is over an hour")));
        }
        Fault::Pause { duration_ms, .. } if *duration_ms > hour => {
            return Err(field(
                &format!("{path}.fault"),
                format!("{path}: a pause of {duration_ms} ms is over an hour"),
            ));
        }
        _ => {}
    }
    Ok(())
}

/// Bounds on a generator's numbers, so that no accepted file can panic or flood memory.
fn validate_generator(generator: &Generator, faults_ms: f64) -> FieldResult {
    range("nemesis.generator.interval_ms", generator.interval_ms)?;
    range("nemesis.generator.fault_ms", generator.fault_ms)?;
    range("nemesis.generator.pause_ms", generator.pause_ms)?;
    let hour = 3_600_000.0;
    if generator.interval_ms[0] < 1.0 || faults_ms / generator.interval_ms[0] > GENERATED_FAULTS_MAX {
        return Err(field(
            "nemesis.generator.interval_ms",
            format!(
                "nemesis.generator.interval_ms must start at 1 ms or more and allow at most {GENERATED_FAULTS_MAX} faults in the fault phase, got [{}, {}]",
                generator.interval_ms[0], generator.interval_ms[1]
            ),
        ));
    }
    for (name, [_, max]) in [("fault_ms", generator.fault_ms), ("pause_ms", generator.pause_ms)] {
        if max > hour {
            return Err(field(
                &format!("nemesis.generator.{name}"),
                format!("nemesis.generator.{name} must end within an hour, got {max}"),
            ));
        }
    }
    let share = generator.crash_during_write_share;
    if !(0.0..=1.0).contains(&share) {
        return Err(field(
            "nemesis.generator.crash_during_write_share",
            format!("nemesis.generator.crash_during_write_share must be from 0 to 1, got {share}"),
        ));
    }
    let drift = generator.drift_ppm_max;
    if !(drift.is_finite() && drift > 0.0 && drift <= sim_core::clock::DRIFT_PPM_MAX as f64) {
        return Err(field(
            "nemesis.generator.drift_ppm_max",
            format!(
                "nemesis.generator.drift_ppm_max must be above 0 and at most {}, got {drift}",
                sim_core::clock::DRIFT_PPM_MAX
            ),
        ));
    }
    let jump = generator.jump_ms_max;
    if !(jump.is_finite() && jump > 0.0 && jump <= hour) {
        return Err(field(
            "nemesis.generator.jump_ms_max",
            format!("nemesis.generator.jump_ms_max must be above 0 and at most 3600000, got {jump}"),
        ));
    }
    Ok(())
}

fn unknown_role(path: &str, role: &str, scenario: &Scenario, topology: &Topology) -> (String, String) {
    let known = if topology.target_roles.is_empty() {
        "it names none".to_owned()
    } else {
        format!("it names {}", topology.target_roles.join(", "))
    };
    field(path, format!("{path}: {} has no role {role:?} to aim a fault at; {known}", scenario.protocol))
}

fn validate_nemesis(scenario: &Scenario, topology: &Topology) -> FieldResult {
    let nodes = topology.nodes.len();
    for (index, scheduled) in scenario.nemesis.schedule.iter().enumerate() {
        let path = format!("nemesis.schedule[{index}]");
        positive_or_zero(&format!("{path}.at_ms"), scheduled.at_ms)?;
        validate_action(&path, scheduled, scenario.duration.faults_ms)?;
        scheduled.fault.validate(nodes).map_err(|e| field(&format!("{path}.fault"), format!("{path}: {e}")))?;
        if let Some(role) = &scheduled.target
            && !topology.target_roles.contains(role)
        {
            return Err(unknown_role(&format!("{path}.target"), role, scenario, topology));
        }
    }
    let Some(generator) = &scenario.nemesis.generator else { return Ok(()) };
    let known = generator_kinds(&topology.target_roles);
    for (kind, weight) in &generator.kinds {
        let path = format!("nemesis.generator.kinds.{kind}");
        if !known.contains(kind) {
            if let Some((base, role)) = kind.split_once(':')
                && AIMABLE_KINDS.contains(&base)
            {
                return Err(unknown_role(&path, role, scenario, topology));
            }
            return Err(field(
                &path,
                format!("unknown fault kind {kind:?} in nemesis.generator.kinds; known: {}", known.join(", ")),
            ));
        }
        if !weight.is_finite() || !(0.0..=1e6).contains(weight) {
            return Err(field(&path, format!("{path} must be a weight from 0 to 1000000, got {weight:e}")));
        }
    }
    validate_generator(generator, scenario.duration.faults_ms)
}

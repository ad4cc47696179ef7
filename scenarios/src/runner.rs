//! One run: build the simulation a scenario describes, drive it, judge it.
//!
//! The run has two phases. Faults happen in `[0, faults_ms)`; at `faults_ms` everything
//! is healed, and the run goes on for `healed_ms`. Safety properties are judged after
//! every event, and the run stops at the first violation. At the end the client history
//! is checked for linearizability, and liveness is judged: a recovered system (a leader)
//! by `leader_within_ms` after the heal, and every later operation completed within
//! `op_within_ms`.

use std::collections::BTreeMap;

use checker::history::{Event, HistoryBuilder, Outcome};
use checker::{Budget, CheckOptions, ModelKind, Verdict, Violation};
use protocols::protocol::{HistoryCheck, Judge, Protocol, RoleChange, RunSpec, Span, Topology};
use serde::Serialize;
use sim_core::{Fault, Limits, MS, Process, Sim, SimConfig, Step, StopReason, TraceSink};

use crate::nemesis::{aim_at, heal_all, materialize};
use crate::scenario::Scenario;

/// A boxed trace sink for the messages and observations of node type `P`.
pub type NodeSink<P> = Box<dyn TraceSink<<P as Process>::Msg, <P as Process>::Obs>>;

/// Counters and latencies of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RunMetrics {
    pub events: u64,
    pub virtual_ms: f64,
    pub messages_sent: u64,
    pub messages_delivered: u64,
    pub messages_dropped: u64,
    pub messages_duplicated: u64,
    pub faults: usize,
    pub ops_ok: usize,
    pub ops_fail: usize,
    pub ops_info: usize,
    pub latency_p50_ms: f64,
    pub latency_p90_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    /// The protocol's own figures (for the locks: acquisitions, retries, acquisition
    /// latency, overlaps seen with fencing).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub protocol: BTreeMap<String, f64>,
    /// The share of client operations that got a definite answer (ok or fail, not
    /// info), during the faults, after the heal and per client; absent without a client
    /// history.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability: Option<Availability>,
    /// The consistency anomalies of a key-value history, as numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency: Option<checker::anomalies::Anomalies>,
    /// With processing costs: the 99th percentile of the time an event waited for its
    /// busy node, and the longest queue one node had.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_ms_p99: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_len_max: Option<u64>,
}

/// Availability: of the operations invoked in a phase, the share answered definitely.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Availability {
    /// `None` when no operation was invoked in the phase.
    pub during_faults: Option<f64>,
    pub after_heal: Option<f64>,
    /// Per client process, over the whole run.
    pub per_client: BTreeMap<String, f64>,
    /// Of the operations invoked while a partition stood, by the side their client was
    /// on: `majority` (the group holding most servers, if more than half) or `minority`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub per_side: BTreeMap<String, f64>,
}

/// Everything a run produced.
#[derive(Clone, Debug, Serialize)]
pub struct RunOutcome {
    pub scenario: String,
    pub protocol: String,
    pub variant: String,
    pub seed: u64,
    pub verdict: Verdict,
    pub fingerprint: String,
    pub violations: Vec<Violation>,
    pub metrics: RunMetrics,
    pub stop: String,
    /// Why the verdict is `unknown`, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_reason: Option<String>,
    /// Which check the client history got: `required` (linearizability must hold),
    /// `measured` (reported, not failing the run) or `none`.
    pub history_check: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linearizability: Option<checker::Report>,
    #[serde(skip)]
    pub history: Vec<Event>,
    /// The nodes and their roles over time, for reports.
    #[serde(skip)]
    pub topology: Option<Topology>,
    #[serde(skip)]
    pub roles: Vec<RoleChange>,
    /// The protocol's intervals on lanes (lock beliefs and grants), for reports.
    #[serde(skip)]
    pub spans: Vec<Span>,
}

/// Runs `scenario` with `seed` as protocol `P` with `settings`.
pub fn run_with<P: Protocol>(
    settings: &P::Settings,
    scenario: &Scenario,
    seed: u64,
    sink: Option<NodeSink<P::Node>>,
) -> Result<RunOutcome, String> {
    let faults_ns = (scenario.duration.faults_ms * MS as f64) as u64;
    let end_ns = faults_ns + (scenario.duration.healed_ms * MS as f64) as u64;
    let topology = P::topology(settings, scenario.cluster);
    let nodes = topology.nodes.len();
    let liveness = scenario.checks.liveness;
    let schedule = materialize(scenario, &topology, seed);
    let quiet_ns = quiet_after(&schedule, faults_ns);
    // Role lanes and spans are for reports and traces: a run that records nothing
    // tracks none.
    let lanes = sink.is_some();
    let spec = RunSpec {
        cluster: scenario.cluster,
        variant: scenario.variant_name(),
        heal_ns: faults_ns,
        quiet_ns,
        end_ns,
        op_within_ns: liveness.map(|l| (l.op_within_ms * MS as f64) as u64),
        lanes,
    };
    let (factory, mut judge) = P::build(settings, &spec);
    let limits = Limits { max_events: scenario.checks.max_events, max_time_ns: end_ns, max_pending: 2_000_000 };
    let config = SimConfig { seed, nodes, network: scenario.network.clone(), limits };
    let mut sim = Sim::new(config, factory).map_err(|e| e.to_string())?;
    sim.set_costs(&scenario.costs()).map_err(|e| e.to_string())?;
    if let Some(sink) = sink {
        sim.set_trace_sink(sink);
    }
    let mut aimed = Vec::new();
    for action in &schedule {
        if let Some(role) = &action.target {
            action.fault.validate(nodes).map_err(|e| e.to_string())?;
            aimed.push(((action.at_ms * MS as f64) as u64, role.clone(), action.fault.clone()));
        } else {
            sim.schedule_fault_ms(action.at_ms, action.fault.clone()).map_err(|e| e.to_string())?;
        }
    }
    for fault in heal_all(nodes) {
        sim.schedule_fault(faults_ns, fault).map_err(|e| e.to_string())?;
    }
    // Liveness is judged once the faults have really ended and the bound has passed. When
    // the run ends before that (a pause outlasting the heal, a short healed phase), it is
    // judged at the end: a recovered system passes, but one not yet recovered has not
    // had its time, and its verdict is unknown rather than a violation.
    let wanted_probe_ns = liveness.map(|l| quiet_ns.saturating_add((l.leader_within_ms * MS as f64) as u64));
    let probe_ns = wanted_probe_ns.map(|probe| probe.min(end_ns));
    let mut unjudged_liveness = None;
    let mut drive = Drive::new(aimed, &judge, if lanes { nodes } else { 0 });
    let mut stop = drive.until(&mut judge, &mut sim, probe_ns.unwrap_or(end_ns));
    if stop.is_none()
        && let Some(probe) = probe_ns
    {
        if let Err(message) = judge.recovered(&sim) {
            match wanted_probe_ns {
                Some(wanted) if wanted > end_ns => unjudged_liveness = Some((message, wanted)),
                _ => drive.violations.push(Violation::new("liveness", message, probe, None)),
            }
        }
        stop = drive.until(&mut judge, &mut sim, end_ns);
    }
    let stop = stop.unwrap_or(StopReason::TimeLimit { limit_ns: end_ns });
    // A run cut short by a limit has not shown what the rest of it would have: without a
    // violation its verdict is unknown, never a pass.
    let limit_hit = matches!(stop, StopReason::EventLimit { .. } | StopReason::QueueLimit { .. });
    if drive.violations.is_empty()
        && let Some(v) = judge.final_check(&sim)
    {
        drive.violations.push(v);
    }
    let stopped_by_violation = drive.stopped_by_violation;
    let history = std::mem::take(&mut drive.history);
    // Built once; the checks and the metrics all read it.
    let built = history_of(&history);
    let mut violations = std::mem::take(&mut drive.violations);
    if let (Some(probe), Some(l), Ok(ops)) = (probe_ns, liveness, &built)
        && violations.iter().all(|v| v.kind == "liveness")
    {
        violations.extend(operation_liveness(ops, probe, end_ns, (l.op_within_ms * MS as f64) as u64));
        if violations.is_empty() {
            violations.extend(progress_after(ops, quiet_ns, end_ns));
        }
    }
    let safety_failed = violations.iter().any(|v| v.kind != "liveness");
    let history_check = judge.history_check();
    let (model, required) = match history_check {
        HistoryCheck::Required(model) => (Some(model), true),
        HistoryCheck::Measured(model) => (Some(model), false),
        HistoryCheck::None => (None, false),
    };
    let linearizability = match model {
        Some(model) if scenario.checks.linearizability && !safety_failed => {
            let ops = built.as_ref().map_err(Clone::clone)?;
            Some(check_history(model, ops, scenario.checks.budget_steps)?)
        }
        _ => None,
    };
    if let Some(report) = &linearizability
        && report.verdict == Verdict::Violation
        && required
    {
        violations.push(linearizability_violation(report));
    }
    let no_operations = required
        && scenario.checks.linearizability
        && scenario.cluster.clients > 0
        && built.as_ref().is_ok_and(|h| h.ops.is_empty());
    let unknown_reason = if !violations.is_empty() {
        None
    } else if limit_hit {
        Some(format!("the run was cut short: {stop}"))
    } else if let Some((message, wanted)) = &unjudged_liveness {
        Some(format!(
            "liveness could not be judged: not recovered at the run's end ({message}), but the faults ended at \
             {:.3} ms and the recovery bound runs to {:.3} ms, after the end at {:.3} ms",
            quiet_ns as f64 / 1e6,
            *wanted as f64 / 1e6,
            end_ns as f64 / 1e6
        ))
    } else if no_operations {
        Some("the clients completed no operation, so the history shows nothing".to_owned())
    } else if nothing_judged(&sim, built.as_ref().ok()) {
        Some(
            "nothing was judged: no message was delivered and no client operation completed, so no property was \
             exercised"
                .to_owned(),
        )
    } else {
        linearizability
            .as_ref()
            .filter(|r| required && r.verdict == Verdict::Unknown)
            .map(|r| r.unknown_reason.clone().unwrap_or_else(|| "the history check was inconclusive".into()))
    };
    let verdict = if !violations.is_empty() {
        Verdict::Violation
    } else if unknown_reason.is_some() {
        Verdict::Unknown
    } else {
        Verdict::Pass
    };
    let queued = scenario.processing != sim_core::ProcessingCosts::default();
    let mut metrics = metrics(&sim, built.as_ref().ok(), schedule.len(), queued);
    metrics.protocol = judge.metrics();
    if model.is_some()
        && let Ok(history) = &built
    {
        let mut shares = availability(history, faults_ns);
        shares.per_side = availability_per_side(history, &schedule, &topology, &drive.client_nodes, faults_ns);
        metrics.availability = Some(shares);
        let final_state = if stopped_by_violation { None } else { judge.final_state(&sim) };
        metrics.consistency = Some(checker::anomalies::measure(history, final_state.as_ref()));
    }
    let stop_text = match violations.first() {
        Some(v) if stopped_by_violation && v.kind == "liveness" => "at the liveness probe, which failed".into(),
        _ if stopped_by_violation => "at the first safety violation".into(),
        _ => stop.to_string(),
    };
    for violation in &mut violations {
        violation.node_label = violation.node.and_then(|n| topology.nodes.get(n)).map(|n| n.label.clone());
    }
    Ok(RunOutcome {
        scenario: scenario.name.clone(),
        protocol: scenario.protocol.clone(),
        variant: scenario.variant_name().to_owned(),
        seed,
        verdict,
        fingerprint: sim.fingerprint().hex(),
        violations,
        metrics,
        stop: stop_text,
        unknown_reason,
        history_check: match history_check {
            HistoryCheck::Required(_) => "required",
            HistoryCheck::Measured(_) => "measured",
            HistoryCheck::None => "none",
        },
        linearizability,
        history,
        topology: Some(topology),
        roles: drive.roles,
        spans: judge.spans(&sim),
    })
}

struct Drive {
    history: Vec<Event>,
    /// The client node behind each history process.
    client_nodes: BTreeMap<u64, usize>,
    violations: Vec<Violation>,
    /// Faults aimed at a role, resolved when their time comes.
    aimed: Vec<(u64, String, Fault)>,
    aimed_cursor: usize,
    stopped_by_violation: bool,
    roles: Vec<RoleChange>,
    /// Whether each node was up after the last step, and its first role; empty when the
    /// run tracks no role lanes.
    up: Vec<bool>,
    initial_roles: Vec<Option<String>>,
}

impl Drive {
    /// A drive tracking the role lanes of `lane_nodes` nodes (0: none).
    fn new<N: Process, J: Judge<N>>(aimed: Vec<(u64, String, Fault)>, judge: &J, lane_nodes: usize) -> Drive {
        let initial_roles: Vec<Option<String>> = (0..lane_nodes).map(|n| judge.initial_role(n)).collect();
        let roles = initial_roles
            .iter()
            .enumerate()
            .filter_map(|(node, role)| role.clone().map(|role| RoleChange { t_ns: 0, node, role, epoch: None }))
            .collect();
        Drive {
            history: Vec::new(),
            client_nodes: BTreeMap::new(),
            violations: Vec::new(),
            aimed,
            aimed_cursor: 0,
            stopped_by_violation: false,
            roles,
            up: vec![true; lane_nodes],
            initial_roles,
        }
    }

    /// Steps until global time `until_ns`; `Some` if the run ended (a violation, or a
    /// limit).
    fn until<N: Process, J: Judge<N>>(&mut self, judge: &mut J, sim: &mut Sim<N>, until_ns: u64) -> Option<StopReason> {
        loop {
            if !self.violations.is_empty() {
                self.stopped_by_violation = true;
                return Some(StopReason::Quiescent);
            }
            let aimed_ns = self.aimed.get(self.aimed_cursor).map(|(at_ns, _, _)| *at_ns).filter(|t| *t <= until_ns);
            match sim.step_until(aimed_ns.unwrap_or(until_ns)) {
                Step::Handled => {}
                Step::Stopped(stop) => return Some(stop),
                Step::Idle => {
                    if let Some(stop) = sim.run_until(aimed_ns.unwrap_or(until_ns)) {
                        return Some(stop);
                    }
                    self.note_up_changes(judge, sim);
                    aimed_ns?;
                    let (at_ns, role, fault) = &self.aimed[self.aimed_cursor];
                    if let Some(node) = judge.target(role, sim) {
                        sim.schedule_fault(*at_ns, aim_at(fault, node)).expect("validated, and now");
                    }
                    self.aimed_cursor += 1;
                    continue;
                }
            }
            self.note_up_changes(judge, sim);
            if let Some(mut violation) = judge.after_step(sim) {
                violation.event = Some(sim.metrics().events);
                self.violations.push(violation);
            }
            self.read_observations(judge, sim);
        }
    }

    /// Judges the observations of the last step, then forgets them: nothing but the
    /// history and the judge's own memory grows with the run.
    fn read_observations<N: Process, J: Judge<N>>(&mut self, judge: &mut J, sim: &mut Sim<N>) {
        let mut index = 0;
        while index < sim.observations().len() {
            let observation = &sim.observations()[index];
            index += 1;
            let before = self.history.len();
            judge.client_events(observation, &mut self.history);
            for event in &self.history[before..] {
                if let Some(process) = event.process {
                    self.client_nodes.insert(process, observation.node);
                }
            }
            if !self.up.is_empty()
                && let Some((role, epoch)) = judge.role_change(observation)
            {
                let change = RoleChange { t_ns: observation.t_ns, node: observation.node, role, epoch };
                self.roles.push(change);
            }
            if let Some(mut violation) = judge.observe(observation, sim) {
                violation.event = Some(sim.metrics().events);
                self.violations.push(violation);
                break;
            }
        }
        sim.clear_observations();
    }

    /// Nodes with roles that went down or came back since the last step, as role
    /// changes (`down`, then the role a node starts in).
    fn note_up_changes<N: Process, J: Judge<N>>(&mut self, judge: &J, sim: &Sim<N>) {
        for node in 0..self.up.len() {
            if self.initial_roles[node].is_none() {
                continue;
            }
            let up = sim.is_up(node);
            if up == self.up[node] {
                continue;
            }
            self.up[node] = up;
            let (role, epoch) = if up { judge.restart_role(node, sim) } else { (Some("down".to_owned()), None) };
            if let Some(role) = role {
                self.roles.push(RoleChange { t_ns: sim.now_ns(), node, role, epoch });
            }
        }
    }
}

/// When the faults of `schedule` have really ended: the heal at `heal_ns`, or the end of
/// a pause begun before it that outlasts it.
fn quiet_after(schedule: &[crate::scenario::Action], heal_ns: u64) -> u64 {
    schedule
        .iter()
        .filter_map(|action| match action.fault {
            Fault::Pause { duration_ms, .. } => {
                let at_ns = (action.at_ms * MS as f64) as u64;
                (at_ns < heal_ns).then(|| at_ns.saturating_add((duration_ms * MS as f64) as u64))
            }
            _ => None,
        })
        .fold(heal_ns, u64::max)
}

/// Availability by phase and per client.
fn availability(history: &checker::History, heal_ns: u64) -> Availability {
    let share = |ops: &mut dyn Iterator<Item = &checker::history::Op>| -> Option<f64> {
        let (mut all, mut answered) = (0usize, 0usize);
        for op in ops {
            all += 1;
            answered += usize::from(op.outcome != Outcome::Info);
        }
        (all > 0).then(|| answered as f64 / all as f64)
    };
    let invoked = |op: &&checker::history::Op| op.invoke_time_ns.unwrap_or(0);
    let mut per_client = BTreeMap::new();
    let processes: std::collections::BTreeSet<u64> = history.ops.iter().map(|op| op.process).collect();
    for process in processes {
        if let Some(value) = share(&mut history.ops.iter().filter(|op| op.process == process)) {
            per_client.insert(process.to_string(), value);
        }
    }
    Availability {
        during_faults: share(&mut history.ops.iter().filter(|op| invoked(op) < heal_ns)),
        after_heal: share(&mut history.ops.iter().filter(|op| invoked(op) >= heal_ns)),
        per_client,
        per_side: BTreeMap::new(),
    }
}

/// Availability by side of the partitions in `schedule`: each operation invoked while a
/// partition stood counts for the side its client was on. The side holding more than
/// half the servers is `majority`, every other side `minority`.
fn availability_per_side(
    history: &checker::History,
    schedule: &[crate::scenario::Action],
    topology: &Topology,
    client_nodes: &BTreeMap<u64, usize>,
    heal_ns: u64,
) -> BTreeMap<String, f64> {
    // The partitions as intervals with each node's side.
    let mut intervals: Vec<(u64, u64, BTreeMap<usize, &'static str>)> = Vec::new();
    let mut actions: Vec<&crate::scenario::Action> = schedule.iter().filter(|a| a.target.is_none()).collect();
    actions.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    for action in actions {
        let at_ns = (action.at_ms * MS as f64) as u64;
        if at_ns >= heal_ns {
            continue;
        }
        match &action.fault {
            Fault::Partition { groups } => {
                if let Some(last) = intervals.last_mut() {
                    last.1 = last.1.min(at_ns);
                }
                let named: std::collections::BTreeSet<usize> = groups.iter().flatten().copied().collect();
                let rest: Vec<usize> = (0..topology.nodes.len()).filter(|n| !named.contains(n)).collect();
                let mut sides = BTreeMap::new();
                for group in groups.iter().chain(std::iter::once(&rest)) {
                    let servers = group.iter().filter(|n| topology.servers.contains(n)).count();
                    let side = if servers * 2 > topology.servers.len() { "majority" } else { "minority" };
                    sides.extend(group.iter().map(|n| (*n, side)));
                }
                intervals.push((at_ns, heal_ns, sides));
            }
            Fault::Heal => {
                if let Some(last) = intervals.last_mut() {
                    last.1 = last.1.min(at_ns);
                }
            }
            _ => {}
        }
    }
    let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for op in &history.ops {
        let (Some(t), Some(node)) = (op.invoke_time_ns, client_nodes.get(&op.process)) else { continue };
        let Some((_, _, sides)) = intervals.iter().find(|(from, to, _)| (*from..*to).contains(&t)) else { continue };
        let Some(side) = sides.get(node) else { continue };
        let entry = counts.entry(side).or_default();
        entry.0 += 1;
        entry.1 += usize::from(op.outcome != Outcome::Info);
    }
    counts.into_iter().map(|(side, (all, answered))| (side.to_owned(), answered as f64 / all as f64)).collect()
}

/// The history the clients' events make.
pub fn history_of(events: &[Event]) -> Result<checker::History, String> {
    let mut builder = HistoryBuilder::default();
    for event in events {
        builder.push(event.clone()).map_err(|e| format!("the simulated clients broke the history conventions: {e}"))?;
    }
    Ok(builder.finish())
}

fn check_history(model: ModelKind, history: &checker::History, budget_steps: u64) -> Result<checker::Report, String> {
    let options = CheckOptions { budget: Budget { steps_max: budget_steps, ..Budget::default() }, split: true };
    checker::check(model, None, history, &options).map_err(|e| e.to_string())
}

fn linearizability_violation(report: &checker::Report) -> Violation {
    let message = match &report.explanation {
        Some(e) => {
            let key = e.partition.as_ref().map(|k| format!(" on key {k}")).unwrap_or_default();
            format!("the client history is not linearizable{key}: no order explains {}", e.op)
        }
        None => "the client history is not linearizable".to_owned(),
    };
    // Judged after the run: no single event to point at.
    Violation::new("linearizability", message, 0, None)
}

/// Every operation invoked at or after `from_ns` must complete (ok or fail) within
/// `bound_ns`; one still pending at the end only counts if it had the time.
fn operation_liveness(history: &checker::History, from_ns: u64, end_ns: u64, bound_ns: u64) -> Option<Violation> {
    for op in &history.ops {
        let invoked = op.invoke_time_ns.unwrap_or(0);
        if invoked < from_ns {
            continue;
        }
        let late = match (op.outcome, op.complete_time_ns) {
            (Outcome::Ok | Outcome::Fail, Some(done)) => done - invoked > bound_ns,
            (_, Some(_)) => true,
            (_, None) => invoked + bound_ns <= end_ns,
        };
        if late {
            let message = format!(
                "operation {} invoked {:.1} ms after the heal did not complete within {} ms",
                op,
                (invoked - from_ns) as f64 / 1e6,
                bound_ns / MS
            );
            return Some(Violation::new("liveness", message, invoked, None));
        }
    }
    None
}

/// Progress after the faults ended: if operations were invoked after `quiet_ns`, at
/// least one of them completed (ok or fail) by the end. Judged in every scenario whose
/// clients run past the heal, including those whose clients stop before the liveness
/// probe (a system that elects leaders but commits nothing fails here).
fn progress_after(history: &checker::History, quiet_ns: u64, end_ns: u64) -> Option<Violation> {
    let after: Vec<&checker::history::Op> =
        history.ops.iter().filter(|op| op.invoke_time_ns.is_some_and(|t| t >= quiet_ns)).collect();
    let completed = after.iter().any(|op| matches!(op.outcome, Outcome::Ok | Outcome::Fail));
    if after.is_empty() || completed {
        return None;
    }
    let message = format!(
        "none of the {} operations invoked after the faults ended ({:.1} ms) completed by the end ({:.1} ms)",
        after.len(),
        quiet_ns as f64 / 1e6,
        end_ns as f64 / 1e6
    );
    Some(Violation::new("liveness", message, end_ns, None))
}

fn metrics<P: Process>(sim: &Sim<P>, history: Option<&checker::History>, faults: usize, queued: bool) -> RunMetrics {
    let engine = sim.metrics();
    let mut latencies: Vec<u64> = Vec::new();
    let (mut ok, mut fail, mut info) = (0, 0, 0);
    if let Some(history) = history {
        for op in &history.ops {
            match op.outcome {
                Outcome::Ok => ok += 1,
                Outcome::Fail => fail += 1,
                Outcome::Info => info += 1,
            }
            if let (Outcome::Ok | Outcome::Fail, Some(done), Some(start)) =
                (op.outcome, op.complete_time_ns, op.invoke_time_ns)
            {
                latencies.push(done - start);
            }
        }
    }
    latencies.sort_unstable();
    let percentile = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let rank = ((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
        latencies[rank - 1] as f64 / 1e6
    };
    RunMetrics {
        events: engine.events,
        virtual_ms: sim.now_ns() as f64 / 1e6,
        messages_sent: engine.messages_sent,
        messages_delivered: engine.messages_delivered,
        messages_dropped: engine.messages_dropped(),
        messages_duplicated: engine.messages_duplicated,
        faults,
        ops_ok: ok,
        ops_fail: fail,
        ops_info: info,
        latency_p50_ms: percentile(0.5),
        latency_p90_ms: percentile(0.9),
        latency_p99_ms: percentile(0.99),
        latency_max_ms: percentile(1.0),
        protocol: BTreeMap::new(),
        availability: None,
        consistency: None,
        queue_ms_p99: queued.then(|| queue_p99_ms(sim.queue_delays_ns())),
        queue_len_max: queued.then_some(engine.queue_len_max),
    }
}

/// Whether a run exercised nothing: no message reached any node and no client operation
/// completed (every link dropped everything, say). Such a run can break no property, so
/// its verdict is unknown, never a pass.
fn nothing_judged<P: Process>(sim: &Sim<P>, history: Option<&checker::History>) -> bool {
    let completed = history.is_some_and(|h| h.ops.iter().any(|op| op.outcome != Outcome::Info));
    sim.metrics().messages_delivered == 0 && !completed
}

/// The 99th percentile of the queueing delays, in ms (0 when no event waited).
fn queue_p99_ms(delays_ns: &[u64]) -> f64 {
    let mut sorted = delays_ns.to_vec();
    sorted.sort_unstable();
    let rank = ((0.99 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).map_or(0.0, |ns| *ns as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use checker::history::EventType;
    use checker::value::Value;

    use super::*;

    fn event(process: u64, kind: EventType, t_ms: u64) -> Event {
        Event {
            process: Some(process),
            kind,
            f: "put".into(),
            key: Some(Value::Str("k".into())),
            value: Value::Str(format!("v{process}")),
            time_ns: Some(t_ms * MS),
            line: 0,
            column: 0,
        }
    }

    /// Operations invoked after the faults ended (at 100 ms): the first at 150 ms ends
    /// as `first`, the second at 160 ms gives up.
    fn history(first: EventType) -> checker::History {
        history_of(&[
            event(1, EventType::Invoke, 50),
            event(1, EventType::Ok, 60),
            event(1, EventType::Invoke, 150),
            event(2, EventType::Invoke, 160),
            event(1, first, 170),
            event(2, EventType::Info, 400),
        ])
        .unwrap()
    }

    #[test]
    fn progress_after_the_faults_fires_when_nothing_completes() {
        let violation = progress_after(&history(EventType::Info), 100 * MS, 1_000 * MS).expect("no progress");
        assert_eq!(violation.kind, "liveness");
        assert!(violation.message.contains("none of the 2 operations"), "{}", violation.message);
        assert_eq!(progress_after(&history(EventType::Ok), 100 * MS, 1_000 * MS), None);
        assert_eq!(progress_after(&history(EventType::Fail), 100 * MS, 1_000 * MS), None);
        // Nothing invoked after the faults: nothing to judge.
        assert_eq!(progress_after(&history(EventType::Info), 500 * MS, 1_000 * MS), None);
    }

    #[test]
    fn quiet_after_is_the_end_of_a_pause_that_outlasts_the_heal() {
        let pause = |at_ms: f64, duration_ms: f64| crate::scenario::Action {
            at_ms,
            fault: Fault::Pause { node: 0, duration_ms },
            target: None,
        };
        assert_eq!(quiet_after(&[pause(50.0, 20.0)], 100 * MS), 100 * MS);
        assert_eq!(quiet_after(&[pause(90.0, 300.0), pause(10.0, 20.0)], 100 * MS), 390 * MS);
        assert_eq!(quiet_after(&[pause(150.0, 300.0)], 100 * MS), 100 * MS);
    }
}

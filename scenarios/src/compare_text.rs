//! The words of a comparison: readable system names, what kind of comparison it is (read
//! from the figures every system measured, never from protocol names), the setup in a
//! paragraph, what each key-value system did under the partition, and the lead
//! sentences that say who did better on what.
//!
//! A difference is called a win only when it lies outside the seeds' spread: one
//! system's largest value over the seeds is below every other system's smallest.
//! Otherwise the sentence says the figures overlap.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::compare_cmd::{Comparison, Verdicts};
use crate::scenario::Scenario;

/// What is being compared, from the figures every system measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Key-value stores whose clients' reads and writes were measured (the CAP page).
    Kv,
    /// Locks: every system acquired locks.
    Locks,
    /// Atomic commitment: every system committed transactions.
    Transactions,
    Generic,
}

impl Kind {
    /// The kind every system's figures share.
    pub fn of(figures: &[BTreeMap<String, Vec<f64>>]) -> Kind {
        let all = |name: &str| !figures.is_empty() && figures.iter().all(|f| f.contains_key(name));
        if all("acquisitions") {
            Kind::Locks
        } else if all("commits") {
            Kind::Transactions
        } else if all("reads") && all("availability_during_faults") {
            Kind::Kv
        } else {
            Kind::Generic
        }
    }

    /// The page's title.
    pub fn title(self) -> &'static str {
        match self {
            Kind::Kv => "Key-value stores under a partition: consistency against availability",
            Kind::Locks => "Locks under faults: who kept mutual exclusion, and at what cost",
            Kind::Transactions => "Atomic commitment under faults: atomicity, blocking and cost",
            Kind::Generic => "Systems side by side",
        }
    }
}

/// A system's name for people: the scenario with its overrides in words, in the order
/// given (`db-lock-hostile:expiry=false,variant=fencing` is `db-lock-hostile (no
/// expiry, fencing)`).
pub fn readable_name(argument: &str) -> String {
    let Some((name, overrides)) = argument.split_once(':') else { return argument.to_owned() };
    let last = |path: &str| path.rsplit('.').next().unwrap_or(path).replace('_', " ");
    let words: Vec<String> = overrides
        .split(',')
        .filter(|a| !a.is_empty())
        .map(|assignment| match assignment.split_once('=') {
            Some(("variant", value)) => value.to_owned(),
            Some((path, "false")) => format!("no {}", last(path)),
            Some((path, "true")) => last(path),
            Some((path, value)) => format!("{} = {value}", last(path)),
            None => assignment.to_owned(),
        })
        .collect();
    if words.is_empty() { name.to_owned() } else { format!("{name} ({})", words.join(", ")) }
}

/// A number for a sentence: whole numbers without decimals, others with one or two.
pub fn number(v: f64) -> String {
    if (v.fract() == 0.0 && v.abs() < 1e15) || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn percent(v: f64) -> String {
    format!("{:.0}%", 100.0 * v)
}

/// Names joined as a reader says them: `a`, `a and b`, `a, b and c`.
pub fn and_list(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// A node set in the topology's words: `server 0, server 1 and client 5`.
fn node_names(ids: &[usize], labels: &[String]) -> String {
    let names: Vec<String> =
        ids.iter().map(|id| labels.get(*id).cloned().unwrap_or_else(|| format!("node {id}"))).collect();
    and_list(&names)
}

fn latency_words(latency: &sim_core::Latency) -> String {
    use sim_core::Latency;
    match latency {
        Latency::Constant { ms } => format!("a constant {} ms", number(*ms)),
        Latency::Uniform { min_ms, max_ms } => format!("{}–{} ms (uniform)", number(*min_ms), number(*max_ms)),
        Latency::Normal { mean_ms, stddev_ms, .. } => {
            format!("a mean of {} ms (normal, σ {} ms)", number(*mean_ms), number(*stddev_ms))
        }
        Latency::LogNormal { median_ms, sigma } => {
            format!("a median of {} ms (log-normal, σ {sigma})", number(*median_ms))
        }
        Latency::ExponentialTail { base_ms, tail_mean_ms } => {
            format!("{} ms plus an exponential tail of mean {} ms", number(*base_ms), number(*tail_mean_ms))
        }
        Latency::Pareto { scale_ms, shape } => format!("at least {} ms (Pareto, shape {shape})", number(*scale_ms)),
        Latency::Mixture { parts } => format!("a mixture of {} distributions", parts.len()),
    }
}

fn fault_words(fault: &sim_core::Fault, labels: &[String]) -> String {
    use sim_core::Fault;
    let name = |n: &usize| labels.get(*n).cloned().unwrap_or_else(|| format!("node {n}"));
    match fault {
        Fault::Partition { groups } => {
            let sides: Vec<String> = groups.iter().map(|g| format!("{{{}}}", node_names(g, labels))).collect();
            format!("a partition separates {}", and_list(&sides))
        }
        Fault::Cut { from, to } => {
            format!("a one-way cut drops messages from {} to {}", node_names(from, labels), node_names(to, labels))
        }
        Fault::Bridge { left, bridge, right } => {
            format!("{} and {} meet only through {}", node_names(left, labels), node_names(right, labels), name(bridge))
        }
        Fault::Heal => "every cut heals".to_owned(),
        Fault::SetLinks { .. } => "some links change their behaviour".to_owned(),
        Fault::ResetLinks => "links return to the scenario's network".to_owned(),
        Fault::Crash { node, .. } => format!("{} crashes", name(node)),
        Fault::CrashDuringWrite { node, .. } => format!("{} crashes in the middle of a storage write", name(node)),
        Fault::Restart { node } => format!("{} restarts", name(node)),
        Fault::Pause { node, duration_ms } => format!("{} pauses for {} ms", name(node), number(*duration_ms)),
        Fault::ClockOffset { node, offset_ms } => {
            format!("{}'s clock is set {} ms {}", name(node), number(offset_ms.abs()), ahead(*offset_ms))
        }
        Fault::ClockDrift { node, drift_ppm } => format!("{}'s clock drifts {drift_ppm:+} ppm", name(node)),
        Fault::ClockJump { node, delta_ms } => {
            format!("{}'s clock jumps {} ms {}", name(node), number(delta_ms.abs()), ahead(*delta_ms))
        }
    }
}

/// `1 server`, `3 servers`.
pub fn plural(count: usize, word: &str) -> String {
    if count == 1 { format!("1 {word}") } else { format!("{count} {word}s") }
}

fn ahead(ms: f64) -> &'static str {
    if ms < 0.0 { "behind" } else { "ahead" }
}

/// The setup in a short paragraph, from the first system's scenario and the first seed:
/// the cluster, the links, the faults (or how they are drawn), the workload and the
/// run's phases.
pub fn setup(scenario: &Scenario, seed: u64) -> String {
    let mut out = format!(
        "Setup (from {}, seed {seed}): {} and {}; links take {}",
        scenario.name,
        plural(scenario.cluster.servers, "server"),
        plural(scenario.cluster.clients, "client"),
        latency_words(&scenario.network.default.latency)
    );
    let link = &scenario.network.default;
    if link.drop > 0.0 || link.duplicate > 0.0 {
        out.push_str(&format!(", drop {} and duplicate {}", percent(link.drop), percent(link.duplicate)));
    }
    out.push_str(". ");
    let topology = crate::registry::find(&scenario.protocol).and_then(|p| p.topology(scenario).ok());
    let labels: Vec<String> =
        topology.as_ref().map(|t| t.nodes.iter().map(|n| n.label.clone()).collect()).unwrap_or_default();
    if let Some(generator) = &scenario.nemesis.generator {
        let kinds: Vec<String> = generator.kinds.keys().map(|k| k.replace('_', " ")).collect();
        out.push_str(&format!(
            "Faults are drawn per seed ({}), one every {}–{} ms, each lasting {}–{} ms. ",
            and_list(&kinds),
            number(generator.interval_ms[0]),
            number(generator.interval_ms[1]),
            number(generator.fault_ms[0]),
            number(generator.fault_ms[1])
        ));
    }
    if let Some(topology) = &topology {
        let mut actions = crate::nemesis::materialize(scenario, topology, seed);
        actions.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
        let scheduled: Vec<String> = actions
            .iter()
            .filter(|a| scenario.nemesis.generator.is_none() && a.at_ms < scenario.duration.faults_ms)
            .map(|a| format!("at {} ms {}", number(a.at_ms), fault_words(&a.fault, &labels)))
            .collect();
        if !scheduled.is_empty() {
            out.push_str(&format!("Faults: {}. ", scheduled.join("; ")));
        }
    }
    if let Some(workload) = scenario.settings.get("workload") {
        out.push_str(&workload_words(workload));
    }
    out.push_str(&format!(
        "Each run lasts {} s: {} s of faults, then {} s with every fault healed.",
        number((scenario.duration.faults_ms + scenario.duration.healed_ms) / 1e3),
        number(scenario.duration.faults_ms / 1e3),
        number(scenario.duration.healed_ms / 1e3)
    ));
    out
}

/// A kv workload in words: rate, keys and the operation mix.
fn workload_words(workload: &serde_json::Value) -> String {
    let mut out = String::from("Workload: each client");
    if let Some(rate) = workload.get("rate_per_client").and_then(serde_json::Value::as_f64) {
        out.push_str(&format!(" issues {} operations a second", number(rate)));
    }
    if let Some(keys) = workload.get("keys").and_then(serde_json::Value::as_u64) {
        out.push_str(&format!(" on {}", plural(keys as usize, "key")));
    }
    if let Some(mix) = workload.get("mix").and_then(serde_json::Value::as_object) {
        let total: f64 = mix.values().filter_map(serde_json::Value::as_f64).sum();
        let parts: Vec<String> = mix
            .iter()
            .filter_map(|(op, w)| w.as_f64().filter(|w| *w > 0.0).map(|w| format!("{} {op}", percent(w / total))))
            .collect();
        if total > 0.0 {
            out.push_str(&format!(" ({})", parts.join(", ")));
        }
    }
    if workload.get("reads_after_heal").and_then(serde_json::Value::as_bool) == Some(true) {
        out.push_str(", and only reads after the heal");
    }
    if out == "Workload: each client" { String::new() } else { out + ". " }
}

/// What a key-value system did under the partition, from the evidence: CP only when every
/// seed's history was linearizable and the minority side refused; AP when it answered on
/// both sides; otherwise what it did, in plain words.
pub fn behaviour(figures: &BTreeMap<String, Vec<f64>>, linearizable: [u64; 3]) -> String {
    let median = |name: &str| median(figures.get(name));
    let seeds = linearizable.iter().sum::<u64>();
    let (Some(minority), Some(majority)) = (median("availability_minority_side"), median("availability_majority_side"))
    else {
        return if seeds == 0 {
            String::new()
        } else {
            format!("no partition with clients on both sides; linearizable on {} of {seeds} seeds", linearizable[0])
        };
    };
    let lost = median("lost_writes").unwrap_or(0.0);
    let lost_most = figures.get("lost_writes").and_then(|v| v.iter().copied().reduce(f64::max)).unwrap_or(0.0);
    let stale = median("stale_reads").unwrap_or(0.0);
    let all_linearizable = linearizable[0] == seeds && seeds > 0;
    let refused = minority < 0.5;
    let sides =
        format!("{} answered on the minority side, {} on the majority side", percent(minority), percent(majority));
    let consistency = if all_linearizable {
        format!("linearizable on all {seeds} seeds")
    } else {
        let lost = if lost_most > 0.0 {
            format!(", lost {} acknowledged writes (median; up to {})", number(lost), number(lost_most))
        } else {
            ", lost no acknowledged write".to_owned()
        };
        format!("linearizable on {} of {seeds} seeds{lost}, {} stale reads (median)", linearizable[0], number(stale))
    };
    if all_linearizable && refused {
        format!("CP: refused on the minority side and stayed linearizable ({sides}; {consistency})")
    } else if !refused && majority >= 0.5 {
        let still = if lost_most > 0.0 { " and still lost writes" } else { "" };
        format!("AP: answered on both sides{still} ({sides}; {consistency})")
    } else if refused && majority < 0.5 {
        format!("refused on both sides ({sides}; {consistency})")
    } else {
        format!("refused on the minority side but was not linearizable ({sides}; {consistency})")
    }
}

fn median(values: Option<&Vec<f64>>) -> Option<f64> {
    let mut sorted = values.filter(|v| !v.is_empty())?.clone();
    sorted.sort_by(f64::total_cmp);
    Some(sorted[sorted.len() / 2])
}

/// Which way a figure is better.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
}

/// The system clearly best on `figure`: against every other system that measured it,
/// either every one of its seeds beats every seed of the other (the ranges do not
/// overlap), or it beats the other on every seed both measured (the runs of one seed
/// share their workload and faults), over at least three such seeds. `None` when no
/// system is, or fewer than two measured it.
pub fn clear_best(c: &Comparison, figure: &str, better: Better) -> Option<usize> {
    let f = c.figure(figure)?;
    let measured: Vec<usize> = (0..c.systems.len()).filter(|i| f.medians[*i].is_some()).collect();
    if measured.len() < 2 {
        return None;
    }
    let wins = |a: f64, b: f64| if better == Better::Lower { a < b } else { a > b };
    let apart = |i: usize, j: usize| match better {
        Better::Lower => f.maxes[i].zip(f.mins[j]).is_some_and(|(a, b)| a < b),
        Better::Higher => f.mins[i].zip(f.maxes[j]).is_some_and(|(a, b)| a > b),
    };
    let paired = |i: usize, j: usize| {
        let common: Vec<(f64, f64)> =
            f.per_seed[i].iter().filter_map(|(seed, a)| f.per_seed[j].get(seed).map(|b| (*a, *b))).collect();
        common.len() >= 3 && common.iter().all(|(a, b)| wins(*a, *b))
    };
    measured.iter().copied().find(|i| measured.iter().all(|j| *j == *i || apart(*i, *j) || paired(*i, *j)))
}

/// The system with the best median when it beats each other system on at least three in
/// four of the seeds both measured: (system, fewest seeds won against one other, of how
/// many). Not a clear win (the seeds disagree), so the sentence gives the counts.
fn usually_best(c: &Comparison, figure: &str, better: Better) -> Option<(usize, usize, usize)> {
    let f = c.figure(figure)?;
    let measured: Vec<usize> = (0..c.systems.len()).filter(|i| f.medians[*i].is_some()).collect();
    let key = |i: &usize| f.medians[*i].unwrap_or_default();
    let best = *measured.iter().min_by(|a, b| match better {
        Better::Lower => key(a).total_cmp(&key(b)),
        Better::Higher => key(b).total_cmp(&key(a)),
    })?;
    let mut worst_case: Option<(usize, usize)> = None;
    for j in measured.iter().filter(|j| **j != best) {
        let common: Vec<(f64, f64)> =
            f.per_seed[best].iter().filter_map(|(seed, a)| f.per_seed[*j].get(seed).map(|b| (*a, *b))).collect();
        let won = common.iter().filter(|(a, b)| if better == Better::Lower { a < b } else { a > b }).count();
        if common.len() < 4 || won * 4 < common.len() * 3 {
            return None;
        }
        if worst_case.is_none_or(|(w, n)| won * n < w * common.len()) {
            worst_case = Some((won, common.len()));
        }
    }
    worst_case.map(|(won, common)| (best, won, common))
}

fn others_low(f: &crate::compare_cmd::Figure, i: usize) -> f64 {
    (0..f.medians.len()).filter(|j| *j != i).filter_map(|j| f.medians[j]).fold(f64::MAX, f64::min)
}

fn others_high(f: &crate::compare_cmd::Figure, i: usize) -> f64 {
    (0..f.medians.len()).filter(|j| *j != i).filter_map(|j| f.medians[j]).fold(f64::MIN, f64::max)
}

/// One sentence on `figure`: who is clearly best, or that the seeds' ranges overlap.
fn figure_sentence(c: &Comparison, figure: &str, what: &str, better: Better, unit: &str) -> Option<String> {
    let f = c.figure(figure)?;
    let measured: Vec<usize> = (0..c.systems.len()).filter(|i| f.medians[*i].is_some()).collect();
    if measured.len() < 2 {
        return None;
    }
    let medians: Vec<f64> = measured.iter().filter_map(|i| f.medians[*i]).collect();
    let (low, high) = medians.iter().fold((f64::MAX, f64::MIN), |(lo, hi), m| (lo.min(*m), hi.max(*m)));
    let adjective = if better == Better::Lower { "lowest" } else { "highest" };
    Some(match clear_best(c, figure, better) {
        Some(i) => {
            let others: Vec<f64> = measured.iter().filter(|j| **j != i).filter_map(|j| f.medians[*j]).collect();
            let (o_low, o_high) = others.iter().fold((f64::MAX, f64::MIN), |(lo, hi), m| (lo.min(*m), hi.max(*m)));
            let others = if o_low == o_high {
                format!("{}{unit}", number(o_low))
            } else {
                format!("{}–{}{unit}", number(o_low), number(o_high))
            };
            format!(
                "{} had the {adjective} {what} on every seed: a median of {}{unit} against {others} for the others.",
                c.labels[i],
                number(f.medians[i].unwrap_or_default())
            )
        }
        None if low == high => format!("Every system had the same median {what} ({}{unit}).", number(low)),
        None if usually_best(c, figure, better).is_some() => {
            let (i, won, common) = usually_best(c, figure, better).unwrap_or_default();
            let (low, high) = (others_low(f, i), others_high(f, i));
            let (rivals, others) = if measured.len() == 2 {
                let j = measured.iter().copied().find(|j| *j != i).unwrap_or_default();
                (c.labels[j].clone(), format!("{}{unit}", number(low)))
            } else if low == high {
                ("each other system".to_owned(), format!("{}{unit} for the others", number(low)))
            } else {
                ("each other system".to_owned(), format!("{}–{}{unit} for the others", number(low), number(high)))
            };
            format!(
                "{} usually had the {adjective} {what}: better than {rivals} on {won} of {common} seeds \
                 (a median of {}{unit} against {others}).",
                c.labels[i],
                number(f.medians[i].unwrap_or_default()),
            )
        }
        None => format!(
            "No system had a clearly {} {what}: the seeds' values overlap (medians {}–{}{unit}).",
            if better == Better::Lower { "lower" } else { "higher" },
            number(low),
            number(high),
        ),
    })
}

/// Which systems kept `property` on every seed, and which broke it most often (the
/// breakdown by kind is in the tables below).
fn violation_sentence(c: &Comparison, property: &str) -> String {
    let seeds = c.seeds.len();
    let clean: Vec<String> =
        (0..c.systems.len()).filter(|i| c.verdicts[*i].violation == 0).map(|i| c.labels[i].clone()).collect();
    let mut broken: Vec<usize> = (0..c.systems.len()).filter(|i| c.verdicts[*i].violation > 0).collect();
    broken.sort_by_key(|i| std::cmp::Reverse(c.verdicts[*i].violation));
    let worst = |i: &usize| {
        let v: &Verdicts = &c.verdicts[*i];
        let first = v.first_failure.as_ref().map_or(String::new(), |(seed, _)| format!(", first at seed {seed}"));
        format!("{} ({} of {seeds} seeds{first})", c.labels[*i], v.violation)
    };
    match (clean.is_empty(), broken.len()) {
        (_, 0) => format!("{property} held on every seed for every system."),
        (true, _) => format!("{property} broke for every system; most often for {}.", worst(&broken[0])),
        (false, 1) => {
            format!("{property} held on every seed for {}; it broke for {}.", and_list(&clean), worst(&broken[0]))
        }
        (false, n) => format!(
            "{property} held on every seed only for {}; it broke for the other {n}, most often for {}.",
            and_list(&clean),
            worst(&broken[0])
        ),
    }
}

/// Two or three sentences that say who did better on what.
pub fn lead(c: &Comparison) -> Vec<String> {
    let mut out = Vec::new();
    match c.kind {
        Kind::Kv => {
            let class = |prefix: &str| -> Vec<String> {
                (0..c.systems.len())
                    .filter(|i| c.cap_summary[*i].starts_with(prefix))
                    .map(|i| c.labels[i].clone())
                    .collect()
            };
            let (cp, ap) = (class("CP"), class("AP"));
            let neither: Vec<String> = (0..c.systems.len())
                .filter(|i| !c.cap_summary[*i].starts_with("CP") && !c.cap_summary[*i].starts_with("AP"))
                .map(|i| format!("{} {}", c.labels[i], c.cap_summary[i].split(" (").next().unwrap_or_default()))
                .collect();
            let mut first = Vec::new();
            if !cp.is_empty() {
                first.push(format!(
                    "CP, refusing on the minority side and linearizable on every seed: {}",
                    and_list(&cp)
                ));
            }
            if !ap.is_empty() {
                first.push(format!("AP, answering on both sides of the partition: {}", and_list(&ap)));
            }
            if !neither.is_empty() {
                first.push(format!("neither: {}", and_list(&neither)));
            }
            if !first.is_empty() {
                out.push(format!("{}.", capitalise(&first.join("; "))));
            }
            let lost: Vec<String> = (0..c.systems.len())
                .filter_map(|i| {
                    let f = c.figure("lost_writes")?;
                    let most = f.maxes[i].filter(|m| *m > 0.0)?;
                    Some(format!("{} (median {}, up to {})", c.labels[i], number(f.medians[i]?), number(most)))
                })
                .collect();
            out.push(if lost.is_empty() {
                "No system lost an acknowledged write on any seed.".to_owned()
            } else {
                format!("Acknowledged writes were lost by {} per run.", and_list(&lost))
            });
            out.extend(figure_sentence(c, "latency_p50_ms", "median latency", Better::Lower, " ms"));
        }
        Kind::Locks => {
            out.push(violation_sentence(c, "Mutual exclusion and liveness"));
            let refused: Vec<String> = (0..c.systems.len())
                .filter_map(|i| {
                    let most = c.figure("storage_refusals")?.maxes[i].filter(|m| *m > 0.0)?;
                    Some(format!("{} (up to {} a run)", c.labels[i], number(most)))
                })
                .collect();
            if !refused.is_empty() {
                out.push(format!("Fencing made the storage refuse late writes in {}.", and_list(&refused)));
            }
            out.extend(figure_sentence(
                c,
                "messages_per_acquisition",
                "cost in messages per acquisition",
                Better::Lower,
                "",
            ));
        }
        Kind::Transactions => {
            out.push(violation_sentence(c, "Atomicity"));
            out.extend(figure_sentence(c, "in_doubt_ms_p99", "99th-percentile time in doubt", Better::Lower, " ms"));
            out.extend(figure_sentence(c, "messages_per_txn", "messages per transaction", Better::Lower, ""));
        }
        Kind::Generic => {
            out.push(violation_sentence(c, "Every checked property"));
            out.extend(figure_sentence(c, "latency_p50_ms", "median latency", Better::Lower, " ms"));
        }
    }
    out
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().collect::<String>() + chars.as_str()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_are_written_readably() {
        assert_eq!(readable_name("db-lock-hostile"), "db-lock-hostile");
        assert_eq!(readable_name("db-lock-hostile:variant=fencing"), "db-lock-hostile (fencing)");
        assert_eq!(
            readable_name("db-lock-hostile:expiry=false,variant=fencing"),
            "db-lock-hostile (no expiry, fencing)"
        );
        assert_eq!(
            readable_name("cap-dynamo-311-sloppy:dynamo.r=2,dynamo.w=2"),
            "cap-dynamo-311-sloppy (r = 2, w = 2)"
        );
    }

    fn figures(minority: f64, majority: f64, lost: &[f64]) -> BTreeMap<String, Vec<f64>> {
        BTreeMap::from([
            ("availability_minority_side".to_owned(), vec![minority]),
            ("availability_majority_side".to_owned(), vec![majority]),
            ("lost_writes".to_owned(), lost.to_vec()),
            ("stale_reads".to_owned(), vec![0.0]),
        ])
    }

    #[test]
    fn cp_needs_every_seed_linearizable_and_a_refusing_minority() {
        assert!(behaviour(&figures(0.0, 1.0, &[0.0, 0.0]), [2, 0, 0]).starts_with("CP: refused on the minority side"));
        // Refused, but one seed was not linearizable: not CP.
        let text = behaviour(&figures(0.0, 1.0, &[0.0, 3.0]), [1, 1, 0]);
        assert!(text.starts_with("refused on the minority side but was not linearizable"), "{text}");
        // One seed undecided is not "every seed linearizable" either.
        assert!(!behaviour(&figures(0.0, 1.0, &[0.0, 0.0]), [1, 0, 1]).starts_with("CP"));
        let text = behaviour(&figures(1.0, 1.0, &[2.0, 3.0]), [0, 2, 0]);
        assert!(text.starts_with("AP: answered on both sides and still lost writes"), "{text}");
        assert!(behaviour(&figures(0.2, 0.1, &[0.0]), [0, 1, 0]).starts_with("refused on both sides"));
    }
}

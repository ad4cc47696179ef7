//! `dsim fuzz`: many seeds in parallel, failures shrunk and saved as scenario files.
//!
//! Seeds are independent runs, each single-threaded and deterministic, so a campaign is
//! split freely: across `--jobs` threads here, and across machines with `--shard I/N`
//! (seed `s` belongs to shard `s mod N`). Which seeds ran and what each found does not
//! depend on `--jobs`: without `--keep-going` the campaign stops at the lowest failing
//! seed, and every seed below it is run and reported, whatever the thread count.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use checker::Verdict;
use clap::Args;
use serde::Serialize;

use crate::cli::exit;
use crate::library;
use crate::nemesis::materialize;
use crate::output::write_atomic;
use crate::run_cmd::run_scenario;
use crate::scenario::{Nemesis, Scenario};

#[derive(Args, Debug)]
pub struct FuzzArgs {
    /// A built-in scenario's name or a scenario file.
    pub scenario: String,
    /// How many seeds to try (before sharding), 1 to 10000000.
    #[arg(long, conflicts_with = "time_s", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub seeds: Option<u64>,
    /// Try seeds for this many seconds of wall time instead.
    #[arg(long)]
    pub time_s: Option<f64>,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    pub start_seed: u64,
    /// Worker threads (default: the machine's cores), 1 to 256.
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    pub jobs: Option<usize>,
    /// Run only the seeds congruent to I modulo N (0 <= I < N).
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<(u64, u64)>,
    /// A known-bug variant of the protocol.
    #[arg(long)]
    pub variant: Option<String>,
    /// Where shrunk failures are saved.
    #[arg(long, default_value = "dsim-failures")]
    pub out: PathBuf,
    /// Go on after the first failure.
    #[arg(long)]
    pub keep_going: bool,
    /// Save failures as found, without shrinking.
    #[arg(long)]
    pub no_shrink: bool,
    /// Which failures to shrink and save: `all`, or `one-per-kind` (with --keep-going: the
    /// smallest failing seed of each violation kind; the others are logged in
    /// results.jsonl and counted, not saved).
    #[arg(long, value_enum, default_value = "all")]
    pub save: SaveMode,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod shard_tests {
    use super::shard_problem;

    #[test]
    fn missing_repeated_and_mixed_shards_are_named() {
        let shards = |list: &[&str]| list.iter().map(|s| Some((*s).to_owned())).collect::<Vec<_>>();
        assert_eq!(shard_problem(&shards(&["0/3", "1/3", "2/3"])), None);
        assert!(shard_problem(&shards(&["0/3", "2/3"])).unwrap().contains("shards missing: 1/3"));
        assert!(shard_problem(&shards(&["0/2", "0/2", "1/2"])).unwrap().contains("more than once: 0/2"));
        assert!(shard_problem(&shards(&["0/2", "1/3"])).unwrap().contains("differently"));
        assert!(shard_problem(&[None]).unwrap().contains("without --shard"));
    }
}

fn parse_shard(text: &str) -> Result<(u64, u64), String> {
    let (i, n) = text.split_once('/').ok_or("expected I/N, e.g. 0/4")?;
    let i: u64 = i.trim().parse().map_err(|_| format!("bad shard index {i:?}"))?;
    let n: u64 = n.trim().parse().map_err(|_| format!("bad shard count {n:?}"))?;
    if n == 0 || i >= n {
        return Err(format!("shard {i}/{n}: the index must be below the count, and the count positive"));
    }
    Ok((i, n))
}

/// One failing seed. `violation`, `message` and `fingerprint` are those of the saved
/// (shrunk) file's run, which `dsim replay FILE` shows; `original_*` are the seed's
/// unshrunk run's.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Failure {
    pub seed: u64,
    pub violation: String,
    pub message: String,
    pub fingerprint: String,
    pub original_violation: String,
    pub original_message: String,
    pub original_fingerprint: String,
    pub file: Option<String>,
    pub replay: Option<String>,
    pub fault_actions: usize,
    pub fault_actions_shrunk: Option<usize>,
    pub shrink_runs: usize,
    pub shrink_s: f64,
}

/// Failures of one violation signature (its kind: the property that failed).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct FailureGroup {
    pub violation: String,
    pub count: usize,
    pub smallest_seed: u64,
}

/// The failures grouped by violation, most frequent first.
pub fn group_failures(failures: &[Failure]) -> Vec<FailureGroup> {
    let mut groups: Vec<FailureGroup> = Vec::new();
    for failure in failures {
        match groups.iter_mut().find(|g| g.violation == failure.violation) {
            Some(group) => {
                group.count += 1;
                group.smallest_seed = group.smallest_seed.min(failure.seed);
            }
            None => groups.push(FailureGroup {
                violation: failure.violation.clone(),
                count: 1,
                smallest_seed: failure.seed,
            }),
        }
    }
    groups.sort_by(|a, b| b.count.cmp(&a.count).then(a.smallest_seed.cmp(&b.smallest_seed)));
    groups
}

/// What a campaign did.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct FuzzReport {
    pub scenario: String,
    pub variant: String,
    pub shard: Option<String>,
    pub jobs: usize,
    pub seeds_run: Vec<u64>,
    pub unknown: Vec<u64>,
    /// Why seeds were unknown: each reason's kind (its words before the first colon) and
    /// how many seeds gave it.
    #[serde(default)]
    pub unknown_reasons: std::collections::BTreeMap<String, usize>,
    pub failures: Vec<Failure>,
    pub wall_s: f64,
    pub seeds_per_sec: f64,
    /// The campaign was interrupted (Ctrl-C): what it found so far is reported and saved.
    #[serde(default)]
    pub interrupted: bool,
    /// The failures by violation signature.
    #[serde(default)]
    pub groups: Vec<FailureGroup>,
}

/// Set by Ctrl-C: workers finish the seed they run and stop.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[derive(Clone)]
struct SeedResult {
    seed: u64,
    verdict: Verdict,
    first: Option<(String, String)>,
    fingerprint: String,
    /// Why the verdict is unknown, if it is.
    unknown_reason: Option<String>,
    /// A violation, shrunk and saved as soon as it was found.
    failure: Option<Result<Failure, String>>,
}

/// `dsim fuzz`.
pub fn fuzz(args: &FuzzArgs) -> u8 {
    match fuzz_inner(args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("dsim fuzz: {message}");
            exit::for_error(&message)
        }
    }
}

fn fuzz_inner(args: &FuzzArgs) -> Result<u8, String> {
    let scenario = library::resolve_with_variant(&args.scenario, args.variant.as_deref())?;
    if let Some(time_s) = args.time_s
        && !(time_s.is_finite() && time_s > 0.0)
    {
        return Err(format!("--time-s must be a positive number of seconds, got {time_s}"));
    }
    if args.seeds == Some(0) {
        return Err("--seeds must be at least 1".into());
    }
    if args.jobs == Some(0) {
        return Err("--jobs must be at least 1".into());
    }
    let asked = args.seeds.unwrap_or(100);
    if args.time_s.is_none() && args.start_seed.checked_add(asked).is_none() {
        return Err(format!("--start-seed {} plus --seeds {asked} passes the largest seed", args.start_seed));
    }
    prepare_out_dir(&args.out)?;
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let (shard_index, shard_count) = args.shard.unwrap_or((0, 1));
    let seeds_total = if args.time_s.is_some() { u64::MAX / 2 } else { args.seeds.unwrap_or(100) };
    // The first seed of this shard, and the end of the campaign's seeds.
    let first =
        args.start_seed.saturating_add((shard_index + shard_count - args.start_seed % shard_count) % shard_count);
    let end = args.start_seed.saturating_add(seeds_total);
    let seeds: Box<dyn Fn(usize) -> Option<u64> + Sync> = Box::new(move |k: usize| {
        // The k-th seed of this shard.
        let seed = first.checked_add((k as u64).checked_mul(shard_count)?)?;
        (seed < end).then_some(seed)
    });
    let started = Instant::now();
    let deadline = args.time_s.map(|s| started + Duration::from_secs_f64(s));
    let count = if first < end { (end - 1 - first) / shard_count + 1 } else { 0 };
    let progress = Progress::new(args.time_s.is_none().then_some(count), args.json);
    // Ctrl-C stops the campaign between seeds; what was found is kept. (A handler may
    // already be set when fuzz runs twice in one process, as in tests.)
    let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::Relaxed));
    let log = ResultsLog::create(&args.out)?;
    let campaign = Campaign {
        scenario: &scenario,
        source: &args.scenario,
        args,
        log: &log,
        progress: &progress,
        saved: Mutex::new(BTreeMap::new()),
    };
    let results = run_seeds(&campaign, &*seeds, jobs, deadline);
    progress.finish();
    let wall_s = started.elapsed().as_secs_f64();
    let mut failures = Vec::new();
    for result in &results {
        if let Some(failure) = &result.failure {
            failures.push(failure.clone()?);
        }
    }
    let report = FuzzReport {
        scenario: scenario.name.clone(),
        variant: scenario.variant.clone().unwrap_or_else(|| "correct".into()),
        shard: args.shard.map(|(i, n)| format!("{i}/{n}")),
        jobs,
        seeds_run: results.iter().map(|r| r.seed).collect(),
        unknown: results.iter().filter(|r| r.verdict == Verdict::Unknown).map(|r| r.seed).collect(),
        unknown_reasons: unknown_reasons(&results),
        failures,
        wall_s,
        seeds_per_sec: results.len() as f64 / wall_s,
        interrupted: INTERRUPTED.load(Ordering::Relaxed),
        groups: Vec::new(),
    };
    let report = FuzzReport { groups: group_failures(&report.failures), ..report };
    let code = report_code(&report);
    crate::cli::exit_code_when_output_closes(code);
    print_report(&report, args.json);
    Ok(code)
}

fn prepare_out_dir(out: &Path) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("--out {}: {e}", out.display()))?;
    let probe = out.join(format!(".dsim-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| format!("--out {} is not writable: {e}", out.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// What every worker of a campaign shares.
/// Which failures a campaign shrinks and saves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SaveMode {
    All,
    OnePerKind,
}

struct Campaign<'a> {
    scenario: &'a Scenario,
    source: &'a str,
    args: &'a FuzzArgs,
    log: &'a ResultsLog,
    progress: &'a Progress,
    /// With `--save one-per-kind`: per violation kind, the smallest seed saved so far and
    /// its file.
    saved: Mutex<BTreeMap<String, (u64, Option<String>)>>,
}

impl Campaign<'_> {
    /// Shrinks and saves a failure, or (with `--save one-per-kind`, when a smaller seed of
    /// its kind is saved already) records it unsaved. A smaller seed of a kind replaces
    /// the larger one's file, so the campaign ends with the smallest seed of each kind
    /// whatever the threads' timing.
    fn failure(&self, result: &SeedResult) -> Result<Failure, String> {
        if self.args.save == SaveMode::All {
            return handle_failure(self.scenario, self.source, result, self.args);
        }
        let kind = result.first.as_ref().map(|(kind, _)| kind.clone()).unwrap_or_default();
        let mut saved = self.saved.lock().expect("no worker panics holding the lock");
        if saved.get(&kind).is_some_and(|(seed, _)| *seed < result.seed) {
            let (_, message) = result.first.clone().unwrap_or_default();
            return Ok(Failure {
                seed: result.seed,
                violation: kind.clone(),
                message: message.clone(),
                fingerprint: result.fingerprint.clone(),
                original_violation: kind,
                original_message: message,
                original_fingerprint: result.fingerprint.clone(),
                file: None,
                replay: None,
                fault_actions: 0,
                fault_actions_shrunk: None,
                shrink_runs: 0,
                shrink_s: 0.0,
            });
        }
        let failure = handle_failure(self.scenario, self.source, result, self.args)?;
        if let Some((_, Some(previous))) = saved.insert(kind, (result.seed, failure.file.clone())) {
            let _ = std::fs::remove_file(previous);
        }
        Ok(failure)
    }
}

/// `results.jsonl` in the output folder: one line per finished seed, appended as it
/// finishes, so an interrupted campaign keeps what it did.
struct ResultsLog {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl ResultsLog {
    fn create(out: &Path) -> Result<ResultsLog, String> {
        let path = out.join("results.jsonl");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("{} {}: {e}", crate::output::CANNOT_WRITE, path.display()))?;
        Ok(ResultsLog { path, file: Mutex::new(file) })
    }

    fn append(&self, scenario: &Scenario, result: &SeedResult) -> Result<(), String> {
        use std::io::Write;
        let failure = result.failure.as_ref().and_then(|f| f.as_ref().ok());
        // A failure's line names both runs, labelled: the seed's own (unshrunk) run and
        // the saved file's (shrunk) run, whose fingerprint `dsim replay FILE` prints.
        let line = serde_json::json!({
            "scenario": scenario.name,
            "variant": scenario.variant_name(),
            "seed": result.seed,
            "verdict": result.verdict,
            "violation": result.first.as_ref().map(|(kind, _)| kind),
            "fingerprint": result.fingerprint,
            "original_fingerprint": failure.map(|f| f.original_fingerprint.clone()),
            "file": failure.and_then(|f| f.file.clone()),
            "file_fingerprint": failure.filter(|f| f.file.is_some()).map(|f| f.fingerprint.clone()),
            "file_violation": failure.filter(|f| f.file.is_some()).map(|f| f.violation.clone()),
        });
        let mut file = self.file.lock().expect("no writer panics holding the lock");
        writeln!(file, "{line}").map_err(|e| format!("{} {}: {e}", crate::output::CANNOT_WRITE, self.path.display()))
    }
}

/// Runs seeds on `jobs` threads; returns the results in seed order. A failure is shrunk
/// and saved by the worker that found it, at once.
fn run_seeds(
    campaign: &Campaign<'_>,
    seeds: &(dyn Fn(usize) -> Option<u64> + Sync),
    jobs: usize,
    deadline: Option<Instant>,
) -> Vec<SeedResult> {
    let keep_going = campaign.args.keep_going;
    let next = AtomicUsize::new(0);
    let lowest_failure = AtomicUsize::new(usize::MAX);
    let results: Mutex<Vec<(usize, SeedResult)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    if deadline.is_some_and(|d| Instant::now() >= d) || INTERRUPTED.load(Ordering::Relaxed) {
                        return;
                    }
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if !keep_going && k > lowest_failure.load(Ordering::Relaxed) {
                        return;
                    }
                    let Some(seed) = seeds(k) else {
                        return;
                    };
                    let mut result = run_one(campaign.scenario, seed);
                    if result.verdict == Verdict::Violation {
                        lowest_failure.fetch_min(k, Ordering::Relaxed);
                        result.failure = Some(campaign.failure(&result));
                    }
                    if let Err(message) = campaign.log.append(campaign.scenario, &result) {
                        result.failure = Some(Err(message));
                    }
                    campaign.progress.tick(&result);
                    results.lock().expect("no worker panics holding the lock").push((k, result));
                }
            });
        }
    });
    let mut results = results.into_inner().expect("workers finished");
    results.sort_by_key(|(k, _)| *k);
    let cutoff = if keep_going { usize::MAX } else { lowest_failure.load(Ordering::Relaxed) };
    // Every index handed out was run to the end, and the deadline and Ctrl-C are checked
    // before one is handed out, so the results are an unbroken run of seeds from the
    // first, also when the campaign was cut short.
    results.into_iter().filter(|(k, _)| *k <= cutoff).map(|(_, r)| r).collect()
}

/// Runs one seed; a panic inside the simulation is a finding of kind `panic`, not the
/// end of the campaign.
pub fn run_guarded(scenario: &Scenario, seed: u64) -> Result<crate::runner::RunOutcome, (String, String)> {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_scenario(scenario, seed, None)));
    match result {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(message)) => Err(("run-error".into(), message)),
        Err(panic) => {
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a panic without a message".into());
            Err(("panic".into(), format!("panic: {text}")))
        }
    }
}

/// Unknown verdicts by the kind of their reason.
fn unknown_reasons(results: &[SeedResult]) -> std::collections::BTreeMap<String, usize> {
    let mut reasons = std::collections::BTreeMap::new();
    for reason in results.iter().filter_map(|r| r.unknown_reason.as_deref()) {
        let kind = reason.split(':').next().unwrap_or(reason).trim().to_owned();
        *reasons.entry(kind).or_insert(0) += 1;
    }
    reasons
}

fn run_one(scenario: &Scenario, seed: u64) -> SeedResult {
    match run_guarded(scenario, seed) {
        Ok(outcome) => SeedResult {
            seed,
            verdict: outcome.verdict,
            first: outcome.violations.first().map(|v| (v.kind.clone(), v.to_string())),
            fingerprint: outcome.fingerprint,
            unknown_reason: outcome.unknown_reason,
            failure: None,
        },
        Err((kind, message)) => SeedResult {
            seed,
            verdict: Verdict::Violation,
            first: Some((kind, message)),
            fingerprint: String::new(),
            unknown_reason: None,
            failure: None,
        },
    }
}

/// The scenario with its generated faults written out and its seed pinned: a file that
/// replays this one run exactly.
pub fn pinned(scenario: &Scenario, seed: u64) -> Scenario {
    let mut pinned = scenario.clone();
    let topology = scenario.topology().expect("a validated scenario has a topology");
    pinned.nemesis = Nemesis { schedule: materialize(scenario, &topology, seed), generator: None };
    pinned.seed = Some(seed);
    pinned
}

fn handle_failure(scenario: &Scenario, source: &str, result: &SeedResult, args: &FuzzArgs) -> Result<Failure, String> {
    let (kind, message) = result.first.clone().unwrap_or_default();
    let original = pinned(scenario, result.seed);
    let fault_actions = original.nemesis.schedule.len();
    let started = Instant::now();
    let (saved, shrink_runs, shrunk_actions) = if args.no_shrink || kind == "run-error" {
        (original, 0, None)
    } else {
        let (shrunk, runs) = crate::shrink::shrink(&original, result.seed, &kind);
        let actions = shrunk.nemesis.schedule.len();
        (shrunk, runs, Some(actions))
    };
    let shrink_s = started.elapsed().as_secs_f64();
    // What `dsim replay` of the saved file will show: its own run, not the unshrunk one.
    let (saved_kind, saved_message, saved_fingerprint) = match run_guarded(&saved, result.seed) {
        Ok(outcome) => {
            let first = outcome.violations.first();
            (
                first.map_or_else(|| kind.clone(), |v| v.kind.clone()),
                first.map_or_else(|| message.clone(), |v| v.to_string()),
                outcome.fingerprint,
            )
        }
        Err((kind, message)) => (kind, message, String::new()),
    };
    let name = format!("{}-seed{}.json", scenario.name, result.seed);
    let path = args.out.join(&name);
    let replay = format!("dsim replay {}", path.display());
    let mut to_save = saved;
    to_save.name = format!("{}-seed{}", scenario.name, result.seed);
    to_save.description = format!(
        "Found by `dsim fuzz {source}{}` at seed {}, shrunk from {fault_actions} fault actions to {}: {saved_message} (fingerprint {saved_fingerprint}). Replay: {replay}",
        args.variant.as_ref().map(|v| format!(" --variant {v}")).unwrap_or_default(),
        result.seed,
        to_save.nemesis.schedule.len(),
    );
    let text = serde_json::to_string_pretty(&to_save).expect("serialisable") + "\n";
    write_atomic(&path, text.as_bytes())?;
    Ok(Failure {
        seed: result.seed,
        violation: saved_kind,
        message: saved_message,
        fingerprint: saved_fingerprint,
        original_violation: kind,
        original_message: message,
        original_fingerprint: result.fingerprint.clone(),
        file: Some(path.display().to_string()),
        replay: Some(replay),
        fault_actions,
        fault_actions_shrunk: shrunk_actions,
        shrink_runs,
        shrink_s,
    })
}

pub fn print_report(report: &FuzzReport, json: bool) {
    if json {
        println!("{}", serde_json::to_string(report).expect("serialisable"));
        return;
    }
    println!(
        "{}: {} seeds run ({} variant) in {:.2} s, {:.1} seeds/s on {} jobs{}",
        report.scenario,
        report.seeds_run.len(),
        report.variant,
        report.wall_s,
        report.seeds_per_sec,
        report.jobs,
        report.shard.as_ref().map(|s| format!(", shard {s}")).unwrap_or_default()
    );
    if !report.unknown.is_empty() {
        let reasons: Vec<String> = report.unknown_reasons.iter().map(|(r, n)| format!("{n} x {r}")).collect();
        println!("unknown ({}): seeds {:?}", reasons.join("; "), report.unknown);
    }
    if report.failures.is_empty() {
        println!("no violation found");
    }
    if report.interrupted {
        println!("interrupted: the seeds above are all that ran");
    }
    for group in &report.groups {
        println!("{} x {} (smallest seed {})", group.count, group.violation, group.smallest_seed);
    }
    let unsaved = report.failures.iter().filter(|f| f.file.is_none() && f.fault_actions_shrunk.is_none()).count();
    for failure in report.failures.iter().filter(|f| f.file.is_some() || f.fault_actions_shrunk.is_some()) {
        println!("seed {} failed: {}", failure.seed, failure.message);
        println!("  fingerprint {} (the seed's unshrunk run: {})", failure.fingerprint, failure.original_fingerprint);
        if let Some(shrunk) = failure.fault_actions_shrunk {
            println!(
                "  shrunk from {} to {} fault actions in {} runs ({:.2} s)",
                failure.fault_actions, shrunk, failure.shrink_runs, failure.shrink_s
            );
        }
        if let (Some(file), Some(replay)) = (&failure.file, &failure.replay) {
            println!("  saved {file}\n  replay: {replay}");
        }
    }
    if unsaved > 0 {
        println!("{unsaved} more failing seeds of kinds already saved (logged in results.jsonl, not saved)");
    }
}

/// A progress bar on a terminal; plain lines otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    done: AtomicUsize,
    failures: AtomicUsize,
    quiet: bool,
}

impl Progress {
    fn new(total: Option<u64>, quiet: bool) -> Progress {
        use std::io::IsTerminal;
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = match total {
                Some(total) => indicatif::ProgressBar::new(total),
                None => indicatif::ProgressBar::new_spinner(),
            };
            let style =
                indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} seeds  {per_sec}  {msg}  ETA {eta}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message("0 failures");
            bar
        });
        Progress { bar, done: AtomicUsize::new(0), failures: AtomicUsize::new(0), quiet }
    }

    fn tick(&self, result: &SeedResult) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let failed = result.verdict == Verdict::Violation;
        let failures = self.failures.fetch_add(usize::from(failed), Ordering::Relaxed) + usize::from(failed);
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                bar.set_message(format!("{failures} failures"));
            }
            None if !self.quiet => {
                if failed {
                    let what = result.first.as_ref().map_or("", |f| f.0.as_str());
                    eprintln!("seed {} failed: {what}", result.seed);
                }
                if done.is_multiple_of(100) {
                    eprintln!("{done} seeds, {failures} failures");
                }
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Shard results: the `--json` output of `dsim fuzz --shard I/N` runs.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print one JSON object (the merged campaign, in fuzz's `--json` shape).
    #[arg(long)]
    pub json: bool,
    /// Refuse (exit 2) when shards are missing, repeated or of different splits, instead
    /// of warning.
    #[arg(long)]
    pub strict: bool,
}

/// A campaign's exit code: a violation if any seed failed, else unknown if any seed was.
fn report_code(report: &FuzzReport) -> u8 {
    if !report.failures.is_empty() {
        exit::VIOLATION
    } else if !report.unknown.is_empty() {
        exit::UNKNOWN
    } else {
        exit::PASS
    }
}

/// `dsim merge`: one campaign from its shards' results.
pub fn merge(args: &MergeArgs) -> u8 {
    match merge_inner(args) {
        Ok(report) => {
            let code = report_code(&report);
            crate::cli::exit_code_when_output_closes(code);
            print_report(&report, args.json);
            code
        }
        Err(message) if message.starts_with("--strict") => {
            eprintln!("dsim merge: {message}");
            exit::BAD_INPUT
        }
        Err(message) => {
            eprintln!("dsim merge: {message}");
            exit::for_error(&message)
        }
    }
}

/// What is wrong with a set of shards (`I/N` each): missing, repeated or mixed splits,
/// or results that were not a shard's; `None` when they make one whole campaign.
pub fn shard_problem(shards: &[Option<String>]) -> Option<String> {
    let mut parsed = Vec::new();
    for shard in shards {
        match shard.as_deref().map(parse_shard) {
            Some(Ok(pair)) => parsed.push(pair),
            _ => return Some("a result is not a shard's (it ran without --shard)".to_owned()),
        }
    }
    let counts: std::collections::BTreeSet<u64> = parsed.iter().map(|(_, n)| *n).collect();
    if counts.len() > 1 {
        let counts: Vec<String> = counts.iter().map(u64::to_string).collect();
        return Some(format!("the shards split the campaign differently (/{})", counts.join(", /")));
    }
    let n = *counts.first()?;
    let mut seen = vec![0u32; n as usize];
    for (i, _) in &parsed {
        seen[*i as usize] += 1;
    }
    let missing: Vec<String> = (0..n).filter(|i| seen[*i as usize] == 0).map(|i| format!("{i}/{n}")).collect();
    let repeated: Vec<String> = (0..n).filter(|i| seen[*i as usize] > 1).map(|i| format!("{i}/{n}")).collect();
    match (missing.is_empty(), repeated.is_empty()) {
        (true, true) => None,
        (false, true) => {
            Some(format!("shards missing: {} (the merged campaign covers only part of it)", missing.join(", ")))
        }
        (true, false) => Some(format!("shards given more than once: {}", repeated.join(", "))),
        (false, false) => {
            Some(format!("shards missing: {}; given more than once: {}", missing.join(", "), repeated.join(", ")))
        }
    }
}

fn merge_inner(args: &MergeArgs) -> Result<FuzzReport, String> {
    let mut merged: Option<FuzzReport> = None;
    let mut shards = Vec::new();
    for path in &args.files {
        let name = path.display();
        let text = crate::output::read_text(path)?;
        let shard: FuzzReport = serde_json::from_str(&text)
            .map_err(|e| format!("{name}:{}:{}: not a `dsim fuzz --json` result: {e}", e.line(), e.column()))?;
        shards.push(shard.shard.clone());
        merged = Some(match merged {
            None => FuzzReport { shard: None, ..shard },
            Some(mut all) => {
                if (&all.scenario, &all.variant) != (&shard.scenario, &shard.variant) {
                    return Err(format!(
                        "{name}: a campaign of {} ({}), not of {} ({})",
                        shard.scenario, shard.variant, all.scenario, all.variant
                    ));
                }
                all.jobs += shard.jobs;
                all.seeds_run.extend(shard.seeds_run);
                all.unknown.extend(shard.unknown);
                for (reason, count) in shard.unknown_reasons {
                    *all.unknown_reasons.entry(reason).or_insert(0) += count;
                }
                all.failures.extend(shard.failures);
                all.wall_s = all.wall_s.max(shard.wall_s);
                all.interrupted |= shard.interrupted;
                all
            }
        });
    }
    if let Some(problem) = shard_problem(&shards) {
        if args.strict {
            return Err(format!("--strict: {problem}"));
        }
        eprintln!("dsim merge: warning: {problem}");
    }
    let mut report = merged.ok_or("no files")?;
    report.seeds_run.sort_unstable();
    report.seeds_run.dedup();
    report.unknown.sort_unstable();
    report.unknown.dedup();
    report.failures.sort_by_key(|f| f.seed);
    report.failures.dedup_by_key(|f| f.seed);
    report.seeds_per_sec = report.seeds_run.len() as f64 / report.wall_s.max(1e-9);
    report.groups = group_failures(&report.failures);
    Ok(report)
}

//! `dsim check`: judge a recorded history; `dsim bench checker`: the checker's throughput.

use std::path::PathBuf;
use std::time::Instant;

use checker::generate::{Config, Shape, corrupt_one_read, generate};
use checker::history::{Event, History, HistoryBuilder};
use checker::import::{Format, detect_format, parse_history};
use checker::{Budget, CheckOptions, ModelKind, Report, Verdict};
use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::cli::exit;
use crate::sysinfo::{peak_rss_bytes, reset_peak_rss};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Auto,
    Edn,
    JepsenLog,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModelArg {
    Register,
    CasRegister,
    Kv,
    MultiRegister,
    Mutex,
}

impl ModelArg {
    fn kind(self) -> ModelKind {
        match self {
            ModelArg::Register => ModelKind::Register,
            ModelArg::CasRegister => ModelKind::CasRegister,
            ModelArg::Kv => ModelKind::Kv,
            ModelArg::MultiRegister => ModelKind::MultiRegister,
            ModelArg::Mutex => ModelKind::Mutex,
        }
    }
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Histories: Jepsen EDN, Jepsen console logs, or dsim's JSON lines. A directory
    /// stands for the .edn, .log, .txt, .json and .jsonl files under it, in name order.
    /// One file prints its full verdict; several print a line each and the totals.
    #[arg(required = true, value_name = "FILE|DIR")]
    pub files: Vec<PathBuf>,
    /// The file's format (inferred from its name and content when auto).
    #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
    pub format: FormatArg,
    /// The model to check against (inferred from the operations when not given).
    #[arg(long, value_enum)]
    pub model: Option<ModelArg>,
    /// The initial value, as EDN: `0`, `nil`, or `{:x 0 :y 0}` for multi-register.
    #[arg(long)]
    pub initial: Option<String>,
    /// Search steps before the answer is "unknown".
    #[arg(long, default_value_t = Budget::default().steps_max)]
    pub budget_steps: u64,
    /// Memory the search may hold, in MiB, over all keys (memo tables, states, interned
    /// values), before the answer is "unknown".
    #[arg(long, default_value_t = (Budget::default().memory_bytes_max >> 20) as u64)]
    pub budget_memory_mb: u64,
    /// Check the whole history as one object even where the model splits by key.
    #[arg(long)]
    pub no_split: bool,
    /// Print JSON: one object per file, a line each.
    #[arg(long)]
    pub json: bool,
    /// Files checked at once, each on its own thread (default: the machine's cores).
    /// Each check has its own memory budget. Output is in file order whatever the count.
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Write a self-contained HTML page of the check (one FILE only): each partition's
    /// operations on a time axis and, for a violation, the longest linearizable prefix,
    /// the operation that cannot be placed and the model states there.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
}

/// `dsim check`'s JSON output: the checker's report plus what was inferred.
#[derive(Serialize)]
struct CheckOutput<'a> {
    file: String,
    format: &'static str,
    format_inferred: bool,
    model_inferred: bool,
    /// The initial value the check assumed (EDN text; `nil` when none was given).
    initial: String,
    /// Wall time of reading and parsing the file, and of the check.
    parse_s: f64,
    check_s: f64,
    #[serde(flatten)]
    report: &'a Report,
}

/// Runs `dsim check`; returns the exit code: for several files the worst of them, bad
/// input first (2), then a violation (1), then unknown (3).
pub fn run(args: &CheckArgs) -> u8 {
    if !(1..=1_048_576).contains(&args.budget_memory_mb) {
        eprintln!("dsim check: --budget-memory-mb must be 1 to 1048576, got {}", args.budget_memory_mb);
        return exit::BAD_INPUT;
    }
    let jobs = match args.jobs {
        Some(jobs @ 1..=1024) => jobs,
        Some(other) => {
            eprintln!("dsim check: --jobs must be 1 to 1024, got {other}");
            return exit::BAD_INPUT;
        }
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let files = match expand(&args.files) {
        Ok(files) => files,
        Err(message) => {
            eprintln!("dsim check: {message}");
            return exit::BAD_INPUT;
        }
    };
    let single = args.files.len() == 1 && !args.files[0].is_dir();
    if args.report.is_some() && !single {
        eprintln!("dsim check: --report takes one FILE, not {} files", files.len());
        return exit::BAD_INPUT;
    }
    if single {
        return match check_file(args, &files[0]) {
            Ok(checked) => {
                if let Some(path) = &args.report
                    && let Err(message) = crate::check_report::write(path, &checked)
                {
                    eprintln!("dsim check: {message}");
                    return exit::OUTPUT;
                }
                if args.json {
                    println!("{}", serde_json::to_string(&checked.json).expect("serialisable"));
                } else {
                    print!("{}", checked.text);
                }
                exit_of(checked.report.verdict)
            }
            Err(message) => {
                eprintln!("dsim check: {message}");
                exit::BAD_INPUT
            }
        };
    }
    let results = check_all(args, &files, jobs);
    let (mut pass, mut violation, mut unknown, mut errors) = (0, 0, 0, 0);
    let (mut parse_s, mut check_s) = (0.0, 0.0);
    for (path, result) in files.iter().zip(&results) {
        match result {
            Ok(checked) => {
                match checked.report.verdict {
                    Verdict::Pass => pass += 1,
                    Verdict::Violation => violation += 1,
                    Verdict::Unknown => unknown += 1,
                }
                parse_s += checked.parse_s;
                check_s += checked.check_s;
                if args.json {
                    println!("{}", serde_json::to_string(&checked.json).expect("serialisable"));
                } else {
                    println!("{}", one_line(checked));
                }
            }
            Err(message) => {
                errors += 1;
                if args.json {
                    let error = serde_json::json!({ "file": path.display().to_string(), "error": message });
                    println!("{error}");
                } else {
                    println!("{:<16} {message}", "error");
                }
            }
        }
    }
    if !args.json {
        println!(
            "{} files: {pass} linearizable, {violation} not linearizable, {unknown} unknown, {errors} errors; \
             parse {parse_s:.3} s, check {check_s:.3} s in total",
            files.len()
        );
    }
    if errors > 0 {
        exit::BAD_INPUT
    } else if violation > 0 {
        exit::VIOLATION
    } else if unknown > 0 {
        exit::UNKNOWN
    } else {
        exit::PASS
    }
}

fn exit_of(verdict: Verdict) -> u8 {
    match verdict {
        Verdict::Pass => exit::PASS,
        Verdict::Violation => exit::VIOLATION,
        Verdict::Unknown => exit::UNKNOWN,
    }
}

/// The files the arguments name: files as given; a directory's history files (by
/// extension, recursively, hidden ones skipped) in name order.
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    const EXTENSIONS: [&str; 5] = ["edn", "log", "txt", "json", "jsonl"];
    fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut paths: Vec<PathBuf> = entries
            .map(|entry| entry.map(|e| e.path()).map_err(|e| format!("{}: {e}", dir.display())))
            .collect::<Result<_, _>>()?;
        paths.sort();
        for path in paths {
            if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')) {
                continue;
            }
            if path.is_dir() {
                walk(&path, out)?;
            } else if path.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.contains(&e)) {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let before = files.len();
            walk(path, &mut files)?;
            if files.len() == before {
                return Err(format!("{}: no history files (.edn, .log, .txt, .json, .jsonl) in it", path.display()));
            }
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// Checks `files` on `jobs` threads; results in file order. Each check is a function of
/// its file alone, so the results do not depend on `jobs`.
fn check_all(args: &CheckArgs, files: &[PathBuf], jobs: usize) -> Vec<Result<Checked, String>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<Result<Checked, String>>>> =
        files.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(files.len()) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(path) = files.get(index) else { break };
                    let result = check_file(args, path);
                    *slots[index].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|slot| slot.into_inner().unwrap_or_else(|e| e.into_inner()).expect("every file was checked"))
        .collect()
}

/// One file's result on a line: verdict, file, operations, times, and why when not a pass.
fn one_line(checked: &Checked) -> String {
    let report = &checked.report;
    // One word, so the file names line up.
    let verdict = report.verdict.describe().replace(' ', "-");
    let mut line = format!(
        "{verdict:<16} {}  {} ops, {} steps, parse {:.3} s, check {:.3} s",
        checked.file, report.ops, report.steps, checked.parse_s, checked.check_s
    );
    if let Some(reason) = &report.unknown_reason {
        line.push_str(&format!("  ({reason})"));
    }
    if let Some(e) = &report.explanation {
        line.push_str(&format!("  first op that cannot be linearized: {}", e.op));
    }
    line
}

/// One file checked: the report and how it was read, as text and JSON.
pub struct Checked {
    pub file: String,
    pub report: Report,
    pub history: History,
    pub parse_s: f64,
    pub check_s: f64,
    pub json: serde_json::Value,
    pub text: String,
}

fn check_file(args: &CheckArgs, path: &std::path::Path) -> Result<Checked, String> {
    let name = path.display().to_string();
    let started = std::time::Instant::now();
    let text = crate::output::read_text(path)?;
    let (format, format_inferred) = match args.format {
        FormatArg::Auto => (detect_format(Some(&name), &text), true),
        FormatArg::Edn => (Format::Edn, false),
        FormatArg::JepsenLog => (Format::JepsenLog, false),
        FormatArg::Json => (Format::Json, false),
    };
    let history = parse_history(&text, format).map_err(|e| format!("{name}:{}:{}: {}", e.line, e.column, e.message))?;
    if history.entries == 0 {
        return Err(format!("no entries found in {name} (format {})", format.name()));
    }
    let parse_s = started.elapsed().as_secs_f64();
    let initial = match &args.initial {
        Some(text) => Some(checker::edn::parse(text).map_err(|e| format!("--initial {text:?}: {e}"))?),
        None => None,
    };
    let (kind, model_inferred) = match args.model {
        Some(model) => (model.kind(), false),
        None => (ModelKind::infer(&history), true),
    };
    let options = CheckOptions {
        budget: Budget { steps_max: args.budget_steps, memory_bytes_max: (args.budget_memory_mb as usize) << 20 },
        split: !args.no_split,
    };
    let started = std::time::Instant::now();
    let report = checker::check(kind, initial.as_ref(), &history, &options)
        .map_err(|e| format!("{name}:{}: {}", e.line, e.message))?;
    let check_s = started.elapsed().as_secs_f64();
    let initial = args.initial.clone().unwrap_or_else(|| "nil".to_owned());
    let mut text = String::new();
    let said = |inferred: bool| if inferred { " (inferred)" } else { "" };
    text.push_str(&format!("file: {name}\nformat: {}{}\n", format.name(), said(format_inferred)));
    text.push_str(&format!("model: {}{}\ninitial value: {initial}\n", kind.name(), said(model_inferred)));
    text.push_str(&format!("parse: {parse_s:.3} s, check: {check_s:.3} s\n"));
    if history.ops.is_empty() {
        // Knossos's own tests hold such a history (only nemesis entries) linearizable.
        text.push_str(&format!(
            "0 client operations, {} other entries (nemesis and the like): nothing to order, so linearizable\n",
            history.entries
        ));
    }
    text.push_str(&checker::render_text(&report));
    let output = CheckOutput {
        file: name,
        format: format.name(),
        format_inferred,
        model_inferred,
        initial,
        parse_s,
        check_s,
        report: &report,
    };
    let json = serde_json::to_value(&output).expect("serialisable");
    let file = output.file;
    Ok(Checked { file, report, history, parse_s, check_s, json, text })
}

// ---------------------------------------------------------------- bench checker

#[derive(Args, Debug)]
pub struct CheckerBenchArgs {
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Skip the 100,000-operation history (the slowest case).
    #[arg(long)]
    pub quick: bool,
    /// Porcupine's test data (its `test_data`: `kv/` and `jepsen/`), timed file by file.
    /// Default: the copy in this repository, if the binary was built from a checkout.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

/// One real history (or group of them) timed: parse and check apart.
#[derive(Debug, Serialize)]
pub struct RealResult {
    pub name: String,
    pub files: usize,
    pub ops: usize,
    pub parse_s: f64,
    pub check_s: f64,
    pub verdicts: String,
    pub peak_rss_bytes: Option<u64>,
}

/// One benchmark case.
#[derive(Debug, Serialize)]
pub struct CaseResult {
    pub name: &'static str,
    pub histories: usize,
    pub ops: usize,
    pub wall_s: f64,
    pub ops_per_sec: f64,
    pub memo_bytes_max: usize,
    pub steps: u64,
    /// Peak resident memory while this case ran (the process's baseline included).
    pub peak_rss_bytes: Option<u64>,
    pub verdicts: String,
}

/// What `dsim bench checker` measured.
#[derive(Debug, Serialize)]
pub struct CheckerBench {
    /// Porcupine's own histories (when found): c01..c50 one by one, the etcd logs summed.
    pub real: Vec<RealResult>,
    /// Where they were read from, or why not.
    pub real_data: String,
    pub cases: Vec<CaseResult>,
    pub peak_rss_bytes: Option<u64>,
}

fn build(events: Vec<Event>) -> History {
    let mut builder = HistoryBuilder::default();
    for event in events {
        builder.push(event).expect("generated histories follow the conventions");
    }
    builder.finish()
}

fn run_case(name: &'static str, histories: &[History], kind: ModelKind, split: bool) -> CaseResult {
    let options = CheckOptions { split, ..CheckOptions::default() };
    reset_peak_rss();
    let started = Instant::now();
    let reports: Vec<Report> = histories
        .iter()
        .map(|h| checker::check(kind, None, h, &options).expect("generated histories fit the model"))
        .collect();
    let wall_s = started.elapsed().as_secs_f64();
    let ops: usize = histories.iter().map(|h| h.ops.len()).sum();
    CaseResult {
        name,
        histories: histories.len(),
        ops,
        wall_s,
        ops_per_sec: ops as f64 / wall_s,
        memo_bytes_max: reports.iter().map(|r| r.cache_bytes_max).max().unwrap_or(0),
        steps: reports.iter().map(|r| r.steps).sum(),
        peak_rss_bytes: peak_rss_bytes(),
        verdicts: verdict_counts(reports.iter().map(|r| r.verdict)),
    }
}

/// Runs the checker benchmark on generated histories of the shapes in the issue.
/// "N pass, N violation, N unknown".
fn verdict_counts(verdicts: impl IntoIterator<Item = Verdict>) -> String {
    let mut counts = [0usize; 3]; // by declaration order: pass, violation, unknown
    for verdict in verdicts {
        counts[verdict as usize] += 1;
    }
    format!("{} pass, {} violation, {} unknown", counts[0], counts[1], counts[2])
}

/// Times `dsim check`'s work (parse, then check) on Porcupine's histories under `dir`.
fn bench_real(dir: &std::path::Path) -> Result<Vec<RealResult>, String> {
    let time_file = |path: &std::path::Path, kind: ModelKind| -> Result<(usize, f64, f64, Verdict), String> {
        let started = Instant::now();
        let text = crate::output::read_text(path)?;
        let history = parse_history(&text, detect_format(path.to_str(), &text))
            .map_err(|e| format!("{}:{}:{}: {}", path.display(), e.line, e.column, e.message))?;
        let parse_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let report = checker::check(kind, None, &history, &CheckOptions::default()).map_err(|e| e.to_string())?;
        Ok((history.ops.len(), parse_s, started.elapsed().as_secs_f64(), report.verdict))
    };
    let mut results = Vec::new();
    for name in ["c01-ok", "c01-bad", "c10-ok", "c10-bad", "c50-ok", "c50-bad"] {
        reset_peak_rss();
        let (ops, parse_s, check_s, verdict) = time_file(&dir.join(format!("kv/{name}.txt")), ModelKind::Kv)?;
        let (name, verdicts) = (format!("kv/{name}"), verdict_counts([verdict]));
        results.push(RealResult { name, files: 1, ops, parse_s, check_s, verdicts, peak_rss_bytes: peak_rss_bytes() });
    }
    reset_peak_rss();
    let (mut ops, mut parse_s, mut check_s, mut seen) = (0, 0.0, 0.0, Vec::new());
    for i in 0..=102 {
        let path = dir.join(format!("jepsen/etcd_{i:03}.log"));
        if std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?.len() == 0 {
            continue; // etcd_095: its cluster never started
        }
        let (n, p, c, verdict) = time_file(&path, ModelKind::CasRegister)?;
        (ops, parse_s, check_s) = (ops + n, parse_s + p, check_s + c);
        seen.push(verdict);
    }
    let files = seen.len();
    let name = "jepsen/etcd_*.log (sum)".to_owned();
    results.push(RealResult {
        name,
        files,
        ops,
        parse_s,
        check_s,
        verdicts: verdict_counts(seen),
        peak_rss_bytes: peak_rss_bytes(),
    });
    Ok(results)
}

/// The repository's copy of Porcupine's data, when the binary was built from a checkout.
fn default_data() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../checker/tests/data/porcupine"))
}

pub fn bench_checker(quick: bool, data: Option<&std::path::Path>) -> CheckerBench {
    let dir = data.map_or_else(default_data, std::path::Path::to_path_buf);
    let (real, real_data) = match bench_real(&dir) {
        Ok(real) => (real, dir.display().to_string()),
        Err(why) => (Vec::new(), format!("not timed: {why} (give --data PORCUPINE_TEST_DATA)")),
    };
    // Like Porcupine's etcd suite, a mix of linearizable and non-linearizable histories:
    // every other one has a read altered to a value never written.
    let etcd: Vec<History> = (0..102u64)
        .map(|seed| {
            let ops = 73 + (seed as usize % 18);
            let mut events = generate(&Config { shape: Shape::CasRegister, ops, clients: 5, info_rate: 0.15, seed });
            if seed % 2 == 1 {
                corrupt_one_read(&mut events, seed);
            }
            build(events)
        })
        .collect();
    let kv = |keys, ops, clients, info_rate, seed| {
        vec![build(generate(&Config { shape: Shape::Kv { keys }, ops, clients, info_rate, seed }))]
    };
    let kv_split = kv(10, 1712, 50, 0.05, 1);
    let kv_whole = kv(5, 337, 10, 0.05, 2);
    let mut cases = vec![
        run_case("etcd-shaped cas-register x102 (73-90 ops, 15% info)", &etcd, ModelKind::CasRegister, true),
        run_case("kv 1712 ops, 50 clients, 10 keys, split", &kv_split, ModelKind::Kv, true),
        run_case("kv 337 ops, 10 clients, not split", &kv_whole, ModelKind::Kv, false),
    ];
    if !quick {
        let big = kv(1000, 100_000, 50, 0.02, 3);
        cases.push(run_case("kv 100,000 ops, 50 clients, 1000 keys, split", &big, ModelKind::Kv, true));
    }
    CheckerBench { real, real_data, cases, peak_rss_bytes: peak_rss_bytes() }
}

impl std::fmt::Display for CheckerBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "Porcupine's own histories ({}):", self.real_data)?;
        for r in &self.real {
            writeln!(
                f,
                "  {:<26} {:>4} file(s) {:>6} ops  parse {:.4} s  check {:.4} s  {}  peak {:.1} MiB",
                r.name,
                r.files,
                r.ops,
                r.parse_s,
                r.check_s,
                r.verdicts,
                r.peak_rss_bytes.unwrap_or(0) as f64 / 1048576.0
            )?;
        }
        writeln!(f, "Generated histories:")?;
        for case in &self.cases {
            writeln!(f, "{}", case.name)?;
            writeln!(f, "  {} histories, {} ops, {}", case.histories, case.ops, case.verdicts)?;
            writeln!(
                f,
                "  {:.4} s, {:.0} ops/s, {} search steps, memo peak {:.1} MiB, process peak {:.1} MiB",
                case.wall_s,
                case.ops_per_sec,
                case.steps,
                case.memo_bytes_max as f64 / 1048576.0,
                case.peak_rss_bytes.unwrap_or(0) as f64 / 1048576.0
            )?;
        }
        if let Some(rss) = self.peak_rss_bytes {
            writeln!(f, "peak memory of the whole run: {:.1} MiB", rss as f64 / 1048576.0)?;
        }
        // A peer is compared by running its own code, never against a typed-in figure.
        write!(f, "Porcupine side by side on its own data: bench/porcupine/run.sh PORCUPINE_CHECKOUT")?;
        Ok(())
    }
}

/// Runs `dsim bench checker`.
pub fn bench(args: &CheckerBenchArgs) -> u8 {
    let result = bench_checker(args.quick, args.data.as_deref());
    if args.json {
        println!("{}", serde_json::to_string(&result).expect("serialisable"));
    } else {
        println!("{result}");
    }
    exit::PASS
}

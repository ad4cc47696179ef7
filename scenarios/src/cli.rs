//! The `dsim` command line: flags and dispatch only; the work is in the library modules.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};

/// Exit codes: the contract scripts rely on.
pub mod exit {
    pub const PASS: u8 = 0;
    pub const VIOLATION: u8 = 1;
    pub const BAD_INPUT: u8 = 2;
    pub const UNKNOWN: u8 = 3;
}

#[derive(Parser, Debug)]
#[command(name = "dsim", version, about = "A deterministic simulator for distributed protocols", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a scenario once and judge it.
    #[command(
        after_help = "Examples:\n  dsim run raft --seed 7\n  dsim run raft --seed 7 --variant commit-old-term --trace run.jsonl --json\n  dsim run my-scenario.json\n\nExit codes: 0 pass, 1 violation, 2 bad input, 3 unknown."
    )]
    Run(crate::run_cmd::RunArgs),
    /// Rerun a saved failure (a scenario file with its seed pinned).
    #[command(after_help = "Example:\n  dsim replay out/raft-seed42.json --trace replay.jsonl")]
    Replay(crate::run_cmd::ReplayArgs),
    /// Fuzz a scenario over many seeds; shrink and save failures.
    #[command(
        after_help = "Examples:\n  dsim fuzz raft --seeds 2000 --variant commit-old-term\n  dsim fuzz raft --time-s 60 --jobs 2 --keep-going --out failures/\n  dsim fuzz raft --seeds 10000 --shard 3/8 --json > shard-3.json\n\nExit codes: 0 no violation, 1 a seed failed, 2 bad input, 3 a check was inconclusive."
    )]
    Fuzz(crate::fuzz::FuzzArgs),
    /// Run an experiment.
    #[command(subcommand)]
    Experiment(ExperimentCommand),
    /// Render a report from a recorded trace.
    #[command(
        after_help = "Example:\n  dsim run raft --seed 3 --variant commit-old-term --trace run.jsonl --history ops.jsonl\n  dsim report run.jsonl --history ops.jsonl -o run.html"
    )]
    Report(crate::report_cmd::ReportArgs),
    /// List the built-in scenarios.
    #[command(after_help = "Example:\n  dsim list --json")]
    List(crate::run_cmd::ListArgs),
    /// Print a built-in scenario's JSON, to copy and edit.
    #[command(after_help = "Example:\n  dsim show raft > my-raft.json")]
    Show(crate::run_cmd::ShowArgs),
    /// Check a recorded history for linearizability.
    #[command(
        after_help = "Examples:\n  dsim check history.edn --initial 0\n  dsim check etcd_000.log --model cas-register --json\n\nExit codes: 0 linearizable, 1 not linearizable, 2 bad input, 3 unknown (budget spent)."
    )]
    Check(crate::check_cmd::CheckArgs),
    /// Measure throughput.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Print shell completions.
    #[command(after_help = "Example:\n  dsim completions bash > /etc/bash_completion.d/dsim")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand, Debug)]
pub enum ExperimentCommand {
    /// The Raft paper's leader-election experiment (Figure 16): downtime after a leader
    /// crash, for a range of election timeouts.
    #[command(
        after_help = "Examples:\n  dsim experiment raft-election --timeouts 150-300\n  dsim experiment raft-election --timeouts 150-151 --trials 1000 --json"
    )]
    RaftElection(ElectionArgs),
}

#[derive(Args, Debug)]
pub struct ElectionArgs {
    /// The election timeout range in milliseconds, MIN-MAX.
    #[arg(long, value_parser = parse_range)]
    pub timeouts: (f64, f64),
    /// Trials (each a fresh cluster and one leader crash).
    #[arg(long, default_value_t = 1000)]
    pub trials: usize,
    /// The first trial's seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn parse_range(text: &str) -> Result<(f64, f64), String> {
    let (min, max) = text.split_once('-').ok_or("expected MIN-MAX in milliseconds, e.g. 150-300")?;
    let min: f64 = min.trim().parse().map_err(|_| format!("bad minimum {min:?}"))?;
    let max: f64 = max.trim().parse().map_err(|_| format!("bad maximum {max:?}"))?;
    if !(min.is_finite() && max.is_finite() && min > 0.0 && max >= min && max <= 60_000.0) {
        return Err(format!("{text}: need 0 < MIN <= MAX <= 60000"));
    }
    Ok((min, max))
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Raft under load and faults, and a fuzz campaign's rate.
    #[command(after_help = "Example:\n  dsim bench raft --json")]
    Raft(RaftBenchArgs),
    /// The engine alone: five nodes relaying messages with random delays.
    #[command(after_help = "Example:\n  dsim bench engine --json")]
    Engine(EngineBenchArgs),
    /// The linearizability checker on generated histories.
    #[command(after_help = "Example:\n  dsim bench checker --json")]
    Checker(crate::check_cmd::CheckerBenchArgs),
}

#[derive(Args, Debug)]
pub struct RaftBenchArgs {
    /// Root seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Seeds of the fuzz-rate measurement.
    #[arg(long, default_value_t = 100)]
    pub fuzz_seeds: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct EngineBenchArgs {
    /// Events to run.
    #[arg(long, default_value_t = 20_000_000)]
    pub events: u64,
    /// Root seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command line and returns the process exit code.
pub fn main_with_args(args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() { exit::BAD_INPUT } else { exit::PASS };
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    ExitCode::from(run(cli))
}

fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::Run(args) => crate::run_cmd::run(&args),
        Command::Replay(args) => crate::run_cmd::replay(&args),
        Command::Fuzz(args) => crate::fuzz::fuzz(&args),
        Command::List(args) => crate::run_cmd::list(&args),
        Command::Report(args) => crate::report_cmd::report(&args),
        Command::Show(args) => crate::run_cmd::show(&args),
        Command::Check(args) => crate::check_cmd::run(&args),
        Command::Bench(BenchCommand::Checker(args)) => crate::check_cmd::bench(&args),
        Command::Bench(BenchCommand::Engine(args)) => {
            let result = crate::bench::engine(args.events, args.seed);
            if args.json {
                println!("{}", serde_json::to_string(&result).expect("serialisable"));
            } else {
                println!("{result}");
            }
            exit::PASS
        }
        Command::Experiment(ExperimentCommand::RaftElection(args)) => {
            if args.trials == 0 {
                eprintln!("dsim experiment: --trials must be at least 1");
                return exit::BAD_INPUT;
            }
            let result = crate::experiment::raft_election(args.timeouts.0, args.timeouts.1, args.trials, args.seed);
            if args.json {
                println!("{}", serde_json::to_string(&result).expect("serialisable"));
            } else {
                print!("{result}");
            }
            exit::PASS
        }
        Command::Bench(BenchCommand::Raft(args)) => match crate::bench::raft(args.seed, args.fuzz_seeds) {
            Ok(result) if args.json => {
                println!("{}", serde_json::to_string(&result).expect("serialisable"));
                exit::PASS
            }
            Ok(result) => {
                println!("{result}");
                exit::PASS
            }
            Err(message) => {
                eprintln!("dsim bench raft: {message}");
                exit::BAD_INPUT
            }
        },
        Command::Completions { shell } => {
            let mut command = Cli::command();
            let mut out = std::io::stdout();
            clap_complete::generate(shell, &mut command, "dsim", &mut out);
            let _ = out.flush();
            exit::PASS
        }
    }
}

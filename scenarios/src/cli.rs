//! The `dsim` command line: flags and dispatch only; the work is in the library modules.

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Exit codes: the contract scripts rely on.
pub mod exit {
    pub const PASS: u8 = 0;
    pub const VIOLATION: u8 = 1;
    pub const BAD_INPUT: u8 = 2;
    pub const UNKNOWN: u8 = 3;
    /// A file could not be written (a full disk, a read-only folder): not bad input.
    pub const OUTPUT: u8 = 4;

    /// The exit code for a command's error message: writing failed, or the input was bad.
    pub fn for_error(message: &str) -> u8 {
        if message.starts_with(crate::output::CANNOT_WRITE) { OUTPUT } else { BAD_INPUT }
    }
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
        after_help = "Examples (`dsim list` names the built-in scenarios and their variants):\n  dsim run SCENARIO --seed 7\n  dsim run SCENARIO --seed 7 --variant VARIANT --trace run.jsonl --json\n  dsim run my-scenario.json\n\nExit codes: 0 pass, 1 violation, 2 bad input, 3 unknown."
    )]
    Run(crate::run_cmd::RunArgs),
    /// Rerun a saved failure (a scenario file with its seed pinned).
    #[command(after_help = "Example:\n  dsim replay dsim-failures/SCENARIO-seed42.json --trace replay.jsonl")]
    Replay(crate::run_cmd::ReplayArgs),
    /// Fuzz a scenario over many seeds; shrink and save failures.
    #[command(
        after_help = "Examples:\n  dsim fuzz SCENARIO --seeds 2000 --variant VARIANT\n  dsim fuzz SCENARIO --time-s 60 --jobs 2 --keep-going --out failures/\n  dsim fuzz SCENARIO --seeds 10000 --shard 3/8 --json > shard-3.json\n\nExit codes: 0 no violation, 1 a seed failed, 2 bad input, 3 a check was inconclusive."
    )]
    Fuzz(crate::fuzz::FuzzArgs),
    /// Merge the `--json` results of a campaign's shards into one.
    #[command(
        after_help = "Example:\n  dsim merge shard-*.json --json > campaign.json\n\nExit codes: 0 no violation, 1 a seed failed, 2 bad input, 3 a check was inconclusive."
    )]
    Merge(crate::fuzz::MergeArgs),
    /// Run an experiment.
    #[command(subcommand)]
    Experiment(crate::experiment::ExperimentCommand),
    /// Render a report from a recorded trace.
    #[command(
        after_help = "Example:\n  dsim run SCENARIO --seed 3 --trace run.jsonl --history ops.jsonl\n  dsim report run.jsonl --history ops.jsonl -o run.html"
    )]
    Report(crate::report_cmd::ReportArgs),
    /// List the built-in scenarios.
    #[command(after_help = "Examples:\n  dsim list\n  dsim list --protocols --json")]
    List(crate::run_cmd::ListArgs),
    /// Print a built-in scenario's JSON, to copy and edit.
    #[command(after_help = "Example:\n  dsim show SCENARIO > my-scenario.json")]
    Show(crate::run_cmd::ShowArgs),
    /// Check a recorded history for linearizability.
    #[command(
        after_help = "Examples:\n  dsim check history.edn --initial 0\n  dsim check etcd_000.log --model cas-register --json\n\nExit codes: 0 linearizable, 1 not linearizable, 2 bad input, 3 unknown (budget spent)."
    )]
    Check(crate::check_cmd::CheckArgs),
    /// Run two scenarios on the same seeds and show their verdicts and figures side by side.
    #[command(
        after_help = "Examples:\n  dsim compare cap --seeds 20 --html cap.html\n  dsim compare locks --seeds 200 -o locks.md --html locks.html\n  dsim compare cap-dynamo-311-sloppy cap-dynamo-311-sloppy:dynamo.r=2,dynamo.w=2\n  dsim compare 2pc paxos-commit --seeds 100\n  dsim compare 2pc-coordinator-outages paxos-commit-coordinator-outages -o compare.md"
    )]
    Compare(crate::compare_cmd::CompareArgs),
    /// Measure throughput.
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
    /// Print shell completions.
    #[command(after_help = "Example:\n  dsim completions bash > /etc/bash_completion.d/dsim")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// The exit code the running command will return, once it knows it (see
/// [`exit_code_when_output_closes`]).
static PENDING_EXIT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(exit::PASS);

/// A command that knows its verdict sets its exit code here before it prints: if the
/// reader then closes the pipe, the process still ends with that code (a violating run
/// piped to `head` exits 1, not 0).
pub fn exit_code_when_output_closes(code: u8) {
    PENDING_EXIT.store(code, std::sync::atomic::Ordering::Relaxed);
}

/// A reader that closed its end of a pipe (`dsim list | head -1`) wanted no more output:
/// the print that failed ends the process quietly, with the exit code the command had
/// set for its verdict (success when it set none). Every other panic keeps the default
/// report.
pub fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("Broken pipe") {
            std::process::exit(PENDING_EXIT.load(std::sync::atomic::Ordering::Relaxed).into());
        }
        default(info);
    }));
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
        Command::Merge(args) => crate::fuzz::merge(&args),
        Command::List(args) => crate::run_cmd::list(&args),
        Command::Report(args) => crate::report_cmd::report(&args),
        Command::Show(args) => crate::run_cmd::show(&args),
        Command::Check(args) => crate::check_cmd::run(&args),
        Command::Bench(command) => crate::bench::run(command),
        Command::Compare(args) => crate::compare_cmd::run(&args),
        Command::Experiment(command) => crate::experiment::run(command),
        Command::Completions { shell } => {
            let mut command = Cli::command();
            let mut out = std::io::stdout();
            clap_complete::generate(shell, &mut command, "dsim", &mut out);
            let _ = out.flush();
            exit::PASS
        }
    }
}

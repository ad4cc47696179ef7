//! The `dsim` binary: everything lives in the `scenarios` library.

fn main() -> std::process::ExitCode {
    scenarios::cli::quiet_on_broken_pipe();
    scenarios::cli::main_with_args(std::env::args_os())
}

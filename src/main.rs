//! The `custsync` binary: parse arguments, run, map the result to an exit code.

use std::process::ExitCode;

use clap::Parser;
use custsync::{Exit, cli::Cli, run};

fn main() -> ExitCode {
    // clap exits with 2 on usage errors, as the contract wants.
    let cli = Cli::parse();
    match run(cli) {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("error: {e:#}");
            Exit::Fatal.into()
        }
    }
}

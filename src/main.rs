//! The `custsync` binary: parse arguments, run, map the result to an exit code.

use std::process::ExitCode;

use clap::Parser;
use custsync::{Exit, cli::Cli, run};

// The pipeline allocates rows on the reader thread and frees them on the consumer; glibc's
// allocator serialises that on an arena lock (measured: 170k context switches per 1M rows).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

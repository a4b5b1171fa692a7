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
            eprintln!("error: {}", message(&e));
            Exit::Fatal.into()
        }
    }
}

/// The error and its causes on one line, each cause once: most of the library's errors already
/// name their cause in their own message.
fn message(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1).map(ToString::to_string) {
        if !out.contains(&cause) {
            out.push_str(": ");
            out.push_str(&cause);
        }
    }
    out
}

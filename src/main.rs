//! The `custsync` binary: read the command line (and the config file), run, map the result to
//! an exit code.

use std::process::ExitCode;

use custsync::config::{self, LoadError};
use custsync::{Exit, console, run};

// The pipeline allocates rows on the reader thread and frees them on the consumer; glibc's
// allocator serialises that on an arena lock (measured: 170k context switches per 1M rows).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cwd = std::env::current_dir().unwrap_or_default();
    let cli = match config::load(std::env::args_os().collect(), &cwd) {
        Ok(cli) => cli,
        // clap prints it and exits with 2 on usage errors, as the contract wants (0 for --help).
        Err(LoadError::Usage(e)) => e.exit(),
        Err(LoadError::File(e)) => {
            console::error(&e.to_string());
            return Exit::Fatal.into();
        }
    };
    match run(cli) {
        Ok(exit) => exit.into(),
        // The reader of stdout went away (`custsync man | head`): as `cat` does, stop quietly.
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            console::error(&console::chain(e.as_ref()));
            Exit::Fatal.into()
        }
    }
}

fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

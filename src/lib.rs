//! custsync: keep an Adobe Commerce shop's customers in step with a CSV file.
//!
//! Data flows one way through the modules:
//!
//! | module | owns |
//! | --- | --- |
//! | [`cli`] | command-line arguments (clap types only) |
//! | [`config`] | typed settings resolved from arguments and environment |
//! | [`input`] | the CSV: header, streaming, per-row validation |
//! | [`customer`] | the desired customer record, its JSON payload and hash |
//! | [`state`] | the sled state store: key -> customer id + payload hash |
//! | [`plan`] | the diff: create, update, unchanged, invalid |
//! | [`throttle`] | the shared request rate limit, adaptive on 429 |
//! | [`api`] | the Commerce REST client and IMS tokens |
//! | [`exec`] | sending rows: retries, lost-answer recovery, outcomes |
//! | [`report`] | report file, summary JSON, progress |
//! | [`connect`] | the target: embedded sandbox or a real shop; the sandbox's launcher |
//! | [`sync`] | the pipeline that connects them |
//! | [`pull`] | recording the customers a shop already has |

pub mod api;
pub mod cli;
pub mod config;
pub mod connect;
pub mod customer;
pub mod exec;
pub mod input;
pub mod plan;
pub mod pull;
pub mod redact;
pub mod report;
pub mod state;
pub mod sync;
pub mod throttle;

use std::process::ExitCode;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use cli::{Cli, Command, StateCommand};
use config::{Env, PullConfig, SyncConfig};
use state::Store;

/// The contract's exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Every row is ok.
    Ok = 0,
    /// Configuration, authentication, unreadable input or state.
    Fatal = 1,
    /// Finished, but some rows are invalid or failed.
    RowsFailed = 3,
    /// Interrupted by SIGINT or SIGTERM.
    Interrupted = 130,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// Runs a parsed command line to completion on a fresh runtime.
pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    init_logging(cli.quiet, cli.verbose);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let env = Env::from_process();
    runtime.block_on(async move {
        match cli.command {
            Command::Sync(args) => {
                let cfg = SyncConfig::resolve(args, &env, cli.quiet)?;
                let cancel = CancellationToken::new();
                spawn_signal_handler(cancel.clone(), cli.quiet);
                let finished = sync::run(cfg, cancel).await?;
                if let Some(e) = finished.fatal {
                    return Err(e.into());
                }
                if let Some(why) = finished.refused {
                    anyhow::bail!(why);
                }
                let s = &finished.summary;
                Ok(if finished.interrupted {
                    Exit::Interrupted
                } else if s.invalid + s.failed > 0 {
                    Exit::RowsFailed
                } else {
                    Exit::Ok
                })
            }
            Command::Pull(args) => {
                let cfg = PullConfig::resolve(args, &env, cli.quiet)?;
                let cancel = CancellationToken::new();
                spawn_signal_handler(cancel.clone(), cli.quiet);
                let pulled = pull::run(&cfg, &cancel).await?;
                println!(
                    "pulled {} customers in {} pages ({} without id or email skipped); state: {}",
                    pulled.customers,
                    pulled.pages,
                    pulled.skipped,
                    cfg.connect.state_dir.display()
                );
                Ok(if pulled.interrupted {
                    Exit::Interrupted
                } else {
                    Exit::Ok
                })
            }
            Command::State(cmd) => state_command(cmd),
            Command::Sandbox(args) => {
                connect::serve_sandbox(&args, &env, wait_for_signal())
                    .await
                    .context("cannot start the sandbox")?;
                Ok(Exit::Ok)
            }
        }
    })
}

fn state_command(cmd: StateCommand) -> anyhow::Result<Exit> {
    match cmd {
        StateCommand::Stats { state } => {
            let store = Store::open(&state.dir)?;
            let last = store
                .last_run()?
                .and_then(|t| chrono::DateTime::<chrono::Utc>::from_timestamp(t, 0))
                .map_or_else(|| "never".to_owned(), |t| t.to_rfc3339());
            println!("state:      {}", state.dir.display());
            println!("entries:    {}", store.len());
            println!("failed:     {}", store.failed_len());
            println!("last run:   {last}");
            println!("disk bytes: {}", store.size_on_disk()?);
        }
        StateCommand::Export { state, output } => {
            let store = Store::open(&state.dir)?;
            let n = match &output {
                Some(path) => state::export(&store, report::create_private(path)?)?,
                None => state::export(&store, std::io::stdout().lock())?,
            };
            if let Some(path) = output {
                eprintln!("exported {n} mappings to {}", path.display());
            }
        }
        StateCommand::Import { state, file } => {
            let store = Store::open(&state.dir)?;
            let n = state::import(&store, &file)?;
            println!("imported {n} mappings into {}", state.dir.display());
        }
        StateCommand::Forget {
            state,
            email,
            website_id,
        } => {
            let store = Store::open(&state.dir)?;
            let key = customer::Key::new(website_id, &email);
            if !store.forget(&key)? {
                anyhow::bail!("no mapping for {} in website {website_id}", key.email);
            }
            store.flush()?;
            println!("forgot {} in website {website_id}", key.email);
        }
    }
    Ok(Exit::Ok)
}

fn init_logging(quiet: bool, verbose: u8) {
    let level = match (quiet, verbose) {
        (true, _) => tracing::Level::ERROR,
        (false, 0) => tracing::Level::WARN,
        (false, 1) => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

fn spawn_signal_handler(cancel: CancellationToken, quiet: bool) {
    tokio::spawn(async move {
        wait_for_signal().await;
        if !quiet {
            eprintln!("interrupted: finishing requests in flight, then writing state and report");
        }
        cancel.cancel();
    });
}

/// Resolves on SIGINT or SIGTERM.
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // Without signal handlers the default action (terminate) still applies.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

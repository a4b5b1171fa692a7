//! custsync: keep an Adobe Commerce shop's customers in step with a CSV file.
//!
//! # Where a row goes
//!
//! [`sync`] runs the pipeline, once [`connect`] found the state store bound to the run's
//! target. A line of the CSV file is read and validated by [`input`] into a
//! [`customer::Customer`] (or an invalid row). [`plan`] compares it with what [`state`]
//! remembers of its key and decides: create, update, unchanged or invalid. A create or update
//! is checked against the [`shop`]'s model (read once, when the first one comes), then [`exec`]
//! sends it through the [`api`] client, under the [`throttle`] and with [`retry`] (with
//! `--bulk`, [`bulk`] gathers the rows into the shop's asynchronous bulks instead).
//! Every row ends as an [`outcome::Outcome`]: [`report`] writes it as a report line and counts
//! it, and the [`state`] writer records the mapping it confirmed, and [`runs`] keeps it in the
//! run history. No row is sent before the whole file is known not to leave too many customers
//! [`absent`] (`--max-absent`), and [`outage`] stops the sending when the shop stops
//! answering. Once the whole file is read, [`absent`] deals with the customers it no longer
//! names; the run ends with its summary (to a [`notify`] webhook too), and [`exit`] turns how
//! it ended into the exit code. Every file a run writes for its user is claimed from
//! [`outputs`] before the first request, so that a mistaken path cannot overwrite the input.
//! What the user reads on the way goes through [`console`].
//!
//! # Modules
//!
//! The commands first, then a row's way, then what they all stand on. The `uses` column is
//! every `crate::` arrow of a module's code; the arrows form no circle (a test in `layout.rs`
//! keeps this table equal to the code). The embedded Commerce emulator is a crate of its own
//! (`custsync-sandbox`, in `sandbox/`), which only [`connect`] starts.
//!
//! | module | owns | uses |
//! | --- | --- | --- |
//! | [`cli`] | command-line arguments (clap types only) | defaults, absent, input |
//! | [`config`] | typed settings resolved from arguments, environment and the config file | cli, defaults, absent, api, input, plan, report, retry, redact, customer |
//! | [`exit`] | the exit codes, and how a run's ending maps to one | |
//! | [`sync`] | the pipeline: read, plan, gate, check against the shop, send, absent, end | config, connect, console, input, plan, shop, exec, bulk, outage, outcome, progress, report, notify, runs, absent, state, api, redact, retry, throttle, outputs, customer, exit |
//! | [`pull`] | recording the customers a shop already has | config, connect, console, retry, api, state, throttle, customer, defaults, input |
//! | [`runs`] | the run history: each run's summary and rows, in the state directory | outcome, report |
//! | [`check`] | `custsync check`: the target tested and its shop's model shown, changing nothing | config, connect, retry, shop, state, api, throttle |
//! | [`connect`] | the target: embedded sandbox or a real shop, the store's binding to it; the sandbox's one launcher | config, cli, console, api, redact, state, throttle |
//! | [`input`] | the input file (CSV in any encoding, or a spreadsheet): header, streaming, per-row validation | customer |
//! | [`plan`] | the decision for each row, a function of the row, the store and the options | input, outcome, state, customer |
//! | [`shop`] | the shop's model from its API, and each row to send checked against it | console, plan, retry, api, state, input, customer |
//! | [`exec`] | sending a row: lost-answer recovery, answer checks, its outcome | plan, outcome, outage, retry, api, state, customer, redact |
//! | [`bulk`] | `--bulk`: rows in async bulks, their polls, and the bulks a run left behind | plan, exec, retry, api, state, customer |
//! | [`outcome`] | what became of a row: report columns and state change, built in one place | api, state, customer |
//! | [`report`] | report file (CSV, JSON Lines, xlsx), review page, summary JSON, the final line | outcome, customer, outputs |
//! | [`progress`] | the live counts on stderr: rows finished, rate, time left | console |
//! | [`notify`] | posting the summary to a `--notify` webhook | console, redact |
//! | [`absent`] | customers the file no longer names: count, `--max-absent`, list, delete | console, plan, exec, report, state, customer, outputs |
//! | [`retry`] | which failures are tried again, backoff with jitter, `Retry-After` | outage, api, defaults |
//! | [`outage`] | whether the shop is there: the `--outage-after` and wrong-base verdicts | api |
//! | [`api`] | the Commerce REST client and IMS tokens | redact, throttle |
//! | [`redact`] | keeping the secrets this process holds out of any text it shows | |
//! | [`throttle`] | the shared request rate limit, adaptive on 429 | |
//! | [`state`] | the sled state store: key -> customer id + payload hash, its index, its target | customer, outputs |
//! | [`outputs`] | output files: refused paths, opening without links, formula-safe cells | |
//! | [`customer`] | the desired customer record, its key (by e-mail or a custom attribute), JSON payload and hash | |
//! | [`console`] | what is said on stderr: logs, notes, progress lines; text or JSON; `--quiet` | |
//! | [`defaults`] | every default and limit, named once | |

pub mod absent;
pub mod api;
pub mod bulk;
pub mod check;
pub mod cli;
pub mod config;
pub mod connect;
pub mod console;
pub mod customer;
pub mod defaults;
pub mod exec;
pub mod exit;
pub mod input;
pub mod notify;
pub mod outage;
pub mod outcome;
pub mod outputs;
pub mod plan;
pub mod progress;
pub mod pull;
pub mod redact;
pub mod report;
pub mod retry;
pub mod runs;
pub mod shop;
pub mod state;
pub mod sync;
pub mod throttle;

use std::io::Write;

use anyhow::Context;
use clap::CommandFactory;
use tokio_util::sync::CancellationToken;

use cli::{Cli, Command, LogFormat, RunsArgs, RunsCommand, StateCommand};
use config::{CheckConfig, Connect, Env, PullConfig, SyncConfig};
use exit::Ending;
use state::Store;

pub use exit::Exit;

/// Runs a parsed command line to completion on a fresh runtime.
pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    console::init(console::Settings {
        quiet: cli.quiet,
        verbose: cli.verbose,
        json: cli.log_format == LogFormat::Json,
    });
    match cli.command {
        Command::Completions { shell } => {
            // Into a buffer first: clap_complete panics when its writer fails (`| head`).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "custsync", &mut script);
            std::io::stdout()
                .write_all(&script)
                .context("cannot write the completion script")?;
            return Ok(Exit::Ok);
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .context("cannot write the man page")?;
            return Ok(Exit::Ok);
        }
        _ => {}
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let env = Env::from_process();
    runtime.block_on(async move {
        match cli.command {
            Command::Sync(args) => {
                let mut cfg = SyncConfig::resolve(args, &env, cli.quiet)?;
                cfg.reads.extend(config_file(cli.config));
                let cancel = CancellationToken::new();
                spawn_signal_handler(cancel.clone());
                let finished = sync::run(cfg, cancel).await?;
                Ok(finished.exit())
            }
            Command::Pull(args) => {
                let cfg = PullConfig::resolve(args, &env, cli.quiet)?;
                let cancel = CancellationToken::new();
                spawn_signal_handler(cancel.clone());
                let pulled = pull::run(&cfg, &cancel).await?;
                let ending = if pulled.interrupted {
                    Ending::Interrupted
                } else {
                    Ending::Complete
                };
                let exit = Exit::of_run(ending, false);
                console::final_line(
                    &format!(
                        "pulled {} customers in {} pages ({} without id or email skipped{}){}; state: {}",
                        pulled.customers,
                        pulled.pages,
                        pulled.skipped,
                        match cfg.key.attribute() {
                            Some(code) => format!(
                                ", {} without a {code} skipped: a sync --key {} would create them",
                                pulled.unkeyed, cfg.key
                            ),
                            None => String::new(),
                        },
                        match pulled.dropped {
                            0 => String::new(),
                            n => format!(
                                "; dropped {n} mappings the shop no longer has (customer deleted, \
                                 or its e-mail or key changed)"
                            ),
                        },
                        cfg.connect.state_dir.display()
                    ),
                    exit == Exit::Ok,
                    serde_json::Map::new(),
                );
                Ok(exit)
            }
            Command::Check(args) => {
                let cfg = CheckConfig::resolve(args, &env)?;
                let well = check::run(&cfg).await?;
                Ok(if well { Exit::Ok } else { Exit::Fatal })
            }
            Command::State(cmd) => state_command(cmd, &env, config_file(cli.config)),
            Command::Runs(args) => runs_command(args),
            Command::Sandbox(args) => {
                connect::serve_sandbox(&args, &env, wait_for_signal())
                    .await
                    .context("cannot start the sandbox")?;
                Ok(Exit::Ok)
            }
            // Answered above, without a runtime.
            Command::Completions { .. } | Command::Man => Ok(Exit::Ok),
        }
    })
}

/// `custsync state ...`; `config` is the config file read, which no export may overwrite.
fn state_command(
    cmd: StateCommand,
    env: &Env,
    config: Option<std::path::PathBuf>,
) -> anyhow::Result<Exit> {
    let time = |t: i64| {
        chrono::DateTime::<chrono::Utc>::from_timestamp(t, 0)
            .map_or_else(|| "never".to_owned(), |t| t.to_rfc3339())
    };
    match cmd {
        StateCommand::Stats { state } => {
            let store = Store::open(&state.dir)?;
            let last = store.last_run()?.map_or_else(|| "never".to_owned(), time);
            let check = match store.unchecked()? {
                true => "; the next run checks its mappings against it",
                false => "",
            };
            let bound = match store.bound_at()? {
                Some((target, at)) => format!("{target} (since {}{check})", time(at)),
                None => "nothing yet (the first mapping a sync or pull records binds it)".into(),
            };
            println!("state:      {}", state.dir.display());
            println!("bound to:   {bound}");
            println!("keyed by:   {}", store.key_kind()?);
            println!("entries:    {}", store.len());
            println!("failed:     {}", store.failed_len());
            println!("in doubt:   {}", store.doubt_len());
            println!("last run:   {last}");
            println!("disk bytes: {}", store.size_on_disk()?);
        }
        StateCommand::Export { state, output } => {
            // The file is claimed first: refused, it leaves the store unopened.
            let reads: Vec<&std::path::Path> = config.iter().map(|p| p.as_path()).collect();
            let [file] =
                outputs::claim(&reads, Some(&state.dir), [("--output", output.as_deref())])?;
            let store = Store::open(&state.dir)?;
            let n = match file {
                Some(file) => state::export(&store, file.into_file()?)?,
                None => state::export(&store, std::io::stdout().lock())?,
            };
            if let Some(path) = output {
                eprintln!("exported {n} mappings to {}", path.display());
            }
            let doubts = store.doubt_len();
            if doubts > 0 {
                eprintln!(
                    "note: {doubts} mappings in doubt (a write whose answer was lost) are exported \
                     without their payload hash: a store they are imported into sends them again"
                );
            }
        }
        StateCommand::Import { state, file } => {
            let store = Store::open(&state.dir)?;
            let n = state::import(&store, &file)?;
            // Mappings from elsewhere: a bound store checks them before it writes through them.
            store.set_checked(false)?;
            store.close(n >= state::REPLAY_AFTER)?;
            println!("imported {n} mappings into {}", state.dir.display());
        }
        StateCommand::Rebind { state, connection } => {
            let target =
                connect::binding(&Connect::target_only(&connection, env, state.dir.clone())?);
            let store = Store::open(&state.dir)?;
            match store.bind(&target)? {
                Some(old) if old == target => {
                    println!("{} stays bound to {target}", state.dir.display())
                }
                Some(old) => println!(
                    "{} is now bound to {target} (was {old})",
                    state.dir.display()
                ),
                None => println!("{} is now bound to {target}", state.dir.display()),
            }
            if store.unchecked()? {
                println!(
                    "the next sync reads a sample of its {} mappings from the shop and writes \
                     nothing if they are other customers there",
                    store.len()
                );
            }
            store.flush()?;
        }
        StateCommand::Forget {
            state,
            email,
            website_id,
        } => {
            let store = Store::open(&state.dir)?;
            // The value of the store's key: an email, or a custom key's value.
            let key = store.key_kind()?.key(website_id, &email);
            if !store.forget(&key)? {
                anyhow::bail!("no mapping for {} in website {website_id}", key.value);
            }
            store.flush()?;
            println!("forgot {} in website {website_id}", key.value);
        }
    }
    Ok(Exit::Ok)
}

/// The config file a run read: `--config`, else `custsync.toml` in the working directory.
fn config_file(given: Option<std::path::PathBuf>) -> Option<std::path::PathBuf> {
    let default = std::path::PathBuf::from(defaults::DEFAULT_CONFIG_FILE);
    given.or_else(|| default.is_file().then_some(default))
}

fn runs_command(args: RunsArgs) -> anyhow::Result<Exit> {
    let mut out = std::io::stdout().lock();
    match args.command {
        None => {
            if runs::list(&args.state, &mut out)? == 0 {
                console::note(&format!("no runs recorded in {}", args.state.display()));
            }
        }
        Some(RunsCommand::Show {
            id,
            failed,
            invalid,
            not_sent,
        }) => {
            let filter = runs::Filter {
                failed,
                invalid,
                not_sent,
            };
            runs::show(&args.state, id, filter, &mut out)?;
        }
    }
    Ok(Exit::Ok)
}

fn spawn_signal_handler(cancel: CancellationToken) {
    tokio::spawn(async move {
        wait_for_signal().await;
        console::alert("interrupted: finishing requests in flight, then writing state and report");
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

/// Tests that keep the module map above equal to the code.
#[cfg(test)]
mod layout;

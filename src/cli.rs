//! Command-line arguments (clap types only; [`crate::config`] turns them into settings).
//!
//! The doc comments are the `--help` text, written for a terminal rather than for rustdoc.
#![allow(
    rustdoc::bare_urls,
    rustdoc::broken_intra_doc_links,
    rustdoc::invalid_html_tags
)]

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::absent::MaxAbsent;
use crate::defaults::{
    DEFAULT_BACKOFF_BASE_MS, DEFAULT_CONCURRENCY, DEFAULT_EMPTY_VALUE, DEFAULT_IMS_URL,
    DEFAULT_KEEP_RUNS, DEFAULT_MAX_ABSENT, DEFAULT_MAX_ERRORS, DEFAULT_OUTAGE_AFTER_SECS,
    DEFAULT_PAGE_SIZE, DEFAULT_PROGRESS_SECS, DEFAULT_RATE, DEFAULT_RETRIES,
    DEFAULT_SANDBOX_LISTEN, DEFAULT_SCOPES, DEFAULT_STATE_DIR, DEFAULT_TIMEOUT_SECS,
    DEFAULT_WEBSITE_ID, MAX_BULK, MAX_CONCURRENCY, MAX_PAGE_SIZE,
};
use crate::input::Format;

/// Keep an Adobe Commerce shop's customers in step with a CSV file.
///
/// Rows are validated, keyed by (website_id, lower-cased email) and compared with a local state
/// store, so that each run sends only what changed: POST for new customers, PUT for changed
/// ones. With no --endpoint, custsync talks to its embedded Commerce sandbox.
///
/// Exit codes: 0 every row ok; 1 fatal (configuration, authentication, unreadable input or
/// state, --max-absent); 2 usage error; 3 finished but some rows invalid or failed; 4 stopped
/// before the end (the shop unreachable, --max-errors): the rest not sent; 130 interrupted.
///
/// Options can also come from a TOML file (--config, CUSTSYNC_CONFIG, or custsync.toml in the
/// working directory): a flag beats its environment variable, which beats the file, which
/// beats the default.
#[derive(Debug, Parser)]
#[command(name = "custsync", version, propagate_version = true)]
#[command(
    after_help = "Example:\n  custsync sync customers.csv --report report.csv\n  custsync sync customers.csv --dry-run"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Print nothing when the run exits 0 (for cron); errors, and the final line of a run
    /// that did not exit 0, are still printed.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More detail on stderr (-v requests, -vv everything). Secrets are never printed.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// How log and progress lines are written on stderr: text, or json (one JSON object a
    /// line, for log collectors).
    #[arg(long, global = true, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// A TOML file of options (keys are the long option names with `_`: endpoint, state, rate,
    /// max_absent, ...); without it, custsync.toml in the working directory when there is one.
    /// Relative paths in it are relative to its directory; secrets are refused in it.
    ///
    /// Example: --config /etc/custsync/nightly.toml
    #[arg(long, global = true, env = "CUSTSYNC_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once per process: the size of sync's options costs nothing"
)]
pub enum Command {
    /// Create and update customers from a CSV file (the main job).
    ///
    /// Example: custsync sync customers.csv --rate 20 --report report.csv --summary-json summary.json
    Sync(SyncArgs),
    /// Record the customers the shop already has, so that a first sync updates them.
    ///
    /// Example: custsync pull --endpoint https://na1.api.commerce.adobe.com/AbCdEf123
    Pull(PullArgs),
    /// Connect as a sync would and report, changing nothing: the token works, the endpoint
    /// base is right, and the shop's model (websites, store views, customer groups, allowed
    /// countries and their regions, custom customer attributes). Exit 0 when all is well, 1
    /// otherwise. Without --endpoint: the embedded sandbox.
    ///
    /// Example: custsync check --endpoint https://na1.api.commerce.adobe.com/AbCdEf123 --client-id 1a2b3c
    Check(CheckArgs),
    /// Look into or move the state store.
    ///
    /// Example: custsync state export --output mappings.csv
    #[command(subcommand)]
    State(StateCommand),
    /// Run the built-in Commerce emulator as a standalone HTTP server, for rehearsals.
    ///
    /// Example: custsync sandbox --listen 127.0.0.1:8080
    Sandbox(SandboxArgs),
    /// List the runs recorded in the state directory, newest first: id, start, dry run or not,
    /// exit code, duration, counts, file and target.
    ///
    /// Example: custsync runs; custsync runs show 7 --failed
    Runs(RunsArgs),
    /// Print a shell completion script.
    ///
    /// Example: custsync completions bash > /etc/bash_completion.d/custsync
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    ///
    /// Example: custsync man > /usr/local/share/man/man1/custsync.1
    Man,
}

/// The actions and statuses `--report-only` takes.
pub const REPORT_KINDS: [&str; 8] = [
    "create",
    "update",
    "unchanged",
    "invalid",
    "planned",
    "ok",
    "failed",
    "not_sent",
];

/// Where requests go and how they authenticate.
#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// REST base URL; requests go to {URL}/V1/customers. SaaS:
    /// https://<region>.api.commerce.adobe.com/<tenant-id> (no /rest/); on-premise:
    /// https://shop.example/rest/default. Without it: the embedded sandbox.
    ///
    /// Example: --endpoint https://na1.api.commerce.adobe.com/AbCdEf123
    #[arg(long, env = "CUSTSYNC_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,
    /// Adobe IMS token endpoint (client_credentials). The secret comes only from
    /// CUSTSYNC_CLIENT_SECRET; a ready token from CUSTSYNC_ACCESS_TOKEN is used instead when set.
    #[arg(
        long,
        env = "CUSTSYNC_IMS_URL",
        value_name = "URL",
        default_value = DEFAULT_IMS_URL
    )]
    pub ims_url: String,
    /// IMS server-to-server client id (also sent as x-api-key).
    ///
    /// Example: --client-id 1a2b3c4d5e
    #[arg(long, env = "CUSTSYNC_CLIENT_ID", value_name = "ID")]
    pub client_id: Option<String>,
    /// IMS scopes, comma-separated.
    #[arg(
        long,
        env = "CUSTSYNC_SCOPES",
        value_name = "LIST",
        default_value = DEFAULT_SCOPES
    )]
    pub scopes: String,
    /// Store view code, sent as the `Store:` header.
    ///
    /// Example: --store default
    #[arg(long, env = "CUSTSYNC_STORE", value_name = "CODE")]
    pub store: Option<String>,
    /// Seconds a request may take before it counts as lost and is retried (at least 1).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
}

/// Options of `custsync sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The input file: a header line, then one customer per line. CSV (UTF-8 or UTF-16 with a
    /// BOM, or what --encoding names; delimiter detected), or a spreadsheet: .xlsx, .xls, .ods.
    pub csv: PathBuf,
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Plan only: no request that changes anything, no state change; writes the report with
    /// status `planned`.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub state: StateArg,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Max requests in flight.
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEFAULT_CONCURRENCY,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CONCURRENCY))
    )]
    pub concurrency: u32,
    /// Send creates and updates through Commerce's asynchronous bulk API, N rows per request;
    /// ids are recorded as the shop's queue completes each operation.
    ///
    /// Example: --bulk 200
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_BULK))
    )]
    pub bulk: Option<u32>,
    /// Per-row report: CSV; JSON Lines when FILE ends in .jsonl (with each update's changes as
    /// data); a workbook when it ends in .xlsx (sheet `report`, and sheet `changes` with one line
    /// per changed field).
    ///
    /// Example: --report report.csv
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Limit the report to rows of these actions or statuses (comma-separated): create,
    /// update, unchanged, invalid, planned, ok, failed, not_sent.
    ///
    /// Example: --report report.xlsx --report-only update,create,invalid,failed
    #[arg(
        long,
        value_name = "KINDS",
        value_delimiter = ',',
        value_parser = clap::builder::PossibleValuesParser::new(REPORT_KINDS),
        requires = "report"
    )]
    pub report_only: Vec<String>,
    /// Write a self-contained HTML page for the person who signs off a dry run: counts by
    /// action and website, every field that changes (before and after), the values of each new
    /// customer, invalid rows with line, column and reason, and absent customers.
    ///
    /// Example: --dry-run --review review.html
    #[arg(long, value_name = "FILE")]
    pub review: Option<PathBuf>,
    /// Runs kept in the state directory's history (custsync runs), this one included.
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEFAULT_KEEP_RUNS,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub keep_runs: u32,
    /// Machine-readable summary (counts, requests, retries, elapsed time).
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,
    /// Website for rows without a website_id column or value.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WEBSITE_ID)]
    pub website_id: u32,
    /// Send every valid row, even when unchanged since the last run.
    #[arg(long)]
    pub force: bool,
    /// Re-send only the rows that failed in earlier runs.
    #[arg(long)]
    pub only_failed: bool,
    /// Stop sending after N failed rows (0 = never stop); the rest are not sent (exit code 4).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_ERRORS)]
    pub max_errors: u64,
    /// Send nothing (exit code 1) when more of the state store's customers than this are
    /// absent from the file: a count, or a percentage of the store (a truncated or empty
    /// export). A dry run reports the same verdict.
    ///
    /// Example: --max-absent 500, --max-absent 100% (no limit)
    #[arg(long, value_name = "N|P%", default_value = DEFAULT_MAX_ABSENT)]
    pub max_absent: MaxAbsent,
    /// Stop sending (exit code 4) when the shop has answered no request for this long while
    /// requests fail with connection errors, timeouts or 5xx; rows without a confirmed outcome
    /// are reported not_sent.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_OUTAGE_AFTER_SECS)]
    pub outage_after: u64,
    /// POST the summary JSON to this URL at the end of the run (dry runs too); a failed
    /// notification is only a warning.
    ///
    /// Example: --notify https://hooks.example.com/custsync
    #[arg(long, value_name = "URL")]
    pub notify: Option<String>,
    /// Write the keys in the state store that this file no longer has (CSV
    /// website_id,email,customer_id).
    #[arg(long, value_name = "FILE")]
    pub absent_report: Option<PathBuf>,
    /// Delete those customers from the shop (DELETE /V1/customers/{id}); needs --max-deletes.
    ///
    /// Example: --delete-absent --max-deletes 50
    #[arg(long, requires = "max_deletes")]
    pub delete_absent: bool,
    /// With --delete-absent: refuse, deleting nothing, when more customers than this are absent.
    #[arg(long, value_name = "N", requires = "delete_absent")]
    pub max_deletes: Option<u64>,
    /// Rename a legacy column: SOURCE=TARGET (repeatable; wins over --mapping).
    ///
    /// Example: --map "E-Mail Address=email" --map "Given Name=firstname"
    #[arg(long = "map", value_name = "SOURCE=TARGET")]
    pub renames: Vec<String>,
    /// A TOML mapping file: [columns] renames, [constants], [values.<field>] value maps ("*"
    /// for any other value), [formats] dob = ["%d/%m/%Y", ...], [split] one column into
    /// several fields, [join] one field from a template of columns.
    ///
    /// Example: --mapping legacy.toml
    #[arg(long, value_name = "FILE")]
    pub mapping: Option<PathBuf>,
    #[command(flatten)]
    pub shop: ShopArgs,
    /// Base of the exponential retry backoff, in milliseconds (for rehearsals and tests).
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_BACKOFF_BASE_MS, hide = true)]
    pub backoff_base_ms: u64,
    /// Seconds between two progress lines off a terminal (for tests).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_PROGRESS_SECS, hide = true)]
    pub progress_secs: u64,
}

/// What the shop's API does not tell about its configuration.
#[derive(Debug, Args)]
pub struct ShopArgs {
    /// Countries whose region list the shop does not require a region from (its
    /// general/region/state_required was changed), comma-separated. Commerce requires a region
    /// for every country it ships a region list for, and so does the check of each row.
    ///
    /// Example: --regions-optional DE,AT
    #[arg(
        long,
        env = "CUSTSYNC_REGIONS_OPTIONAL",
        value_name = "LIST",
        value_delimiter = ','
    )]
    pub regions_optional: Vec<String>,
}

/// Options of `custsync check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub state: StateArg,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub shop: ShopArgs,
}

/// How `sync` reads its input file.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// The column delimiter of a CSV file: one character, or tab. Without it, the one of
    /// , ; tab | that the header line holds most of.
    ///
    /// Example: --delimiter ';'
    #[arg(long, value_name = "C", value_parser = Format::delimiter_arg)]
    pub delimiter: Option<String>,
    /// The encoding of a CSV file that is not UTF-8 (a UTF-16 file with a BOM needs none):
    /// windows-1252, iso-8859-1, iso-8859-15, or any other WHATWG label. A file that is not
    /// UTF-8 stops the run, before anything is sent, until it is given.
    ///
    /// Example: --encoding windows-1252
    #[arg(long, value_name = "NAME", value_parser = Format::encoding_arg)]
    pub encoding: Option<String>,
    /// The sheet of a spreadsheet to read; without it, the first.
    ///
    /// Example: --sheet Customers
    #[arg(long, value_name = "NAME")]
    pub sheet: Option<String>,
    /// A cell holding this text clears its field in the shop (an empty cell leaves the shop's
    /// value alone); in a required field the row is invalid.
    ///
    /// Example: --empty-value NULL
    #[arg(long, value_name = "TOKEN", default_value = DEFAULT_EMPTY_VALUE)]
    pub empty_value: String,
    /// Several rows with one key (website, and email or the --key value): send the first, the last, or none of them;
    /// the others are invalid, naming the line that was used.
    ///
    /// Example: --on-duplicate last
    #[arg(long, value_name = "WHICH", value_enum, default_value_t = OnDuplicate::First)]
    pub on_duplicate: OnDuplicate,
    #[command(flatten)]
    pub key: KeyArg,
}

/// `--key`, shared by `sync` and `pull`.
#[derive(Debug, Args)]
pub struct KeyArg {
    /// What identifies a customer within its website: its email, or a custom customer
    /// attribute holding the legacy system's id (the file's `custom:<code>` column, which every
    /// row must fill); then a changed email is an update of the same customer. A state store
    /// keeps the kind of key it was filled with.
    ///
    /// Example: --key custom:legacy_id
    #[arg(long, value_name = "KEY", default_value = "email")]
    pub key: String,
}

/// `--on-duplicate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnDuplicate {
    First,
    Last,
    Error,
}

/// Options of `custsync pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub state: StateArg,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Customers per search page (at most 300, the SaaS limit).
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEFAULT_PAGE_SIZE,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PAGE_SIZE))
    )]
    pub page_size: u32,
    #[command(flatten)]
    pub key: KeyArg,
}

/// How hard the Commerce API may be used; shared by `sync` and `pull`.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Max requests per second to the Commerce API, all requests counted (0 = no limit).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_RATE)]
    pub rate: u32,
    /// Retries per request on 5xx, timeouts and connection errors; a 429, which only asks to
    /// wait, gets four times as many (at least 20).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_RETRIES)]
    pub retries: u32,
}

/// The state directory option shared by several commands.
#[derive(Debug, Args)]
pub struct StateArg {
    /// The state directory (sled store; the embedded sandbox's data too).
    #[arg(long = "state", value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    pub dir: PathBuf,
}

/// `custsync state ...`.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Entries, failed keys, the target it is bound to, last run time, path and size on disk.
    Stats {
        #[command(flatten)]
        state: StateArg,
    },
    /// Write every mapping as CSV: website_id,email,customer_id,payload_hash,synced_at.
    ///
    /// Example: custsync state export --output mappings.csv
    Export {
        #[command(flatten)]
        state: StateArg,
        /// Write here (mode 0600) instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Read mappings from an export (existing keys are overwritten).
    ///
    /// Example: custsync state import mappings.csv --state /var/lib/custsync
    Import {
        #[command(flatten)]
        state: StateArg,
        /// The export file.
        file: PathBuf,
    },
    /// Bind the state store to the target the endpoint options give (without them: the
    /// embedded sandbox), on purpose: a store is bound to the shop it was first used with, and
    /// a run against another target is refused.
    ///
    /// Example: custsync state rebind --endpoint https://na1.api.commerce.adobe.com/AbCdEf123
    Rebind {
        #[command(flatten)]
        state: StateArg,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// Drop one mapping, so that the next sync treats the row as new.
    ///
    /// Example: custsync state forget ann@example.com --website-id 2
    Forget {
        #[command(flatten)]
        state: StateArg,
        /// The customer's email (case does not matter); in a store keyed by a custom
        /// attribute (`--key custom:<code>`), its value.
        email: String,
        /// Its website.
        #[arg(long, value_name = "N", default_value_t = DEFAULT_WEBSITE_ID)]
        website_id: u32,
    },
}

/// `custsync runs`: the list, or one run's rows.
#[derive(Debug, Args)]
pub struct RunsArgs {
    #[command(subcommand)]
    pub command: Option<RunsCommand>,
    /// The state directory whose history to read.
    #[arg(
        long = "state",
        value_name = "DIR",
        default_value = DEFAULT_STATE_DIR,
        global = true
    )]
    pub state: PathBuf,
}

/// `custsync runs ...`.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Print a run's rows as the report's CSV, in file order, with the reasons; sends nothing.
    /// Without a filter, every row; with filters, the rows of any of them.
    ///
    /// Example: custsync runs show 7 --failed
    Show {
        /// The run's id (custsync runs lists them).
        id: u64,
        /// Rows the shop refused, or whose retries ran out.
        #[arg(long)]
        failed: bool,
        /// Rows rejected before sending.
        #[arg(long)]
        invalid: bool,
        /// Rows never sent (the run was interrupted or stopped).
        #[arg(long)]
        not_sent: bool,
    },
}

/// Options of `custsync sandbox`.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Address to listen on; loopback unless you mean to share customer data.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_SANDBOX_LISTEN)]
    pub listen: SocketAddr,
    /// Where the sandbox keeps its customers (under DIR/sandbox).
    #[arg(
        long,
        value_name = "DIR",
        default_value = DEFAULT_STATE_DIR,
        conflicts_with = "ephemeral"
    )]
    pub state: PathBuf,
    /// Keep customers in memory only.
    #[arg(long)]
    pub ephemeral: bool,
    /// The client id its IMS route accepts, default `sandbox` (the secret:
    /// CUSTSYNC_SANDBOX_SECRET, default `sandbox`).
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
    /// A TOML description of the shop to stand for (websites, store views, customer groups,
    /// countries and regions, custom attributes), so a rehearsal mirrors a real shop; without
    /// it, the default shop. Example: sandbox/shop-example.toml.
    #[arg(long, value_name = "FILE")]
    pub shop: Option<PathBuf>,
    /// Fault injection: milliseconds added to every customer request.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// Fault injection: probability (0-1) of a 429 with Retry-After.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub p_429: f64,
    /// Fault injection: the Retry-After seconds of those 429s.
    #[arg(long, value_name = "SECS", default_value_t = 1)]
    pub retry_after: u64,
    /// Fault injection: probability of a 503.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub p_503: f64,
    /// Fault injection: probability that a write is applied, then answered with a 500.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub p_write_then_500: f64,
    /// Fault injection: probability that a write is applied, then the connection dropped.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub p_write_then_drop: f64,
    /// Lifetime in seconds of the tokens its IMS route issues.
    #[arg(long, value_name = "SECS")]
    pub token_ttl: Option<u64>,
    /// Server-side rate limit in requests/s (excess gets 429).
    #[arg(long, value_name = "N")]
    pub rate_limit: Option<u32>,
    /// Operations per second the queue consumer of the async bulk routes applies, default
    /// 1000 (0: as fast as it can).
    #[arg(long, value_name = "N")]
    pub consumer_rate: Option<u32>,
    /// Fault injection: probability that a bulk operation fails retriably (status 2, not
    /// applied).
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub p_bulk_retriable: f64,
    /// Fault injection: probability that a bulk is queued but its 202 is lost (a 500 or a
    /// dropped connection instead).
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub p_bulk_answer_lost: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_match_the_contract() {
        let cli = Cli::try_parse_from(["custsync", "sync", "a.csv"]).expect("parse");
        let Command::Sync(s) = cli.command else {
            panic!("sync")
        };
        assert_eq!(
            (s.limits.rate, s.concurrency, s.limits.retries, s.website_id),
            (10, 8, 5, 1)
        );
        assert_eq!(s.state.dir, PathBuf::from(".custsync"));
        assert!(!s.dry_run && !s.force && !s.only_failed);
    }

    #[test]
    fn runs_show_takes_its_state_before_or_after() {
        for argv in [
            &["custsync", "runs", "--state", "S", "show", "7", "--failed"][..],
            &["custsync", "runs", "show", "7", "--failed", "--state", "S"][..],
        ] {
            let cli = Cli::try_parse_from(argv).expect("parse");
            let Command::Runs(r) = cli.command else {
                panic!("runs")
            };
            assert_eq!(r.state, PathBuf::from("S"));
            assert!(matches!(
                r.command,
                Some(RunsCommand::Show {
                    id: 7,
                    failed: true,
                    invalid: false,
                    not_sent: false
                })
            ));
        }
        let err = Cli::try_parse_from([
            "custsync",
            "sync",
            "a.csv",
            "--report",
            "r.csv",
            "--report-only",
            "create,bogus",
        ]);
        assert!(err.is_err(), "an unknown kind is a usage error");
        let err = Cli::try_parse_from(["custsync", "sync", "a.csv", "--report-only", "create"]);
        assert!(err.is_err(), "--report-only needs --report");
    }

    #[test]
    fn the_secret_has_no_flag() {
        let err = Cli::try_parse_from(["custsync", "sync", "a.csv", "--client-secret", "x"]);
        assert!(err.is_err());
    }
}

//! Typed settings, resolved from the command line, the environment and the config file.
//!
//! Precedence: a flag beats its environment variable, which beats the config file, which beats
//! the default; [`file`] applies it (clap reads flags and environment, the file fills in what
//! clap would have defaulted). Secrets come only from the environment:
//! `CUSTSYNC_CLIENT_SECRET`, `CUSTSYNC_ACCESS_TOKEN`, `CUSTSYNC_SANDBOX_SECRET`.

pub mod file;

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::absent;
use crate::api::Credentials;
use crate::cli::{self, CheckArgs, ConnectionArgs, InputArgs, KeyArg, PullArgs, SyncArgs};
use crate::customer::KeyKind;
use crate::input::{Format, Mapping, MappingError};
use crate::plan;
use crate::redact;
use crate::report::{self, Only};
use crate::retry::RetryPolicy;

pub use file::{FileError, LoadError, load};

/// Kept here too, where the launcher and the tests have always found it.
pub use crate::defaults::DEFAULT_SCOPES;

/// A configuration the run cannot start with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `--map` or `--mapping` is unusable.
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// `--delimiter` or `--encoding` is unusable.
    #[error("--{flag}: {why}")]
    Input { flag: &'static str, why: String },
    /// The endpoint is not an http(s) URL, or has a SaaS-specific mistake.
    #[error("--endpoint {url:?}: {why}")]
    Endpoint { url: String, why: String },
    /// A remote endpoint without any way to authenticate.
    #[error(
        "--endpoint is set but no credentials are: set CUSTSYNC_ACCESS_TOKEN, or --client-id \
         (CUSTSYNC_CLIENT_ID) together with CUSTSYNC_CLIENT_SECRET"
    )]
    NoCredentials,
    /// `--client-id` without the secret, or the other way round.
    #[error(
        "IMS needs both --client-id (or CUSTSYNC_CLIENT_ID) and CUSTSYNC_CLIENT_SECRET; {missing} is missing"
    )]
    HalfCredentials { missing: &'static str },
    /// `--key` is not `email` nor `custom:<code>`.
    #[error("--key {0}")]
    Key(String),
    /// `--notify` is not an http(s) URL.
    #[error("--notify: {why}")]
    Notify { why: String },
}

/// Where the run sends its requests.
#[derive(Debug)]
pub enum Target {
    /// The embedded sandbox, started for this run with data under the state directory.
    Sandbox,
    /// A real Commerce.
    Remote(Connection),
}

/// A real endpoint with its credentials.
#[derive(Debug, Clone)]
pub struct Connection {
    pub endpoint: String,
    /// `None` only for a dry run, which sends nothing.
    pub credentials: Option<Credentials>,
}

/// Where requests go, and the state directory (which also holds the sandbox's data).
#[derive(Debug)]
pub struct Connect {
    pub target: Target,
    pub store: Option<String>,
    pub timeout: Duration,
    pub state_dir: PathBuf,
}

impl Connect {
    fn resolve(
        c: &ConnectionArgs,
        env: &Env,
        state_dir: PathBuf,
        dry_run: bool,
    ) -> Result<Self, ConfigError> {
        Ok(Connect {
            target: resolve_target(c, env, dry_run)?,
            store: c.store.clone(),
            timeout: Duration::from_secs(c.timeout.max(1)),
            state_dir,
        })
    }

    /// The target alone, for `state rebind`: credentials are not needed to name it.
    pub fn target_only(
        c: &ConnectionArgs,
        env: &Env,
        state_dir: PathBuf,
    ) -> Result<Self, ConfigError> {
        Self::resolve(c, env, state_dir, true)
    }
}

/// Everything `custsync sync` needs.
#[derive(Debug)]
pub struct SyncConfig {
    pub input: PathBuf,
    /// The other files the run reads (`--mapping`, the config file), which no output may
    /// overwrite either.
    pub reads: Vec<PathBuf>,
    /// Renames, constants, value maps, ...; the `--empty-value` token and the `--key`.
    pub mapping: Mapping,
    /// `--delimiter`, `--encoding`, `--sheet`.
    pub format: Format,
    pub connect: Connect,
    pub dry_run: bool,
    pub rate: Option<NonZeroU32>,
    pub concurrency: usize,
    /// `--bulk N`: rows per asynchronous bulk request; `None` sends one request a row.
    pub bulk: Option<usize>,
    pub retry: RetryPolicy,
    pub report: Option<PathBuf>,
    /// `--report-only`: `None` reports every row.
    pub report_only: Option<Only>,
    /// `--review`: the HTML review page.
    pub review: Option<PathBuf>,
    pub summary_json: Option<PathBuf>,
    /// `--keep-runs`: runs the history keeps.
    pub keep_runs: usize,
    pub default_website: u32,
    pub plan: plan::Options,
    pub max_errors: Option<u64>,
    /// `--max-absent`, `--absent-report`, `--delete-absent --max-deletes`.
    pub absent: absent::Options,
    /// `--outage-after`.
    pub outage_after: Duration,
    /// `--notify`: the webhook that gets the summary.
    pub notify: Option<String>,
    /// Between two progress lines off a terminal.
    pub progress_every: Duration,
    /// `--regions-optional` (`CUSTSYNC_REGIONS_OPTIONAL`): countries whose region list does
    /// not make a region required.
    pub regions_optional: Vec<String>,
    pub quiet: bool,
}

/// Environment variables the configuration reads; a struct so that tests need not touch the
/// process environment.
#[derive(Debug, Default)]
pub struct Env {
    pub client_secret: Option<SecretString>,
    pub access_token: Option<SecretString>,
    pub sandbox_secret: Option<SecretString>,
}

impl Env {
    /// Reads the secrets from the process environment (empty counts as unset).
    pub fn from_process() -> Self {
        let secret = |name| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .map(SecretString::from)
        };
        Env {
            client_secret: secret("CUSTSYNC_CLIENT_SECRET"),
            access_token: secret("CUSTSYNC_ACCESS_TOKEN"),
            sandbox_secret: secret("CUSTSYNC_SANDBOX_SECRET"),
        }
    }
}

impl SyncConfig {
    /// Resolves `sync` arguments.
    pub fn resolve(args: SyncArgs, env: &Env, quiet: bool) -> Result<Self, ConfigError> {
        let mut mapping = match &args.mapping {
            Some(path) => Mapping::from_file(path)?,
            None => Mapping::default(),
        };
        for spec in &args.renames {
            mapping.add_rename(spec)?;
        }
        mapping.set_empty_value(&args.input.empty_value);
        mapping.set_key(resolve_key(&args.input.key)?);
        Ok(SyncConfig {
            reads: args.mapping.iter().cloned().collect(),
            mapping,
            format: resolve_format(&args.input)?,
            connect: Connect::resolve(&args.connection, env, args.state.dir, args.dry_run)?,
            input: args.csv,
            dry_run: args.dry_run,
            rate: NonZeroU32::new(args.limits.rate),
            concurrency: args.concurrency as usize,
            bulk: args.bulk.map(|n| n as usize),
            retry: RetryPolicy {
                retries: args.limits.retries,
                base: Duration::from_millis(args.backoff_base_ms),
                ..RetryPolicy::default()
            },
            report: args.report,
            report_only: (!args.report_only.is_empty()).then(|| Only::new(args.report_only)),
            summary_json: args.summary_json,
            keep_runs: args.keep_runs as usize,
            default_website: args.website_id,
            plan: plan::Options {
                force: args.force,
                only_failed: args.only_failed,
                on_duplicate: match args.input.on_duplicate {
                    cli::OnDuplicate::First => plan::OnDuplicate::First,
                    cli::OnDuplicate::Last => plan::OnDuplicate::Last,
                    cli::OnDuplicate::Error => plan::OnDuplicate::Error,
                },
            },
            max_errors: (args.max_errors > 0).then_some(args.max_errors),
            absent: absent::Options {
                max_absent: args.max_absent,
                report: args.absent_report,
                max_deletes: args.max_deletes.filter(|_| args.delete_absent),
                sample: if args.review.is_some() {
                    report::review::CAP
                } else {
                    0
                },
            },
            outage_after: Duration::from_secs(args.outage_after.max(1)),
            notify: args.notify.as_deref().map(check_notify).transpose()?,
            progress_every: Duration::from_secs(args.progress_secs.max(1)),
            regions_optional: args.shop.regions_optional,
            review: args.review,
            quiet,
        })
    }
}

/// Everything `custsync pull` needs.
#[derive(Debug)]
pub struct PullConfig {
    pub connect: Connect,
    pub rate: Option<NonZeroU32>,
    pub retry: RetryPolicy,
    pub page_size: u32,
    /// `--key`: what the customers are recorded by.
    pub key: KeyKind,
    pub quiet: bool,
}

impl PullConfig {
    /// Resolves `pull` arguments.
    pub fn resolve(args: PullArgs, env: &Env, quiet: bool) -> Result<Self, ConfigError> {
        Ok(PullConfig {
            connect: Connect::resolve(&args.connection, env, args.state.dir, false)?,
            rate: NonZeroU32::new(args.limits.rate),
            retry: RetryPolicy {
                retries: args.limits.retries,
                ..RetryPolicy::default()
            },
            page_size: args.page_size,
            key: resolve_key(&args.key)?,
            quiet,
        })
    }
}

/// Everything `custsync check` needs.
#[derive(Debug)]
pub struct CheckConfig {
    pub connect: Connect,
    pub rate: Option<NonZeroU32>,
    pub retry: RetryPolicy,
    pub regions_optional: Vec<String>,
}

impl CheckConfig {
    /// Resolves `check` arguments: the connection as a sync's, credentials required.
    pub fn resolve(args: CheckArgs, env: &Env) -> Result<Self, ConfigError> {
        Ok(CheckConfig {
            connect: Connect::resolve(&args.connection, env, args.state.dir, false)?,
            rate: NonZeroU32::new(args.limits.rate),
            retry: RetryPolicy {
                retries: args.limits.retries,
                ..RetryPolicy::default()
            },
            regions_optional: args.shop.regions_optional,
        })
    }
}

/// A `--key` value.
fn resolve_key(arg: &KeyArg) -> Result<KeyKind, ConfigError> {
    KeyKind::parse(&arg.key).map_err(ConfigError::Key)
}

/// How the input file is read.
fn resolve_format(args: &InputArgs) -> Result<Format, ConfigError> {
    let bad = |flag| move |why| ConfigError::Input { flag, why };
    Ok(Format {
        delimiter: args
            .delimiter
            .as_deref()
            .map(Format::delimiter_from)
            .transpose()
            .map_err(bad("delimiter"))?,
        encoding: args
            .encoding
            .as_deref()
            .map(Format::encoding_from)
            .transpose()
            .map_err(bad("encoding"))?,
        sheet: args.sheet.clone(),
    })
}

fn resolve_target(c: &ConnectionArgs, env: &Env, dry_run: bool) -> Result<Target, ConfigError> {
    let Some(raw) = &c.endpoint else {
        return Ok(Target::Sandbox);
    };
    let endpoint = check_endpoint(raw)?;
    let credentials = match (&env.access_token, &c.client_id, &env.client_secret) {
        (Some(token), _, _) => Some(Credentials::Token(token.clone())),
        (None, Some(id), Some(secret)) => Some(Credentials::Ims {
            url: c.ims_url.clone(),
            client_id: id.clone(),
            secret: secret.clone(),
            scopes: c.scopes.clone(),
        }),
        (None, Some(_), None) => {
            return Err(ConfigError::HalfCredentials {
                missing: "CUSTSYNC_CLIENT_SECRET",
            });
        }
        (None, None, Some(_)) => {
            return Err(ConfigError::HalfCredentials {
                missing: "--client-id",
            });
        }
        // A dry run sends nothing, so it needs no credentials.
        (None, None, None) if dry_run => None,
        (None, None, None) => return Err(ConfigError::NoCredentials),
    };
    Ok(Target::Remote(Connection {
        endpoint,
        credentials,
    }))
}

/// Checks a `--notify` URL.
fn check_notify(raw: &str) -> Result<String, ConfigError> {
    match reqwest::Url::parse(raw) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(raw.to_owned()),
        Ok(_) => Err(ConfigError::Notify {
            why: "must start with https:// (or http://)".into(),
        }),
        Err(e) => Err(ConfigError::Notify {
            why: format!("not a URL ({e})"),
        }),
    }
}

/// Checks an endpoint and drops a trailing slash. Messages show it without a password or a
/// query it may hold (either may carry a credential).
fn check_endpoint(raw: &str) -> Result<String, ConfigError> {
    let shown = redact::url(raw.split(['?', '#']).next().unwrap_or_default());
    let bad = |why: &str| ConfigError::Endpoint {
        url: shown.clone(),
        why: redact::url(why),
    };
    let url = reqwest::Url::parse(raw).map_err(|e| bad(&format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(
            "must start with https:// (or http:// for a local test server)",
        ));
    }
    // Paths are appended to the base: after a query or a fragment they would be part of it.
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(
            "a REST base has no query (?...) or fragment (#...): custsync appends /V1/customers to it",
        ));
    }
    let host = url.host_str().unwrap_or_default();
    if host.ends_with("api.commerce.adobe.com") && url.path().split('/').any(|s| s == "rest") {
        return Err(bad(
            "Adobe Commerce as a Cloud Service URLs have no /rest/: use https://<region>.api.commerce.adobe.com/<tenant-id>",
        ));
    }
    if let Some(base) = raw.trim_end_matches('/').strip_suffix("/V1") {
        return Err(bad(&format!(
            "give the base without /V1 ({base}): custsync adds /V1/customers itself"
        )));
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn sync(args: &[&str], env: &Env) -> Result<SyncConfig, ConfigError> {
        let mut argv = vec!["custsync", "sync", "a.csv"];
        argv.extend_from_slice(args);
        let Command::Sync(s) = Cli::try_parse_from(argv).expect("parse").command else {
            panic!("sync")
        };
        SyncConfig::resolve(s, env, false)
    }

    #[test]
    fn no_endpoint_means_sandbox() {
        let c = sync(&[], &Env::default()).expect("config");
        assert!(matches!(c.connect.target, Target::Sandbox));
        assert_eq!(c.rate, NonZeroU32::new(10));
    }

    #[test]
    fn endpoint_needs_credentials_unless_dry_run() {
        let e = sync(
            &["--endpoint", "https://na1.api.commerce.adobe.com/T1"],
            &Env::default(),
        );
        assert!(matches!(e, Err(ConfigError::NoCredentials)));
        assert!(
            sync(
                &[
                    "--endpoint",
                    "https://na1.api.commerce.adobe.com/T1",
                    "--dry-run"
                ],
                &Env::default()
            )
            .is_ok()
        );
        let env = Env {
            client_secret: Some(SecretString::from("s3cr3t")),
            ..Env::default()
        };
        let c = sync(
            &[
                "--endpoint",
                "https://na1.api.commerce.adobe.com/T1/",
                "--client-id",
                "abc",
            ],
            &env,
        )
        .expect("config");
        let Target::Remote(conn) = c.connect.target else {
            panic!("remote")
        };
        assert_eq!(conn.endpoint, "https://na1.api.commerce.adobe.com/T1");
        assert!(
            !format!("{conn:?}").contains("s3cr3t"),
            "Debug must redact the secret"
        );
    }

    #[test]
    fn input_format_flags() {
        let c = sync(
            &[
                "--delimiter",
                ";",
                "--encoding",
                "Windows-1252",
                "--sheet",
                "Kunder",
                "--on-duplicate",
                "last",
                "--empty-value",
                "NULL",
                "--key",
                "custom:Legacy_ID",
            ],
            &Env::default(),
        )
        .expect("config");
        assert_eq!(c.mapping.key(), &KeyKind::Custom("legacy_id".into()));
        assert_eq!(c.format.delimiter, Some(b';'));
        assert_eq!(c.format.encoding, Some(encoding_rs::WINDOWS_1252));
        assert_eq!(c.format.sheet.as_deref(), Some("Kunder"));
        assert_eq!(c.plan.on_duplicate, plan::OnDuplicate::Last);
        assert_eq!(c.mapping.empty_value(), Some("NULL"));
        let c = sync(&["--delimiter", "tab"], &Env::default()).expect("config");
        assert_eq!(c.format.delimiter, Some(b'\t'));
        let c = sync(&[], &Env::default()).expect("defaults");
        assert_eq!(c.mapping.empty_value(), Some("__EMPTY__VALUE__"));
        assert_eq!(c.plan.on_duplicate, plan::OnDuplicate::First);
        assert_eq!(c.mapping.key(), &KeyKind::Email);
        assert_eq!((c.format.delimiter, c.format.encoding), (None, None));
        // A bad value is a usage error of the command line itself.
        for (flag, value) in [("--delimiter", ";;"), ("--encoding", "klingon")] {
            let Err(err) = Cli::try_parse_from(["custsync", "sync", "a.csv", flag, value]) else {
                panic!("{flag} {value} parsed")
            };
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
            assert!(err.to_string().contains(value), "{err}");
        }
    }

    #[test]
    fn a_refused_endpoint_is_shown_without_its_password_and_a_query_is_refused() {
        let env = Env {
            access_token: Some(SecretString::from("t")),
            ..Env::default()
        };
        // (endpoint) -> what the error says
        let cases = [
            (
                "https://bob:Hunter2-secret@shop.example/rest/default/V1",
                "without /V1",
            ),
            (
                "ftp://bob:Hunter2-secret@shop.example/rest",
                "must start with https://",
            ),
            (
                "https://shop.example/rest/default?sig=Hunter2-secret",
                "no query",
            ),
            ("https://shop.example/rest/default#x", "no query"),
        ];
        for (endpoint, want) in cases {
            let e = sync(&["--endpoint", endpoint], &env).expect_err(endpoint);
            let text = e.to_string();
            assert!(text.contains(want), "{endpoint}: {text}");
            assert!(!text.contains("Hunter2"), "{text}");
        }
    }

    #[test]
    fn saas_rest_path_is_refused() {
        let env = Env {
            access_token: Some(SecretString::from("t")),
            ..Env::default()
        };
        let e = sync(
            &["--endpoint", "https://na1.api.commerce.adobe.com/rest/T1"],
            &env,
        );
        assert!(matches!(e, Err(ConfigError::Endpoint { .. })));
        assert!(sync(&["--endpoint", "https://shop.example/rest/default"], &env).is_ok());
        let e = sync(
            &["--endpoint", "https://shop.example/rest/default/V1/"],
            &env,
        );
        assert!(
            e.as_ref().is_err_and(|e| e
                .to_string()
                .contains("without /V1 (https://shop.example/rest/default)")),
            "{e:?}"
        );
    }
}

//! The config file: run options in TOML, for a cron job that should not need a long command
//! line. `--config FILE` (or `CUSTSYNC_CONFIG`) names it; without either, `custsync.toml` in
//! the working directory is read when there is one. One file, never several merged.
//!
//! # Precedence
//!
//! For every option: **a flag beats its environment variable, which beats the file, which
//! beats the default.** This function is the one place that decides it: clap has already
//! settled flag > environment > default, so a value from the file is used exactly where clap
//! took the default ([`load`] asks clap where each value came from).
//!
//! # Keys
//!
//! A key is an option's long name with `_` for `-` (`max_absent = "5%"`, `summary_json =
//! "out/summary.json"`, `map = ["E-Mail=email"]` for a repeatable one, `quiet = true` for a
//! switch). `sync`, `pull`, `check` and `state rebind` (which connect, or name the target, as a
//! sync would) take every key they have an option for (keys of the others are ignored); the
//! other commands that keep state (`state ...`, `runs`) take `state`, and every command takes
//! `quiet`, `verbose` and `log_format`; `sandbox` reads no file. Options that
//! describe one invocation rather than a setup (`dry_run`, `force`, `only_failed`) and the
//! input file are not keys. An unknown key is refused with the list of the valid ones.
//!
//! Paths (options whose value is a FILE or DIR) are relative to the file's directory. A key
//! naming a secret or a token (`client_secret`, `access_token`, `password`, ...) is refused,
//! without its value ever being shown: secrets come only from the environment.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, CommandFactory, FromArgMatches, ValueHint};
use toml::Value;

use crate::cli::Cli;
use crate::defaults::DEFAULT_CONFIG_FILE;

/// Keys that are never options of a config file: one invocation's choices.
const NOT_KEYS: [&str; 6] = [
    "dry_run",
    "force",
    "only_failed",
    "config",
    "help",
    "version",
];
/// Words that make a key a secret's.
const SECRET_WORDS: [&str; 7] = [
    "secret",
    "token",
    "password",
    "passwd",
    "credential",
    "api_key",
    "private_key",
];
/// Commands whose every option may come from the file: those that reach the target as a sync
/// does (a `check` or a `rebind` of another shop than the file's would mislead).
const RUN_COMMANDS: [&[&str]; 4] = [&["sync"], &["pull"], &["check"], &["state", "rebind"]];
/// Options every other command (but `sandbox`) takes from the file, when it has them.
const SHARED_KEYS: [&str; 4] = ["state", "quiet", "verbose", "log_format"];

/// Why the command line could not be made.
#[derive(Debug)]
pub enum LoadError {
    /// A usage error, `--help` or `--version`: clap prints it and exits (2, or 0).
    Usage(clap::Error),
    /// The config file is unusable (exit code 1).
    File(FileError),
}

/// A config file that cannot be used; see the module doc.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the config file {path} is not valid TOML: {message} (line {line})")]
    Toml {
        path: PathBuf,
        message: String,
        line: usize,
    },
    #[error(
        "the config file {path} holds `{key}`, a secret: secrets are never read from a file; \
         set them in the environment (CUSTSYNC_CLIENT_SECRET, CUSTSYNC_ACCESS_TOKEN)"
    )]
    Secret { path: PathBuf, key: String },
    #[error("the config file {path} has unknown keys: {unknown}; valid keys: {valid}")]
    Unknown {
        path: PathBuf,
        unknown: String,
        valid: String,
    },
    #[error("the config file {path}: `{key}` {why}")]
    Value {
        path: PathBuf,
        key: String,
        why: String,
    },
    #[error("the config file {path}: {detail}")]
    Rejected { path: PathBuf, detail: String },
}

/// The command line of `args`, with the config file's options where neither a flag nor the
/// environment gives them; see the module doc.
pub fn load(args: Vec<OsString>, cwd: &Path) -> Result<Cli, LoadError> {
    let mut command = Cli::command();
    command.build();
    // A flag may require an option that the file gives (`--report-only` and the file's
    // `report`): that is judged once the file's options are in, on a lenient parse until then.
    let (matches, missing) = match command.clone().try_get_matches_from(&args) {
        Ok(m) => (m, None),
        Err(e) if e.kind() == ErrorKind::MissingRequiredArgument => {
            match command
                .clone()
                .ignore_errors(true)
                .try_get_matches_from(&args)
            {
                Ok(m) => (m, Some(e)),
                Err(_) => return Err(LoadError::Usage(e)),
            }
        }
        Err(e) => return Err(LoadError::Usage(e)),
    };
    // The command line as it stands, when the file adds nothing to it.
    let as_given = |matches: &ArgMatches, missing: Option<clap::Error>| match missing {
        Some(e) => Err(LoadError::Usage(e)),
        None => Cli::from_arg_matches(matches).map_err(LoadError::Usage),
    };
    let path = match matches.get_one::<PathBuf>("config") {
        Some(p) => cwd.join(p),
        None => match cwd.join(DEFAULT_CONFIG_FILE) {
            p if p.is_file() => p,
            _ => return as_given(&matches, missing),
        },
    };
    let (names, leaf) = leaf(&matches);
    if names.first().is_some_and(|n| *n == "sandbox") {
        return as_given(&matches, missing);
    }
    let table = read(&path)?;
    check_keys(&path, &table, &command)?;
    let Some(leaf_command) = find(&command, &names) else {
        return as_given(&matches, missing);
    };
    let run_command = RUN_COMMANDS.contains(&names.as_slice());
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut extra = Vec::new();
    for (key, value) in &table {
        if !run_command && !SHARED_KEYS.contains(&key.as_str()) {
            continue;
        }
        let Some(arg) = leaf_command
            .get_arguments()
            .find(|a| key_of(a) == Some(key.clone()))
        else {
            continue;
        };
        if given(leaf, leaf_command, arg) {
            continue;
        }
        extra.extend(tokens(arg, value, dir).map_err(|why| {
            LoadError::File(FileError::Value {
                path: path.clone(),
                key: key.clone(),
                why,
            })
        })?);
    }
    if extra.is_empty() {
        return as_given(&matches, missing);
    }
    let merged = command.try_get_matches_from(insert(args, extra));
    let merged = match (merged, missing) {
        (Ok(m), _) => m,
        // Still missing with the file's options in: the command line's own mistake.
        (Err(e), Some(first)) if e.kind() == ErrorKind::MissingRequiredArgument => {
            return Err(LoadError::Usage(first));
        }
        (Err(e), _) => return Err(file_value(&path, &e)),
    };
    Cli::from_arg_matches(&merged).map_err(|e| file_value(&path, &e))
}

/// The leaf subcommand's names and matches.
fn leaf(matches: &ArgMatches) -> (Vec<&str>, &ArgMatches) {
    let mut names = Vec::new();
    let mut at = matches;
    while let Some((name, sub)) = at.subcommand() {
        names.push(name);
        at = sub;
    }
    (names, at)
}

/// The subcommand at `names`.
fn find<'a>(command: &'a clap::Command, names: &[&str]) -> Option<&'a clap::Command> {
    names
        .iter()
        .try_fold(command, |c, name| c.find_subcommand(name))
}

/// The file's key for an option: its long name with `_`; `None` for what is not a key.
fn key_of(arg: &Arg) -> Option<String> {
    if arg.is_positional() || arg.is_hide_set() {
        return None;
    }
    let key = arg.get_long()?.replace('-', "_");
    (!NOT_KEYS.contains(&key.as_str())).then_some(key)
}

/// Every valid key: the options of the run commands, and those every command shares.
fn valid_keys(command: &clap::Command) -> BTreeSet<String> {
    RUN_COMMANDS
        .iter()
        .filter_map(|names| find(command, names))
        .flat_map(|c| c.get_arguments().filter_map(key_of).collect::<Vec<_>>())
        .chain(SHARED_KEYS.iter().map(|k| (*k).to_owned()))
        .collect()
}

fn read(path: &Path) -> Result<toml::Table, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        LoadError::File(FileError::Read {
            path: path.to_owned(),
            source,
        })
    })?;
    toml::from_str(&text).map_err(|e| {
        // The message only: toml's own rendering quotes the line, which may hold a secret.
        let line = e.span().map_or(0, |s| {
            text[..s.start.min(text.len())].lines().count().max(1)
        });
        LoadError::File(FileError::Toml {
            path: path.to_owned(),
            message: e.message().to_owned(),
            line,
        })
    })
}

/// Secrets first (their keys are named, never their values), then unknown keys.
fn check_keys(path: &Path, table: &toml::Table, command: &clap::Command) -> Result<(), LoadError> {
    let file_error = |e| Err(LoadError::File(e));
    if let Some(key) = table.keys().find(|k| is_secret(k)) {
        return file_error(FileError::Secret {
            path: path.to_owned(),
            key: key.clone(),
        });
    }
    let valid = valid_keys(command);
    let unknown: Vec<&str> = table
        .keys()
        .filter(|k| !valid.contains(*k))
        .map(String::as_str)
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    file_error(FileError::Unknown {
        path: path.to_owned(),
        unknown: unknown.join(", "),
        valid: valid.into_iter().collect::<Vec<_>>().join(", "),
    })
}

/// Whether a key names a secret or a token.
fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase().replace('-', "_");
    SECRET_WORDS.iter().any(|w| key.contains(w))
}

/// Whether a flag or the environment gave the option (or an option it conflicts with, either
/// way round: `--quiet` against the file's `verbose` as much as `-v` against its `quiet`), so
/// that the file does not.
fn given(matches: &ArgMatches, command: &clap::Command, arg: &Arg) -> bool {
    let by_user = |a: &Arg| {
        matches!(
            matches.value_source(a.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    let conflict = |a: &Arg, b: &Arg| {
        (command.get_arg_conflicts_with(a).iter()).any(|c| c.get_id() == b.get_id())
    };
    by_user(arg)
        || (command.get_arguments())
            .filter(|a| by_user(a))
            .any(|a| conflict(a, arg) || conflict(arg, a))
}

/// The command-line tokens that give `arg` the file's `value`.
fn tokens(arg: &Arg, value: &Value, dir: &Path) -> Result<Vec<OsString>, String> {
    let long = format!("--{}", arg.get_long().unwrap_or_default());
    let is_path = matches!(
        arg.get_value_hint(),
        ValueHint::FilePath | ValueHint::DirPath | ValueHint::AnyPath
    ) || arg
        .get_value_names()
        .is_some_and(|n| n.iter().any(|n| n == "FILE" || n == "DIR"));
    let one = |v: &Value| -> Result<OsString, String> {
        let text = scalar(v)?;
        let mut token = OsString::from(format!("{long}="));
        if is_path && Path::new(&text).is_relative() {
            token.push(dir.join(&text));
        } else {
            token.push(text);
        }
        Ok(token)
    };
    match (arg.get_action(), value) {
        (ArgAction::SetTrue, Value::Boolean(b)) => Ok(if *b { vec![long.into()] } else { vec![] }),
        (ArgAction::SetTrue, _) => Err("must be true or false".into()),
        (ArgAction::Count, Value::Integer(n)) if (0..=8).contains(n) => {
            Ok((0..*n).map(|_| long.clone().into()).collect())
        }
        (ArgAction::Count, _) => Err("must be a small number".into()),
        (ArgAction::Append, Value::Array(items)) => items.iter().map(one).collect(),
        (_, Value::Array(_)) => Err("takes one value, not a list".into()),
        (_, v) => Ok(vec![one(v)?]),
    }
}

/// A TOML scalar as the command line would spell it.
fn scalar(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Integer(i) => Ok(i.to_string()),
        Value::Float(f) => Ok(f.to_string()),
        Value::Boolean(b) => Ok(b.to_string()),
        _ => Err("must be a string, a number or true/false".into()),
    }
}

/// `args` with `extra` before a `--` that ends the options, or at the end.
fn insert(mut args: Vec<OsString>, extra: Vec<OsString>) -> Vec<OsString> {
    let at = args.iter().position(|a| a == "--").unwrap_or(args.len());
    args.splice(at..at, extra);
    args
}

/// A value from the file that clap refused: its first line, without clap's usage hints.
fn file_value(path: &Path, e: &clap::Error) -> LoadError {
    let rendered = e.to_string();
    let detail = rendered
        .lines()
        .find_map(|l| l.strip_prefix("error:"))
        .map_or_else(|| e.kind().to_string(), |l| l.trim().to_owned());
    LoadError::File(FileError::Rejected {
        path: path.to_owned(),
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Command, StateCommand};

    /// A directory with `custsync.toml` holding `toml`.
    fn dir_with(toml: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(DEFAULT_CONFIG_FILE), toml).expect("write");
        dir
    }

    fn load_in(dir: &Path, args: &[&str]) -> Result<Cli, LoadError> {
        let argv = std::iter::once("custsync").chain(args.iter().copied());
        load(argv.map(OsString::from).collect(), dir)
    }

    fn sync(cli: Cli) -> crate::cli::SyncArgs {
        match cli.command {
            Command::Sync(s) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_flag_beats_the_file_which_beats_the_default() {
        let dir = dir_with(
            "rate = 3\nconcurrency = 2\nmax_absent = \"5%\"\nquiet = true\n\
             map = [\"Mail=email\", \"Given=firstname\"]\nlog_format = \"json\"\n\
             key = \"custom:legacy_id\"\n",
        );
        let cli = load_in(dir.path(), &["sync", "a.csv", "--rate", "7"]).expect("load");
        assert!(cli.quiet);
        assert_eq!(cli.log_format, crate::cli::LogFormat::Json);
        let s = sync(cli);
        // (value, want): the flag's 7, the file's 2 and 5%, the default website 1.
        assert_eq!(s.limits.rate, 7);
        assert_eq!(s.concurrency, 2);
        assert_eq!(s.max_absent, crate::absent::MaxAbsent::Percent(5.0));
        assert_eq!(s.website_id, 1);
        assert_eq!(s.renames, ["Mail=email", "Given=firstname"]);
        assert_eq!(s.input.key.key, "custom:legacy_id");

        // -v on the command line beats the file's conflicting quiet, and --quiet its verbose.
        let cli = load_in(dir.path(), &["sync", "a.csv", "-v"]).expect("load");
        assert!(!cli.quiet && cli.verbose == 1);
        let dir = dir_with("verbose = 2\n");
        for args in [
            &["sync", "a.csv", "--quiet"][..],
            &["--quiet", "sync", "a.csv"],
        ] {
            let cli = load_in(dir.path(), args).expect("load");
            assert!(cli.quiet && cli.verbose == 0, "{args:?}");
        }
    }

    #[test]
    fn a_flag_may_require_an_option_the_file_gives() {
        let dir = dir_with("report = \"r.csv\"\ndelete_absent = true\n");
        let args = [
            "sync",
            "a.csv",
            "--report-only",
            "failed",
            "--max-deletes",
            "5",
        ];
        let s = sync(load_in(dir.path(), &args).expect("load"));
        assert_eq!(s.report, Some(dir.path().join("r.csv")));
        assert_eq!(
            (s.report_only, s.max_deletes),
            (vec!["failed".into()], Some(5))
        );

        // Without the file's option it stays a usage error, as without a file.
        let empty = dir_with("rate = 3\n");
        for dir in [empty.path(), tempfile::tempdir().expect("tempdir").path()] {
            let e = load_in(dir, &["sync", "a.csv", "--report-only", "failed"]);
            assert!(
                matches!(&e, Err(LoadError::Usage(e)) if e.kind() == ErrorKind::MissingRequiredArgument),
                "{e:?}"
            );
        }
        assert!(matches!(
            load_in(empty.path(), &["sync"]),
            Err(LoadError::Usage(_))
        ));
    }

    #[test]
    fn commands_that_reach_the_target_take_its_keys_from_the_file() {
        let dir = dir_with("endpoint = \"https://shop.example/rest/default\"\nwebsite_id = 2\n");
        let endpoint = |cli: Cli| match cli.command {
            Command::Check(c) => c.connection.endpoint,
            Command::State(StateCommand::Rebind { connection, .. }) => connection.endpoint,
            other => panic!("{other:?}"),
        };
        for args in [&["check"][..], &["state", "rebind"]] {
            let cli = load_in(dir.path(), args).expect("load");
            assert_eq!(
                endpoint(cli).as_deref(),
                Some("https://shop.example/rest/default"),
                "{args:?}"
            );
        }
        // A sync's default website is no website for `state forget`.
        let cli = load_in(dir.path(), &["state", "forget", "a@x.io"]).expect("load");
        let Command::State(StateCommand::Forget { website_id, .. }) = cli.command else {
            panic!("forget")
        };
        assert_eq!(website_id, 1);
    }

    #[test]
    fn paths_in_the_file_are_relative_to_it_and_other_commands_take_only_the_state() {
        let dir = dir_with("state = \"st\"\nreport = \"/abs/r.csv\"\nwebsite_id = 2\n");
        let other = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join(DEFAULT_CONFIG_FILE);
        let args = ["sync", "a.csv", "--config", file.to_str().expect("utf-8")];
        let s = sync(load_in(other.path(), &args).expect("load"));
        assert_eq!(s.state.dir, dir.path().join("st"));
        assert_eq!(s.report, Some(PathBuf::from("/abs/r.csv")));
        assert_eq!(s.website_id, 2);
        assert_eq!(s.csv, PathBuf::from("a.csv"), "the input stays as given");

        let cli = load_in(dir.path(), &["state", "forget", "a@x.io"]).expect("load");
        let Command::State(StateCommand::Forget {
            state, website_id, ..
        }) = cli.command
        else {
            panic!("forget")
        };
        assert_eq!((state.dir, website_id), (dir.path().join("st"), 1));
    }

    #[test]
    fn secrets_unknown_keys_and_bad_values_are_refused() {
        // (file, what the error says)
        let cases = [
            (
                "client_secret = \"hunter2-value\"",
                "`client_secret`, a secret",
            ),
            ("[auth]\naccess_token = \"x\"", "unknown keys: auth"),
            (
                "Access-Token = \"hunter2-value\"",
                "`Access-Token`, a secret",
            ),
            (
                "rate = 1\nspeed = 2\ndry_run = true",
                "unknown keys: dry_run, speed; valid keys:",
            ),
            ("rate = \"fast\"", "invalid value 'fast' for '--rate <N>'"),
            ("force = true", "unknown keys: force"),
            ("quiet = \"yes\"", "`quiet` must be true or false"),
            ("rate = [1, 2]", "`rate` takes one value, not a list"),
            ("rate = 1\nendpoint = \"hunter2-value", "not valid TOML"),
        ];
        for (toml, want) in cases {
            let dir = dir_with(toml);
            let Err(LoadError::File(e)) = load_in(dir.path(), &["sync", "a.csv"]) else {
                panic!("{toml} was accepted")
            };
            let text = e.to_string();
            assert!(text.contains(want), "{toml}: {text}");
            assert!(
                !text.contains("hunter2"),
                "a secret's value is never shown: {text}"
            );
        }
    }

    #[test]
    fn no_file_and_the_sandbox_read_nothing() {
        let empty = tempfile::tempdir().expect("tempdir");
        assert!(load_in(empty.path(), &["sync", "a.csv"]).is_ok());
        let broken = dir_with("client_secret = 1");
        assert!(load_in(broken.path(), &["sandbox"]).is_ok());
        assert!(matches!(
            load_in(empty.path(), &["sync"]),
            Err(LoadError::Usage(_))
        ));
        let missing = load_in(empty.path(), &["sync", "a.csv", "--config", "nope.toml"]);
        assert!(matches!(
            missing,
            Err(LoadError::File(FileError::Read { .. }))
        ));
    }
}

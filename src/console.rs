//! What custsync says on stderr, and how: log records (through `tracing`), the lines a command
//! prints for its user (the target, notes, the final line, warnings) and progress lines.
//!
//! Everything a person or a log collector reads goes to stderr (stdout carries only data: an
//! export, a completion script, a man page), in one of two forms:
//! - text: colour and a live progress bar only on a terminal and without `NO_COLOR`; off a
//!   terminal no escape byte at all, and periodic progress lines that start with an RFC 3339
//!   timestamp (cron mail, `journalctl`);
//! - `--log-format json`: every line one JSON object with `timestamp`, `level` and `message`
//!   (and the numbers of a progress or final line as fields of their own).
//!
//! `--quiet` keeps a run that exits 0 silent: [`note`]s and progress are dropped, the final
//! line is printed only when the run did not exit 0, and [`alert`]s (something is wrong) and
//! errors always are.
//!
//! The settings are process-wide, set once by [`init`] before any command runs (like the
//! `tracing` subscriber they configure): every module that prints would otherwise need them
//! handed down, and none may print differently from the others.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

/// How the user asked for output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// `--quiet`: nothing when the run exits 0.
    pub quiet: bool,
    /// `-v` count.
    pub verbose: u8,
    /// `--log-format json`.
    pub json: bool,
}

/// The settings, with what the terminal allows.
#[derive(Clone, Copy, Debug)]
struct Resolved {
    quiet: bool,
    json: bool,
    /// Colour and live bars: stderr is a terminal and `NO_COLOR` is unset.
    fancy: bool,
}

static SETTINGS: OnceLock<Resolved> = OnceLock::new();

fn settings() -> Resolved {
    *SETTINGS.get_or_init(|| resolve(Settings::default(), false, true))
}

/// Whether colour and live bars may be used, from the facts they depend on.
fn resolve(s: Settings, terminal: bool, no_color: bool) -> Resolved {
    Resolved {
        quiet: s.quiet,
        json: s.json,
        fancy: terminal && !no_color && !s.json,
    }
}

/// `NO_COLOR` set to anything but the empty string (<https://no-color.org>).
fn no_color_env() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Sets the output up for the whole process: the `tracing` subscriber and the settings every
/// other function here reads. Call once, before any command runs.
pub fn init(s: Settings) {
    let resolved = resolve(s, std::io::stderr().is_terminal(), no_color_env());
    let _ = SETTINGS.set(resolved);
    let level = match (s.quiet, s.verbose) {
        (true, _) => tracing::Level::ERROR,
        (false, 0) => tracing::Level::WARN,
        (false, 1) => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(resolved.fancy);
    let _ = if s.json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
}

/// Whether a live progress bar (and colour) may be drawn.
pub fn fancy() -> bool {
    settings().fancy
}

/// Whether `--quiet` was given.
pub fn quiet() -> bool {
    settings().quiet
}

/// A line for the user (the target, a note): dropped under `--quiet`.
pub fn note(message: &str) {
    unless_quiet("INFO", message);
}

/// Something is wrong and the run will not exit 0: printed even under `--quiet`.
pub fn alert(message: &str) {
    emit(settings(), "WARN", message, Map::new());
}

/// A warning that does not change the exit code (a failed notification): dropped under
/// `--quiet`, like every other line of a run that exits 0.
pub fn warn(message: &str) {
    unless_quiet("WARN", message);
}

fn unless_quiet(level: &str, message: &str) {
    let s = settings();
    if !s.quiet {
        emit(s, level, message, Map::new());
    }
}

/// The error that ends the command (exit 1).
pub fn error(message: &str) {
    emit(settings(), "ERROR", message, Map::new());
}

/// An error and its causes on one line, each cause once: most of the library's errors already
/// name their cause in their own message.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !out.contains(&cause_text) {
            out.push_str(": ");
            out.push_str(&cause_text);
        }
        source = cause.source();
    }
    out
}

/// The last line of a run; under `--quiet` only when the run did not exit 0 (`ok` false).
/// `fields` are its numbers, for the JSON form.
pub fn final_line(message: &str, ok: bool, fields: Map<String, Value>) {
    let s = settings();
    if !(s.quiet && ok) {
        emit(s, "INFO", message, fields);
    }
}

/// A periodic progress line, off a terminal: `message` after an RFC 3339 timestamp, or a JSON
/// object with `fields`. Dropped under `--quiet`.
pub fn progress_line(message: &str, fields: Map<String, Value>) {
    let s = settings();
    if s.quiet {
        return;
    }
    if s.json {
        emit(s, "INFO", message, fields);
    } else {
        // As in `emit`: a closed stderr must not panic the progress ticker.
        let _ = writeln!(std::io::stderr().lock(), "{} {message}", timestamp());
    }
}

/// Now, as RFC 3339 in UTC to the second.
pub fn timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn emit(s: Resolved, level: &str, message: &str, fields: Map<String, Value>) {
    let mut err = std::io::stderr().lock();
    // A closed stderr is no reason to fail a run that did its work.
    let _ = if s.json {
        writeln!(err, "{}", json_line(&timestamp(), level, message, fields))
    } else if level == "ERROR" {
        writeln!(err, "error: {message}")
    } else {
        writeln!(err, "{message}")
    };
}

/// One JSON log line: the keys of the `tracing` records, in their order (`timestamp`,
/// `level`, `message`), then `fields` (but for any named like those).
fn json_line(timestamp: &str, level: &str, message: &str, fields: Map<String, Value>) -> String {
    let mut line = format!(
        "{{\"timestamp\":{},\"level\":{},\"message\":{}",
        json!(timestamp),
        json!(level),
        json!(message)
    );
    for (k, v) in fields {
        if !matches!(k.as_str(), "timestamp" | "level" | "message") {
            line.push_str(&format!(",{}:{v}", json!(k)));
        }
    }
    line.push('}');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_and_bars_only_on_a_terminal_without_no_color_in_text() {
        let text = Settings::default();
        let json = Settings {
            json: true,
            ..Settings::default()
        };
        // (settings, stderr is a terminal, NO_COLOR set) -> fancy
        let cases = [
            (text, true, false, true),
            (text, false, false, false),
            (text, true, true, false),
            (json, true, false, false),
        ];
        for (s, terminal, no_color, want) in cases {
            assert_eq!(
                resolve(s, terminal, no_color).fancy,
                want,
                "{s:?} terminal {terminal} NO_COLOR {no_color}"
            );
        }
    }

    #[test]
    fn json_lines_keep_their_own_keys_first() {
        let mut fields = Map::new();
        fields.insert("rows".into(), json!(3));
        fields.insert("message".into(), json!("not this"));
        let line = json_line("2026-01-01T00:00:00Z", "INFO", "done\n\"x\"", fields);
        assert_eq!(
            line,
            r#"{"timestamp":"2026-01-01T00:00:00Z","level":"INFO","message":"done\n\"x\"","rows":3}"#
        );
        let parsed: Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(parsed["message"], "done\n\"x\"");
    }
}

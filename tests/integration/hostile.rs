//! A misbehaving server: redirects, secrets echoed back, huge answers. The real binary must not
//! follow a redirect, record anything it did not see confirmed, print a secret, or read (or
//! keep) more of an answer than its caps allow.

mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::support::Run;
use server::{SECRET, Server, TOKEN, URL_PASSWORD};

/// A ready token given through `CUSTSYNC_ACCESS_TOKEN`.
const READY_TOKEN: &str = "Ready-Access-Token-314159";
/// A customer's password from the CSV.
const PASSWORD: &str = "Cust0mer-Passw0rd-Unique";
/// The `Basic` credentials an HTTP client makes of the endpoint's `admin:{URL_PASSWORD}`.
const BASIC: &str = "YWRtaW46VXJsLVBhc3MtSW4tRW5kcG9pbnQtOTk=";

/// The server, and a directory for the runs' files.
struct Hostile {
    server: Server,
    dir: tempfile::TempDir,
}

impl Hostile {
    async fn start() -> Self {
        Hostile {
            server: Server::start().await,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.server.addr)
    }

    /// The endpoint of a scenario, with credentials in it.
    fn endpoint(&self, scenario: &str) -> String {
        format!(
            "http://admin:{URL_PASSWORD}@{}/{scenario}",
            self.server.addr
        )
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn csv(&self) -> PathBuf {
        let p = self.path("in.csv");
        std::fs::write(
            &p,
            format!(
                "email,firstname,lastname,password\na@example.com,Ann,Lee,{PASSWORD}\nb@example.com,Bo,Ek,\n"
            ),
        )
        .expect("write csv");
        p
    }

    /// `custsync` aimed at `scenario`, IMS at `ims`.
    fn custsync(&self, scenario: &str, ims: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_custsync"));
        cmd.env_clear()
            .current_dir(self.dir.path())
            .env("CUSTSYNC_CLIENT_SECRET", SECRET)
            .env("CUSTSYNC_ENDPOINT", self.endpoint(scenario))
            .env("CUSTSYNC_IMS_URL", self.url(ims))
            .env("CUSTSYNC_CLIENT_ID", "hostile")
            .stdin(Stdio::null());
        cmd
    }

    /// `custsync sync` of two customers against `scenario`, with a report and a summary.
    fn sync(&self, scenario: &str, ims: &str, state: &str) -> Command {
        let mut cmd = self.custsync(scenario, ims);
        cmd.arg("sync")
            .arg(self.csv())
            .arg("--state")
            .arg(self.path(state))
            .args(["-vv", "--rate", "0", "--backoff-base-ms", "5", "--report"])
            .arg(self.path(&format!("{state}.jsonl")))
            .arg("--summary-json")
            .arg(self.path(&format!("{state}.json")));
        cmd
    }

    /// Everything a run left behind that a person could read: its output, its report and
    /// summary, and the state export.
    async fn outputs(&self, run: &Run, state: &str) -> Vec<(String, String)> {
        let mut out = vec![
            ("stdout".to_owned(), run.stdout.clone()),
            ("stderr".to_owned(), run.stderr.clone()),
        ];
        for file in [format!("{state}.jsonl"), format!("{state}.json")] {
            if let Ok(text) = std::fs::read_to_string(self.path(&file)) {
                out.push((file, text));
            }
        }
        out.push(("state export".to_owned(), self.export(state).await));
        out
    }

    /// Checks that the run printed, reported and recorded no secret and no mapping; returns
    /// what it looked at.
    async fn assert_clean_and_unrecorded(&self, run: &Run, state: &str) -> Vec<(String, String)> {
        let outputs = self.outputs(run, state).await;
        assert_nothing_recorded(&outputs.last().expect("export").1);
        assert_clean(&outputs);
        outputs
    }

    /// `custsync state export`: the mappings recorded.
    async fn export(&self, state: &str) -> String {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_custsync"));
        cmd.env_clear()
            .args(["state", "export", "--state"])
            .arg(self.path(state));
        let run = output(cmd).await;
        run.expect_code(0);
        run.stdout
    }
}

async fn output(mut cmd: Command) -> Run {
    Run::from(
        tokio::task::spawn_blocking(move || cmd.output().expect("run custsync"))
            .await
            .expect("join"),
    )
}

#[track_caller]
fn assert_clean(outputs: &[(String, String)]) {
    for (name, text) in outputs {
        for secret in [SECRET, TOKEN, READY_TOKEN, PASSWORD, URL_PASSWORD, BASIC] {
            assert!(!text.contains(secret), "{secret} leaked in {name}:\n{text}");
        }
    }
}

/// The state export has its header and no mapping.
#[track_caller]
fn assert_nothing_recorded(export: &str) {
    assert_eq!(export.lines().count(), 1, "nothing recorded:\n{export}");
}

fn report_rows(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("report")
        .lines()
        .map(|l| serde_json::from_str(l).expect("report line is JSON"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed_and_nothing_is_recorded() {
    let h = Hostile::start().await;
    for status in [301, 302, 303, 307, 308] {
        let state = format!("state{status}");
        let run = output(h.sync(&format!("r{status}"), "ims/good", &state)).await;
        run.expect_code(3);
        assert_eq!(
            h.server.counters.evil.load(Ordering::Relaxed),
            0,
            "HTTP {status}: the redirect was followed"
        );
        let rows = report_rows(&h.path(&format!("{state}.jsonl")));
        assert_eq!(rows.len(), 2);
        for row in &rows {
            assert_eq!(row["status"], "failed", "{row}");
            let message = row["message"].as_str().expect("message");
            assert!(
                message.contains("redirect") && message.contains("/evil/V1/customers"),
                "the message says where it was sent and why it did not go: {message}"
            );
        }
        h.assert_clean_and_unrecorded(&run, &state).await;
    }
    assert_eq!(
        h.server.counters.customers.load(Ordering::Relaxed),
        10,
        "one request per row, no retry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirecting_token_endpoint_stops_the_run() {
    let h = Hostile::start().await;
    let run = output(h.sync("echo", "ims/redirect", "state")).await;
    run.expect_code(1);
    assert!(
        run.stderr.contains("authentication failed")
            && run.stderr.contains("redirect")
            && run.stderr.contains("/evil/ims"),
        "{}",
        run.stderr
    );
    assert_eq!(
        h.server.counters.evil.load(Ordering::Relaxed),
        0,
        "followed"
    );
    assert_eq!(h.server.counters.customers.load(Ordering::Relaxed), 0);
    h.assert_clean_and_unrecorded(&run, "state").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_echoed_by_ims_is_not_printed() {
    let h = Hostile::start().await;
    for ims in ["ims/echo", "ims/echo-text"] {
        let run = output(h.sync("echo", ims, "state")).await;
        run.expect_code(1);
        assert!(
            run.stderr.contains("authentication failed") && run.stderr.contains("grant_type"),
            "the message keeps what is not secret: {}",
            run.stderr
        );
        h.assert_clean_and_unrecorded(&run, "state").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_passwords_and_url_credentials_echoed_by_the_api_are_not_printed() {
    let h = Hostile::start().await;
    for (scenario, ready_token) in [("echo", false), ("echo-text", false), ("echo", true)] {
        let state = format!("state-{scenario}-{ready_token}");
        let mut cmd = h.sync(scenario, "ims/good", &state);
        if ready_token {
            cmd.env_remove("CUSTSYNC_CLIENT_SECRET")
                .env("CUSTSYNC_ACCESS_TOKEN", READY_TOKEN);
        }
        let run = output(cmd).await;
        run.expect_code(3);
        assert!(
            run.stderr
                .contains(&format!("target: http://{}/{scenario}", h.server.addr)),
            "the target line without the URL's credentials: {}",
            run.stderr
        );
        let rows = report_rows(&h.path(&format!("{state}.jsonl")));
        assert!(
            rows.iter().all(|r| r["message"]
                .as_str()
                .is_some_and(|m| m.contains("Bearer") && m.contains("firstname"))),
            "the message keeps what is not secret: {rows:?}"
        );
        h.assert_clean_and_unrecorded(&run, &state).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_answers_are_not_read_whole() {
    let h = Hostile::start().await;
    for scenario in ["huge-error", "huge-ok"] {
        let state = format!("state-{scenario}");
        h.server.counters.huge_bytes.store(0, Ordering::Relaxed);
        let mut cmd = h.sync(scenario, "ims/good", &state);
        cmd.args(["--retries", "0", "--concurrency", "1"]);
        let started = Instant::now();
        let run = output(cmd).await;
        run.expect_code(3);
        assert!(started.elapsed() < Duration::from_secs(20));
        let sent = h.server.counters.huge_bytes.load(Ordering::Relaxed);
        assert!(
            sent < 2 * 16 * 1024 * 1024,
            "{scenario}: the client read {sent} bytes of two 100 MB answers"
        );
        let rows = report_rows(&h.path(&format!("{state}.jsonl")));
        for row in &rows {
            assert_eq!(row["status"], "failed", "{row}");
            let message = row["message"].as_str().expect("message");
            // 1 KiB of the server's words, and our own around them.
            assert!(
                message.len() <= 1024 + 200,
                "{scenario}: a {} byte message was kept",
                message.len()
            );
            assert!(message.contains("too large"), "{message}");
        }
        let outputs = h.assert_clean_and_unrecorded(&run, &state).await;
        assert!(
            outputs.iter().all(|(_, text)| text.len() < 64 * 1024),
            "no output holds the answer"
        );
    }
    let run = output(h.sync("echo", "ims/huge", "state-ims")).await;
    run.expect_code(1);
    assert!(run.stderr.contains("too large"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_page_may_be_larger_than_one_answer() {
    let h = Hostile::start().await;
    let mut cmd = h.custsync("big-page", "ims/good");
    cmd.args(["pull", "--page-size", "300", "--state"])
        .arg(h.path("state"));
    let run = output(cmd).await;
    run.expect_code(0);
    assert!(
        run.stderr
            .contains(&format!("pulled {} customers", server::PAGE_ITEMS)),
        "{}",
        run.stderr
    );
    assert_eq!(
        h.export("state").await.lines().count(),
        server::PAGE_ITEMS + 1
    );
}

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
        self.sync_file(scenario, ims, state, &self.csv())
    }

    /// The same with another file.
    fn sync_file(&self, scenario: &str, ims: &str, state: &str, csv: &Path) -> Command {
        let mut cmd = self.custsync(scenario, ims);
        cmd.arg("sync")
            .arg(csv)
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

    /// `custsync state import` of `mappings` (export lines without the header).
    async fn import(&self, state: &str, mappings: &str) {
        let file = self.path(&format!("{state}-import.csv"));
        std::fs::write(
            &file,
            format!("website_id,email,customer_id,payload_hash,synced_at\n{mappings}"),
        )
        .expect("write import");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_custsync"));
        cmd.env_clear()
            .args(["state", "import"])
            .arg(file)
            .arg("--state")
            .arg(self.path(state));
        output(cmd).await.expect_code(0);
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

/// The messages of a report whose rows all failed.
#[track_caller]
fn failed_messages(path: &Path) -> Vec<String> {
    report_rows(path)
        .iter()
        .map(|row| {
            assert_eq!(row["status"], "failed", "{row}");
            row["message"].as_str().expect("message").to_owned()
        })
        .collect()
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
        let messages = failed_messages(&h.path(&format!("{state}.jsonl")));
        assert_eq!(messages.len(), 2);
        for message in &messages {
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
    run.expect_stderr("too large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_page_may_be_larger_than_one_answer() {
    let h = Hostile::start().await;
    let mut cmd = h.custsync("big-page", "ims/good");
    cmd.args(["pull", "--page-size", "300", "--state"])
        .arg(h.path("state"));
    let run = output(cmd).await;
    run.expect_code(0);
    run.expect_stderr(&format!("pulled {} customers", server::PAGE_ITEMS));
    assert_eq!(
        h.export("state").await.lines().count(),
        server::PAGE_ITEMS + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_long_retry_after_is_capped_and_named_when_retries_run_out() {
    let h = Hostile::start().await;
    for scenario in ["slow-down", "slow-down-date"] {
        let state = format!("state-{scenario}");
        let mut cmd = h.sync(scenario, "ims/good", &state);
        cmd.args(["--retries", "0"]);
        let started = Instant::now();
        let run = output(cmd).await;
        run.expect_code(3);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no day-long sleep"
        );
        for message in failed_messages(&h.path(&format!("{state}.jsonl"))) {
            assert!(
                message.contains("Retry-After asked for")
                    && message.contains("more than the 120 s custsync waits"),
                "{message}"
            );
            if scenario == "slow-down" {
                assert!(message.contains("asked for 86400 s"), "{message}");
            }
        }
        h.assert_clean_and_unrecorded(&run, &state).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_wait_is_announced_and_shown_on_the_progress_line() {
    use std::io::BufRead;

    let h = Hostile::start().await;
    // The default log level: what an operator sees.
    let mut cmd = h.custsync("slow-down", "ims/good");
    cmd.arg("sync")
        .arg(h.csv())
        .arg("--state")
        .arg(h.path("state"))
        .args(["--retries", "1", "--concurrency", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let seen = tokio::task::spawn_blocking(move || {
        let (mut warned, mut shown) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(40);
        while (warned.is_none() || shown.is_none()) && Instant::now() < deadline {
            let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) else {
                continue;
            };
            if line.contains("the shop asks to wait 86400 s") {
                warned = Some(line);
            } else if line.contains(" progress: ") && line.contains("Retry-After") {
                shown = Some(line);
            }
        }
        (warned, shown, rx)
    })
    .await
    .expect("join");
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let started = Instant::now();
    let status = tokio::task::spawn_blocking(move || child.wait().expect("wait"))
        .await
        .expect("join");
    let (warned, shown, _rx) = seen;
    let warned = warned.expect("a warning names the wait");
    assert!(
        warned.contains("WARN") && warned.contains("retry 1 in 120 s (capped at 120 s)"),
        "{warned}"
    );
    let shown = shown.expect("the progress line shows the wait");
    assert!(
        shown.contains("for the shop (Retry-After: 86400 s, capped at 120 s)"),
        "{shown}"
    );
    assert_eq!(status.code(), Some(130));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "an interrupt ends the wait"
    );
}

/// `n` customers in website 1.
fn customers(h: &Hostile, n: usize) -> PathBuf {
    let p = h.path(&format!("customers-{n}.csv"));
    let mut text = String::from("email,firstname,lastname\n");
    for i in 0..n {
        text.push_str(&format!("c{i}@example.com,Ann,Lee\n"));
    }
    std::fs::write(&p, text).expect("write csv");
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_about_another_customer_are_refused_and_nothing_is_recorded() {
    let h = Hostile::start().await;
    for (scenario, says) in [
        ("id0", "the answer's customer id 0 is not a positive number"),
        (
            "other-email",
            "has the e-mail someone-else@example.com, not",
        ),
        ("other-website", "in website 7, not in website 1 as sent"),
    ] {
        let state = format!("state-{scenario}");
        let run = output(h.sync(scenario, "ims/good", &state)).await;
        run.expect_code(3);
        let messages = failed_messages(&h.path(&format!("{state}.jsonl")));
        assert_eq!(messages.len(), 2);
        for message in &messages {
            assert!(
                message.contains("unexpected answer from POST /V1/customers")
                    && message.contains(says),
                "{scenario}: {message}"
            );
        }
        h.assert_clean_and_unrecorded(&run, &state).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_id_is_never_recorded_for_two_keys() {
    let h = Hostile::start().await;
    // Five creates all answered with id 5: the first answer is taken, the others refused.
    let run = output(h.sync_file("id5", "ims/good", "state", &customers(&h, 5))).await;
    run.expect_code(3);
    let rows = report_rows(&h.path("state.jsonl"));
    let ok: Vec<_> = rows.iter().filter(|r| r["status"] == "ok").collect();
    assert_eq!(ok.len(), 1, "{rows:?}");
    assert_eq!(ok[0]["customer_id"], 5);
    for row in rows.iter().filter(|r| r["status"] != "ok") {
        let message = row["message"].as_str().expect("message");
        assert!(
            message
                .contains("the shop answered customer id 5, which it already gave the row on line"),
            "{message}"
        );
    }
    let export = h.export("state").await;
    assert_eq!(export.lines().count(), 2, "one mapping:\n{export}");
    assert!(export.contains(&format!(",{},5,", ok[0]["email"].as_str().expect("email"))));

    // Not for a key when the store records the id for another key.
    h.import(
        "other",
        "1,x@example.com,5,00000000000000000000000000000001,\n",
    )
    .await;
    // The imported key is not in the file, on purpose.
    let mut cmd = h.sync("id5", "ims/good", "other");
    cmd.args(["--max-absent", "100%"]);
    let run = output(cmd).await;
    run.expect_code(3);
    for message in failed_messages(&h.path("other.jsonl")) {
        assert!(
            message.contains("which the state store records for another e-mail"),
            "{message}"
        );
    }
    let export = h.export("other").await;
    assert_eq!(export.lines().count(), 2, "only x@example.com:\n{export}");
    assert!(export.contains("1,x@example.com,5,"), "{export}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_answered_with_another_id_is_refused() {
    let h = Hostile::start().await;
    let known = "1,a@example.com,40,00000000000000000000000000000001,2024-01-01T00:00:00Z\n";
    h.import("state", known).await;
    let before = h.export("state").await;
    let run = output(h.sync("put-other-id", "ims/good", "state")).await;
    run.expect_code(3);
    let rows = report_rows(&h.path("state.jsonl"));
    let a = rows
        .iter()
        .find(|r| r["email"] == "a@example.com")
        .expect("a");
    assert_eq!(
        (&a["action"], &a["status"]),
        (&"update".into(), &"failed".into())
    );
    let message = a["message"].as_str().expect("message");
    assert!(
        message.contains("PUT /V1/customers/40")
            && message.contains("the update of customer 40 was answered with customer 41"),
        "{message}"
    );
    let b = rows
        .iter()
        .find(|r| r["email"] == "b@example.com")
        .expect("b");
    assert_eq!(b["status"], "ok", "a create answered rightly is recorded");
    let after = h.export("state").await;
    // Its id and time as they were; its hash exported as unknown, for the update is in doubt
    // (answered 2xx about another customer: what the shop did to 40 is not known).
    let kept = before.lines().nth(1).expect("a's mapping");
    let doubted = kept.replace("00000000000000000000000000000001", &"0".repeat(32));
    assert!(
        after.contains(&doubted),
        "a's mapping is as it was:\n{after}"
    );
    assert_eq!(after.lines().count(), 3);
}

//! The guarantees under faults: retries, lost answers, expiring tokens, kills, interrupts,
//! locks, bad credentials, secrets.

use std::time::{Duration, Instant};

use custsync_sandbox::Faults;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_errors_and_lost_answers_still_give_each_customer_exactly_once() {
    let env = TestEnv::new(Faults {
        p_429: 0.10,
        retry_after: Duration::ZERO,
        p_503: 0.05,
        p_write_then_500: 0.03,
        p_write_then_drop: 0.03,
        ..Faults::default()
    })
    .await;
    let n = 400;
    let csv = env.write("in.csv", &customers_csv(n, ""));
    let summary_path = env.path("s.json");
    let args = [
        "--rate",
        "0",
        "--concurrency",
        "16",
        "--retries",
        "8",
        "--summary-json",
        summary_path.to_str().unwrap(),
    ];
    env.sync(&csv, &args).await.expect_code(0);
    let stored = env.customers_by_key().await;
    assert_eq!(stored.len(), n, "every row exactly once");
    let s = summary(&summary_path);
    assert_eq!(s["failed"].as_u64(), Some(0));
    assert_eq!(s["created"].as_u64(), Some(n as u64));
    assert!(
        s["retries"].as_u64() > Some(0),
        "faults were injected, so there were retries"
    );
    let statuses: Vec<u16> = env.customer_requests().iter().map(|r| r.status).collect();
    assert!(statuses.contains(&0) && statuses.contains(&500) && statuses.contains(&429));

    let before = env.sandbox.stats().requests.len();
    env.sync(&csv, &args).await.expect_code(0);
    assert_eq!(
        env.sandbox.stats().requests.len(),
        before,
        "converged: the re-run sends nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiring_tokens_are_renewed_without_failing_rows() {
    let env = TestEnv::new(Faults {
        token_ttl: Some(Duration::from_secs(1)),
        latency: Duration::from_millis(10),
        ..Faults::default()
    })
    .await;
    let csv = env.write("in.csv", &customers_csv(90, ""));
    let started = Instant::now();
    env.sync(&csv, &["--rate", "30", "--concurrency", "8"])
        .await
        .expect_code(0);
    assert!(
        started.elapsed() > Duration::from_secs(2),
        "the run outlives several tokens"
    );
    assert_eq!(env.customers_by_key().await.len(), 90);
    let tokens = env.sandbox.stats().tokens_issued;
    assert!(tokens >= 2, "tokens were renewed ({tokens})");
    assert!(
        tokens <= 8,
        "one refresh at a time, not one per worker ({tokens} tokens)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_stop_the_run_at_once_without_customer_requests() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &customers_csv(50, ""));
    let mut cmd = env.sync_cmd(&csv, &[]);
    cmd.env("CUSTSYNC_CLIENT_SECRET", "wrong-secret");
    let started = Instant::now();
    let run = Run::from(
        tokio::task::spawn_blocking(move || cmd.output().expect("run"))
            .await
            .expect("join"),
    );
    run.expect_code(1);
    assert!(started.elapsed() < Duration::from_secs(5));
    run.expect_stderr("authentication failed");
    assert!(
        run.stderr.contains(&env.sandbox.ims_url()),
        "names the endpoint that answered: {}",
        run.stderr
    );
    assert!(
        env.customer_requests().is_empty(),
        "no customer request without a token"
    );
    assert!(!run.stderr.contains("wrong-secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_run_a_rerun_converges_without_duplicates() {
    let env = TestEnv::with_latency(Duration::from_millis(40)).await;
    let n = 200;
    let csv = env.write("in.csv", &customers_csv(n, ""));
    let report = env.path("r.csv");
    let args = [
        "--rate",
        "50",
        "--concurrency",
        "8",
        "--report",
        report.to_str().unwrap(),
    ];
    let mut child = env.spawn(&csv, &args);
    tokio::time::sleep(Duration::from_millis(1800)).await;
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let partial = env.customers_by_key().await.len();
    assert!(
        partial > 0 && partial < n,
        "killed mid-run ({partial} of {n} created)"
    );
    // The report and the history reach the file once a second, not only when a buffer fills.
    let reported = std::fs::read_to_string(&report)
        .expect("report")
        .lines()
        .count()
        .saturating_sub(1);
    let history = env.custsync(&["runs", "show", "1"], false).await;
    let shown = history.stdout.lines().count().saturating_sub(1);
    for (what, rows) in [("report", reported), ("history", shown)] {
        assert!(
            rows >= 16 && rows <= partial,
            "{what}: {rows} rows, {partial} created"
        );
    }
    env.sync(&csv, &["--rate", "0", "--concurrency", "8"])
        .await
        .expect_code(0);
    assert_eq!(
        env.customers_by_key().await.len(),
        n,
        "exactly one customer per row"
    );
    let before = env.sandbox.stats().requests.len();
    env.sync(&csv, &["--rate", "0"]).await.expect_code(0);
    assert_eq!(env.sandbox.stats().requests.len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_drains_writes_state_and_report_and_exits_130() {
    let env = TestEnv::with_latency(Duration::from_millis(50)).await;
    let n = 300;
    let csv = env.write("in.csv", &customers_csv(n, ""));
    let report = env.path("r.csv");
    let summary_path = env.path("s.json");
    let child = env.spawn(
        &csv,
        &[
            "--rate",
            "20",
            "--report",
            report.to_str().unwrap(),
            "--summary-json",
            summary_path.to_str().unwrap(),
        ],
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let started = Instant::now();
    let run = Run::from(
        tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
            .await
            .expect("join"),
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "exits within 10 s"
    );
    run.expect_code(130);
    let rows = read_report(&report);
    let ok = rows.iter().filter(|r| r["status"] == "ok").count();
    assert!(ok > 0 && ok < n, "{ok} ok of {} reported", rows.len());
    // Rows already read but not sent are reported as such, not dropped, and none as failed.
    let not_sent = rows.iter().filter(|r| r["status"] == "not_sent").count();
    assert_eq!(ok + not_sent, rows.len());
    assert!(
        rows.iter()
            .filter(|r| r["status"] == "not_sent")
            .all(|r| r["message"].contains("interrupt")),
        "{rows:?}"
    );
    let s = summary(&summary_path);
    assert_eq!(s["rows"].as_u64(), Some(rows.len() as u64));
    assert_eq!(s["not_sent"].as_u64(), Some(not_sent as u64));
    // What was confirmed is in state: the next run creates only the rest.
    let created_before = env.customers_by_key().await.len();
    env.sync(&csv, &["--rate", "0"]).await.expect_code(0);
    assert_eq!(
        env.count("POST"),
        n,
        "no create repeated: {created_before} before, {n} in all"
    );
    assert_eq!(env.customers_by_key().await.len(), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_on_the_same_state_is_refused() {
    let env = TestEnv::with_latency(Duration::from_millis(50)).await;
    let csv = env.write("in.csv", &customers_csv(100, ""));
    let mut first = env.spawn(&csv, &["--rate", "10"]);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let started = Instant::now();
    let second = env.sync(&csv, &[]).await;
    second.expect_code(1);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        second.stderr.contains("in use by another custsync run") && second.stderr.contains("lock"),
        "{}",
        second.stderr
    );
    first.kill().expect("kill");
    let _ = first.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_refusals_fail_the_row_with_the_api_message_and_only_failed_resends_them() {
    let env = TestEnv::new(Faults::default()).await;
    let mut csv_text = customers_csv(20, "");
    // A password the shop finds too short: a refusal no check before sending can foresee
    // (a group the shop lacks is found invalid before sending).
    csv_text = csv_text.replace(
        "email,firstname,lastname,dob,gender,website_id\n",
        "email,firstname,lastname,dob,gender,website_id,password\n",
    );
    let lines: Vec<String> = csv_text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                l.to_owned()
            } else if i % 5 == 0 {
                format!("{l},short")
            } else {
                format!("{l},Long-enough-1")
            }
        })
        .collect();
    let csv = env.write("in.csv", &(lines.join("\n") + "\n"));
    let report = env.path("r.csv");
    env.sync(&csv, &["--rate", "0", "--report", report.to_str().unwrap()])
        .await
        .expect_code(3);
    let rows = read_report(&report);
    let failed: Vec<_> = rows.iter().filter(|r| r["status"] == "failed").collect();
    assert_eq!(failed.len(), 4);
    assert!(failed.iter().all(|r| r["http_status"] == "400"
        && r["message"].starts_with("The password needs at least 8 characters.")));

    // Fix the file; --only-failed sends just those four.
    let fixed = lines
        .iter()
        .map(|l| l.replace(",short", ",Long-enough-1"))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    let csv = env.write("in.csv", &fixed);
    let posts = env.count("POST");
    env.sync(
        &csv,
        &[
            "--rate",
            "0",
            "--only-failed",
            "--report",
            report.to_str().unwrap(),
        ],
    )
    .await
    .expect_code(0);
    assert_eq!(env.count("POST") - posts, 4);
    assert_eq!(env.customers_by_key().await.len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_errors_stops_sending_and_says_so() {
    let env = TestEnv::new(Faults::default()).await;
    let mut text = String::from("email,firstname,lastname,password\n");
    for i in 0..40 {
        text.push_str(&format!("u{i}@example.com,A,B,short\n"));
    }
    let csv = env.write("in.csv", &text);
    let report = env.path("r.csv");
    let run = env
        .sync(
            &csv,
            &[
                "--rate",
                "0",
                "--concurrency",
                "1",
                "--max-errors",
                "3",
                "--report",
                report.to_str().unwrap(),
            ],
        )
        .await;
    run.expect_code(4);
    run.expect_stderr("--max-errors");
    assert!(
        env.count("POST") <= 4,
        "stopped sending ({} POSTs)",
        env.count("POST")
    );
    let rows = read_report(&report);
    assert_eq!(rows.len(), 40, "every line still reported");
    let count = |status: &str| rows.iter().filter(|r| r["status"] == status).count();
    assert_eq!(count("failed"), 3);
    assert_eq!(count("not_sent"), 37);
    assert!(
        rows.iter()
            .filter(|r| r["status"] == "not_sent")
            .all(|r| r["message"].contains("not sent"))
    );

    // `--only-failed` then sends the three that failed, and says that the 37 it passes over
    // were never created rather than let them pass for up to date; a plain run creates them.
    let csv = env.write("in.csv", &text.replace(",short", ",Long-enough-1"));
    let run = env
        .sync(
            &csv,
            &[
                "--rate",
                "0",
                "--only-failed",
                "--report",
                report.to_str().unwrap(),
            ],
        )
        .await;
    run.expect_code(0);
    run.expect_stderr(
        "37 rows were passed over by --only-failed though their customers were never created",
    );
    let rows = read_report(&report);
    let passed_over = rows
        .iter()
        .filter(|r| r["message"].contains("never created"));
    assert_eq!(passed_over.count(), 37);
    assert_eq!(env.customers_by_key().await.len(), 3);
    let run = env.sync(&csv, &["--rate", "0"]).await;
    run.expect_code(0);
    assert!(!run.stderr.contains("passed over"), "{}", run.stderr);
    assert_eq!(env.customers_by_key().await.len(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_passwords_never_reach_outputs_or_state() {
    let env = TestEnv::new(Faults {
        p_503: 0.2,
        ..Faults::default()
    })
    .await;
    let password = "Pa55word!Unique-9137";
    // A quote left open in an e-mail cell takes the passwords of the lines after it along.
    let (run_on, swallowed) = ("Run-On-Pw-4242", "Swallowed-Pw-5353");
    let csv = env.write(
        "in.csv",
        &format!(
            "email,firstname,lastname,password\na@example.com,Ann,Lee,{password}\n\
             b@example.com,Bo,Ek,short\n\"c@example.com,Cy,Ek,{run_on}\n\
             d@example.com,Di,Ek,{swallowed}\n"
        ),
    );
    let report = env.path("r.jsonl");
    let summary_path = env.path("s.json");
    let review = env.path("review.html");
    let run = env
        .sync(
            &csv,
            &[
                "-vv",
                "--rate",
                "0",
                "--report",
                report.to_str().unwrap(),
                "--summary-json",
                summary_path.to_str().unwrap(),
                "--review",
                review.to_str().unwrap(),
            ],
        )
        .await;
    run.expect_code(3);
    let history = env.custsync(&["runs", "show", "1"], false).await;
    history.expect_code(0);
    assert!(
        run.stderr.contains("request"),
        "-vv logs requests: {}",
        run.stderr
    );
    let mut haystacks = vec![run.stdout.clone(), run.stderr.clone(), history.stdout];
    for entry in walk(env.dir.path()) {
        if entry.file_name().is_some_and(|n| n != "in.csv") {
            haystacks
                .push(String::from_utf8_lossy(&std::fs::read(&entry).expect("read")).into_owned());
        }
    }
    for h in &haystacks {
        assert!(!h.contains(SECRET), "client secret leaked");
        for pw in [password, run_on, swallowed] {
            assert!(!h.contains(pw), "password {pw} leaked");
        }
        assert!(!h.contains("eyJ"), "a token leaked");
    }
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&report)
        .expect("report")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let short = rows
        .iter()
        .find(|r| r["email"] == "b@example.com")
        .expect("row");
    assert_eq!(short["status"], "failed");
    assert!(
        short["message"]
            .as_str()
            .expect("message")
            .contains("at least 8 characters"),
        "{short}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_ready_token_is_fatal_after_one_request() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &customers_csv(30, ""));
    let mut cmd = env.sync_cmd(&csv, &["--concurrency", "1"]);
    cmd.env_remove("CUSTSYNC_CLIENT_SECRET")
        .env("CUSTSYNC_ACCESS_TOKEN", "not-a-valid-token");
    let run = Run::from(
        tokio::task::spawn_blocking(move || cmd.output().expect("run"))
            .await
            .expect("join"),
    );
    run.expect_code(1);
    // The first request reads the shop's websites, before any row is sent.
    assert!(
        run.stderr.contains("authentication failed")
            && run.stderr.contains("Magento_Backend::stores"),
        "{}",
        run.stderr
    );
    assert_eq!(
        env.customer_requests().len(),
        1,
        "stops at the first refusal"
    );
    assert!(!run.stderr.contains("not-a-valid-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_throttling_slows_the_run_but_fails_no_row() {
    let env = TestEnv::new(Faults {
        p_429: 0.5,
        retry_after: Duration::ZERO,
        ..Faults::default()
    })
    .await;
    let csv = env.write("in.csv", &customers_csv(60, ""));
    let summary_path = env.path("s.json");
    env.sync(
        &csv,
        &[
            "--rate",
            "0",
            "--retries",
            "1",
            "--summary-json",
            summary_path.to_str().unwrap(),
        ],
    )
    .await
    .expect_code(0);
    assert_eq!(env.customers_by_key().await.len(), 60);
    assert!(summary(&summary_path)["retries"].as_u64() > Some(20));
}

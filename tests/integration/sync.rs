//! The main job: create, re-run, change, dry run, rate limit, embedded sandbox.

use std::fs;
use std::time::Duration;

use custsync_sandbox::Faults;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_every_row_with_its_fields_then_a_rerun_sends_nothing() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &customers_csv(120, ""));
    let report = env.path("report.csv");
    let summary_path = env.path("summary.json");
    let args = [
        "--rate",
        "0",
        "--concurrency",
        "16",
        "--report",
        report.to_str().unwrap(),
        "--summary-json",
        summary_path.to_str().unwrap(),
    ];
    env.sync(&csv, &args).await.expect_code(0);

    let stored = env.customers_by_key().await;
    assert_eq!(stored.len(), 120);
    let c = &stored[&(1, "user7@example.com".to_owned())];
    assert_eq!(c["firstname"], "Fïrst7");
    assert_eq!(c["lastname"], "Last7");
    assert_eq!(c["dob"], "1980-01-08");
    assert_eq!(c["gender"], 2);
    let rows = read_report(&report);
    assert_eq!(rows.len(), 120);
    assert!(
        rows.iter()
            .all(|r| r["action"] == "create" && r["status"] == "ok")
    );
    let line9 = rows.iter().find(|r| r["line"] == "9").expect("line 9");
    assert_eq!(line9["email"], "user7@example.com");
    assert_eq!(line9["customer_id"], c["id"].to_string());
    let s = summary(&summary_path);
    assert_eq!(
        (
            s["rows"].as_u64(),
            s["created"].as_u64(),
            s["requests"].as_u64()
        ),
        (Some(120), Some(120), Some(120 + FIRST_RUN_READS as u64))
    );

    let before = env.sandbox.stats();
    let run = env.sync(&csv, &args).await;
    run.expect_code(0);
    let after = env.sandbox.stats();
    assert_eq!(
        after.requests.len(),
        before.requests.len(),
        "a re-run sends no request at all, not even for a token"
    );
    let s = summary(&summary_path);
    assert_eq!(
        (s["unchanged"].as_u64(), s["requests"].as_u64()),
        (Some(120), Some(0))
    );
    assert!(
        read_report(&report)
            .iter()
            .all(|r| r["action"] == "unchanged" && r["status"] == "ok")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_rows_are_put_and_new_rows_posted_exactly_once() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &customers_csv(60, ""));
    env.sync(&csv, &["--rate", "0"]).await.expect_code(0);
    let posts = env.count("POST");

    // Change 10 rows' lastname and add 5 rows.
    let mut changed = String::from("email,firstname,lastname,dob,gender,website_id\n");
    for (i, line) in customers_csv(65, "").lines().skip(1).enumerate() {
        let line = if i % 6 == 0 {
            line.replacen(&format!("Last{i},"), &format!("Last{i}-Updated,"), 1)
        } else {
            line.to_owned()
        };
        changed.push_str(&line);
        changed.push('\n');
    }
    let csv2 = env.write("in2.csv", &changed);
    let report = env.path("r.csv");
    env.sync(
        &csv2,
        &["--rate", "0", "--report", report.to_str().unwrap()],
    )
    .await
    .expect_code(0);
    assert_eq!(env.count("PUT"), 10);
    assert_eq!(env.count("POST") - posts, 5);
    let stored = env.customers_by_key().await;
    assert_eq!(stored.len(), 65);
    assert_eq!(
        stored[&(1, "user6@example.com".to_owned())]["lastname"],
        "Last6-Updated"
    );
    let rows = read_report(&report);
    let updates: Vec<_> = rows.iter().filter(|r| r["action"] == "update").collect();
    assert_eq!(updates.len(), 10);
    assert!(
        updates
            .iter()
            .all(|r| r["status"] == "ok" && !r["customer_id"].is_empty())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_sends_and_records_nothing_and_the_next_run_does_the_work() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &customers_csv(30, ""));
    let report = env.path("plan.jsonl");
    let summary_path = env.path("s.json");
    let run = env
        .sync(
            &csv,
            &[
                "--dry-run",
                "--report",
                report.to_str().unwrap(),
                "--summary-json",
                summary_path.to_str().unwrap(),
            ],
        )
        .await;
    run.expect_code(0);
    run.expect_stderr("would create 30");
    let requests = env.customer_requests();
    assert!(
        requests.iter().all(|r| r.method == "GET"),
        "a dry run only reads: {requests:?}"
    );
    assert_eq!(
        requests.len(),
        FIRST_RUN_READS,
        "the shop's model and its count"
    );
    let lines: Vec<serde_json::Value> = fs::read_to_string(&report)
        .expect("report")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 30);
    assert!(
        lines
            .iter()
            .all(|l| l["action"] == "create" && l["status"] == "planned")
    );
    let s = summary(&summary_path);
    assert_eq!(
        (
            s["created"].as_u64(),
            s["requests"].as_u64(),
            s["dry_run"].as_bool()
        ),
        (Some(30), Some(FIRST_RUN_READS as u64), Some(true))
    );

    env.sync(&csv, &["--rate", "0"]).await.expect_code(0);
    assert_eq!(
        env.count("POST"),
        30,
        "the dry run recorded nothing, so the real run creates all"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_holds_in_every_second_and_is_reached() {
    let env = TestEnv::with_latency(Duration::from_millis(20)).await;
    let rate = 25;
    let csv = env.write("in.csv", &customers_csv(100, ""));
    env.sync(&csv, &["--rate", &rate.to_string(), "--concurrency", "8"])
        .await
        .expect_code(0);
    let times: Vec<_> = env.customer_requests().iter().map(|r| r.at).collect();
    assert_eq!(times.len(), 100 + FIRST_RUN_READS);
    // Any one-second window: at most the rate plus the small burst (a twentieth of it, at least 1).
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..]
            .iter()
            .take_while(|u| u.duration_since(*t) < Duration::from_secs(1))
            .count();
        assert!(
            in_window <= rate + (rate / 20).max(1),
            "{in_window} requests within one second"
        );
    }
    let span = times[times.len() - 1]
        .duration_since(times[0])
        .as_secs_f64();
    let achieved = (times.len() - 1) as f64 / span;
    assert!(
        achieved >= 0.85 * rate as f64,
        "achieved {achieved:.1}/s of {rate}/s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_sandbox_is_the_default_target_and_keeps_its_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/sample-customers.csv");
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_custsync"))
            .env_clear()
            .current_dir(dir.path())
            .args(["sync", sample, "--report", "report.csv"])
            .args(extra)
            .output()
            .expect("run");
        Run::from(out)
    };
    let first = run(&[]);
    first.expect_code(0);
    assert!(
        first
            .stderr
            .lines()
            .next()
            .unwrap_or_default()
            .contains("embedded Commerce sandbox"),
        "{}",
        first.stderr
    );
    let rows = read_report(&dir.path().join("report.csv"));
    let data_lines = fs::read_to_string(sample).expect("sample").lines().count() - 1;
    assert_eq!(rows.len(), data_lines, "one report line per data line");
    let creates = rows
        .iter()
        .filter(|r| r["action"] == "create" && r["status"] == "ok")
        .count();
    assert_eq!(
        creates,
        rows.len(),
        "the sample is all valid: every row created"
    );
    assert!(
        dir.path().join(".custsync/sandbox").is_dir(),
        "sandbox data kept under the state directory"
    );

    let second = run(&[]);
    second.expect_code(0);
    let rows = read_report(&dir.path().join("report.csv"));
    assert_eq!(
        rows.iter().filter(|r| r["action"] == "unchanged").count(),
        creates,
        "second run: all unchanged"
    );

    // A run that sends nothing never reads the sandbox's customers: with a journal that could
    // not be replayed, the re-run still succeeds (a million customers would take seconds and
    // gigabytes to load for nothing).
    let journal = dir.path().join(".custsync/sandbox/customers.jsonl");
    let text = fs::read_to_string(&journal).expect("journal");
    fs::write(&journal, format!("garbage\n{text}")).expect("damage the journal");
    let third = run(&[]);
    third.expect_code(0);
    assert!(!third.stderr.contains("corrupt"), "{}", third.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_carry_the_gateway_headers_and_ids() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &customers_csv(3, ""));
    env.sync(&csv, &["--store", "default"]).await.expect_code(0);
    let csv = env.write("in.csv", &customers_csv(3, "-b"));
    env.sync(&csv, &["--store", "default"]).await.expect_code(0);
    let all = env.customer_requests();
    assert_eq!(
        all.len(),
        6 + FIRST_RUN_READS,
        "the second run has the shop's model cached"
    );
    // The shop's countries are read in each website's scope; everything else in --store's.
    let requests: Vec<_> = all
        .into_iter()
        .filter(|r| !r.path.contains("/V1/directory/"))
        .collect();
    for r in &requests {
        assert_eq!(
            r.store.as_deref(),
            Some("default"),
            "Store header on {} {}",
            r.method,
            r.path
        );
        assert_eq!(
            r.api_key.as_deref(),
            Some("sandbox"),
            "x-api-key is the IMS client id"
        );
    }
    let stored = env.customers_by_key().await;
    for r in requests.iter().filter(|r| r.method == "PUT") {
        let id: u64 = r
            .path
            .rsplit('/')
            .next()
            .and_then(|id| id.parse().ok())
            .expect("id in path");
        assert!(stored.values().any(|c| c["id"] == id && c["lastname"].as_str().is_some_and(|l| l.ends_with("-b"))));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_answers_time_out_and_are_retried_then_reported() {
    let env = TestEnv::with_latency(Duration::from_millis(1500)).await;
    let csv = env.write("in.csv", &customers_csv(2, ""));
    let report = env.path("r.csv");
    let started = std::time::Instant::now();
    env.sync(
        &csv,
        &[
            "--timeout",
            "1",
            "--retries",
            "1",
            "--rate",
            "0",
            "--report",
            report.to_str().unwrap(),
        ],
    )
    .await
    .expect_code(3);
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(env.count("POST"), 4, "each row tried twice");
    let rows = read_report(&report);
    assert!(
        rows.iter().all(|r| r["status"] == "failed"
            && r["message"].contains("timed out")
            && r["message"].contains("gave up after 1 retries")),
        "{rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standalone_sandbox_announces_itself_and_serves_a_sync() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_custsync"))
        .env_clear()
        .current_dir(dir.path())
        .args(["sandbox", "--listen", "127.0.0.1:0", "--ephemeral"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start sandbox");
    let mut lines = BufReader::new(server.stdout.take().expect("stdout")).lines();
    let endpoint = lines.next().expect("line 1").expect("utf8");
    let ims = lines.next().expect("line 2").expect("utf8");
    let endpoint = endpoint
        .strip_prefix("endpoint: ")
        .expect("endpoint line")
        .to_owned();
    let ims = ims
        .strip_prefix("ims-url: ")
        .expect("ims-url line")
        .to_owned();
    assert!(
        endpoint.starts_with("http://127.0.0.1:") && endpoint.ends_with("/sandbox"),
        "{endpoint}"
    );
    assert!(ims.ends_with("/ims/token/v3"), "{ims}");

    let csv = dir.path().join("in.csv");
    std::fs::write(&csv, customers_csv(5, "")).expect("csv");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_custsync"))
        .env_clear()
        .env("CUSTSYNC_CLIENT_SECRET", "sandbox")
        .current_dir(dir.path())
        .args([
            "sync",
            csv.to_str().unwrap(),
            "--endpoint",
            &endpoint,
            "--ims-url",
            &ims,
            "--client-id",
            "sandbox",
        ])
        .output()
        .expect("sync");
    let run = Run::from(out);
    run.expect_code(0);
    assert!(
        run.stderr.starts_with(&format!("target: {endpoint}")),
        "{}",
        run.stderr
    );
    run.expect_stderr("5 created");

    let pid = libc::pid_t::try_from(server.id()).expect("pid");
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = server.wait().expect("wait");
    assert!(
        status.success(),
        "the sandbox stops cleanly on SIGTERM: {status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_is_an_interrupt_too() {
    let env = TestEnv::with_latency(Duration::from_millis(50)).await;
    let csv = env.write("in.csv", &customers_csv(200, ""));
    let child = env.spawn(&csv, &["--rate", "20"]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let run = Run::from(
        tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
            .await
            .expect("join"),
    );
    run.expect_code(130);
    run.expect_stderr("interrupted");
    env.sync(&csv, &["--rate", "0"]).await.expect_code(0);
    assert_eq!(env.customers_by_key().await.len(), 200);
    assert_eq!(env.count("POST"), 200, "nothing created twice");
}

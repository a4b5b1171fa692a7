//! Guards for unattended runs: a truncated or empty feed (`--max-absent`), a shop that stops
//! answering (`--outage-after`), a base path that is no REST API, and the statuses and exit
//! codes they end with.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use custsync_sandbox::Faults;

use crate::support::*;

/// `custsync sync <csv>` against `endpoint` with a ready token (no IMS), in `dir`, with the
/// default retry backoff (unlike [`TestEnv::sync_cmd`]): a row tries for seconds before its
/// retries run out, as in production.
fn sync_to(dir: &Path, endpoint: &str, csv: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_custsync"));
    cmd.env_clear()
        .current_dir(dir)
        .env("CUSTSYNC_ACCESS_TOKEN", "a-ready-token-for-the-tests")
        .arg("sync")
        .arg(csv)
        .arg("--state")
        .arg(dir.join("state"))
        .args(["--endpoint", endpoint])
        .args(args)
        .stdin(Stdio::null());
    cmd
}

fn last_line(text: &str) -> &str {
    text.lines().last().unwrap_or_default()
}

fn statuses(rows: &[std::collections::HashMap<String, String>], status: &str) -> usize {
    rows.iter().filter(|r| r["status"] == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_or_empty_feed_sends_nothing_and_exits_1() {
    let env = TestEnv::new(Faults::default()).await;
    let full = env.write("full.csv", &customers_csv(100, ""));
    env.sync(&full, &["--rate", "0"]).await.expect_code(0);
    let requests = env.customer_requests().len();

    // The first 40 rows, 5 of them changed: 60 of the 100 keys are absent.
    let mut text = customers_csv(40, "");
    for i in 0..5 {
        text = text.replace(&format!(",Last{i},"), &format!(",Changed{i},"));
    }
    let truncated = env.write("truncated.csv", &text);
    let report = env.path("r.csv");
    let run = env
        .sync(&truncated, &["--report", report.to_str().unwrap()])
        .await;
    run.expect_code(1);
    assert_eq!(env.customer_requests().len(), requests, "nothing was sent");
    let last = last_line(&run.stderr);
    assert!(
        last.contains("60 of the 100 customers") && last.contains("--max-absent 10%"),
        "{}",
        run.stderr
    );
    let rows = read_report(&report);
    assert_eq!(rows.len(), 40, "every line is still reported");
    assert_eq!(
        (statuses(&rows, "not_sent"), statuses(&rows, "ok")),
        (5, 35)
    );

    // A dry run says the same, after writing its report.
    let plan = env.path("plan.csv");
    let dry = env
        .sync(
            &truncated,
            &["--dry-run", "--report", plan.to_str().unwrap()],
        )
        .await;
    dry.expect_code(1);
    assert!(
        last_line(&dry.stderr).contains("a real run would send nothing"),
        "{}",
        dry.stderr
    );
    assert_eq!(statuses(&read_report(&plan), "planned"), 40);

    // An empty export too.
    let empty = env.write("empty.csv", "email,firstname,lastname\n");
    env.sync(&empty, &[]).await.expect_code(1);
    assert_eq!(env.customer_requests().len(), requests);

    // Within a limit given as a count, or with no limit, it runs; the final line says how
    // many customers are absent.
    env.sync(&truncated, &["--dry-run", "--max-absent", "60"])
        .await
        .expect_code(0);
    let run = env
        .sync(&truncated, &["--rate", "0", "--max-absent", "100%"])
        .await;
    run.expect_code(0);
    assert_eq!(env.count("PUT"), 5);
    assert!(
        last_line(&run.stderr).contains("60 customers of the state store are absent"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_stops_the_run_with_exit_4_and_every_row_not_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}/shop", closed.local_addr().expect("addr"));
    drop(closed);
    let csv = dir.path().join("in.csv");
    std::fs::write(&csv, customers_csv(200, "")).expect("csv");
    let report = dir.path().join("r.csv");
    let summary_path = dir.path().join("s.json");
    let args = [
        "--outage-after",
        "2",
        "--report",
        report.to_str().unwrap(),
        "--summary-json",
        summary_path.to_str().unwrap(),
    ];
    let started = Instant::now();
    let run = run_command(sync_to(dir.path(), &endpoint, &csv, &args)).await;
    run.expect_code(4);
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    run.expect_stderr("--outage-after");
    let rows = read_report(&report);
    assert_eq!((rows.len(), statuses(&rows, "not_sent")), (200, 200));
    let s = summary(&summary_path);
    assert_eq!(
        (s["not_sent"].as_u64(), s["failed"].as_u64()),
        (Some(200), Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ims_out_of_reach_is_an_outage_not_a_refusal() {
    let env = TestEnv::new(Faults::default()).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let ims = format!("http://{}/ims/token/v3", closed.local_addr().expect("addr"));
    drop(closed);
    let csv = env.write("in.csv", &customers_csv(20, ""));
    let report = env.path("r.csv");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_custsync"));
    cmd.env_clear()
        .env("CUSTSYNC_CLIENT_SECRET", SECRET)
        .arg("sync")
        .arg(&csv)
        .arg("--state")
        .arg(env.state())
        .args(["--endpoint", &env.sandbox.endpoint(), "--ims-url", &ims])
        .args(["--client-id", "sandbox", "--outage-after", "2"])
        .args(["--report", report.to_str().unwrap()])
        .stdin(Stdio::null());
    let run = run_command(cmd).await;
    run.expect_code(4);
    run.expect_stderr("(or IMS, for a token) has answered nothing");
    assert!(
        !run.stderr.contains("authentication failed"),
        "{}",
        run.stderr
    );
    let rows = read_report(&report);
    assert_eq!((rows.len(), statuses(&rows, "not_sent")), (20, 20));
    let stats = env.custsync(&["state", "stats"], false).await;
    assert!(stats.stdout.contains("failed:     0"), "{}", stats.stdout);
    assert!(env.customer_requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shop_that_stops_answering_mid_run_stops_it_within_the_outage_time() {
    let env = TestEnv::with_latency(Duration::from_millis(30)).await;
    let n = 300;
    let csv = env.write("in.csv", &customers_csv(n, ""));
    let report = env.path("r.csv");
    let summary_path = env.path("s.json");
    let mut cmd = sync_to(env.dir.path(), &env.sandbox.endpoint(), &csv, &[]);
    cmd.env_remove("CUSTSYNC_ACCESS_TOKEN")
        .env("CUSTSYNC_CLIENT_SECRET", SECRET)
        .args([
            "--ims-url",
            &env.sandbox.ims_url(),
            "--client-id",
            "sandbox",
        ])
        .args(["--rate", "0", "--concurrency", "4", "--outage-after", "2"])
        .args(["--report", report.to_str().unwrap()])
        .args(["--summary-json", summary_path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn");
    while env.count("POST") < 20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let TestEnv { dir, sandbox } = env;
    sandbox.shutdown().await;
    let stopped = Instant::now();
    let run = Run::from(
        tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
            .await
            .expect("join"),
    );
    run.expect_code(4);
    assert!(
        stopped.elapsed() < Duration::from_secs(2 + 8),
        "exit 4 within --outage-after and a few seconds: {:?}",
        stopped.elapsed()
    );
    let rows = read_report(&report);
    assert_eq!(rows.len(), n);
    assert_eq!(
        statuses(&rows, "failed"),
        0,
        "nothing failed for the outage"
    );
    let ok = statuses(&rows, "ok");
    assert!(ok >= 20 && ok < n, "{ok} ok");
    assert_eq!(ok + statuses(&rows, "not_sent"), n);
    let s = summary(&summary_path);
    assert_eq!(s["created"].as_u64(), Some(ok as u64));
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_cut_short_by_an_outage_are_not_remembered_as_failed() {
    // Every customer request answered 503: the outage verdict comes before the retries run
    // out (20 of them take longer than a second however busy the machine; 8 did not always).
    let env = TestEnv::new(Faults {
        p_503: 1.0,
        ..Faults::default()
    })
    .await;
    let csv = env.write("in.csv", &customers_csv(60, ""));
    let report = env.path("r.csv");
    let args = [
        "--rate",
        "0",
        "--retries",
        "20",
        "--outage-after",
        "1",
        "--report",
        report.to_str().unwrap(),
    ];
    env.sync(&csv, &args).await.expect_code(4);
    let rows = read_report(&report);
    assert_eq!((rows.len(), statuses(&rows, "not_sent")), (60, 60));
    let stats = env.custsync(&["state", "stats"], false).await;
    assert!(stats.stdout.contains("failed:     0"), "{}", stats.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shop_that_hangs_stops_the_run_in_about_the_outage_time() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("in.csv");
    std::fs::write(&csv, customers_csv(20, "")).expect("csv");
    let report = dir.path().join("r.csv");
    let args = ["--outage-after", "2", "--report", report.to_str().unwrap()];
    let started = Instant::now();
    let run = run_command(sync_to(
        dir.path(),
        &format!("http://{addr}/shop"),
        &csv,
        &args,
    ))
    .await;
    run.expect_code(4);
    // --outage-after, then the grace a request on the wire gets; far below --timeout's 30 s.
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    let rows = read_report(&report);
    assert_eq!((rows.len(), statuses(&rows, "not_sent")), (20, 20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_path_that_is_no_rest_api_is_a_configuration_error() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &customers_csv(50, ""));
    let base = env.sandbox.endpoint().replace("/sandbox", "/nowhere");
    let report = env.path("r.csv");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_custsync"));
    cmd.env_clear()
        .current_dir(env.dir.path())
        .env("CUSTSYNC_CLIENT_SECRET", SECRET)
        .arg("sync")
        .arg(&csv)
        .arg("--state")
        .arg(env.state())
        .args(["--endpoint", &base, "--ims-url", &env.sandbox.ims_url()])
        .args([
            "--client-id",
            "sandbox",
            "--concurrency",
            "1",
            "--rate",
            "0",
        ])
        .args(["--report", report.to_str().unwrap()]);
    let run = run_command(cmd).await;
    run.expect_code(1);
    assert!(
        last_line(&run.stderr).contains(&format!("{base} is not the REST base")),
        "{}",
        run.stderr
    );
    assert_eq!(
        env.customer_requests().len(),
        0,
        "nothing reached a customer route"
    );
    let sent = env
        .sandbox
        .stats()
        .requests
        .iter()
        .filter(|r| r.path.starts_with("/nowhere"))
        .count();
    // The shop's model is read first, from routes every Commerce has: one answer settles it.
    assert!(
        (1..=3).contains(&sent),
        "stopped after the first answers ({sent})"
    );
    let rows = read_report(&report);
    assert_eq!(statuses(&rows, "ok"), 0);
    assert!(statuses(&rows, "failed") <= 3, "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_rows_have_their_own_status_and_count() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write(
        "in.csv",
        "email,firstname,lastname\nok@example.com,A,B\nnot-an-email,A,B\n",
    );
    let report = env.path("r.csv");
    let summary_path = env.path("s.json");
    let args = [
        "--report",
        report.to_str().unwrap(),
        "--summary-json",
        summary_path.to_str().unwrap(),
    ];
    env.sync(&csv, &args).await.expect_code(3);
    let rows = read_report(&report);
    let invalid = rows.iter().find(|r| r["action"] == "invalid").expect("row");
    assert_eq!(invalid["status"], "invalid");
    let s = summary(&summary_path);
    assert_eq!(
        (
            s["rows"].as_u64(),
            s["invalid"].as_u64(),
            s["failed"].as_u64(),
            s["not_sent"].as_u64()
        ),
        (Some(2), Some(1), Some(0), Some(0))
    );
}

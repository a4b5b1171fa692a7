//! Fit for cron and log collectors: silent on success under `--quiet`, no escape codes off a
//! terminal, timestamped progress lines, JSON logs, a config file instead of flags, a webhook
//! at the end, and the shell completions and man page.

use std::process::{Command, Stdio};
use std::time::Duration;

use custsync_sandbox::Faults;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_prints_nothing_on_success_and_the_final_line_otherwise() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &customers_csv(5, ""));
    let run = env.sync(&csv, &["--quiet"]).await;
    run.expect_code(0);
    assert_eq!((run.stdout.as_str(), run.stderr.as_str()), ("", ""));
    let dry = env.sync(&csv, &["--quiet", "--dry-run"]).await;
    dry.expect_code(0);
    assert_eq!((dry.stdout.as_str(), dry.stderr.as_str()), ("", ""));

    let bad = env.write("bad.csv", "email,firstname,lastname\nnot-an-email,A,B\n");
    let run = env.sync(&bad, &["--quiet", "--max-absent", "100%"]).await;
    run.expect_code(3);
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr.contains("1 invalid") && !run.stderr.contains("target:"),
        "{}",
        run.stderr
    );
    // A dry run's table is for its reader: under --quiet, only the final line.
    let dry = env
        .sync(&bad, &["--quiet", "--dry-run", "--max-absent", "100%"])
        .await;
    dry.expect_code(3);
    let lines: Vec<&str> = dry.stderr.lines().collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("dry run: 1 "),
        "{}",
        dry.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirected_output_has_no_escape_codes_and_timestamped_progress() {
    let env = TestEnv::with_latency(Duration::from_millis(40)).await;
    let csv = env.write("in.csv", &customers_csv(60, ""));
    let run = env
        .sync(
            &csv,
            &[
                "-vv",
                "--rate",
                "0",
                "--concurrency",
                "1",
                "--progress-secs",
                "1",
            ],
        )
        .await;
    run.expect_code(0);
    assert!(
        !run.stderr.contains('\x1b'),
        "an escape byte in {}",
        run.stderr
    );
    let progress: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains(" progress: "))
        .collect();
    assert!(!progress.is_empty(), "{}", run.stderr);
    for line in progress {
        let (stamp, rest) = line.split_once(' ').expect("a timestamp first");
        assert!(
            chrono::DateTime::parse_from_rfc3339(stamp).is_ok(),
            "not RFC 3339: {line}"
        );
        assert!(
            rest.contains("rows finished") && rest.contains("rows/s") && rest.contains("left"),
            "{line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_a_line() {
    let env = TestEnv::with_latency(Duration::from_millis(40)).await;
    // A column the shop does not define: the note that names it is a JSON line too.
    let text = customers_csv(60, "")
        .replacen('\n', ",custom:no_such_attribute\n", 1)
        .replace(",1\n", ",1,x\n");
    let csv = env.write("in.csv", &text);
    let args = [
        "-v",
        "--log-format",
        "json",
        "--rate",
        "0",
        "--concurrency",
        "1",
        "--progress-secs",
        "1",
    ];
    let run = env.sync(&csv, &args).await;
    run.expect_code(0);
    let lines: Vec<Value> = run
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for l in &lines {
        assert!(
            l["timestamp"].is_string() && l["level"].is_string() && l["message"].is_string(),
            "{l}"
        );
    }
    let has = |message: &str| {
        lines.iter().any(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(message))
        })
    };
    assert!(
        has("target:")
            && has("progress:")
            && has("response")
            && has("note: the shop defines no custom customer attribute"),
        "{}",
        run.stderr
    );
    let last = lines.last().expect("a final line");
    assert_eq!(last["summary"]["created"].as_u64(), Some(60), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_drives_a_run_and_refuses_secrets() {
    let env = TestEnv::new(Faults::default()).await;
    env.write("in.csv", &customers_csv(4, ""));
    env.write(
        "custsync.toml",
        &format!(
            "endpoint = \"{}\"\nims_url = \"{}\"\nclient_id = \"sandbox\"\nstate = \"st\"\n\
             rate = 0\nreport = \"out/report.csv\"\nmax_absent = \"100%\"\n",
            env.sandbox.endpoint(),
            env.sandbox.ims_url()
        ),
    );
    std::fs::create_dir(env.path("out")).expect("mkdir");
    let custsync = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_custsync"));
        cmd.env_clear()
            .current_dir(env.dir.path())
            .env("CUSTSYNC_CLIENT_SECRET", SECRET)
            .args(args)
            .stdin(Stdio::null());
        cmd
    };
    let run = run_command(custsync(&["sync", "in.csv"])).await;
    run.expect_code(0);
    assert_eq!(read_report(&env.path("out/report.csv")).len(), 4);
    assert!(env.path("st").is_dir(), "the state directory of the file");
    assert_eq!(env.count("POST"), 4);

    // The environment beats the file: the run goes to its endpoint (which the store, bound to
    // the file's, refuses before any request).
    let mut cmd = custsync(&["sync", "in.csv"]);
    cmd.env("CUSTSYNC_ENDPOINT", "http://127.0.0.1:1/unreachable");
    let run = run_command(cmd).await;
    run.expect_code(1);
    run.expect_stderr("this run goes to http://127.0.0.1:1/unreachable");

    // Another file, named on the command line: its relative paths are its own.
    std::fs::create_dir(env.path("etc")).expect("mkdir");
    env.write(
        "etc/nightly.toml",
        &format!(
            "endpoint = \"{}\"\nims_url = \"{}\"\nclient_id = \"sandbox\"\nstate = \"../st\"\n\
             summary_json = \"summary.json\"\nquiet = true\n",
            env.sandbox.endpoint(),
            env.sandbox.ims_url()
        ),
    );
    let run = run_command(custsync(&[
        "sync",
        "in.csv",
        "--config",
        "etc/nightly.toml",
    ]))
    .await;
    run.expect_code(0);
    assert_eq!(run.stderr, "", "quiet = true");
    assert_eq!(
        summary(&env.path("etc/summary.json"))["unchanged"].as_u64(),
        Some(4)
    );

    let requests = env.customer_requests().len();
    env.write(
        "custsync.toml",
        "client_id = \"sandbox\"\nclient_secret = \"Never-Printed-Secret-1\"\n",
    );
    let run = run_command(custsync(&["sync", "in.csv"])).await;
    run.expect_code(1);
    run.expect_stderr("`client_secret`, a secret");
    assert!(!run.stderr.contains("Never-Printed-Secret-1"));
    assert_eq!(env.customer_requests().len(), requests);

    env.write("custsync.toml", "rate = 1\nspeed = 2\n");
    let run = run_command(custsync(&["sync", "in.csv"])).await;
    run.expect_code(1);
    assert!(
        run.stderr.contains("unknown keys: speed; valid keys:")
            && run.stderr.contains("max_absent"),
        "{}",
        run.stderr
    );
}

/// A webhook that takes one request and answers 204: the request line and body.
async fn webhook() -> (String, tokio::task::JoinHandle<(String, Vec<u8>)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/hooks/custsync-secret-path",
        listener.local_addr().expect("addr")
    );
    let task = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let (head, body_start) = loop {
            let n = socket.read(&mut buf).await.expect("read");
            assert!(n > 0, "the request ended early");
            seen.extend_from_slice(&buf[..n]);
            if let Some(at) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                break (String::from_utf8_lossy(&seen[..at]).into_owned(), at + 4);
            }
        };
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .expect("content-length");
        let mut body = seen[body_start..].to_vec();
        while body.len() < length {
            let n = socket.read(&mut buf).await.expect("read");
            body.extend_from_slice(&buf[..n]);
        }
        socket
            .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
            .await
            .expect("answer");
        (head.lines().next().unwrap_or_default().to_owned(), body)
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_posts_the_summary_and_a_failure_is_only_a_warning() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &customers_csv(3, ""));
    let (url, received) = webhook().await;
    env.sync(&csv, &["--dry-run", "--notify", &url])
        .await
        .expect_code(0);
    let (request, body) = received.await.expect("the webhook was called");
    assert!(
        request.starts_with("POST /hooks/custsync-secret-path "),
        "{request}"
    );
    let posted: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(
        (posted["created"].as_u64(), posted["dry_run"].as_bool()),
        (Some(3), Some(true))
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://{}/hooks/custsync-secret-path",
        closed.local_addr().expect("addr")
    );
    drop(closed);
    let run = env.sync(&csv, &["--notify", &url]).await;
    run.expect_code(0);
    run.expect_stderr("warning: the notification to http://127.0.0.1:");
    assert!(
        !run.stderr.contains("secret-path"),
        "the webhook's path is not shown: {}",
        run.stderr
    );

    // --quiet drops the warning of a run that exits 0, not of one that goes to cron's mail.
    let run = env.sync(&csv, &["--quiet", "--notify", &url]).await;
    run.expect_code(0);
    assert_eq!(run.stderr, "");
    let bad = env.write("bad.csv", "email,firstname,lastname\nnot-an-email,A,B\n");
    let args = ["--quiet", "--max-absent", "100%", "--notify", &url];
    let run = env.sync(&bad, &args).await;
    run.expect_code(3);
    run.expect_stderr("warning: the notification to");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_and_the_man_page_come_from_the_command_line_definition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let custsync = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_custsync"));
        cmd.env_clear().current_dir(dir.path()).args(args);
        cmd
    };
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let run = run_command(custsync(&["completions", shell])).await;
        run.expect_code(0);
        assert!(
            run.stdout.contains("custsync") && run.stdout.contains("max-absent"),
            "{shell}: {}",
            run.stdout
        );
    }
    run_command(custsync(&["completions", "tcsh"]))
        .await
        .expect_code(2);
    let man = run_command(custsync(&["man"])).await;
    man.expect_code(0);
    assert!(man.stdout.contains(".TH custsync"), "{}", man.stdout);
    assert!(man.stdout.contains("completions"));

    // `custsync man | head -1`: the reader goes away early; that is not an error.
    for args in [&["man"][..], &["completions", "bash"]] {
        let mut child = custsync(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "{args:?}: {:?}", out.status);
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

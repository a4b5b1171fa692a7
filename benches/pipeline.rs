//! `cargo bench`: the whole tool measured on data it generates, printed as a table for the
//! README's "Performance" section.
//!
//! Scenarios (issue 5): planning a 1M-row dry run against a 1M-key state store; re-running the
//! unchanged file; state-store writes and size; sending against the sandbox with injected
//! latency (throughput vs. the concurrency/latency ideal, connections opened, a rate cap); and
//! the naive one-request-after-another loop of the tutorial, for the speed-up.
//!
//! `BENCH_ROWS` (default 1,000,000) and `BENCH_SEND_ROWS` (default 10,000) scale it down.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use custsync::input::{Mapping, Reader, Record};
use custsync::state::{Entry, Op, Store};
use custsync_sandbox::{self as sandbox, Faults, SandboxConfig};

// The binary's allocator, for the sandbox that runs in this process: under glibc's malloc it
// answered 5% slower at --concurrency 64.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let rows: usize = env_or("BENCH_ROWS", 1_000_000);
    let send_rows: usize = env_or("BENCH_SEND_ROWS", 10_000);
    // BENCH_DIR keeps the generated files (for profiling); by default they go away.
    let kept = std::env::var_os("BENCH_DIR").map(std::path::PathBuf::from);
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = kept.as_deref().unwrap_or(temp.path());
    std::fs::create_dir_all(dir).expect("bench dir");
    let mut table = Vec::new();

    // --- Sending ------------------------------------------------------------------------------
    // First: the sandbox runs in this process, which filling a 1M-key store (below) leaves
    // large and, measured, 5% slower to answer.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let latency = Duration::from_millis(20);
    let small = dir.join("send.csv");
    write_csv(&small, send_rows, "");
    // One request at a time shows what a request really takes here (the injected 20 ms and
    // both processes' work), the base of the "measured" ideal.
    let one = dir.join("one.csv");
    write_csv(&one, 500, "");
    let (elapsed, _) = runtime.block_on(send(&one, dir, latency, 1, None));
    let per_request = elapsed.as_secs_f64() / 500.0;
    table.push(row(
        "send 500 creates one at a time (--concurrency 1)",
        500,
        elapsed,
        &format!("{:.2} ms per request", per_request * 1000.0),
    ));
    for concurrency in [8usize, 32, 64] {
        let (elapsed, conns) = runtime.block_on(send(&small, dir, latency, concurrency, None));
        let nominal = concurrency as f64 / latency.as_secs_f64();
        let measured = concurrency as f64 / per_request;
        let achieved = send_rows as f64 / elapsed.as_secs_f64();
        table.push(row(
            &format!("send {send_rows} creates, 20 ms latency, --concurrency {concurrency}, no rate limit"),
            send_rows,
            elapsed,
            &format!(
                "{:.0}% of c/20 ms = {nominal:.0}/s, {:.0}% of c/measured latency; {conns} connections",
                100.0 * achieved / nominal,
                100.0 * achieved / measured
            ),
        ));
    }
    for rate in [50u32, 200] {
        let n = (rate as usize) * 10;
        let csv = dir.join(format!("rate{rate}.csv"));
        write_csv(&csv, n, "");
        let (elapsed, _) = runtime.block_on(send(&csv, dir, latency, 32, Some(rate)));
        let achieved = n as f64 / elapsed.as_secs_f64();
        table.push(row(
            &format!("send {n} creates, --rate {rate}"),
            n,
            elapsed,
            &format!(
                "achieved {achieved:.1}/s ({:+.1}% of the rate)",
                100.0 * (achieved / rate as f64 - 1.0)
            ),
        ));
    }

    // --- The naive loop ------------------------------------------------------------------------
    let naive_rows = 300;
    let naive = runtime.block_on(naive_loop(naive_rows, latency));
    let naive_rate = naive_rows as f64 / naive.as_secs_f64();
    table.push(row(
        "naive loop: one request after another, new connection each (tutorial)",
        naive_rows,
        naive,
        "",
    ));
    let (elapsed, _) = runtime.block_on(send(&small, dir, latency, 32, None));
    let fast_rate = send_rows as f64 / elapsed.as_secs_f64();
    table.push(row(
        "custsync --concurrency 32, same latency",
        send_rows,
        elapsed,
        &format!("{:.0}x the naive loop", fast_rate / naive_rate),
    ));

    // --- Planning at scale -------------------------------------------------------------------
    let csv = dir.join("big.csv");
    let _ = std::fs::remove_dir_all(dir.join("state"));
    let _ = std::fs::remove_dir_all(dir.join("fresh-state"));
    let started = Instant::now();
    write_csv(&csv, rows, "");
    let mb = std::fs::metadata(&csv).expect("csv").len() as f64 / 1e6;
    table.push(row(
        "generate CSV",
        rows,
        started.elapsed(),
        &format!("{mb:.0} MB"),
    ));

    let state = dir.join("state");
    let (elapsed, disk) = populate_state(&csv, &state);
    // Filled directly, the store records no target: bind it to the embedded sandbox the runs
    // below use, as a user moving a store on purpose would.
    run_custsync(
        &["state", "rebind", "--state", state.to_str().unwrap()],
        dir,
    );
    table.push(row(
        "state writes (parse + batched sled inserts)",
        rows,
        elapsed,
        &format!(
            "{:.0} MB on disk ({:.0} B/entry)",
            disk as f64 / 1e6,
            disk as f64 / rows as f64
        ),
    ));

    // In this order: the first run after filling the store has no index file yet (as after a
    // crash), builds one from a scan and writes it.
    let fresh = dir.join("fresh-state");
    let runs: [(&str, &Path, bool); 4] = [
        (
            "first re-run after the store was filled (no index file: scans the store)",
            &state,
            false,
        ),
        ("dry run, all keys known", &state, true),
        (
            "re-run of the unchanged file (sends nothing)",
            &state,
            false,
        ),
        ("dry run, empty state (all creates)", &fresh, true),
    ];
    for (name, state, dry_run) in runs {
        let mut args = vec![
            "sync",
            csv.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
            "--quiet",
        ];
        if dry_run {
            args.push("--dry-run");
        }
        let (elapsed, rss) = run_custsync(&args, dir);
        table.push(row(name, rows, elapsed, &format!("peak RSS {rss} MB")));
    }

    // Another way to a full store: moving one to another machine with export and import.
    let exported = dir.join("export.csv");
    let imported = dir.join("imported-state");
    let _ = std::fs::remove_dir_all(&imported);
    let (state_arg, exported_arg, imported_arg) = (
        state.to_str().unwrap(),
        exported.to_str().unwrap(),
        imported.to_str().unwrap(),
    );
    let export = [
        "state",
        "export",
        "--state",
        state_arg,
        "--output",
        exported_arg,
    ];
    run_custsync(&export, dir);
    let import = ["state", "import", exported_arg, "--state", imported_arg];
    let (elapsed, rss) = run_custsync(&import, dir);
    run_custsync(&["state", "rebind", "--state", imported_arg], dir);
    table.push(row(
        "state import of an export (writes the index)",
        rows,
        elapsed,
        &format!("peak RSS {rss} MB"),
    ));
    let dry = [
        "sync",
        csv.to_str().unwrap(),
        "--state",
        imported_arg,
        "--quiet",
        "--dry-run",
    ];
    let (elapsed, rss) = run_custsync(&dry, dir);
    table.push(row(
        "dry run after the import, all keys known",
        rows,
        elapsed,
        &format!("peak RSS {rss} MB"),
    ));

    println!();
    println!("| scenario | rows | time | rows/s | notes |");
    println!("| --- | ---: | ---: | ---: | --- |");
    for line in table {
        println!("{line}");
    }
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn row(name: &str, rows: usize, elapsed: Duration, notes: &str) -> String {
    let secs = elapsed.as_secs_f64();
    eprintln!("{name}: {rows} rows in {secs:.2} s {notes}");
    format!(
        "| {name} | {rows} | {secs:.2} s | {:.0} | {notes} |",
        rows as f64 / secs
    )
}

/// A realistic file: names with non-ASCII letters, dates, a group, an address on every row.
fn write_csv(path: &Path, rows: usize, version: &str) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    writeln!(f, "email,firstname,lastname,dob,gender,group_id,website_id,address_street,address_city,address_postcode,address_country_id,address_telephone").expect("write");
    for i in 0..rows {
        writeln!(
            f,
            "customer{i}@example.com,Jöhn{i},Doe{version}{},19{:02}-{:02}-{:02},{},1,{},Main Street {}|Apt {},Lund,{:05},SE,+46 555 {i}",
            i % 97,
            50 + i % 50,
            1 + i % 12,
            1 + i % 28,
            1 + i % 3,
            1 + i % 3,
            i % 1000,
            i % 50,
            i % 100_000
        )
        .expect("write");
    }
}

/// Fills a state store as a sync that created every row would have left it.
fn populate_state(csv: &Path, state: &Path) -> (Duration, u64) {
    let started = Instant::now();
    let store = Store::open(state).expect("state");
    let writer = store.writer().expect("writer");
    for (i, record) in Reader::open(csv, 1, Mapping::default())
        .expect("csv")
        .enumerate()
    {
        let Ok(Record::Valid(row)) = record else {
            panic!("generated rows are valid")
        };
        let c = &row.customer;
        let entry = Entry {
            customer_id: i as u64 + 1,
            payload_hash: c.payload_hash(),
            synced_at: 1_700_000_000,
            address_id: Some(i as u64 + 1),
            further_address_ids: Vec::new(),
        };
        writer.send(Op::Put(c.key(), entry, Some(c.fields())));
    }
    writer.finish().expect("writer");
    store.flush().expect("flush");
    let elapsed = started.elapsed();
    (elapsed, store.size_on_disk().expect("size"))
}

/// Runs the binary; returns wall time and peak RSS in MB.
fn run_custsync(args: &[&str], cwd: &Path) -> (Duration, u64) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_custsync"))
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::null())
        .spawn()
        .expect("run custsync");
    // The kernel's high-water mark of the child's own memory (getrusage would also count what
    // the forked bench process held before exec), sampled until it exits.
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            let hwm = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
            peak_kb = peak_kb.max(hwm.unwrap_or(0));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    assert!(
        status.code().is_some_and(|c| c == 0 || c == 3),
        "custsync failed: {status}"
    );
    (elapsed, peak_kb / 1024)
}

async fn start_sandbox(latency: Duration) -> sandbox::RunningSandbox {
    let faults = Faults {
        latency,
        ..Faults::default()
    };
    let config = SandboxConfig {
        faults,
        ..SandboxConfig::default()
    };
    let addr = "127.0.0.1:0".parse().expect("addr");
    sandbox::start(config, addr).await.expect("sandbox")
}

/// A sync of `csv` into a fresh state against an in-process sandbox.
async fn send(
    csv: &Path,
    dir: &Path,
    latency: Duration,
    concurrency: usize,
    rate: Option<u32>,
) -> (Duration, u64) {
    let sb = start_sandbox(latency).await;
    let state = tempfile::tempdir_in(dir).expect("state");
    // custsync refuses a state directory other users may enter.
    std::fs::set_permissions(
        state.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod state");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_custsync"));
    cmd.env("CUSTSYNC_CLIENT_SECRET", "sandbox")
        .args([
            "sync",
            csv.to_str().unwrap(),
            "--quiet",
            "--state",
            state.path().to_str().unwrap(),
        ])
        .args([
            "--endpoint",
            &sb.endpoint(),
            "--ims-url",
            &sb.ims_url(),
            "--client-id",
            "sandbox",
        ])
        .args([
            "--concurrency",
            &concurrency.to_string(),
            "--rate",
            &rate.unwrap_or(0).to_string(),
        ])
        .stdout(Stdio::null());
    // The whole command, start-up and token included: what `time custsync sync` shows.
    let started = Instant::now();
    let status = tokio::task::spawn_blocking(move || cmd.status().expect("run"))
        .await
        .expect("join");
    let elapsed = started.elapsed();
    assert!(status.success(), "custsync failed: {status}");
    let connections = sb.stats().connections;
    sb.shutdown().await;
    (elapsed, connections)
}

/// The tutorial's loop: one POST after the other, a new connection (a new curl) each time.
async fn naive_loop(rows: usize, latency: Duration) -> Duration {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sb = start_sandbox(latency).await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "sandbox"),
        ("client_secret", "sandbox"),
        ("scope", custsync::config::DEFAULT_SCOPES),
    ];
    let token: serde_json::Value = reqwest::Client::new()
        .post(sb.ims_url())
        .form(&form)
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let token = token["access_token"].as_str().expect("token").to_owned();
    let started = Instant::now();
    for i in 0..rows {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        let body = serde_json::json!({"customer": {"email": format!("naive{i}@example.com"), "firstname": "John", "lastname": "Doe", "website_id": 1}});
        let r = client
            .post(format!("{}/V1/customers", sb.endpoint()))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .expect("post");
        assert!(r.status().is_success());
    }
    let elapsed = started.elapsed();
    sb.shutdown().await;
    elapsed
}

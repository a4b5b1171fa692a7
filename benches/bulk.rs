//! `cargo bench --bench bulk`: `--bulk` against the embedded sandbox's queue (issue 14), set
//! against its two floors, printed as README table rows.
//!
//! 20,000 creates (`BENCH_BULK_ROWS`) at `--rate 20 --bulk 200`, the sandbox's consumer
//! working 2,000 operations a second. The per-request mode cannot beat rows / rate (one
//! request a row). Bulk mode is bounded by both: every bulk costs a submission and at least
//! one status poll under the rate, besides the run's other requests (the shop's model), and
//! the queue works rows / consumer-rate seconds, starting after the first submission and
//! seen done one poll later. The bound is the larger of the two; the run must come within 80%
//! of it, and at least 40 times under the per-request floor.

use std::path::Path;
use std::time::Duration;

use custsync_sandbox::{self as sandbox, SandboxConfig};

mod common;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RATE: u32 = 20;
const BULK: usize = 200;
const CONSUMER: u32 = 2000;

fn main() {
    let rows: usize = std::env::var("BENCH_BULK_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path();
    let csv = dir.join("bulk.csv");
    write_csv(&csv, rows);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let run = runtime.block_on(sync(&csv, dir));

    let bulks = rows.div_ceil(BULK);
    let rate = f64::from(RATE);
    let per_request = rows as f64 / rate;
    // Every bulk: one submission and one poll, at the least; and the run's other requests.
    let by_rate = (2 * bulks + run.other) as f64 / rate;
    // The queue starts once the model is read and the first bulk submitted, and its end is
    // seen one poll later.
    let by_queue = (run.other + 2) as f64 / rate + rows as f64 / f64::from(CONSUMER);
    let bound = by_rate.max(by_queue);
    let secs = run.elapsed.as_secs_f64();
    let name = format!("{rows} creates, --rate {RATE} --bulk {BULK}, queue {CONSUMER} ops/s");
    eprintln!(
        "{name}: {secs:.2} s; {} submissions, {} polls, {} other requests",
        run.submissions, run.polls, run.other
    );
    eprintln!(
        "per-request floor {per_request:.0} s; bound {bound:.2} s (rate: {by_rate:.2} s, queue: {by_queue:.2} s)"
    );
    println!();
    println!("| scenario | rows | time | rows/s | notes |");
    println!("| --- | ---: | ---: | ---: | --- |");
    println!(
        "| {name} | {rows} | {secs:.2} s | {:.0} | {:.0}x the per-request floor ({per_request:.0} s); {:.0}% of the rate-and-queue bound ({bound:.2} s); {} submissions, {} polls |",
        rows as f64 / secs,
        per_request / secs,
        100.0 * bound / secs,
        run.submissions,
        run.polls,
    );
    assert!(
        per_request / secs >= 40.0,
        "under 40x the per-request floor"
    );
    assert!(bound / secs >= 0.8, "under 80% of the bound");
}

/// What a run did, as the sandbox saw it.
struct Run {
    elapsed: Duration,
    submissions: usize,
    polls: usize,
    /// Requests other than submissions and polls (the shop's model, token aside).
    other: usize,
}

/// A realistic file of new customers: names with non-ASCII letters, dates, an address.
fn write_csv(path: &Path, rows: usize) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    writeln!(f, "email,firstname,lastname,dob,gender,website_id,address_street,address_city,address_postcode,address_country_id,address_telephone").expect("write");
    for i in 0..rows {
        writeln!(
            f,
            "bulk{i}@example.com,Jöhn{i},Doe{},19{:02}-{:02}-{:02},{},1,Main Street {},Lund,{:05},SE,+46 555 {i}",
            i % 97,
            50 + i % 50,
            1 + i % 12,
            1 + i % 28,
            1 + i % 3,
            i % 1000,
            i % 100_000
        )
        .expect("write");
    }
}

/// The sync of `csv` into a fresh state against an in-process sandbox with a 2,000 ops/s queue.
async fn sync(csv: &Path, dir: &Path) -> Run {
    let config = SandboxConfig {
        consumer_rate: CONSUMER,
        log_requests: true,
        ..SandboxConfig::default()
    };
    let sb = sandbox::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("sandbox");
    let state = dir.join("state");
    std::fs::create_dir(&state).expect("state");
    common::make_private(&state);
    let (rate, bulk) = (RATE.to_string(), BULK.to_string());
    let elapsed = common::timed_sync(&sb, csv, &state, &["--rate", &rate, "--bulk", &bulk]).await;
    let requests = sb.stats().requests;
    let customer_routes = requests.iter().filter(|r| r.path.starts_with("/sandbox/"));
    let (mut submissions, mut polls, mut other) = (0, 0, 0);
    for r in customer_routes {
        if r.path.contains("/async/bulk/") {
            submissions += 1;
        } else if r.path.contains("/bulk/") {
            polls += 1;
        } else {
            other += 1;
        }
    }
    sb.shutdown().await;
    Run {
        elapsed,
        submissions,
        polls,
        other,
    }
}

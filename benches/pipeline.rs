//! `cargo bench`: the whole tool measured on data it generates, printed as a table for the
//! README's "Performance" section.
//!
//! Scenarios (issue 5): planning a 1M-row dry run against a 1M-key state store; re-running the
//! unchanged file; state-store writes and size; sending against the sandbox with injected
//! latency (throughput vs. the concurrency/latency ideal, connections opened, a rate cap); and
//! the naive one-request-after-another loop of the tutorial, for the speed-up. Issue 14: the
//! planning rows against their floor (the csv crate parsing and hashing the same file), and a
//! 300,000-row re-run (after a filled store, and after a sync that created every customer)
//! against Python's `csv.reader`.
//!
//! `BENCH_ROWS` (default 1,000,000) and `BENCH_SEND_ROWS` (default 10,000) scale it down.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use custsync::input::{Mapping, Reader, Record};
use custsync::state::{Entry, Op, Store};
use custsync_sandbox::{self as sandbox, Faults, SandboxConfig};

mod common;

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
    if send_rows > 0 {
        sending(&runtime, dir, latency, send_rows, &mut table);
    }

    // --- Planning at scale -------------------------------------------------------------------
    planning(dir, rows, &mut table);

    println!();
    println!("| scenario | rows | time | rows/s | notes |");
    println!("| --- | ---: | ---: | ---: | --- |");
    for line in table {
        println!("{line}");
    }
}

/// Sending against the in-process sandbox, and the tutorial's naive loop.
fn sending(
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
    latency: Duration,
    send_rows: usize,
    table: &mut Vec<String>,
) {
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
}

/// Planning a realistic file at scale, each row next to the floors measured in the same run.
fn planning(dir: &Path, rows: usize, table: &mut Vec<String>) {
    let csv = dir.join("big.csv");
    for s in ["state", "fresh-state", "pulled-state", "imported-state"] {
        let _ = std::fs::remove_dir_all(dir.join(s));
    }
    let started = Instant::now();
    write_realistic_csv(&csv, rows);
    let mb = std::fs::metadata(&csv).expect("csv").len() as f64 / 1e6;
    table.push(row(
        "generate the realistic 15-column CSV",
        rows,
        started.elapsed(),
        &format!("{mb:.0} MB"),
    ));
    // The floors: what merely reading the same file costs.
    let floor = median(5, || (csv_floor(&csv), 0)).0;
    table.push(row(
        "floor: parse + hash with the csv crate (every cell through xxh3)",
        rows,
        floor,
        "median of five; the floor of the planning rows",
    ));
    let python = python_median(&csv);
    match python {
        Some(t) => table.push(row(
            "Python's csv.reader splitting the same file",
            rows,
            t,
            &ratio(t, floor),
        )),
        None => eprintln!("python3 not found: the csv.reader row is skipped"),
    }

    let state = dir.join("state");
    let (elapsed, disk) = populate_state(&csv, &state, Filled::Synced);
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
    // crash), builds one from a scan and writes it. Once after a fill, sled cleans up its log,
    // and each run after one that wrote writes a new snapshot as it opens: the rows after these
    // two are the steady state.
    for name in [
        "first re-run after the store was filled (no index file: scans the store)",
        "second re-run after the fill (sled's clean-up and snapshot)",
    ] {
        let (elapsed, rss) = sync(&csv, &state, false, dir);
        table.push(row(
            name,
            rows,
            elapsed,
            &format!(
                "{:.2}x the floor; peak RSS {rss} MB",
                elapsed.as_secs_f64() / floor.as_secs_f64()
            ),
        ));
    }
    // The steady rows of one store, in the same rounds, so that drift cannot favour either.
    let fresh = dir.join("fresh-state");
    let steady = rounds(
        5,
        || csv_floor(&csv),
        &mut [&mut || sync(&csv, &state, true, dir), &mut || {
            sync(&csv, &state, false, dir)
        }],
    );
    let names = [
        "dry run, all keys known",
        "re-run of the unchanged file (sends nothing)",
    ];
    for (name, (elapsed, times_floor, rss)) in names.into_iter().zip(&steady) {
        table.push(row(
            name,
            rows,
            *elapsed,
            &format!("{times_floor:.2}x the floor (see `rounds`); peak RSS {rss} MB"),
        ));
    }
    let (elapsed, times_floor, rss) = rounds(
        3,
        || csv_floor(&csv),
        &mut [&mut || sync(&csv, &fresh, true, dir)],
    )[0];
    table.push(row(
        "dry run, empty state (all creates)",
        rows,
        elapsed,
        &format!("{times_floor:.2}x the floor (see `rounds`); peak RSS {rss} MB"),
    ));

    // A store filled as `pull` fills it: the shop's values, through pull's own function.
    // Bound first, as `pull` binds before it writes. Its first sync is measured three times,
    // each on a copy of its own, beside a re-run in the same rounds.
    let pulled = dir.join("pulled-state");
    run_custsync(
        &["state", "rebind", "--state", pulled.to_str().unwrap()],
        dir,
    );
    populate_state(&csv, &pulled, Filled::Pulled);
    let copies: Vec<_> = (0..3)
        .map(|i| dir.join(format!("pulled-state-{i}")))
        .collect();
    for copy in &copies {
        copy_dir(&pulled, copy);
    }
    // Written back now, not while a run is timed.
    let _ = Command::new("sync").status();
    let mut next = copies.iter();
    let after_pull = rounds(
        3,
        || csv_floor(&csv),
        &mut [&mut || sync(&csv, &state, false, dir), &mut || {
            sync(&csv, next.next().expect("a copy a round"), false, dir)
        }],
    );
    let ((rerun_now, _, _), (elapsed, times_floor, rss)) = (after_pull[0], after_pull[1]);
    table.push(row(
        "first re-run after pull (store filled through pull's mapping)",
        rows,
        elapsed,
        &format!(
            "{:.2}x the re-run of the same rounds ({:.2} s); {times_floor:.2}x the floor; peak \
             RSS {rss} MB",
            elapsed.as_secs_f64() / rerun_now.as_secs_f64(),
            rerun_now.as_secs_f64()
        ),
    ));
    for copy in &copies {
        let _ = std::fs::remove_dir_all(copy);
    }

    // Another way to a full store: moving one to another machine with export and import.
    let exported = dir.join("export.csv");
    let imported = dir.join("imported-state");
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
    let (elapsed, rss) = sync(&csv, &imported, true, dir);
    table.push(row(
        "dry run after the import, all keys known",
        rows,
        elapsed,
        &format!("{}; peak RSS {rss} MB", ratio(elapsed, floor)),
    ));

    // The external check: a 300,000-row re-run against Python's csv.reader, same run.
    let small_rows = rows.min(300_000);
    let small = dir.join("small.csv");
    let small_state = dir.join("small-state");
    let _ = std::fs::remove_dir_all(&small_state);
    write_realistic_csv(&small, small_rows);
    populate_state(&small, &small_state, Filled::Synced);
    run_custsync(
        &["state", "rebind", "--state", small_state.to_str().unwrap()],
        dir,
    );
    // The first builds the index, the second pays sled's clean-up after the fill (as above).
    sync(&small, &small_state, false, dir);
    sync(&small, &small_state, false, dir);
    let python = python_median(&small);
    let (elapsed, times_python, rss) = rounds(
        3,
        || python_floor(&small).unwrap_or(Duration::ZERO),
        &mut [&mut || sync(&small, &small_state, false, dir)],
    )[0];
    let versus_python = |elapsed: Duration, rss: u64| match python {
        Some(py) => format!(
            "{:.2}x Python's csv.reader ({:.2} s); peak RSS {rss} MB",
            elapsed.as_secs_f64() / py.as_secs_f64(),
            py.as_secs_f64()
        ),
        None => format!("python3 not found; peak RSS {rss} MB"),
    };
    table.push(row(
        "re-run of an unchanged realistic file vs Python's csv.reader",
        small_rows,
        elapsed,
        &match python {
            Some(py) => format!(
                "{times_python:.2}x Python's csv.reader (in the same rounds; {:.2} s); peak RSS \
                 {rss} MB",
                py.as_secs_f64()
            ),
            None => format!("python3 not found; peak RSS {rss} MB"),
        },
    ));

    // As a migration goes: a sync that creates every customer (in the embedded sandbox), then
    // the first re-run, which knows the rows by the hashes their confirmed creates recorded.
    let sent_state = dir.join("sent-state");
    let _ = std::fs::remove_dir_all(&sent_state);
    let sent_arg = sent_state.to_str().unwrap();
    let small_arg = small.to_str().unwrap();
    let create = ["sync", small_arg, "--state", sent_arg, "--quiet"];
    run_custsync(
        &[&create[..], &["--rate", "0", "--concurrency", "32"]].concat(),
        dir,
    );
    let (elapsed, rss) = sync(&small, &sent_state, false, dir);
    table.push(row(
        "first re-run after the sync that created every customer",
        small_rows,
        elapsed,
        &versus_python(elapsed, rss),
    ));
}

/// `elapsed` as a multiple of the csv crate's floor.
fn ratio(elapsed: Duration, floor: Duration) -> String {
    format!(
        "{:.2}x the floor",
        elapsed.as_secs_f64() / floor.as_secs_f64()
    )
}

/// `custsync sync` of `csv` against `state` (a dry run or not); wall time and peak RSS.
fn sync(csv: &Path, state: &Path, dry_run: bool, dir: &Path) -> (Duration, u64) {
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
    run_custsync(&args, dir)
}

/// The floor: every record read with the csv crate, every cell hashed with xxh3.
fn csv_floor(csv: &Path) -> Duration {
    let started = Instant::now();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(csv)
        .expect("csv");
    let mut record = csv::ByteRecord::new();
    let mut sum = 0u64;
    while reader.read_byte_record(&mut record).expect("record") {
        for cell in &record {
            sum = sum.wrapping_add(xxhash_rust::xxh3::xxh3_64(cell));
        }
    }
    std::hint::black_box(sum);
    started.elapsed()
}

/// The median time of `n` runs of `measure`, with the largest peak RSS: one sample on this
/// shared machine could be a third off (the floor, a quarter of a second, most of all).
fn median(n: usize, mut measure: impl FnMut() -> (Duration, u64)) -> (Duration, u64) {
    let mut runs: Vec<_> = (0..n).map(|_| measure()).collect();
    let rss = runs.iter().map(|(_, rss)| *rss).max().unwrap_or(0);
    runs.sort();
    (runs[n / 2].0, rss)
}

/// `n` rounds, each running `floor` and then every one of `measures`: for each measure its
/// median time, that over the median of the round's floors, and its largest peak RSS. This
/// machine's speed drifts between minutes (floors of 0.24 to 0.64 s within an hour), so rows
/// that are compared with each other, and with their floor, are measured in the same rounds.
fn rounds(
    n: usize,
    floor: impl Fn() -> Duration,
    measures: &mut [&mut dyn FnMut() -> (Duration, u64)],
) -> Vec<(Duration, f64, u64)> {
    let mut floors = Vec::new();
    let mut samples = vec![(Vec::new(), 0); measures.len()];
    for _ in 0..n {
        floors.push(floor());
        for (measure, (times, rss)) in measures.iter_mut().zip(&mut samples) {
            let (t, r) = measure();
            times.push(t);
            *rss = (*rss).max(r);
        }
    }
    floors.sort();
    let floor = floors[n / 2].as_secs_f64();
    samples
        .into_iter()
        .map(|(mut times, rss)| {
            times.sort();
            let time = times[n / 2];
            (time, time.as_secs_f64() / floor, rss)
        })
        .collect()
}

/// [`python_floor`], the median of three.
fn python_median(csv: &Path) -> Option<Duration> {
    let mut runs = (0..3)
        .map(|_| python_floor(csv))
        .collect::<Option<Vec<_>>>()?;
    runs.sort();
    Some(runs[1])
}

/// Python's `csv.reader` over the same file; `None` without python3.
fn python_floor(csv: &Path) -> Option<Duration> {
    let script = "import csv, sys\nn = 0\nwith open(sys.argv[1], newline='', encoding='utf-8') as f:\n    for r in csv.reader(f):\n        n += 1\n";
    let started = Instant::now();
    let status = Command::new("python3")
        .args(["-c", script, csv.to_str()?])
        .stdout(Stdio::null())
        .status()
        .ok()?;
    status.success().then(|| started.elapsed())
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

/// The realistic file of issue 14, 15 columns: names with non-ASCII letters, a date of
/// birth, a gender, three websites with a store and a group each, a full address.
fn write_realistic_csv(path: &Path, rows: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    writeln!(f, "email,firstname,lastname,dob,gender,website_id,store_id,group_id,address_street,address_city,address_postcode,address_country_id,address_region,address_telephone,address_company").expect("write");
    const CITIES: [(&str, &str); 4] = [
        ("Lund", "Skåne"),
        ("Malmö", "Skåne"),
        ("Uppsala", "Uppsala län"),
        ("Göteborg", "Västra Götaland"),
    ];
    for i in 0..rows {
        let website = 1 + i % 3;
        let (city, region) = CITIES[i % CITIES.len()];
        writeln!(
            f,
            "customer{i}@example.com,Jöhn{},Söderström{},19{:02}-{:02}-{:02},{},{website},{website},{},\"Storgatan {}|Lgh {}\",{city},{:05},SE,{region},+46 70 {:07},Företag {} AB",
            i % 997,
            i % 89,
            50 + i % 50,
            1 + i % 12,
            1 + i % 28,
            1 + i % 3,
            1 + i % 3,
            i % 1000,
            1000 + i % 50,
            10_000 + i % 90_000,
            i,
            i % 500,
        )
        .expect("write");
    }
}

/// How a store is filled for the bench.
#[derive(Clone, Copy, PartialEq)]
enum Filled {
    /// As a sync that created every row would have left it.
    Synced,
    /// As `pull` leaves it: each customer as the shop returns it, through pull's own mapping,
    /// then the index pull writes.
    Pulled,
}

/// Fills a state store from `csv`; the time and the size on disk after the writer's flush.
fn populate_state(csv: &Path, state: &Path, how: Filled) -> (Duration, u64) {
    let started = Instant::now();
    let store = Store::open(state).expect("state");
    let writer = store.writer().expect("writer");
    let mut values = custsync::pull::ValuesHashes::default();
    for (i, record) in Reader::open(csv, 1, Mapping::default())
        .expect("csv")
        .enumerate()
    {
        let Ok(Record::Valid(row)) = record else {
            panic!("generated rows are valid")
        };
        let c = &row.customer;
        let id = i as u64 + 1;
        let op = match how {
            Filled::Synced => {
                let entry = Entry {
                    customer_id: id,
                    payload_hash: c.payload_hash(),
                    synced_at: 1_700_000_000,
                    address_id: Some(id),
                    further_address_ids: Vec::new(),
                };
                Op::Put(c.key(), entry, Some(c.fields()))
            }
            Filled::Pulled => {
                let mut remote = c.to_json(Some(id));
                remote["addresses"] = serde_json::json!([c.address_json(Some(id))]);
                let kind = custsync::customer::KeyKind::Email;
                let mapped = custsync::pull::pulled(&remote, &kind).expect("pulled");
                values.note(&mapped);
                Op::Put(mapped.key, mapped.entry, Some(mapped.fields))
            }
        };
        writer.send(op);
    }
    writer.finish().expect("writer");
    if how == Filled::Pulled {
        values.write_index(&store).expect("index");
    }
    store.flush().expect("flush");
    let elapsed = started.elapsed();
    let size = store.size_on_disk().expect("size");
    // As `pull` closes a store it wrote much to: sled's replay is spent now, not by the
    // next run (see `Store::close`).
    store.close(how == Filled::Pulled).expect("close");
    (elapsed, size)
}

/// Copies the directory `from` (files and folders, with their modes) to `to`.
fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).expect("create the copy");
    let mode = std::fs::metadata(from).expect("the store").permissions();
    std::fs::set_permissions(to, mode).expect("the copy's mode");
    for entry in std::fs::read_dir(from).expect("read the store") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
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
    common::make_private(state.path());
    let (concurrency, rate) = (concurrency.to_string(), rate.unwrap_or(0).to_string());
    let extra = ["--concurrency", &concurrency, "--rate", &rate];
    let elapsed = common::timed_sync(&sb, csv, state.path(), &extra).await;
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

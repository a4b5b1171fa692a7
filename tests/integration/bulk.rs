//! `--bulk N`: creates and updates through the sandbox's async bulk routes and its queue.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use custsync_sandbox::Faults;
use serde_json::{Value, json};

use crate::support::{SECRET, Shop, TestEnv, customers_csv, read_report, run_command};

/// The bulk submissions the sandbox received (both base forms).
fn bulk_submissions(env: &TestEnv) -> usize {
    (env.sandbox.stats().requests.iter())
        .filter(|r| r.path.contains("async/bulk"))
        .count()
}

/// The customer searches the sandbox answered.
fn searches(env: &TestEnv) -> usize {
    (env.sandbox.stats().requests.iter())
        .filter(|r| r.method == "GET" && r.path.ends_with("/V1/customers/search"))
        .count()
}

/// A run of the same file in bulk mode writes nothing.
async fn a_rerun_sends_nothing(env: &TestEnv, csv: &Path) {
    let before = writes(env);
    env.sync(csv, &["--rate", "0", "--bulk", "100"])
        .await
        .expect_code(0);
    assert_eq!(writes(env), before, "a re-run sends nothing");
}

/// Waits until the sandbox has received `n` bulk submissions.
async fn submitted(env: &TestEnv, n: usize) {
    let started = Instant::now();
    while bulk_submissions(env) < n {
        assert!(started.elapsed() < Duration::from_secs(60), "no bulks came");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The shop's id of the customer with this e-mail in website 1.
fn id_of(by_key: &HashMap<(u64, String), Value>, email: &str) -> u64 {
    by_key[&(1, email.to_owned())]["id"].as_u64().expect("id")
}

/// Writes (POST, PUT, DELETE) of any kind, bulk or not, the sandbox received.
fn writes(env: &TestEnv) -> usize {
    (env.sandbox.stats().requests.iter())
        .filter(|r| r.method != "GET" && !r.path.starts_with("/ims"))
        .count()
}

/// The state store's mappings: (website, email) -> customer id.
async fn store_ids(env: &TestEnv) -> HashMap<(u64, String), u64> {
    let export = env.custsync(&["state", "export"], false).await;
    export.expect_code(0);
    let mut r = csv::Reader::from_reader(export.stdout.as_bytes());
    r.records()
        .map(|rec| {
            let rec = rec.expect("record");
            let website = rec[0].parse().expect("website");
            ((website, rec[1].to_owned()), rec[2].parse().expect("id"))
        })
        .collect()
}

/// Every customer of the shop is in the store with the shop's id, and the other way round.
async fn store_equals_shop(env: &TestEnv, n: usize) {
    let shop = env.customers_by_key().await;
    assert_eq!(shop.len(), n, "every customer exactly once");
    let ids = store_ids(env).await;
    assert_eq!(ids.len(), n, "every customer recorded");
    for (key, id) in &ids {
        let c = shop
            .get(key)
            .unwrap_or_else(|| panic!("{key:?} not in the shop"));
        assert_eq!(c["id"].as_u64(), Some(*id), "{key:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_under_retriable_failures_and_lost_answers_land_once_each() {
    let env = TestEnv::new(Faults {
        p_bulk_retriable: 0.05,
        p_bulk_answer_lost: 0.03,
        ..Faults::default()
    })
    .await;
    let csv = env.write("in.csv", &customers_csv(2500, ""));
    let report = env.path("report.csv");
    let run = env
        .sync(
            &csv,
            &[
                "--rate",
                "0",
                "--bulk",
                "100",
                "--report",
                report.to_str().unwrap(),
            ],
        )
        .await;
    run.expect_code(0);
    let rows = read_report(&report);
    assert_eq!(rows.len(), 2500);
    assert!(
        rows.iter()
            .all(|r| r["action"] == "create" && r["status"] == "ok")
    );
    assert!(bulk_submissions(&env) >= 25, "sent in bulks");
    assert!(
        env.count("POST") < 100,
        "not one request a row: {} POSTs",
        env.count("POST")
    );
    store_equals_shop(&env, 2500).await;
    a_rerun_sends_nothing(&env, &csv).await;
}

/// `custsync sync` against the sandbox under a PaaS base (`/rest/default`).
fn rest_sync(env: &TestEnv, csv: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_custsync"));
    cmd.env_clear()
        .current_dir(env.dir.path())
        .env("CUSTSYNC_CLIENT_SECRET", SECRET)
        .arg("sync")
        .arg(csv)
        .arg("--state")
        .arg(env.state())
        .args([
            "--endpoint",
            &format!("http://{}/rest/default", env.sandbox.addr()),
        ])
        .args(["--ims-url", &env.sandbox.ims_url()])
        .args(["--client-id", "sandbox", "--backoff-base-ms", "5"])
        .args(args)
        .stdin(Stdio::null());
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paas_base_uses_its_own_bulk_routes() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &customers_csv(120, ""));
    run_command(rest_sync(&env, &csv, &["--rate", "0", "--bulk", "50"]))
        .await
        .expect_code(0);
    let changed = env.write("changed.csv", &customers_csv(120, "-b"));
    run_command(rest_sync(&env, &changed, &["--rate", "0", "--bulk", "50"]))
        .await
        .expect_code(0);
    let paths: Vec<(String, String)> = (env.sandbox.stats().requests.iter())
        .filter(|r| r.path.contains("bulk"))
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    let count = |method: &str, path: &str| {
        paths
            .iter()
            .filter(|(m, p)| m == method && p == path)
            .count()
    };
    assert_eq!(count("POST", "/rest/default/async/bulk/V1/customers"), 3);
    assert_eq!(
        count("PUT", "/rest/default/async/bulk/V1/customers/byCustomerId"),
        3
    );
    assert!(
        paths.iter().all(|(_, p)| p.starts_with("/rest/default/")),
        "{paths:?}"
    );
    let shop = env.customers_by_key().await;
    assert_eq!(shop.len(), 120);
    assert!(
        shop.values()
            .all(|c| c["lastname"].as_str().is_some_and(|l| l.ends_with("-b")))
    );
}

/// A row of the update tests: every column but `taxvat` in both files.
fn people(n: usize, lastname: &str, taxvat: bool) -> String {
    let mut s = String::from(
        "email,firstname,lastname,dob,gender,website_id,address_street,address_city,\
         address_postcode,address_country_id,address_telephone",
    );
    if taxvat {
        s.push_str(",taxvat");
    }
    s.push('\n');
    for i in 0..n {
        s.push_str(&format!(
            "p{i}@example.com,P{i},{lastname}{i},1980-02-{:02},2,1,{i} Main St,Lund,22100,SE,+46 {i}",
            i % 28 + 1
        ));
        if taxvat {
            s.push_str(&format!(",SE{i}"));
        }
        s.push('\n');
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_updates_change_only_what_changed() {
    let env = TestEnv::new(Faults::default()).await;
    let first = env.write("first.csv", &people(500, "Old", true));
    env.sync(&first, &["--rate", "0", "--bulk", "100"])
        .await
        .expect_code(0);
    // Someone adds an address and a middle name in the shop.
    let shop = Shop::connect(&env).await;
    let before = env.customers_by_key().await;
    let touched: Vec<u64> = (0..5)
        .map(|i| id_of(&before, &format!("p{i}@example.com")))
        .collect();
    for id in &touched {
        let current = shop
            .send(reqwest::Method::GET, &format!("V1/customers/{id}"), None)
            .await;
        let mut addresses = current["addresses"].as_array().cloned().unwrap_or_default();
        addresses.push(json!({
            "street": ["9 Side St"], "city": "Malmö", "postcode": "21100", "country_id": "SE",
            "telephone": "+46 9", "firstname": "P", "lastname": "Other"
        }));
        let body = json!({"customer": {"id": id, "email": current["email"], "firstname": current["firstname"],
            "lastname": current["lastname"], "website_id": 1, "middlename": "Added", "addresses": addresses}});
        shop.send(
            reqwest::Method::PUT,
            &format!("V1/customers/{id}"),
            Some(body),
        )
        .await;
    }
    let before = env.customers_by_key().await;

    // The second file changes the last names and has no taxvat column.
    // One bulk of 500: more customers than one search page holds (300) are read for it.
    let second = env.write("second.csv", &people(500, "New", false));
    let report = env.path("report.csv");
    let puts = env.count("PUT");
    env.sync(
        &second,
        &[
            "--rate",
            "0",
            "--bulk",
            "500",
            "--report",
            report.to_str().unwrap(),
        ],
    )
    .await
    .expect_code(0);
    assert_eq!(
        env.count("PUT") - puts,
        1,
        "one bulk PUT, no PUT of its own"
    );
    let rows = read_report(&report);
    assert!(
        rows.iter()
            .all(|r| r["action"] == "update" && r["status"] == "ok"),
        "{:?}",
        rows[0]
    );
    let after = env.customers_by_key().await;
    assert_eq!(after.len(), 500);
    for (key, old) in &before {
        let new = &after[key];
        let i = key
            .1
            .trim_start_matches('p')
            .trim_end_matches("@example.com");
        assert_eq!(new["lastname"], json!(format!("New{i}")), "{key:?}");
        for field in [
            "firstname",
            "dob",
            "gender",
            "taxvat",
            "middlename",
            "group_id",
            "store_id",
            "created_at",
            "default_billing",
            "default_shipping",
            "extension_attributes",
            "custom_attributes",
        ] {
            assert_eq!(new.get(field), old.get(field), "{key:?}: {field}");
        }
        // The row's address carries the customer's new name; every address keeps its id.
        let kept = |c: &Value| -> Vec<String> {
            let mut list: Vec<String> = (c["addresses"].as_array().into_iter().flatten())
                .map(|a| format!("{} {} {}", a["id"], a["street"], a["default_billing"]))
                .collect();
            list.sort();
            list
        };
        assert_eq!(
            kept(new),
            kept(old),
            "{key:?}: addresses kept with their ids"
        );
    }
    let id = touched[0];
    let kept = after
        .values()
        .find(|c| c["id"].as_u64() == Some(id))
        .expect("touched");
    assert_eq!(kept["middlename"], json!("Added"));
    assert_eq!(kept["addresses"].as_array().map(Vec::len), Some(2));
    assert!(kept["taxvat"].as_str().is_some_and(|t| t.starts_with("SE")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_with_bulks_in_flight_leaves_no_duplicate() {
    // A slow queue: the bulks are still being worked when the run is killed. Under a rate,
    // bulks are recorded while they wait for it: the next run cannot tell them from bulks
    // whose answer was lost.
    let env = TestEnv::with_consumer(Faults::default(), 300).await;
    let csv = env.write("in.csv", &customers_csv(1200, ""));
    let mut child = env.spawn(&csv, &["--rate", "5", "--bulk", "100"]);
    submitted(&env, 4).await;
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert!(
        env.customers_by_key().await.len() < 1200,
        "killed before the end"
    );

    let searched = searches(&env);
    let run = env.sync(&csv, &["--rate", "0", "--bulk", "100"]).await;
    run.expect_code(0);
    run.expect_stderr("resolved");
    store_equals_shop(&env, 1200).await;
    // Unanswered bulks are looked up a hundred e-mails a search, not one.
    // Bulks it cannot poll (at most --concurrency, 8, each 100 rows) are looked up a hundred
    // e-mails a search, not one by one. Only the bulk that was leaving when the run was killed
    // can have been queued and not yet worked: its customers are not there to be found, and
    // their creates meet "already exists" and are adopted one by one.
    let searched = searches(&env) - searched;
    assert!(searched <= 150, "{searched} searches");
    a_rerun_sends_nothing(&env, &csv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_the_shop_fails_fails_its_row_with_the_shops_message() {
    let env = TestEnv::with_consumer(Faults::default(), 20).await;
    let csv = env.write("in.csv", &customers_csv(40, ""));
    env.sync(&csv, &["--rate", "0"]).await.expect_code(0);
    let by_key = env.customers_by_key().await;
    let doomed: Vec<u64> = (30..40)
        .map(|i| id_of(&by_key, &format!("user{i}@example.com")))
        .collect();

    // The updates are queued (20 a second: two seconds of work); meanwhile the last ten
    // customers are deleted in the shop, so that their saves fail.
    let changed = env.write("changed.csv", &customers_csv(40, "-b"));
    let report = env.path("report.csv");
    let child = env.spawn(
        &changed,
        &[
            "--rate",
            "0",
            "--bulk",
            "20",
            "--report",
            report.to_str().unwrap(),
        ],
    );
    submitted(&env, 2).await;
    let shop = Shop::connect(&env).await;
    for id in &doomed {
        shop.send(reqwest::Method::DELETE, &format!("V1/customers/{id}"), None)
            .await;
    }
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
        .await
        .expect("join");
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = read_report(&report);
    let failed: Vec<_> = rows.iter().filter(|r| r["status"] == "failed").collect();
    assert_eq!(failed.len(), 10, "{rows:?}");
    for r in failed {
        assert!(r["email"].starts_with("user3"), "{r:?}");
        assert!(
            r["message"].starts_with("No such entity with customerId"),
            "{r:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_with_bulk_sends_nothing() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &customers_csv(30, ""));
    env.sync(&csv, &["--rate", "0", "--bulk", "10", "--dry-run"])
        .await
        .expect_code(0);
    assert_eq!(writes(&env), 0);
    assert_eq!(bulk_submissions(&env), 0);
    assert!(env.customers_by_key().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_is_read_from_the_config_file() {
    let env = TestEnv::new(Faults::default()).await;
    env.write("custsync.toml", "bulk = 10\n");
    let csv = env.write("in.csv", &customers_csv(30, ""));
    env.sync(&csv, &["--rate", "0"]).await.expect_code(0);
    assert_eq!(bulk_submissions(&env), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_a_stopped_bulk_run_never_submitted_are_not_marked_failed() {
    let env = TestEnv::new(Faults::default()).await;
    let mut text = String::from("email,firstname,lastname,password\n");
    for i in 0..100 {
        let password = if i % 10 == 0 {
            "weak"
        } else {
            "Str0ng!Passw0rd"
        };
        text.push_str(&format!("pw{i}@example.com,Ann,Lee,{password}\n"));
    }
    let csv = env.write("in.csv", &text);
    let report = env.path("r.csv");
    let args = [
        "--rate",
        "0",
        "--bulk",
        "10",
        "--concurrency",
        "1",
        "--max-errors",
        "3",
    ];
    let run = env
        .sync(
            &csv,
            &[&args[..], &["--report", report.to_str().unwrap()]].concat(),
        )
        .await;
    run.expect_code(4);
    let rows = read_report(&report);
    let failed = rows.iter().filter(|r| r["status"] == "failed").count();
    assert!(
        rows.iter().any(|r| r["status"] == "not_sent"),
        "stopped early"
    );
    let stats = env.custsync(&["state", "stats"], false).await;
    assert!(
        stats.stdout.contains(&format!("failed:     {failed}\n")),
        "only the failed rows are failed keys ({failed}): {}",
        stats.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_sent_again_after_a_lost_answer_is_adopted_a_hundred_emails_a_search() {
    // Half the answers lost: a bulk goes again, and its creates meet "already exists".
    let env = TestEnv::new(Faults {
        p_bulk_answer_lost: 0.5,
        ..Faults::default()
    })
    .await;
    let csv = env.write("in.csv", &customers_csv(500, ""));
    let report = env.path("r.csv");
    let args = [
        "--rate",
        "0",
        "--bulk",
        "100",
        "--report",
        report.to_str().unwrap(),
    ];
    env.sync(&csv, &args).await;
    let adopted = (read_report(&report).iter())
        .filter(|r| r["message"].contains("adopted"))
        .count();
    // One search a hundred adopted rows (and a few for the shop's count and the rest).
    assert!(
        searches(&env) <= adopted / 100 + 6,
        "{} searches for {adopted} adopted rows",
        searches(&env)
    );
    let rerun = env.sync(&csv, &["--rate", "0", "--bulk", "100"]).await;
    rerun.expect_code(0);
    store_equals_shop(&env, 500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_the_shop_already_had_are_not_counted_created_in_bulks() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &customers_csv(30, ""));
    let seed = env.sync_cmd_with_state(&env.path("other-state"), &csv, &["--rate", "0"]);
    run_command(seed).await.expect_code(0);
    let run = env.sync(&csv, &["--rate", "0", "--bulk", "10"]).await;
    run.expect_code(0);
    run.expect_stderr("30 rows: 0 created, 0 updated, 30 unchanged");
    assert_eq!(env.customers_by_key().await.len(), 30);
}

//! `--key custom:<code>`: customers identified by a legacy id held in a custom attribute
//! (`loyalty_no`, which the sandbox's default shop defines), through sync, pull, lost
//! answers, the absent report, export and the store's key kind.

use std::fs;

use custsync_sandbox::Faults;

use crate::support::*;

const KEY: [&str; 2] = ["--key", "custom:loyalty_no"];

/// A file of these (email, legacy id) customers in website 1.
fn legacy_csv(rows: &[(&str, &str)]) -> String {
    let mut s = String::from("email,firstname,lastname,custom:loyalty_no\n");
    for (email, id) in rows {
        s.push_str(&format!("{email},Ann,Lee,{id}\n"));
    }
    s
}

/// A sync with another state directory.
async fn sync_in(
    env: &TestEnv,
    state: &std::path::Path,
    csv: &std::path::Path,
    args: &[&str],
) -> Run {
    let mut cmd = env.sync_cmd_with_state(state, csv, args);
    cmd.args(["--rate", "0"]);
    run_command(cmd).await
}

/// The report's rows in line order (they are written as they finish).
fn by_line(report: &std::path::Path) -> Vec<std::collections::HashMap<String, String>> {
    let mut rows = read_report(report);
    rows.sort_by_key(|r| r["line"].parse::<u64>().expect("line"));
    rows
}

/// The shop's customers as (email, loyalty_no), sorted.
async fn shop_customers(env: &TestEnv) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = (env.sandbox.customers().await)
        .expect("customers")
        .iter()
        .map(|c| {
            let legacy = c["custom_attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["attribute_code"] == "loyalty_no")
                .and_then(|a| a["value"].as_str())
                .unwrap_or_default();
            (
                c["email"].as_str().expect("email").to_owned(),
                legacy.to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_email_is_one_put_of_the_same_customer() {
    let env = TestEnv::new(Faults::default()).await;
    let first = env.write(
        "v1.csv",
        &legacy_csv(&[("ann@x.io", "L-1"), ("bob@x.io", "L-2")]),
    );
    env.sync(&first, &KEY).await.expect_code(0);
    assert_eq!(env.count("POST"), 2);

    let changed = legacy_csv(&[("Ann.New@x.io", "L-1"), ("bob@x.io", "L-2")]);
    let second = env.write("v2.csv", &changed);
    let report = env.path("r.csv");
    let args = [&KEY[..], &["--report", report.to_str().unwrap()]].concat();
    env.sync(&second, &args).await.expect_code(0);
    assert_eq!(env.count("POST"), 2, "no POST for a changed email");
    assert_eq!(env.count("PUT"), 1, "one PUT");
    assert_eq!(
        shop_customers(&env).await,
        [
            ("Ann.New@x.io".to_owned(), "L-1".to_owned()),
            ("bob@x.io".to_owned(), "L-2".to_owned())
        ]
    );
    let rows = by_line(&report);
    assert_eq!(rows[0]["action"], "update");
    assert_eq!(rows[0]["message"], "email: ann@x.io -> Ann.New@x.io");
    assert_eq!(rows[1]["action"], "unchanged");

    // A re-run sends nothing; the absent report and the export name the key's column.
    let before = env.customer_requests().len();
    let only_ann = env.write("v3.csv", &legacy_csv(&[("Ann.New@x.io", "L-1")]));
    let absent = env.path("absent.csv");
    let args = [
        &KEY[..],
        &[
            "--max-absent",
            "100%",
            "--absent-report",
            absent.to_str().unwrap(),
        ],
    ]
    .concat();
    env.sync(&only_ann, &args).await.expect_code(0);
    assert_eq!(env.customer_requests().len(), before, "nothing sent");
    let absent = fs::read_to_string(&absent).expect("absent report");
    let mut lines = absent.lines();
    assert_eq!(lines.next(), Some("website_id,loyalty_no,customer_id"));
    assert!(lines.next().expect("bob").starts_with("1,L-2,"), "{absent}");

    let export = env.custsync(&["state", "export"], false).await;
    export.expect_code(0);
    assert!(
        export
            .stdout
            .starts_with("website_id,loyalty_no,customer_id,payload_hash,synced_at\n1,L-1,"),
        "{}",
        export.stdout
    );
    // The export seeds another store, which then knows its key kind.
    let file = env.write("export.csv", &export.stdout);
    let other = env.path("other");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_custsync"));
    cmd.env_clear()
        .args(["state", "import"])
        .arg(&file)
        .arg("--state")
        .arg(&other);
    let imported = run_command(cmd).await;
    imported.expect_code(0);
    let refused = sync_in(&env, &other, &only_ann, &["--dry-run"]).await;
    refused.expect_code(1);
    refused.expect_stderr("keyed by custom:loyalty_no");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_without_its_key_is_invalid_and_a_file_without_the_column_stops() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write(
        "in.csv",
        &legacy_csv(&[("ann@x.io", "L-1"), ("bob@x.io", " ")]),
    );
    let report = env.path("r.csv");
    let args = [&KEY[..], &["--report", report.to_str().unwrap()]].concat();
    env.sync(&csv, &args).await.expect_code(3);
    let rows = by_line(&report);
    assert_eq!(rows[1]["action"], "invalid");
    assert_eq!(
        rows[1]["message"],
        "line 3: custom:loyalty_no: required value is empty: it identifies the customer \
         (--key custom:loyalty_no)"
    );
    assert_eq!(env.count("POST"), 1);

    let no_column = env.write("plain.csv", "email,firstname,lastname\nann@x.io,Ann,Lee\n");
    let run = env.sync(&no_column, &KEY).await;
    run.expect_code(1);
    run.expect_stderr("the header has no `custom:loyalty_no` column");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_keeps_its_key_kind_and_the_shop_must_define_the_key() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &legacy_csv(&[("ann@x.io", "L-1")]));
    env.sync(&csv, &[]).await.expect_code(0);
    let before = env.customer_requests().len();
    let run = env.sync(&csv, &KEY).await;
    run.expect_code(1);
    run.expect_stderr("keyed by email, but this run is keyed by custom:loyalty_no");
    assert_eq!(env.customer_requests().len(), before, "nothing sent");

    // An attribute the shop does not define stops the run before anything is sent.
    let other = env.write(
        "other.csv",
        "email,firstname,lastname,custom:legacy_id\nbo@x.io,Bo,Ek,7\n",
    );
    let run = sync_in(
        &env,
        &env.path("s2"),
        &other,
        &["--key", "custom:legacy_id"],
    )
    .await;
    run.expect_code(1);
    run.expect_stderr("the shop defines no custom customer attribute `legacy_id`");
    assert_eq!(env.count("POST"), 1, "only the first run's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_records_no_key_two_customers_share_and_the_sync_refuses_its_row() {
    let env = TestEnv::new(Faults::default()).await;
    let seed = env.write(
        "seed.csv",
        &legacy_csv(&[("ann@x.io", "L-1"), ("bob@x.io", "L-2")]),
    );
    sync_in(&env, &env.path("seed-state"), &seed, &[])
        .await
        .expect_code(0);
    // Another system gave a second customer Ann's legacy id (the e-mail key adopts no one).
    let other = env.write("other.csv", &legacy_csv(&[("dup@x.io", "L-1")]));
    sync_in(&env, &env.path("other-state"), &other, &[])
        .await
        .expect_code(0);

    let pulled = env
        .custsync(&["pull", "--key", "custom:loyalty_no"], true)
        .await;
    pulled.expect_code(0);
    pulled.expect_stderr("both have loyalty_no \"L-1\": it is not recorded");
    let export = env.custsync(&["state", "export"], false).await;
    assert!(!export.stdout.contains("L-1"), "{}", export.stdout);

    // Ann's row, with a new e-mail: neither holder is updated, and no third one is made, in
    // this run or the next.
    let csv = env.write(
        "in.csv",
        &legacy_csv(&[("ann.new@x.io", "L-1"), ("bob@x.io", "L-2")]),
    );
    let report = env.path("r.csv");
    let args = [&KEY[..], &["--report", report.to_str().unwrap()]].concat();
    let before = shop_customers(&env).await;
    for _ in 0..2 {
        env.sync(&csv, &args).await.expect_code(3);
        let ann = &by_line(&report)[0];
        assert_eq!(ann["status"], "failed", "{ann:?}");
        assert!(ann["message"].contains("several customers of website 1 have loyalty_no L-1"));
        assert_eq!(ann["http_status"], "", "nothing was sent for it: {ann:?}");
        assert_eq!(shop_customers(&env).await, before);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_by_the_key_then_a_rerun_sends_nothing() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write(
        "in.csv",
        &legacy_csv(&[("ann@x.io", "L-1"), ("bob@x.io", "L-2")]),
    );
    sync_in(&env, &env.path("seed-state"), &csv, &[])
        .await
        .expect_code(0);
    // A customer of the shop without a legacy id.
    let plain = env.write(
        "plain.csv",
        "email,firstname,lastname\ncarl@x.io,Carl,Berg\n",
    );
    sync_in(
        &env,
        &env.path("seed-state"),
        &plain,
        &["--max-absent", "100%"],
    )
    .await
    .expect_code(0);

    let pulled = env
        .custsync(&["pull", "--key", "custom:loyalty_no"], true)
        .await;
    pulled.expect_code(0);
    assert!(
        pulled.stderr.contains("pulled 2 customers")
            && pulled.stderr.contains("1 without a loyalty_no skipped"),
        "{}",
        pulled.stderr
    );
    let before = env.customer_requests().len();
    let report = env.path("r.csv");
    let args = [&KEY[..], &["--report", report.to_str().unwrap()]].concat();
    env.sync(&csv, &args).await.expect_code(0);
    assert_eq!(env.customer_requests().len(), before, "nothing sent");
    assert!(
        read_report(&report)
            .iter()
            .all(|r| r["action"] == "unchanged")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_create_is_adopted_by_its_key_without_a_duplicate() {
    // Every write is made, and its answer lost.
    let env = TestEnv::new(Faults {
        p_write_then_drop: 1.0,
        ..Faults::default()
    })
    .await;
    let csv = env.write(
        "in.csv",
        &legacy_csv(&[("ann@x.io", "L-1"), ("bob@x.io", "L-2")]),
    );
    let report = env.path("r.csv");
    let args = [
        &KEY[..],
        &["--rate", "0", "--report", report.to_str().unwrap()],
    ]
    .concat();
    env.sync(&csv, &args).await.expect_code(0);
    assert_eq!(
        shop_customers(&env).await,
        [
            ("ann@x.io".to_owned(), "L-1".to_owned()),
            ("bob@x.io".to_owned(), "L-2".to_owned())
        ],
        "each once"
    );
    assert_eq!(env.count("PUT"), 0, "found as sent: nothing to update");
    for row in read_report(&report) {
        assert_eq!(row["status"], "ok");
        assert!(
            row["message"].starts_with("adopted existing customer"),
            "{row:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_taken_by_another_legacy_id_is_never_adopted() {
    let env = TestEnv::new(Faults::default()).await;
    let first = env.write("v1.csv", &legacy_csv(&[("ann@x.io", "L-1")]));
    sync_in(&env, &env.path("seed-state"), &first, &KEY)
        .await
        .expect_code(0);
    // Another store, another legacy id with the same e-mail.
    let second = env.write("v2.csv", &legacy_csv(&[("ann@x.io", "L-9")]));
    let report = env.path("r.csv");
    let args = [&KEY[..], &["--report", report.to_str().unwrap()]].concat();
    env.sync(&second, &args).await.expect_code(3);
    let rows = read_report(&report);
    assert_eq!(rows[0]["status"], "failed");
    assert!(
        rows[0]["message"].contains("with loyalty_no \"L-1\", not L-9"),
        "{:?}",
        rows[0]
    );
    assert_eq!(shop_customers(&env).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_absent_keeps_a_customer_whose_email_a_rekeyed_row_still_has() {
    let env = TestEnv::new(Faults::default()).await;
    let first = env.write(
        "v1.csv",
        &legacy_csv(&[("ann@x.io", "L-1"), ("bob@x.io", "L-2")]),
    );
    env.sync(&first, &KEY).await.expect_code(0);
    // The legacy system renumbered Ann, and Bob left: Ann's new row fails (her e-mail is
    // L-1's), and only Bob may be deleted.
    let second = env.write("v2.csv", &legacy_csv(&[("Ann@x.io", "L-9")]));
    let report = env.path("r.csv");
    let args = [
        &KEY[..],
        &[
            "--max-absent",
            "100%",
            "--delete-absent",
            "--max-deletes",
            "5",
        ],
        &["--report", report.to_str().unwrap()],
    ]
    .concat();
    // A dry run cannot read the shop to tell: it says that the real run may keep some.
    let dry = env
        .sync(&second, &[&args[..], &["--dry-run"]].concat())
        .await;
    dry.expect_stderr("would delete 2 absent customers (at most: under a custom key the run");
    let run = env.sync(&second, &args).await;
    run.expect_code(1);
    run.expect_stderr("the file still has its e-mail ann@x.io in website 1, under another key");
    run.expect_stderr("kept 1 absent customers whose e-mail the file still has");
    assert_eq!(read_report(&report)[0]["status"], "failed");
    assert_eq!(
        shop_customers(&env).await,
        [("ann@x.io".to_owned(), "L-1".to_owned())]
    );
    assert_eq!(env.count("DELETE"), 1, "Bob only");

    // Kept, it stays absent: the next run keeps it again, and deletes nothing more.
    env.sync(&second, &args).await.expect_code(1);
    assert_eq!(env.count("DELETE"), 1);
    assert_eq!(shop_customers(&env).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pull_a_changed_email_is_found_by_its_key_not_created_again() {
    let env = TestEnv::new(Faults::default()).await;
    let first = env.write(
        "v1.csv",
        &legacy_csv(&[("ann@x.io", "L-1"), ("bob@x.io", "L-2")]),
    );
    sync_in(&env, &env.path("seed-state"), &first, &KEY)
        .await
        .expect_code(0);
    // A fresh store, no pull, and Bob's e-mail changed: per request and in bulks.
    let second = env.write(
        "v2.csv",
        &legacy_csv(&[("ann@x.io", "L-1"), ("bob.new@x.io", "L-2")]),
    );
    for (state, extra) in [("fresh", &[][..]), ("fresh-bulk", &["--bulk", "10"][..])] {
        let run = sync_in(&env, &env.path(state), &second, &[&KEY[..], extra].concat()).await;
        run.expect_code(0);
        run.expect_stderr("looked up by its key first");
        assert_eq!(
            shop_customers(&env).await,
            [
                ("ann@x.io".to_owned(), "L-1".to_owned()),
                ("bob.new@x.io".to_owned(), "L-2".to_owned())
            ],
            "{state}: one customer per legacy id"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_legacy_id_fixtures_load_and_a_changed_email_updates() {
    let shop = fs::read_to_string(fixture("legacy-shop.toml")).expect("shop fixture");
    let env = TestEnv::with_shop(&shop).await;
    let mapping = fixture("legacy-ids-mapping.toml");
    let args = [
        "--key",
        "custom:legacy_id",
        "--mapping",
        mapping.to_str().unwrap(),
    ];
    env.sync(&fixture("legacy-ids.csv"), &args)
        .await
        .expect_code(0);
    assert_eq!(env.count("POST"), 3);
    env.sync(&fixture("legacy-ids-changed.csv"), &args)
        .await
        .expect_code(0);
    assert_eq!(env.count("POST"), 3, "no create");
    assert_eq!(env.count("PUT"), 1);
    let customers = env.customers_by_key().await;
    assert_eq!(customers.len(), 3);
    let anna = &customers[&(1, "anna.lind@example.se".to_owned())];
    assert_eq!(anna["lastname"], "Lind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulks_under_lost_answers_keep_one_customer_per_legacy_id() {
    let env = TestEnv::new(Faults {
        p_bulk_retriable: 0.05,
        p_bulk_answer_lost: 0.2,
        ..Faults::default()
    })
    .await;
    let emails: Vec<String> = (0..200).map(|i| format!("p{i}@x.io")).collect();
    let ids: Vec<String> = (0..200).map(|i| format!("L-{i}")).collect();
    let rows: Vec<(&str, &str)> = emails
        .iter()
        .zip(&ids)
        .map(|(e, i)| (&e[..], &i[..]))
        .collect();
    let csv = env.write("v1.csv", &legacy_csv(&rows));
    let args = [&KEY[..], &["--rate", "0", "--bulk", "20"]].concat();
    // A lost answer leaves its bulk to the next run, which settles it first.
    env.sync(&csv, &args).await;
    env.sync(&csv, &args).await.expect_code(0);
    let expected: Vec<(String, String)> = {
        let mut v: Vec<_> = emails.iter().cloned().zip(ids.iter().cloned()).collect();
        v.sort();
        v
    };
    assert_eq!(shop_customers(&env).await, expected, "each legacy id once");

    // Changed e-mails go out as bulk updates of the same customers.
    let changed: Vec<String> = (0..200).map(|i| format!("q{i}@x.io")).collect();
    let rows: Vec<(&str, &str)> = changed
        .iter()
        .zip(&ids)
        .map(|(e, i)| (&e[..], &i[..]))
        .collect();
    let csv = env.write("v2.csv", &legacy_csv(&rows));
    env.sync(&csv, &args).await;
    env.sync(&csv, &args).await.expect_code(0);
    let mut expected: Vec<_> = changed.into_iter().zip(ids).collect();
    expected.sort();
    assert_eq!(shop_customers(&env).await, expected, "updated, not created");
    let before = env.customer_requests().len();
    env.sync(&csv, &args).await.expect_code(0);
    assert_eq!(
        env.customer_requests().len(),
        before,
        "a re-run sends nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_create_then_a_changed_email_makes_no_second_customer() {
    // Every write is made and its answer lost, and nothing is tried twice: the first run's
    // create is made without custsync knowing it.
    let env = TestEnv::new(Faults {
        p_write_then_drop: 1.0,
        ..Faults::default()
    })
    .await;
    let once = ["--rate", "0", "--retries", "0"];
    let first = env.write("v1.csv", &legacy_csv(&[("ann@x.io", "L-1")]));
    env.sync(&first, &[&KEY[..], &once].concat()).await;
    assert_eq!(shop_customers(&env).await.len(), 1);
    // Ann's e-mail changes before the next run: "already exists" cannot catch it.
    let second = env.write("v2.csv", &legacy_csv(&[("ann.new@x.io", "L-1")]));
    env.sync(&second, &[&KEY[..], &once].concat()).await;
    let customers = shop_customers(&env).await;
    assert_eq!(customers.len(), 1, "one customer of L-1: {customers:?}");
    assert_eq!(customers[0], ("ann.new@x.io".to_owned(), "L-1".to_owned()));
}

//! Writes in doubt: an update or delete whose answer was lost is sent again by the next run,
//! so that going back to the last confirmed values is never taken for "unchanged".

use std::time::{Duration, Instant};

use custsync_sandbox::Faults;

use crate::support::*;

const ORIGINAL: &str = "email,firstname,lastname\nann@example.com,Ann,Original\n";
const MISTAKE: &str = "email,firstname,lastname\nann@example.com,Ann,Mistake\n";

/// Ann's last name in the shop.
async fn lastname(env: &TestEnv) -> Option<String> {
    let shop = env.customers_by_key().await;
    let ann = shop.get(&(1, "ann@example.com".to_owned()))?;
    ann["lastname"].as_str().map(str::to_owned)
}

/// `state stats`' line for the keys in doubt.
async fn in_doubt(env: &TestEnv) -> String {
    let run = env.custsync(&["state", "stats"], false).await;
    run.expect_code(0);
    run.stdout
        .lines()
        .find(|l| l.starts_with("in doubt:"))
        .unwrap_or_else(|| panic!("no in-doubt line: {}", run.stdout))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A dry run's report of `csv`, one row.
async fn dry_run(
    env: &TestEnv,
    csv: &std::path::Path,
) -> std::collections::HashMap<String, String> {
    let report = env.path("dry.csv");
    env.sync(csv, &["--dry-run", "--report", report.to_str().unwrap()])
        .await
        .expect_code(0);
    let mut rows = read_report(&report);
    assert_eq!(rows.len(), 1);
    rows.remove(0)
}

/// Syncs `Original` again on a clean shop: the update in doubt is sent, and the shop is right.
async fn the_next_run_repairs_the_shop(env: &mut TestEnv) {
    env.restart(Faults::default()).await;
    let original = env.path("original.csv");
    let report = env.path("r.csv");
    env.sync(
        &original,
        &["--rate", "0", "--report", report.to_str().unwrap()],
    )
    .await
    .expect_code(0);
    let rows = read_report(&report);
    assert_eq!(
        (rows[0]["action"].as_str(), rows[0]["status"].as_str()),
        ("update", "ok"),
        "{rows:?}"
    );
    assert!(
        rows[0]["message"].contains("answer to the last update was lost"),
        "{rows:?}"
    );
    assert_eq!(lastname(env).await.as_deref(), Some("Original"));
    assert_eq!(in_doubt(env).await, "in doubt: 0");
    // Settled: the next run is a plain re-run again.
    let before = env.customer_requests().len();
    env.sync(&original, &["--rate", "0"]).await.expect_code(0);
    assert_eq!(
        env.customer_requests().len(),
        before,
        "nothing left in doubt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_whose_answer_a_kill_lost_is_sent_again() {
    let mut env = TestEnv::persistent(Faults::default()).await;
    let original = env.write("original.csv", ORIGINAL);
    let mistake = env.write("mistake.csv", MISTAKE);
    env.sync(&original, &["--rate", "0"]).await.expect_code(0);

    // The shop writes at once but answers only after a minute: killed in between.
    env.restart(Faults {
        latency: Duration::from_secs(60),
        ..Faults::default()
    })
    .await;
    let mut child = env.spawn(&mistake, &["--rate", "0"]);
    let started = Instant::now();
    while lastname(&env).await.as_deref() != Some("Mistake") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the PUT never came"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert_eq!(in_doubt(&env).await, "in doubt: 1");
    let row = dry_run(&env, &original).await;
    assert_eq!(
        (row["action"].as_str(), row["status"].as_str()),
        ("update", "planned")
    );
    assert!(
        row["message"].contains("answer to the last update was lost"),
        "{row:?}"
    );

    the_next_run_repairs_the_shop(&mut env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_answered_500_after_its_write_is_sent_again() {
    let mut env = TestEnv::persistent(Faults::default()).await;
    let original = env.write("original.csv", ORIGINAL);
    let mistake = env.write("mistake.csv", MISTAKE);
    env.sync(&original, &["--rate", "0"]).await.expect_code(0);

    env.restart(Faults {
        p_write_then_500: 1.0,
        ..Faults::default()
    })
    .await;
    env.sync(&mistake, &["--rate", "0", "--retries", "1"])
        .await
        .expect_code(3);
    assert_eq!(env.count("PUT"), 2, "tried and retried");
    assert_eq!(lastname(&env).await.as_deref(), Some("Mistake"));
    assert_eq!(in_doubt(&env).await, "in doubt: 1");
    let row = dry_run(&env, &original).await;
    assert_eq!(
        (row["action"].as_str(), row["status"].as_str()),
        ("update", "planned")
    );

    the_next_run_repairs_the_shop(&mut env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_refused_outright_leaves_nothing_in_doubt() {
    let env = TestEnv::new(Faults::default()).await;
    let original = env.write(
        "original.csv",
        "email,firstname,lastname,group_id\nann@example.com,Ann,Original,1\n",
    );
    let refused = env.write(
        "refused.csv",
        "email,firstname,lastname,group_id\nann@example.com,Ann,Mistake,99\n",
    );
    env.sync(&original, &["--rate", "0"]).await.expect_code(0);
    env.sync(&refused, &["--rate", "0"]).await.expect_code(3);
    assert_eq!(in_doubt(&env).await, "in doubt: 0", "a 400 changed nothing");
    let before = env.customer_requests().len();
    env.sync(&original, &["--rate", "0"]).await.expect_code(0);
    assert_eq!(env.customer_requests().len(), before);
    assert_eq!(lastname(&env).await.as_deref(), Some("Original"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_whose_answer_was_lost_is_not_taken_for_done_or_undone() {
    let mut env = TestEnv::persistent(Faults::default()).await;
    let both = env.write(
        "both.csv",
        "email,firstname,lastname\nann@example.com,Ann,Lee\nbo@example.com,Bo,Ek\n",
    );
    let ann = env.write(
        "ann.csv",
        "email,firstname,lastname\nann@example.com,Ann,Lee\n",
    );
    env.sync(&both, &["--rate", "0"]).await.expect_code(0);

    env.restart(Faults {
        p_write_then_500: 1.0,
        ..Faults::default()
    })
    .await;
    let run = env
        .sync(
            &ann,
            &[
                "--rate",
                "0",
                "--retries",
                "0",
                "--delete-absent",
                "--max-deletes",
                "1",
            ],
        )
        .await;
    run.expect_code(1);
    assert!(
        run.stderr.contains("could not be deleted"),
        "{}",
        run.stderr
    );
    assert_eq!(env.customers_by_key().await.len(), 1, "the shop deleted Bo");
    assert_eq!(in_doubt(&env).await, "in doubt: 1");

    // Bo is back in the file: the store still maps him, but the shop may not have him.
    env.restart(Faults::default()).await;
    let report = env.path("r.csv");
    env.sync(
        &both,
        &["--rate", "0", "--report", report.to_str().unwrap()],
    )
    .await
    .expect_code(0);
    let rows = read_report(&report);
    let bo = rows
        .iter()
        .find(|r| r["email"] == "bo@example.com")
        .expect("Bo's row");
    assert_eq!(bo["action"], "update", "{bo:?}");
    assert!(bo["message"].contains("created again"), "{bo:?}");
    assert_eq!(
        env.customers_by_key().await.len(),
        2,
        "Bo is in the shop again"
    );
    assert_eq!(in_doubt(&env).await, "in doubt: 0");
}

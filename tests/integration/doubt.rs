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

/// A shop with Ann synced as `Original`, restarted with `faults`; and the file with `Mistake`.
async fn original_synced_then(faults: Faults) -> (TestEnv, std::path::PathBuf) {
    let mut env = TestEnv::persistent(Faults::default()).await;
    let original = env.write("original.csv", ORIGINAL);
    let mistake = env.write("mistake.csv", MISTAKE);
    env.sync(&original, &["--rate", "0"]).await.expect_code(0);
    env.restart(faults).await;
    (env, mistake)
}

/// The shop holds `Mistake`, and the store says the update is in doubt: `state stats` counts
/// it, and a dry run of `Original` plans it as an update saying why.
async fn the_update_is_in_doubt(env: &TestEnv) {
    assert_eq!(lastname(env).await.as_deref(), Some("Mistake"));
    assert_eq!(in_doubt(env).await, "in doubt: 1");
    sync_original(env, &["--dry-run"], "planned").await;
}

/// Syncs `Original` with `args`; its one row must be an update with `status`, saying it is
/// sent because the last update's answer was lost.
async fn sync_original(env: &TestEnv, args: &[&str], status: &str) {
    let report = env.path("r.csv");
    let mut args = args.to_vec();
    args.extend(["--rate", "0", "--report", report.to_str().unwrap()]);
    env.sync(&env.path("original.csv"), &args)
        .await
        .expect_code(0);
    let rows = read_report(&report);
    assert_eq!(
        (rows[0]["action"].as_str(), rows[0]["status"].as_str()),
        ("update", status),
        "{rows:?}"
    );
    assert!(
        rows[0]["message"].contains("answer to the last update was lost"),
        "{rows:?}"
    );
}

/// Syncs `Original` again on a clean shop: the update in doubt is sent, and the shop is right.
async fn the_next_run_repairs_the_shop(env: &mut TestEnv) {
    env.restart(Faults::default()).await;
    sync_original(env, &[], "ok").await;
    assert_eq!(lastname(env).await.as_deref(), Some("Original"));
    assert_eq!(in_doubt(env).await, "in doubt: 0");
    // Settled: the next run is a plain re-run again.
    let before = env.customer_requests().len();
    env.sync(&env.path("original.csv"), &["--rate", "0"])
        .await
        .expect_code(0);
    assert_eq!(
        env.customer_requests().len(),
        before,
        "nothing left in doubt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_whose_answer_a_kill_lost_is_sent_again() {
    // The shop writes at once but answers only after a minute: killed in between.
    let (mut env, mistake) = original_synced_then(Faults {
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
    the_update_is_in_doubt(&env).await;
    the_next_run_repairs_the_shop(&mut env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_answered_500_after_its_write_is_sent_again() {
    let (mut env, mistake) = original_synced_then(Faults {
        p_write_then_500: 1.0,
        ..Faults::default()
    })
    .await;
    env.sync(&mistake, &["--rate", "0", "--retries", "1"])
        .await
        .expect_code(3);
    assert_eq!(env.count("PUT"), 2, "tried and retried");
    the_update_is_in_doubt(&env).await;
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
    env.sync(&env.path("original.csv"), &["--rate", "0"])
        .await
        .expect_code(0);
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
                "--max-absent",
                "100%",
                "--delete-absent",
                "--max-deletes",
                "1",
            ],
        )
        .await;
    run.expect_code(1);
    run.expect_stderr("could not be deleted");
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

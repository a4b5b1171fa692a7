//! The state store bound to one shop: a run elsewhere exits 1 having sent nothing and changed
//! nothing; `state rebind` moves the binding; `state stats` shows it; a store from before
//! bindings is bound by its next run, but not used with the embedded sandbox.

use std::path::Path;
use std::process::Stdio;

use custsync_sandbox::Faults;

use crate::support::*;

/// `custsync <args> --state <state>` aimed at `shop`, or at the embedded sandbox (no endpoint)
/// as a cron job that lost its environment would run it.
async fn run_at(shop: Option<&TestEnv>, state: &Path, args: &[&str]) -> Run {
    let endpoint = shop.map(|s| s.sandbox.endpoint());
    run_via(shop, endpoint.as_deref(), state, args).await
}

/// The same with `shop`'s endpoint given as `endpoint`.
async fn run_via(
    shop: Option<&TestEnv>,
    endpoint: Option<&str>,
    state: &Path,
    args: &[&str],
) -> Run {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_custsync"));
    cmd.env_clear().args(args).arg("--state").arg(state);
    if let (Some(shop), Some(endpoint)) = (shop, endpoint) {
        cmd.env("CUSTSYNC_CLIENT_SECRET", SECRET)
            .args(["--endpoint", endpoint])
            .args(["--ims-url", &shop.sandbox.ims_url()])
            .args(["--client-id", "sandbox"]);
    }
    cmd.stdin(Stdio::null());
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run custsync"))
        .await
        .expect("join");
    Run::from(out)
}

/// The run was refused, having sent nothing, for going to `target` with a store bound to `bound`.
#[track_caller]
fn assert_refused(run: &Run, bound: &str, target: &str) {
    run.expect_code(1);
    let says = format!("is bound to {bound}, but this run goes to {target}; nothing was sent");
    assert_says(&run.stderr, &says);
    assert_says(&run.stderr, "state rebind");
}

/// `output` says `what`.
#[track_caller]
fn assert_says(output: &str, what: &str) {
    assert!(output.contains(what), "expected {what:?} in:\n{output}");
}

/// What `state stats` says the store is bound to.
async fn bound_to(env: &TestEnv) -> String {
    let stats = env.custsync(&["state", "stats"], false).await;
    let stdout = &stats.expect_code(0).stdout;
    let line = stdout.lines().find_map(|l| l.strip_prefix("bound to:"));
    line.expect("a binding line").trim().to_owned()
}

async fn export(env: &TestEnv) -> String {
    env.custsync(&["state", "export"], false)
        .await
        .expect_code(0)
        .stdout
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_bound_to_one_shop_is_refused_elsewhere_with_nothing_sent() {
    let shop_a = TestEnv::new(Faults::default()).await;
    let shop_b = TestEnv::new(Faults::default()).await;
    let csv = shop_a.write("in.csv", &customers_csv(5, ""));
    shop_a.sync(&csv, &[]).await.expect_code(0);
    let bound = bound_to(&shop_a).await;
    let want = format!("{} (since", shop_a.sandbox.endpoint());
    assert!(bound.starts_with(&want), "{bound}");
    let mappings = export(&shop_a).await;
    let sent_to_a = shop_a.customer_requests().len();

    // The next file has changes, so a run that went ahead would send them.
    let changed = shop_a.write("in.csv", &customers_csv(5, "-changed"));
    let csv_arg = changed.to_str().unwrap();
    let state = shop_a.state();
    for args in [
        vec!["sync", csv_arg],
        vec!["sync", csv_arg, "--dry-run"],
        vec!["pull"],
    ] {
        let run = run_at(None, &state, &args).await;
        assert_refused(&run, &shop_a.sandbox.endpoint(), "the embedded sandbox");
        assert!(
            !state.join("sandbox").exists(),
            "{args:?}: the embedded sandbox was not even started"
        );

        let run = run_at(Some(&shop_b), &state, &args).await;
        assert_refused(&run, &shop_a.sandbox.endpoint(), &shop_b.sandbox.endpoint());
    }
    assert!(shop_b.customer_requests().is_empty(), "nothing sent to B");
    // A summary file from a good night before says what this night's refused run was.
    let summary_path = shop_a.path("nightly.json");
    std::fs::write(&summary_path, "{\"exit_code\": 0}").expect("write");
    let args = [
        "sync",
        csv_arg,
        "--summary-json",
        summary_path.to_str().unwrap(),
    ];
    run_at(Some(&shop_b), &state, &args).await.expect_code(1);
    assert_fatal_summary(&summary_path, "nothing was sent");
    assert_eq!(shop_a.customer_requests().len(), sent_to_a, "nor to A");
    assert_eq!(export(&shop_a).await, mappings, "the store is untouched");

    // The shop's address changed (here: another name for the same host): refused until the
    // binding is moved on purpose, then the same mappings serve.
    let moved = shop_a.sandbox.endpoint().replace("127.0.0.1", "localhost");
    let run = run_via(Some(&shop_a), Some(&moved), &state, &["sync", csv_arg]).await;
    assert_refused(&run, &shop_a.sandbox.endpoint(), &moved);
    let run = run_at(None, &state, &["state", "rebind", "--endpoint", &moved]).await;
    run.expect_code(0);
    let was = shop_a.sandbox.endpoint();
    assert_says(&run.stdout, &format!("now bound to {moved} (was {was})"));
    let run = run_via(Some(&shop_a), Some(&moved), &state, &["sync", csv_arg]).await;
    run.expect_code(0);
    assert_says(&run.stderr, "5 updated");
    assert_eq!(shop_a.customers_by_key().await.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_from_before_bindings_is_bound_by_its_next_run_but_not_used_with_the_sandbox() {
    let env = TestEnv::new(Faults::default()).await;
    // Mappings without a binding, as an older custsync left them.
    let old = env.write(
        "old.csv",
        "website_id,email,customer_id,payload_hash,synced_at\n\
         1,old@example.com,4242,00000000000000000000000000000001,2026-01-01T00:00:00Z\n",
    );
    env.custsync(&["state", "import", old.to_str().unwrap()], false)
        .await
        .expect_code(0);
    let csv = env.write("in.csv", &customers_csv(2, ""));

    let run = run_at(None, &env.state(), &["sync", csv.to_str().unwrap()]).await;
    run.expect_code(1);
    assert_says(&run.stderr, "came from a real shop");
    assert_says(&run.stderr, "state rebind");

    // The imported mapping is not in the file: absent, on purpose.
    let run = env.sync(&csv, &["--max-absent", "100%"]).await;
    run.expect_code(0);
    let note = "holds 1 mappings that name no shop (an import, or a custsync from before \
                bindings); it is now bound to";
    assert_says(&run.stderr, &format!("{note} {}", env.sandbox.endpoint()));
    let bound = bound_to(&env).await;
    assert!(bound.starts_with(&env.sandbox.endpoint()), "{bound}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_store_is_bound_by_its_first_mapping_not_by_a_dry_run_or_a_refusal() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &customers_csv(2, ""));
    env.sync(&csv, &["--dry-run"]).await.expect_code(0);
    let bound = bound_to(&env).await;
    assert!(bound.starts_with("nothing yet"), "{bound}");

    // Every row refused by the shop: nothing recorded, so nothing bound.
    let refused = env.write(
        "refused.csv",
        "email,firstname,lastname,password\na@example.com,A,B,short\n",
    );
    env.sync(&refused, &[]).await.expect_code(3);
    let bound = bound_to(&env).await;
    assert!(bound.starts_with("nothing yet"), "{bound}");

    env.sync(&csv, &[]).await.expect_code(0);
    let bound = bound_to(&env).await;
    assert!(bound.starts_with(&env.sandbox.endpoint()), "{bound}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mappings_bound_on_trust_to_another_shop_overwrite_no_stranger() {
    let shop_a = TestEnv::new(Faults::default()).await;
    let shop_b = TestEnv::new(Faults::default()).await;
    // In B, other people hold the ids that A gave its customers.
    let strangers = shop_b.write(
        "strangers.csv",
        &customers_csv(3, "").replace("user", "zed"),
    );
    shop_b.sync(&strangers, &[]).await.expect_code(0);
    let csv = shop_a.write("in.csv", &customers_csv(3, ""));
    shop_a.sync(&csv, &[]).await.expect_code(0);
    let changed = shop_a.write("changed.csv", &customers_csv(3, "-changed"));
    let changed_arg = changed.to_str().unwrap();
    let before = shop_b.customers_by_key().await;
    let puts = shop_b.count("PUT");

    // A's export imported into a fresh store, used against B.
    let imported = shop_a.path("imported");
    let file = shop_a.write("export.csv", &export(&shop_a).await);
    let run = run_at(
        None,
        &imported,
        &["state", "import", file.to_str().unwrap()],
    )
    .await;
    run.expect_code(0);
    // And A's own store rebound to B on purpose.
    let b = shop_b.sandbox.endpoint();
    let run = run_at(
        None,
        &shop_a.state(),
        &["state", "rebind", "--endpoint", &b],
    )
    .await;
    run.expect_code(0);
    assert_says(
        &run.stdout,
        "the next sync reads a sample of its 3 mappings",
    );
    for state in [&imported, &shop_a.state()] {
        let run = run_at(Some(&shop_b), state, &["sync", changed_arg]).await;
        run.expect_code(1);
        assert_says(
            &run.stderr,
            "the state store's mappings are not this shop's: customer ",
        );
        assert_says(
            &run.stderr,
            "@example.com in website 1 here, but the store maps user",
        );
        assert_says(&run.stderr, "to it; nothing was sent");
        let args = [
            "sync",
            changed_arg,
            "--max-absent",
            "100%",
            "--delete-absent",
        ];
        let run = run_at(
            Some(&shop_b),
            state,
            &[&args[..], &["--max-deletes", "9"]].concat(),
        )
        .await;
        run.expect_code(1);
    }
    assert_eq!(shop_b.count("PUT"), puts, "no stranger overwritten");
    assert_eq!(shop_b.count("DELETE"), 0, "nor deleted");
    assert_eq!(shop_b.customers_by_key().await, before);

    // Rebound to its own shop, the store checks out once and then serves.
    let a = shop_a.sandbox.endpoint();
    run_at(
        None,
        &shop_a.state(),
        &["state", "rebind", "--endpoint", &a],
    )
    .await
    .expect_code(0);
    let run = run_at(Some(&shop_a), &shop_a.state(), &["sync", changed_arg]).await;
    run.expect_code(0);
    assert_says(&run.stderr, "3 updated");
    let bound = bound_to(&shop_a).await;
    assert!(!bound.contains("checks its mappings"), "{bound}");
}

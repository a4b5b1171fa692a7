//! The state directory on a shared machine, and after its files were damaged: refused when
//! other users can reach it, never followed through a planted link, a damaged index rebuilt,
//! a damaged database refused instead of taken for empty.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};

use custsync_sandbox::Faults;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_directory_others_can_reach_is_refused_before_any_request() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &customers_csv(5, ""));
    fs::create_dir(env.state()).expect("mkdir");
    fs::set_permissions(env.state(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let run = env.sync(&csv, &["--rate", "0"]).await;
    run.expect_code(1);
    let fix = format!("chmod 700 {}", env.state().display());
    run.expect_stderr(&fix);
    assert!(env.customer_requests().is_empty(), "no request");
    assert!(
        fs::read_dir(env.state()).expect("read").next().is_none(),
        "nothing created in it"
    );

    // Fixed as told, it is used; everything in it is private.
    fs::set_permissions(env.state(), fs::Permissions::from_mode(0o700)).expect("chmod");
    env.sync(&csv, &["--rate", "0"]).await.expect_code(0);
    for entry in fs::read_dir(env.state()).expect("read") {
        let meta = entry.expect("entry").metadata().expect("meta");
        let want = if meta.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(meta.permissions().mode() & 0o777, want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_links_are_never_followed() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &customers_csv(5, ""));
    let victim = env.write("victim.txt", "precious");
    let victim_mode = fs::metadata(&victim).expect("meta").permissions().mode();
    for planted in ["lock", "index.bin.tmp", "index.bin", "db.mark"] {
        let state = env.path(&format!("state-{planted}"));
        let sync = || {
            let mut cmd = env.sync_cmd_with_state(&state, &csv, &["--rate", "0"]);
            async move {
                let out = tokio::task::spawn_blocking(move || cmd.output().expect("run"));
                Run::from(out.await.expect("join"))
            }
        };
        // A state directory of a finished run, then a link planted in it.
        sync().await.expect_code(0);
        let _ = fs::remove_file(state.join(planted));
        symlink(&victim, state.join(planted)).expect("ln");
        let run = sync().await;
        run.expect_code(1);
        assert!(
            run.stderr.contains("symbolic link") && run.stderr.contains(planted),
            "{planted}: {}",
            run.stderr
        );
        assert_eq!(fs::read_to_string(&victim).expect("victim"), "precious");
        let mode = fs::metadata(&victim).expect("meta").permissions().mode();
        assert_eq!(mode, victim_mode, "{planted}: not chmodded");
    }
}

/// Syncs `n` customers, then runs `damage` on the state directory.
async fn synced_then(
    n: usize,
    damage: impl FnOnce(&std::path::Path),
) -> (TestEnv, std::path::PathBuf) {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &customers_csv(n, ""));
    env.sync(&csv, &["--rate", "0"]).await.expect_code(0);
    damage(&env.state());
    (env, csv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_index_is_rebuilt_with_a_warning() {
    let n = 300;
    type Damage = fn(&mut Vec<u8>);
    let damages: [(&str, Damage); 3] = [
        ("truncated", |b| b.truncate(b.len() / 2)),
        ("huge count", |b| {
            b[16..24].copy_from_slice(&u64::MAX.to_le_bytes())
        }),
        ("overwritten ids", |b| {
            // Every record's customer id (its last 8 bytes) made 1.
            for record in b[32..].chunks_exact_mut(24) {
                record[16..].copy_from_slice(&1u64.to_le_bytes());
            }
        }),
    ];
    for (what, damage) in damages {
        let (env, csv) = synced_then(n, |state| {
            let path = state.join("index.bin");
            let mut bytes = fs::read(&path).expect("index");
            damage(&mut bytes);
            fs::write(&path, bytes).expect("write");
        })
        .await;
        let ids: std::collections::HashMap<String, String> = env
            .customers_by_key()
            .await
            .into_iter()
            .map(|((_, email), c)| (email, c["id"].to_string()))
            .collect();
        let before = env.customer_requests().len();
        let report = env.path("r.csv");
        let run = env
            .sync(&csv, &["--rate", "0", "--report", report.to_str().unwrap()])
            .await;
        run.expect_code(0);
        assert!(run.stderr.contains("index.bin"), "{what}: {}", run.stderr);
        assert!(run.stderr.contains("rebuilding"), "{what}: {}", run.stderr);
        assert_eq!(env.customer_requests().len(), before, "{what}: no request");
        for row in read_report(&report) {
            assert_eq!(row["action"], "unchanged", "{what}: {row:?}");
            assert_eq!(row["customer_id"], ids[&row["email"]], "{what}: {row:?}");
        }
        // And the next run trusts the index it wrote.
        let run = env.sync(&csv, &["--rate", "0"]).await;
        run.expect_code(0);
        assert!(!run.stderr.contains("rebuilding"), "{what}: {}", run.stderr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_database_is_refused_not_taken_for_empty() {
    type Damage = fn(&std::path::Path);
    let damages: [(&str, Damage); 3] = [
        ("emptied", |log| {
            fs::OpenOptions::new()
                .write(true)
                .open(log)
                .expect("open")
                .set_len(0)
                .expect("truncate")
        }),
        ("cut in half", |log| {
            let len = fs::metadata(log).expect("meta").len();
            fs::OpenOptions::new()
                .write(true)
                .open(log)
                .expect("open")
                .set_len(len / 2)
                .expect("truncate")
        }),
        ("garbled", |log| {
            let mut b = fs::read(log).expect("read");
            let mid = b.len() / 3;
            for x in &mut b[mid..] {
                *x ^= 0x5a;
            }
            fs::write(log, b).expect("write")
        }),
    ];
    for (what, damage) in damages {
        let (env, csv) = synced_then(2000, |state| damage(&state.join("db").join("db"))).await;
        let before = env.customer_requests().len();
        let run = env.sync(&csv, &["--rate", "0"]).await;
        run.expect_code(1);
        assert!(
            run.stderr.contains(&env.state().display().to_string()),
            "{what}: names the directory: {}",
            run.stderr
        );
        assert_eq!(env.customer_requests().len(), before, "{what}: no request");
        assert_eq!(env.customers_by_key().await.len(), 2000, "{what}");
    }
}

//! The fast path for unchanged rows: a row whose raw cells the index knows as last found
//! unchanged is planned unchanged without being validated. It must change no decision: a
//! changed cell, another `--empty-value` or mapping, a key in doubt or failed, duplicates
//! and absent customers all come out as they would by the row's values.

use std::path::Path;

use custsync_sandbox::Faults;

use crate::support::*;

/// The row hashes `index.bin` holds, one per key (see `state/index.rs`: 32-byte header,
/// 32-byte records of digest, payload hash, id, row hash).
fn row_hashes(state: &Path) -> Vec<u64> {
    let bytes = std::fs::read(state.join("index.bin")).expect("index.bin");
    assert_eq!(&bytes[..8], b"CSIDX4\0\0");
    bytes[32..]
        .chunks_exact(32)
        .map(|r| u64::from_le_bytes(r[24..32].try_into().expect("8 bytes")))
        .collect()
}

fn actions(rows: &[std::collections::HashMap<String, String>]) -> Vec<(String, String)> {
    let mut got: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r["line"].clone(), r["action"].clone()))
        .collect();
    got.sort_by_key(|(line, _)| line.parse::<u64>().unwrap_or(0));
    got
}

/// Synced, then re-run once: the index holds every row's hash from the first run on.
async fn synced_and_recorded(env: &TestEnv, csv: &Path, n: usize) {
    env.sync(csv, &["--rate", "0"]).await.expect_code(0);
    let hashes = row_hashes(&env.state());
    assert_eq!(hashes.len(), n);
    assert!(
        hashes.iter().all(|&h| h != 0),
        "a row whose create was confirmed is recorded: the first re-run takes the fast path"
    );
    let (rows, _) = env.sync_with_outputs(csv, &[], 0).await;
    assert!(rows.iter().all(|r| r["action"] == "unchanged"));
    let hashes = row_hashes(&env.state());
    assert_eq!(hashes.len(), n);
    assert!(
        hashes.iter().all(|&h| h != 0),
        "unchanged rows are recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_cell_updates_exactly_its_row_and_the_rest_stay_fast() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &customers_csv(20, ""));
    synced_and_recorded(&env, &csv, 20).await;
    let (rows, s) = env.sync_with_outputs(&csv, &[], 0).await;
    assert!(
        rows.iter()
            .all(|r| r["action"] == "unchanged" && r["status"] == "ok")
    );
    let line5 = rows.iter().find(|r| r["line"] == "5").expect("line 5");
    assert_eq!(line5["email"], "user3@example.com");
    assert_eq!(line5["website_id"], "1");
    assert!(!line5["customer_id"].is_empty());
    assert_eq!(
        (s["unchanged"].as_u64(), s["rows"].as_u64()),
        (Some(20), Some(20))
    );

    let changed = customers_csv(20, "").replace("Fïrst7,", "Seven,");
    env.write("in.csv", &changed);
    let before = env.count("PUT");
    let (rows, _) = env.sync_with_outputs(&csv, &[], 0).await;
    let updated: Vec<_> = rows.iter().filter(|r| r["action"] == "update").collect();
    assert_eq!(updated.len(), 1, "{rows:?}");
    assert_eq!(updated[0]["email"], "user7@example.com");
    assert_eq!(env.count("PUT"), before + 1);
    let shop = env.customers_by_key().await;
    assert_eq!(
        shop[&(1, "user7@example.com".to_owned())]["firstname"],
        "Seven"
    );
    // The confirmed update recorded the new row's hash: the next run knows it as it is.
    assert!(row_hashes(&env.state()).iter().all(|&h| h != 0));
    let (rows, _) = env.sync_with_outputs(&csv, &[], 0).await;
    assert!(rows.iter().all(|r| r["action"] == "unchanged"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_empty_value_or_mapping_is_planned_by_the_values() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write(
        "in.csv",
        "email,firstname,lastname,middlename,nick\n\
         ann@example.com,Ann,Lee,NULL,Annie\nbo@example.com,Bo,Ek,Jon,Bobo\n",
    );
    synced_and_recorded(&env, &csv, 2).await;
    let (rows, _) = env
        .sync_with_outputs(&csv, &["--empty-value", "NULL"], 0)
        .await;
    assert_eq!(
        actions(&rows),
        [
            ("2".into(), "update".into()),
            ("3".into(), "unchanged".into())
        ]
    );
    let shop = env.customers_by_key().await;
    let ann = &shop[&(1, "ann@example.com".to_owned())];
    assert!(
        ann["middlename"].as_str().is_none_or(str::is_empty),
        "{ann}"
    );

    // Recorded under the token; a mapping that reads the ignored column is another reading.
    env.sync_with_outputs(&csv, &["--empty-value", "NULL"], 0)
        .await;
    let (rows, _) = env
        .sync_with_outputs(&csv, &["--empty-value", "NULL", "--map", "nick=prefix"], 0)
        .await;
    assert_eq!(
        actions(&rows),
        [("2".into(), "update".into()), ("3".into(), "update".into())]
    );
    let shop = env.customers_by_key().await;
    assert_eq!(shop[&(1, "bo@example.com".to_owned())]["prefix"], "Bobo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_in_doubt_or_failed_is_not_taken_as_unchanged() {
    let mut env = TestEnv::persistent(Faults::default()).await;
    let original = env.write(
        "original.csv",
        "email,firstname,lastname,group_id\nann@example.com,Ann,Original,1\n",
    );
    let mistake = env.write(
        "mistake.csv",
        "email,firstname,lastname,group_id\nann@example.com,Ann,Mistake,1\n",
    );
    let refused = env.write(
        "refused.csv",
        "email,firstname,lastname,group_id\nann@example.com,Ann,Refused,99\n",
    );
    synced_and_recorded(&env, &original, 1).await;

    // The update's answer is lost: the original row, known by its hash, is sent again.
    env.restart(Faults {
        p_write_then_500: 1.0,
        ..Faults::default()
    })
    .await;
    env.sync_with_outputs(&mistake, &["--retries", "0"], 3)
        .await;
    env.restart(Faults::default()).await;
    let (rows, _) = env.sync_with_outputs(&original, &[], 0).await;
    assert_eq!(rows[0]["action"], "update", "{rows:?}");
    assert!(
        rows[0]["message"].contains("answer to the last update was lost"),
        "{rows:?}"
    );
    env.sync_with_outputs(&original, &[], 0).await;

    // A refused row is refused again, run after run: it is never recorded.
    let (first, _) = env.sync_with_outputs(&refused, &[], 3).await;
    assert_ne!(first[0]["status"], "ok", "{first:?}");
    for _ in 0..2 {
        let (rows, _) = env.sync_with_outputs(&refused, &[], 3).await;
        assert_eq!(rows[0]["action"], first[0]["action"], "{rows:?}");
        assert_eq!(rows[0]["status"], first[0]["status"], "{rows:?}");
    }
    let (rows, _) = env.sync_with_outputs(&original, &[], 0).await;
    assert_eq!(rows[0]["action"], "unchanged", "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_and_absent_customers_count_as_by_the_values() {
    let env = TestEnv::new(Faults::default()).await;
    let full = customers_csv(10, "");
    let csv = env.write("in.csv", &full);
    synced_and_recorded(&env, &csv, 10).await;
    // user9 is gone; user2's row twice, and once more with other case and spaces.
    let mut lines: Vec<&str> = full.lines().collect();
    lines.pop();
    let user2 = lines[3].to_owned();
    let shouted = user2.replace("user2@example.com", " USER2@example.com ");
    let mut file = lines.join("\n");
    file.push_str(&format!("\n{user2}\n{shouted}\n"));
    env.write("in.csv", &file);
    let (rows, s) = env
        .sync_with_outputs(&csv, &["--max-absent", "100%"], 3)
        .await;
    let want: Vec<(String, String)> = (2..=10)
        .map(|l| (l.to_string(), "unchanged".to_owned()))
        .chain([(11, "invalid"), (12, "invalid")].map(|(l, a)| (l.to_string(), a.to_owned())))
        .collect();
    assert_eq!(actions(&rows), want);
    let dup = rows.iter().find(|r| r["line"] == "11").expect("line 11");
    assert!(
        dup["message"]
            .contains("line 11: email: duplicate of line 4 (same website_id 1 and email)"),
        "{dup:?}"
    );
    assert_eq!(s["absent"].as_u64(), Some(1), "{s}");
    assert_eq!(s["unchanged"].as_u64(), Some(9), "{s}");
}

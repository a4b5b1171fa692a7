//! The run history (`custsync runs`, `runs show`) and the summary's run keys.

use std::fs;

use custsync_sandbox::Faults;
use sha2::{Digest, Sha256};

use crate::support::*;

/// Rows of `runs show`'s CSV output, header first.
fn csv_lines(text: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.expect("csv").iter().map(str::to_owned).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_runs_are_listed_and_a_runs_failures_read_back_without_a_request() {
    let env = TestEnv::new(Faults::default()).await;
    // Run 1: all good.
    let csv = env.write("in.csv", &customers_csv(5, ""));
    env.sync(&csv, &["--rate", "0"]).await.expect_code(0);

    // Run 2: two new customers whose password the shop refuses (its policy, not the file's
    // syntax: only the shop can say so), one invalid row.
    let mut text = String::from("email,firstname,lastname,password\n");
    for i in 0..5 {
        text.push_str(&format!("user{i}@example.com,Fïrst{i},Changed{i},\n"));
    }
    text.push_str("weak1@example.com,Weak,One,abc\n");
    text.push_str("not-an-email,Bad,Row,\n");
    text.push_str("weak2@example.com,Weak,Two,short\n");
    text.push_str("good@example.com,Good,Row,Str0ng-Passw0rd\n");
    let csv = env.write("in.csv", &text);
    let summary_path = env.path("summary.json");
    let run2 = env
        .sync(
            &csv,
            &[
                "--rate",
                "0",
                "--summary-json",
                summary_path.to_str().unwrap(),
            ],
        )
        .await;
    run2.expect_code(3);
    run2.expect_stderr("custsync runs show 2 --failed");
    let s = summary(&summary_path);
    assert_eq!(s["run_id"], 2);
    assert_eq!(s["exit_code"], 3);

    // Run 3: a dry run of the same file.
    env.sync(&csv, &["--dry-run"]).await;

    let requests = env.sandbox.stats().requests.len();
    let list = env.custsync(&["runs"], false).await;
    list.expect_code(0);
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "a header and three runs:\n{}", list.stdout);
    let ids: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap_or_default())
        .collect();
    assert_eq!(ids, ["3", "2", "1"], "newest first");
    assert!(lines[1].contains("dry run") && lines[2].contains("sync"));
    let columns: Vec<&str> = lines[2].split_whitespace().collect();
    // id, date, time, kind, exit, duration (number, unit), rows, created, updated, unchanged,
    // invalid, failed, not_sent, absent, file -> target
    assert_eq!(&columns[4..5], ["3"], "run 2 exited 3: {}", lines[2]);
    assert_eq!(&columns[7..15], ["9", "1", "5", "0", "1", "2", "0", "0"]);
    assert!(lines[2].contains(&format!("in.csv -> {}", env.sandbox.endpoint())));

    let show = env
        .custsync(&["runs", "show", "2", "--failed"], false)
        .await;
    show.expect_code(0);
    let rows = csv_lines(&show.stdout);
    assert_eq!(rows[0], custsync::report::COLUMNS);
    let failed: Vec<(&str, &str)> = rows[1..]
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str()))
        .collect();
    assert_eq!(
        failed,
        [("7", "weak1@example.com"), ("9", "weak2@example.com")],
        "{}",
        show.stdout
    );
    assert!(rows[1..].iter().all(|r| r[4] == "failed"
        && r[6] == "400"
        && r[7].starts_with("The password needs at least 8 characters")));

    let all = env.custsync(&["runs", "show", "2"], false).await;
    let lines: Vec<u64> = csv_lines(&all.stdout)[1..]
        .iter()
        .map(|r| r[0].parse().expect("line"))
        .collect();
    assert_eq!(
        lines,
        (2..=10).collect::<Vec<_>>(),
        "every row, in file order"
    );
    let invalid = env
        .custsync(&["runs", "show", "2", "--invalid"], false)
        .await;
    let rows = csv_lines(&invalid.stdout);
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[1][0].as_str(), rows[1][3].as_str()), ("8", "invalid"));
    assert_eq!(
        env.sandbox.stats().requests.len(),
        requests,
        "reading the history sends nothing"
    );
    let missing = env.custsync(&["runs", "show", "9"], false).await;
    missing.expect_code(1);
    missing.expect_stderr("no run 9");

    // --keep-runs: a fourth run keeping two drops runs 1 and 2.
    env.sync(&csv, &["--dry-run", "--keep-runs", "2"]).await;
    let list = env.custsync(&["runs"], false).await;
    let ids: Vec<&str> = list
        .stdout
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap_or_default())
        .collect();
    assert_eq!(ids, ["4", "3"]);
    let mut files: Vec<String> = fs::read_dir(env.state().join("runs"))
        .expect("runs dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["000003.csv", "000003.json", "000004.csv", "000004.json"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_says_which_run_file_target_and_version_it_is() {
    let env = TestEnv::new(Faults::default()).await;
    let text = format!(
        "{}broken@,X,Y,1980-01-01,1,1\nnot,a,row\n",
        customers_csv(3, "")
    );
    let csv = env.write("feed.csv", &text);
    let summary_path = env.path("summary.json");
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let run = env
        .sync(
            std::path::Path::new("feed.csv"),
            &[
                "--rate",
                "0",
                "--summary-json",
                summary_path.to_str().unwrap(),
            ],
        )
        .await;
    run.expect_code(3);
    let s = summary(&summary_path);
    assert_eq!(s["run_id"], 1);
    let time = |key: &str| {
        let text = s[key].as_str().expect(key);
        assert!(text.ends_with('Z'), "{key}: {text}");
        chrono::DateTime::parse_from_rfc3339(text).expect("RFC 3339")
    };
    assert!(time("started_at") >= before && time("finished_at") >= time("started_at"));
    assert_eq!(s["file"], "feed.csv", "the path as given");
    let sha: String = Sha256::digest(fs::read(&csv).expect("read"))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(s["file_sha256"], sha);
    assert_eq!(s["target"], env.sandbox.endpoint());
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["exit_code"], 3);
    assert_eq!(s["not_sent"], 0);
    let by_website = s["by_website"].as_object().expect("by_website");
    assert_eq!(by_website["1"]["created"], 3);
    assert_eq!(by_website["1"]["invalid"], 1, "{s}");
    assert_eq!(by_website["unknown"]["invalid"], 1, "{s}");
    let sum: u64 = by_website
        .values()
        .flat_map(|counts| counts.as_object().expect("counts").values())
        .map(|n| n.as_u64().expect("count"))
        .sum();
    assert_eq!(Some(sum), s["rows"].as_u64());
    assert_eq!(
        summary(&env.state().join("runs/000001.json")),
        s,
        "the history keeps the same summary"
    );

    // The embedded sandbox is named as such, and a target's URL loses its credentials (dry
    // runs, each on a state directory of its own).
    let endpoint = env
        .sandbox
        .endpoint()
        .replace("http://", "http://someone:Pa55word@");
    let cases = [
        (vec![], "sandbox".to_owned()),
        (
            vec!["--endpoint", endpoint.as_str()],
            env.sandbox.endpoint(),
        ),
    ];
    for (i, (args, target)) in cases.into_iter().enumerate() {
        let state = env.path(&format!("state-{i}"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_custsync"))
            .env_clear()
            .current_dir(env.dir.path())
            .args(["sync", "feed.csv", "--dry-run", "--summary-json"])
            .arg(&summary_path)
            .arg("--state")
            .arg(&state)
            .args(args)
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(3), "{out:?}");
        assert_eq!(summary(&summary_path)["target"], target.as_str());
    }
}

//! Legacy files: every line accounted for, bad rows reported, the rest synced.

use custsync_sandbox::Faults;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_messy_file_reports_every_line_and_syncs_the_valid_rows() {
    let env = TestEnv::new(Faults::default()).await;
    // Lines: 2 ok, 3 bad email, 4 not UTF-8, 5 too few fields, 6-7 ok (a quoted newline),
    // 8 a duplicate of 2 (case), 9 a future dob, 10 an absurd name, 11 ok, 12-13 a quote
    // left open.
    let csv = fixture("messy.csv");
    let (rows, s) = env.sync_with_outputs(&csv, &[], 3).await;
    let mut lines: Vec<u64> = rows
        .iter()
        .map(|r| r["line"].parse().expect("line"))
        .collect();
    lines.sort();
    assert_eq!(lines, vec![2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13]);
    let by_line = |l: &str| rows.iter().find(|r| r["line"] == l).expect("line present");
    for (line, needle) in [
        ("3", "email"),
        ("4", "not valid UTF-8"),
        ("5", "fields"),
        ("8", "duplicate of line 2"),
        ("9", "dob"),
        ("10", "firstname"),
        ("12", "not closed"),
        ("13", "inside the quoted field that starts on line 12"),
    ] {
        let r = by_line(line);
        assert_eq!(r["action"], "invalid", "line {line}");
        assert!(
            r["message"].contains(needle) && r["message"].starts_with(&format!("line {line}")),
            "line {line}: {}",
            r["message"]
        );
    }
    for line in ["2", "6", "11"] {
        assert_eq!(
            (
                by_line(line)["action"].as_str(),
                by_line(line)["status"].as_str()
            ),
            ("create", "ok"),
            "line {line}"
        );
    }
    let stored = env.customers_by_key().await;
    assert_eq!(stored.len(), 3);
    assert_eq!(
        stored[&(1, "asa@example.se".to_owned())]["firstname"],
        "Åsa"
    );
    assert_eq!(s["rows"].as_u64(), Some(11));
    assert_eq!(
        (s["created"].as_u64(), s["invalid"].as_u64()),
        (Some(3), Some(8))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_level_problems_are_fatal_with_a_clear_message() {
    let env = TestEnv::new(Faults::default()).await;
    let no_lastname = fixture("missing-lastname-column.csv");
    let run = env.sync(&no_lastname, &[]).await;
    run.expect_code(1);
    run.expect_stderr("`lastname`");
    let empty = env.write("b.csv", "");
    assert!(
        env.sync(&empty, &[])
            .await
            .expect_code(1)
            .stderr
            .contains("empty")
    );
    let missing = env.path("nope.csv");
    // The summary file says so, not last night's run.
    let summary_path = env.write("nightly.json", "{\"exit_code\": 0}");
    let args = ["--summary-json", summary_path.to_str().unwrap()];
    assert!(
        env.sync(&missing, &args)
            .await
            .expect_code(1)
            .stderr
            .contains("nope.csv")
    );
    assert_fatal_summary(&summary_path, "nope.csv");
    let header_only = fixture("header-only.csv");
    let run = env.sync(&header_only, &[]).await;
    run.expect_code(0);
    run.expect_stderr("0 rows");
    assert!(env.sandbox.stats().requests.is_empty());
    for bad in [
        &["--rate", "fast"],
        &["--encoding", "bogus"],
        &["--delimiter", "ab"],
    ] {
        let usage = env.sync(&header_only, bad).await;
        usage.expect_code(2);
    }
}

/// The README's second quick-start step: the sample with six rows broken on purpose.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_invalid_rows_fixture_names_each_row_column_and_reason() {
    let env = TestEnv::new(Faults::default()).await;
    let report = env.path("r.csv");
    env.sync(
        &fixture("invalid-rows.csv"),
        &["--rate", "0", "--report", report.to_str().unwrap()],
    )
    .await
    .expect_code(3);
    let rows = read_report(&report);
    assert_eq!(rows.len(), 50, "one report line per data line");
    let mut invalid: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| r["action"] == "invalid")
        .map(|r| (r["line"].as_str(), r["message"].as_str()))
        .collect();
    invalid.sort();
    let expected = [
        ("46", "email: `not-an-email` has no @"),
        ("47", "lastname: required value is empty"),
        ("48", "dob: `1990-02-30` is not a calendar date"),
        ("49", "email: duplicate of line 10"),
        ("50", "gender: `robot` is not one of"),
        ("51", "address_city: required when an address is given"),
    ];
    assert_eq!(invalid.len(), expected.len(), "{invalid:?}");
    for ((line, message), (want_line, want)) in invalid.iter().zip(expected) {
        assert_eq!(*line, want_line);
        assert!(
            message.starts_with(&format!("line {line}: {want}")),
            "line {line}: {message}"
        );
    }
    let created = rows
        .iter()
        .filter(|r| r["action"] == "create" && r["status"] == "ok")
        .count();
    assert_eq!(created, 44);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_the_shop_refuses_are_invalid_in_the_dry_run_already() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write(
        "names.csv",
        "email,firstname,lastname,middlename\n\
         n1@example.com,Ann,Smith (Jr),\n\
         n2@example.com,Bo,Smith/Jones,\n\
         n3@example.com,Cy,#N/A,\n\
         n4@example.com,Di,D,😀\n\
         n5@example.com,Zoë,O'Brien-Smith,J.\n",
    );
    // What the dry run plans is what the real run does: one create, four invalid rows.
    for args in [&["--dry-run"][..], &[]] {
        let (rows, _) = env.sync_with_outputs(&csv, args, 3).await;
        let invalid: Vec<&str> = (rows.iter())
            .filter(|r| r["status"] == "invalid")
            .map(|r| r["line"].as_str())
            .collect();
        assert_eq!(invalid, ["2", "3", "4", "5"], "{args:?}");
    }
    assert_eq!(env.count("POST"), 1, "only the valid name was sent");
}

/// `custsync sync /dev/stdin` fed `text` through a pipe.
async fn sync_piped(env: &TestEnv, text: String, args: &[&str]) -> Run {
    use std::io::Write;
    let mut cmd = env.sync_cmd(std::path::Path::new("/dev/stdin"), args);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let out = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("spawn");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(text.as_bytes()).expect("write");
        drop(stdin);
        child.wait_with_output().expect("wait")
    })
    .await
    .expect("join");
    Run::from(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_can_come_through_a_pipe() {
    let env = TestEnv::new(Faults::default()).await;
    let run = sync_piped(&env, customers_csv(30, ""), &["--rate", "0"]).await;
    run.expect_code(0);
    run.expect_stderr("30 rows: 30 created");
    let run = sync_piped(&env, customers_csv(30, ""), &["--rate", "0"]).await;
    run.expect_code(0);
    run.expect_stderr("30 rows: 0 created, 0 updated, 30 unchanged");
    // A first pass cannot be had of a pipe: said, not taken for an empty file.
    let run = sync_piped(&env, customers_csv(30, ""), &["--on-duplicate", "last"]).await;
    run.expect_code(1);
    run.expect_stderr("can be read only once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e_mails_are_judged_as_the_shop_judges_them() {
    let env = TestEnv::new(Faults::default()).await;
    // (e-mail, the shop takes it), as Magento 2.2+ with Laminas: no TLD list, no IP address,
    // no `--` as a label's third and fourth characters unless punycode.
    let cases = [
        ("ab@ex--ample.com", false),
        ("ab@xn--bcher-kva.example", true),
        ("ab@example.c0m", true),
        ("ann@gmail.con", true),
        ("jöran@example.se", true),
        ("x@sub_domain.example.com", true),
        ("x@example_x.com", false),
        ("a(b)@x.io", false),
        ("\"a.b\"@x.io", true),
        ("a@1.2.3.44", false),
        ("o'brien@example.ie", true),
        ("a@b-.de", false),
    ];
    let mut csv = String::from("email,firstname,lastname\n");
    for (email, _) in cases {
        csv.push_str(&format!("\"{}\",Ann,Lee\n", email.replace('"', "\"\"")));
    }
    let file = env.write("e.csv", &csv);
    let taken = cases.iter().filter(|(_, ok)| *ok).count();
    let refused = cases.len() - taken;
    let dry = env.sync(&file, &["--dry-run"]).await;
    dry.expect_stderr(&format!(
        "would create {taken}, would update 0, 0 unchanged, {refused} invalid"
    ));
    let run = env.sync(&file, &["--rate", "0"]).await;
    run.expect_stderr(&format!(
        "{taken} created, 0 updated, 0 unchanged, {refused} invalid, 0 failed"
    ));
}

//! Legacy files: every line accounted for, bad rows reported, the rest synced.

use custsync_sandbox::Faults;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_messy_file_reports_every_line_and_syncs_the_valid_rows() {
    let env = TestEnv::new(Faults::default()).await;
    let mut bytes = b"\xef\xbb\xbfEmail , FirstName,LastName,dob,gender,custom:note\r\n".to_vec();
    bytes.extend_from_slice("asa@example.se,Åsa,Lindqvist,1985-03-14,female,\r\n".as_bytes()); // 2 ok
    bytes.extend_from_slice(b"bad-email,Bo,Ek,,,\r\n"); // 3 invalid email
    bytes.extend_from_slice(b"j\xf6rg@example.de,J\xf6rg,M,,,\r\n"); // 4 not UTF-8
    bytes.extend_from_slice(b"few@example.com,Few\r\n"); // 5 wrong column count
    bytes.extend_from_slice("quoted@example.com,Quinn,Doe,,,\"two\r\nlines\"\r\n".as_bytes()); // 6-7 ok
    bytes.extend_from_slice(b"ASA@example.se,Dup,Row,,,\r\n"); // 8 duplicate of 2 (case)
    bytes.extend_from_slice(b"late@example.com,Late,Date,2999-01-01,,\r\n"); // 9 future dob
    bytes.extend_from_slice(format!("long@example.com,{},Doe,,,\r\n", "x".repeat(300)).as_bytes()); // 10 absurd
    bytes.extend_from_slice(b"ok2@example.com,Ok,Two,,3,\r\n"); // 11 ok
    bytes.extend_from_slice(b"open@example.com,\"Open,Quote,,,\r\nnext@example.com,N,X,,,\r\n"); // 12-13 unclosed quote
    let csv = env.path("messy.csv");
    std::fs::write(&csv, bytes).expect("write");
    let report = env.path("r.csv");
    let summary_path = env.path("s.json");
    env.sync(
        &csv,
        &[
            "--rate",
            "0",
            "--report",
            report.to_str().unwrap(),
            "--summary-json",
            summary_path.to_str().unwrap(),
        ],
    )
    .await
    .expect_code(3);
    let rows = read_report(&report);
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
        ("13", "unclosed"),
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
    let s = summary(&summary_path);
    assert_eq!(s["rows"].as_u64(), Some(11));
    assert_eq!(
        (s["created"].as_u64(), s["invalid"].as_u64()),
        (Some(3), Some(8))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_level_problems_are_fatal_with_a_clear_message() {
    let env = TestEnv::new(Faults::default()).await;
    let no_lastname = env.write("a.csv", "email,firstname\na@x.io,Ann\n");
    let run = env.sync(&no_lastname, &[]).await;
    run.expect_code(1);
    assert!(run.stderr.contains("`lastname`"), "{}", run.stderr);
    let empty = env.write("b.csv", "");
    assert!(
        env.sync(&empty, &[])
            .await
            .expect_code(1)
            .stderr
            .contains("empty")
    );
    let missing = env.path("nope.csv");
    assert!(
        env.sync(&missing, &[])
            .await
            .expect_code(1)
            .stderr
            .contains("nope.csv")
    );
    let header_only = env.write("c.csv", "email,firstname,lastname\n");
    let run = env.sync(&header_only, &[]).await;
    run.expect_code(0);
    assert!(run.stdout.contains("0 rows"), "{}", run.stdout);
    assert!(env.sandbox.stats().requests.is_empty());
    let usage = env.sync(&header_only, &["--rate", "fast"]).await;
    usage.expect_code(2);
}

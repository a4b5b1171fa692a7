//! Caps on what one row may cost: a huge cell or a row of thousands of columns is `invalid`
//! before its record is built, and the report echoes only the start of it.

use std::fmt::Write as _;

use custsync_sandbox::Faults;

use crate::support::{TestEnv, read_report};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_rows_are_invalid_and_echoed_clipped() {
    let env = TestEnv::new(Faults::default()).await;
    // 400 rows of 10,000 custom: columns, one 10 MB e-mail, and a row that is fine.
    let columns = 10_000;
    let mut text = String::from("email,firstname,lastname");
    for i in 0..columns {
        let _ = write!(text, ",custom:attr{i}");
    }
    text.push('\n');
    let wide: String = (0..columns).map(|i| format!(",{}", i % 10)).collect();
    let empty = ",".repeat(columns);
    for i in 0..400 {
        let _ = writeln!(text, "wide{i}@example.com,Ann,Lee{wide}");
    }
    let huge = format!("{}@example.com", "e".repeat(10 * 1024 * 1024));
    let _ = writeln!(text, "{huge},Bo,Ek{empty}");
    let _ = writeln!(text, "fine@example.com,Cy,Do{empty}");
    let csv = env.write("in.csv", &text);
    let report = env.path("report.csv");
    let run = env
        .sync(&csv, &["--report", report.to_str().expect("utf-8")])
        .await;
    run.expect_code(3);
    let rows = read_report(&report);
    assert_eq!(rows.len(), 402);
    for row in &rows[..] {
        let (email, message) = (&row["email"], &row["message"]);
        if email == "fine@example.com" {
            assert_eq!(row["action"], "create", "{row:?}");
        } else if email.starts_with("wide") {
            assert!(
                message.contains("the row fills 10003 columns, more than the 256"),
                "{message}"
            );
        } else {
            assert_eq!(email.chars().count(), 257, "256 characters and …");
            assert!(email.ends_with('…'));
            assert!(
                message.contains("more than the 65536 a row may hold"),
                "{message}"
            );
        }
        assert!(message.len() < 300, "{message}");
    }
    let size = std::fs::metadata(&report).expect("report").len();
    assert!(size < 100_000, "the report holds {size} bytes");
    assert_eq!(env.count("POST"), 1, "only the fine row is sent");
}

//! Output files: a mistaken output path never destroys the input, a link or another output,
//! and is refused before anything is sent; no cell of a CSV output reads as a formula.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use custsync_sandbox::Faults;

use crate::support::{TestEnv, customers_csv, read_report};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The run exits 1 before any request (not even for a token), naming what it refused.
#[track_caller]
fn assert_refused_before_sending(env: &TestEnv, run: &crate::support::Run, says: &str) {
    run.expect_code(1);
    run.expect_stderr(says);
    assert_eq!(env.sandbox.stats().requests.len(), 0, "nothing sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_that_is_the_input_is_refused_and_the_input_kept() {
    let env = TestEnv::new(Faults::default()).await;
    let text = customers_csv(20, "");
    let csv = env.write("in.csv", &text);
    let hard = env.path("hard-link.csv");
    fs::hard_link(&csv, &hard).expect("hard link");
    let via_dir = env.dir.path().join(".").join("in.csv");
    for (flag, path) in [
        ("--report", &csv),
        ("--summary-json", &csv),
        ("--absent-report", &hard),
        ("--report", &via_dir),
    ] {
        let run = env.sync(&csv, &[flag, s(path)]).await;
        assert_refused_before_sending(&env, &run, "is the input file");
        run.expect_stderr(flag);
        assert_eq!(fs::read_to_string(&csv).expect("input"), text, "{flag}");
    }
    assert!(!env.state().exists(), "the state was not even opened");

    // Nor the mapping or config file the run reads.
    let mapping = env.write("map.toml", "[constants]\ngroup_id = 1\n");
    let config = env.write("nightly.toml", "rate = 0\n");
    for (args, kept) in [
        (
            ["--mapping", s(&mapping), "--report", s(&mapping)],
            &mapping,
        ),
        (
            ["--config", s(&config), "--summary-json", s(&config)],
            &config,
        ),
    ] {
        let before = fs::read_to_string(kept).expect("read");
        let run = env.sync(&csv, &args).await;
        assert_refused_before_sending(&env, &run, "or a file the run reads");
        assert_eq!(fs::read_to_string(kept).expect("read"), before, "{args:?}");
    }
    let export = [
        "state",
        "export",
        "--output",
        s(&config),
        "--config",
        s(&config),
    ];
    let run = env.custsync(&export, false).await;
    run.expect_code(1);
    run.expect_stderr("or a file the run reads");
    assert_eq!(fs::read_to_string(&config).expect("read"), "rate = 0\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_outputs_on_one_file_are_refused_and_leave_nothing() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &customers_csv(3, ""));
    let out = env.path("out.csv");
    let run = env
        .sync(&csv, &["--report", s(&out), "--summary-json", s(&out)])
        .await;
    assert_refused_before_sending(&env, &run, "is the same file as --report");
    assert!(!out.exists(), "the file the check created is gone again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_is_never_followed_by_an_output() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &customers_csv(3, ""));
    let target = env.write("precious.txt", "keep me");
    fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).expect("chmod");
    let link = env.path("report.csv");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    for flag in ["--report", "--summary-json", "--absent-report"] {
        let run = env.sync(&csv, &[flag, s(&link)]).await;
        assert_refused_before_sending(&env, &run, "is a symbolic link");
    }
    let export = env
        .custsync(&["state", "export", "--output", s(&link)], false)
        .await;
    export.expect_code(1);
    export.expect_stderr("symbolic link");
    assert_eq!(fs::read_to_string(&target).expect("target"), "keep me");
    let mode = fs::metadata(&target).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o644, "not chmodded through the link");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_output_is_found_before_the_first_request() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &customers_csv(3, ""));
    let report = env.path("report.csv");
    for (flag, path) in [
        ("--summary-json", env.path("no-such-dir").join("s.json")),
        ("--absent-report", csv.join("a.csv")),
        ("--summary-json", env.dir.path().to_owned()),
    ] {
        let run = env
            .sync(&csv, &["--report", s(&report), flag, s(&path)])
            .await;
        assert_refused_before_sending(&env, &run, flag);
        assert!(!report.exists(), "the report claimed with it is gone again");
    }
    // Outputs inside the state directory would overwrite the other input.
    env.sync(&csv, &[]).await.expect_code(0);
    let before = env.sandbox.stats().requests.len();
    let run = env
        .sync(&csv, &["--force", "--report", s(&env.state().join("db"))])
        .await;
    run.expect_code(1);
    run.expect_stderr("inside the state directory");
    assert_eq!(env.sandbox.stats().requests.len(), before);
}

/// Valid and invalid cells a spreadsheet would run as formulas.
const FORMULAS: &str = "email,firstname,lastname,dob,gender,website_id\n\
    =cmd|'/Ccalc'!A0@example.com,Ann,Lee,,,1\n\
    +1+2@example.com,Bo,Ek,,,1\n\
    -x@example.com,Cy,Do,,,1\n\
    plain@example.com,Di,Fo,,,1\n\
    \"=HYPERLINK(\"\"http://evil\"\")\",Ed,Gu,,,1\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formula_cells_are_escaped_in_every_csv_output_and_sent_as_they_are() {
    let env = TestEnv::new(Faults::default()).await;
    // Plain customers besides, so that the last run's absent ones are few.
    let plain = customers_csv(60, "");
    let csv = env.write(
        "in.csv",
        &format!(
            "{FORMULAS}{}",
            &plain[plain.find('\n').expect("header") + 1..]
        ),
    );
    let report = env.path("report.csv");
    env.sync(&csv, &["--report", s(&report)])
        .await
        .expect_code(3);
    let mut rows = read_report(&report);
    rows.sort_by_key(|r| r["line"].parse::<u64>().expect("line"));
    let emails: Vec<&str> = rows.iter().take(5).map(|r| r["email"].as_str()).collect();
    assert_eq!(
        emails,
        [
            "'=cmd|'/Ccalc'!A0@example.com",
            "'+1+2@example.com",
            "'-x@example.com",
            "plain@example.com",
            "'=HYPERLINK(\"http://evil\")",
        ]
    );
    assert_eq!(rows[4]["action"], "invalid");
    // The shop has the addresses as they are.
    let shop = env.customers_by_key().await;
    for email in ["=cmd|'/ccalc'!a0@example.com", "+1+2@example.com"] {
        assert!(shop.contains_key(&(1, email.to_owned())), "{shop:?}");
    }

    // The state export escapes them too, and an import reads them back as they were.
    let export = env.path("export.csv");
    env.custsync(&["state", "export", "--output", s(&export)], false)
        .await
        .expect_code(0);
    let text = fs::read_to_string(&export).expect("export");
    assert!(
        text.contains("\n1,'=cmd|'/ccalc'!a0@example.com,") && text.contains("\n1,'-x@"),
        "{text}"
    );
    fs::remove_dir_all(env.state()).expect("rm state");
    env.custsync(&["state", "import", s(&export)], false)
        .await
        .expect_code(0);
    let again = env.custsync(&["state", "export"], false).await;
    again.expect_code(0);
    assert_eq!(again.stdout, text, "export, import, export round-trips");

    // A file without them lists them as absent, escaped.
    let csv = env.write("in.csv", &plain);
    let absent = env.path("absent.csv");
    let requests = env.sandbox.stats().requests.len();
    env.sync(&csv, &["--absent-report", s(&absent)])
        .await
        .expect_code(0);
    let listed = fs::read_to_string(&absent).expect("absent report");
    assert!(
        listed.contains("1,'+1+2@example.com,") && listed.contains("1,'=cmd|"),
        "{listed}"
    );
    assert_eq!(env.sandbox.stats().requests.len(), requests, "unchanged");
}

//! Reports a person reads: the HTML review page, the xlsx report, `--report-only` and JSON
//! Lines changes.

use std::path::Path;
use std::process::Command;

use calamine::{Data, Reader, Xlsx};
use custsync_sandbox::Faults;

use crate::support::*;

const HEADER: &str = "email,firstname,lastname,dob,address_street,address_city,address_postcode,address_country_id,address_telephone\n";

/// The shop as the first run leaves it: three customers.
const BEFORE: &str = "anna@example.com,Anna,Berg,,Storgatan 1,Lund,22100,SE,+46 1\n\
                      bo@example.com,Bo,Ek,,Storgatan 2,Lund,22100,SE,+46 2\n\
                      gone@example.com,Gone,Away,,Storgatan 3,Lund,22100,SE,+46 3\n";

/// The file to review: Anna moves and changes her name, Bo stays, Cem is new, a row has a
/// date that does not exist, and Gone is no longer in the file.
const AFTER: &str = "anna@example.com,Anna,Åberg,,Storgatan 1,Malmö,22100,SE,+46 1\n\
                     bo@example.com,Bo,Ek,,Storgatan 2,Lund,22100,SE,+46 2\n\
                     cem@example.com,Çelik,Øster,1990-05-17,Gränd <b>&amp;</b> 4,Ystad,27100,SE,+46 4\n\
                     dora@example.com,Dora,Fel,1990-02-30,Gränd 5,Ystad,27100,SE,+46 5\n";

/// Runs the first sync, then a dry run of [`AFTER`] with `args`.
async fn reviewed(env: &TestEnv, args: &[&str]) -> Run {
    let csv = env.write("in.csv", &format!("{HEADER}{BEFORE}"));
    env.sync(&csv, &["--rate", "0"]).await.expect_code(0);
    dry_run(env, args).await
}

async fn dry_run(env: &TestEnv, args: &[&str]) -> Run {
    let csv = env.write("in.csv", &format!("{HEADER}{AFTER}"));
    let mut all = vec!["--dry-run"];
    all.extend_from_slice(args);
    env.sync(&csv, &all).await
}

/// The decoded text of an HTML fragment: tags dropped, character references resolved.
fn text(html: &str) -> String {
    let mut plain = String::new();
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        plain.push_str(&rest[..at]);
        rest = rest[at..].split_once('>').map_or("", |(_, after)| after);
    }
    plain.push_str(rest);
    let mut out = String::new();
    let mut parts = plain.split('&');
    out.push_str(parts.next().unwrap_or_default());
    for part in parts {
        let (entity, tail) = part.split_once(';').expect("a terminated reference");
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            n => n
                .strip_prefix('#')
                .and_then(|n| n.parse::<u32>().ok())
                .and_then(char::from_u32)
                .expect("a known reference"),
        };
        out.push(c);
        out.push_str(tail);
    }
    out
}

/// The cells of each body row of the table in `<section id="{id}">`.
fn table(html: &str, id: &str) -> Vec<Vec<String>> {
    let start = html
        .find(&format!("<section id=\"{id}\">"))
        .unwrap_or_else(|| panic!("section {id}"));
    let section = &html[start..];
    let section = &section[..section.find("</section>").expect("section end")];
    let Some(body) = section.split_once("<tbody>").map(|(_, b)| b) else {
        return Vec::new();
    };
    body.split("<tr")
        .skip(1)
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let inner = cell.split_once('>').map_or("", |(_, c)| c);
                    text(&inner[..inner.find("</td>").expect("cell end")])
                })
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_review_page_shows_counts_changes_new_customers_invalid_rows_and_absent_ones() {
    let env = TestEnv::new(Faults::default()).await;
    let page = env.path("review.html");
    let run = reviewed(&env, &["--review", page.to_str().unwrap()]).await;
    run.expect_code(3);
    let html = std::fs::read_to_string(&page).expect("the page is written");

    for external in ["http", "src=", "<link", "<script", "@import", "url("] {
        assert!(
            !html.to_ascii_lowercase().contains(external),
            "the page must load nothing ({external})"
        );
    }
    let counts = table(&html, "counts");
    let total = counts.last().expect("a total row");
    // website, create, update, unchanged, invalid, failed, not sent, rows
    assert_eq!(total, &["total", "1", "1", "1", "1", "0", "0", "4"]);
    assert_eq!(counts[0][0], "1", "website 1");

    let changes = table(&html, "updates");
    let change = |field: &str| {
        changes
            .iter()
            .find(|r| r[3] == field)
            .map(|r| (r[0].as_str(), r[1].as_str(), r[4].as_str(), r[5].as_str()))
    };
    assert_eq!(
        change("lastname"),
        Some(("2", "anna@example.com", "Berg", "Åberg"))
    );
    assert_eq!(
        change("city"),
        Some(("2", "anna@example.com", "Lund", "Malmö"))
    );
    assert_eq!(changes.len(), 2, "only what changes: {changes:?}");

    let created = table(&html, "creates");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0][1], "cem@example.com");
    assert!(
        created[0][3].contains("street = Gränd <b>&amp;</b> 4")
            && created[0][3].contains("dob = 1990-05-17"),
        "{created:?}"
    );
    assert!(
        html.contains("Gränd &lt;b&gt;&amp;amp;&lt;/b&gt; 4"),
        "values are escaped"
    );

    let invalid = table(&html, "invalid");
    assert_eq!(invalid.len(), 1);
    assert_eq!(
        (invalid[0][0].as_str(), invalid[0][3].as_str()),
        ("5", "dob")
    );
    assert_eq!(invalid[0][4], "`1990-02-30` is not a calendar date");

    let absent = table(&html, "absent");
    assert_eq!(absent.len(), 1);
    assert_eq!(absent[0][1], "gone@example.com");
    assert!(text(&html).contains(&format!("target {}", env.sandbox.endpoint())));

    rendered_in_a_browser(&page, env.dir.path());
}

/// The page as headless Chromium renders it: the same tables, nothing fetched. Skipped, with a
/// note, where no Chromium is installed (CI installs it: `.ci/run`).
fn rendered_in_a_browser(page: &Path, scratch: &Path) {
    let chromium = Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        eprintln!(
            "SKIPPED: rendering the review page in a browser: /usr/bin/chromium is not installed \
             (apt-get install chromium)"
        );
        return;
    }
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            // Nothing the page names may be fetched: every host resolves to nowhere.
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--dump-dom",
        ])
        .arg(format!(
            "--user-data-dir={}",
            scratch.join("chromium").display()
        ))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "{out:?}");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("<section id=\"counts\">"), "{dom}");
    let rows = table(&dom, "updates");
    assert!(
        rows.iter()
            .any(|r| r[3] == "city" && r[4] == "Lund" && r[5] == "Malmö"),
        "{rows:?}"
    );
    let invalid = table(&dom, "invalid");
    assert_eq!(invalid[0][4], "`1990-02-30` is not a calendar date");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_xlsx_report_has_a_row_per_line_and_a_changes_sheet() {
    let env = TestEnv::new(Faults::default()).await;
    let xlsx = env.path("report.xlsx");
    reviewed(&env, &["--report", xlsx.to_str().unwrap()])
        .await
        .expect_code(3);
    let mut book: Xlsx<_> = calamine::open_workbook(&xlsx).expect("a workbook");
    assert_eq!(book.sheet_names(), ["report", "changes"]);
    let report = book.worksheet_range("report").expect("report");
    let rows: Vec<Vec<String>> = report
        .rows()
        .map(|r| r.iter().map(ToString::to_string).collect())
        .collect();
    assert_eq!(rows[0], custsync::report::COLUMNS);
    let mut lines: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    lines.sort_unstable();
    assert_eq!(lines, ["2", "3", "4", "5"], "one row per input line");
    let cem = rows
        .iter()
        .find(|r| r[1] == "cem@example.com")
        .expect("cem");
    assert_eq!((cem[3].as_str(), cem[4].as_str()), ("create", "planned"));
    assert!(
        matches!(report.get((1, 0)), Some(Data::Float(_))),
        "line is a number"
    );

    let changes = book.worksheet_range("changes").expect("changes");
    let changes: Vec<Vec<String>> = changes
        .rows()
        .map(|r| r.iter().map(ToString::to_string).collect())
        .collect();
    assert_eq!(
        changes,
        [
            ["line", "email", "website_id", "field", "old", "new"],
            ["2", "anna@example.com", "1", "city", "Lund", "Malmö"],
            ["2", "anna@example.com", "1", "lastname", "Berg", "Åberg"],
        ]
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&xlsx).expect("meta").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_only_limits_the_report_and_json_lines_carry_changes_as_data() {
    let env = TestEnv::new(Faults::default()).await;
    let jsonl = env.path("report.jsonl");
    reviewed(
        &env,
        &[
            "--report",
            jsonl.to_str().unwrap(),
            "--report-only",
            "update,invalid",
        ],
    )
    .await
    .expect_code(3);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&jsonl)
        .expect("report")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let mut kept: Vec<(u64, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["line"].as_u64().expect("line"),
                l["action"].as_str().expect("action"),
            )
        })
        .collect();
    kept.sort_unstable();
    assert_eq!(kept, [(2, "update"), (5, "invalid")]);
    let update = lines
        .iter()
        .find(|l| l["action"] == "update")
        .expect("update");
    assert_eq!(
        update["changes"],
        serde_json::json!([
            {"field": "city", "old": "Lund", "new": "Malmö"},
            {"field": "lastname", "old": "Berg", "new": "Åberg"},
        ])
    );
    assert_eq!(
        update["message"],
        "city: Lund -> Malmö; lastname: Berg -> Åberg"
    );

    let bad = dry_run(&env, &["--report", "r.csv", "--report-only", "updated"]).await;
    bad.expect_code(2);
}

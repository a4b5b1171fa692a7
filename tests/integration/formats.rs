//! Legacy files load as they are (issue 13): encodings, delimiters, spreadsheets, richer
//! mappings, cleared fields and duplicate keys, each checked by what the shop holds and by a
//! re-run that sends nothing.

use custsync_sandbox::Faults;
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
use serde_json::Value;

use crate::support::*;

/// A fixture's path as an argument.
fn arg(name: &str) -> String {
    fixture(name).to_string_lossy().into_owned()
}

/// The value of a customer's custom attribute.
fn custom<'a>(c: &'a Value, code: &str) -> Option<&'a Value> {
    c["custom_attributes"]
        .as_array()?
        .iter()
        .find(|a| a["attribute_code"] == code)
        .map(|a| &a["value"])
}

/// A second run of the same command sends no request at all.
async fn rerun_sends_nothing(env: &TestEnv, file: &std::path::Path, args: &[&str]) {
    let before = env.sandbox.stats().requests.len();
    let run = env.sync(file, args).await;
    run.expect_code(0);
    assert_eq!(
        env.sandbox.stats().requests.len(),
        before,
        "a re-run sends nothing\n{}",
        run.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_windows_1252_semicolon_export_needs_its_encoding_named_then_loads_intact() {
    let env = TestEnv::new(Faults::default()).await;
    let file = fixture("swedish-export.csv");
    let mapping = arg("swedish-mapping.toml");
    let refused = env.sync(&file, &["--mapping", &mapping]).await;
    refused.expect_code(1);
    refused.expect_stderr("--encoding windows-1252");
    assert!(env.customer_requests().is_empty(), "nothing sent");

    let args = ["--mapping", &mapping, "--encoding", "windows-1252"];
    env.sync(&file, &args).await.expect_code(0);
    let shop = env.customers_by_key().await;
    let names: Vec<(String, String)> = [
        "asa.oberg@example.se",
        "bjorn.angstrom@example.se",
        "marta.lovgren@example.se",
        "orjan.akesson@example.se",
        "goran.hagg@example.se",
    ]
    .iter()
    .map(|e| {
        let c = &shop[&(1, (*e).to_owned())];
        (
            c["firstname"].as_str().unwrap_or_default().to_owned(),
            c["lastname"].as_str().unwrap_or_default().to_owned(),
        )
    })
    .collect();
    let want = [
        ("Åsa", "Öberg"),
        ("Björn", "Ängström"),
        ("Märta", "Lövgren"),
        ("Örjan", "Åkesson"),
        ("Göran", "Hägg"),
    ]
    .map(|(f, l)| (f.to_owned(), l.to_owned()));
    assert_eq!(names, want);
    let bjorn = &shop[&(1, "bjorn.angstrom@example.se".to_owned())];
    assert_eq!(bjorn["group_id"], 2, "Företag, through the value map");
    assert_eq!(bjorn["gender"], 1);
    assert_eq!(bjorn["addresses"][0]["city"], "Malmö");
    let goran = &shop[&(1, "goran.hagg@example.se".to_owned())];
    assert_eq!(goran["gender"], 3, "the value map's \"*\"");
    assert_eq!(custom(goran, "loyalty_no"), Some(&Value::from("10021")));
    rerun_sends_nothing(&env, &file, &args).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_xlsx_loads_with_its_dates_and_numbers() {
    let env = TestEnv::new(Faults::default()).await;
    let file = fixture("legacy-export.xlsx");
    let mapping = arg("legacy-mapping.toml");
    let report = env.path("r.csv");
    let args = [
        "--mapping",
        &mapping,
        "--map",
        "Given Name=firstname",
        "--report",
        report.to_str().unwrap(),
    ];
    let run = env.sync(&file, &args).await;
    run.expect_code(0);
    run.expect_stderr("Customer No, Fax");
    let mut lines: Vec<String> = read_report(&report)
        .into_iter()
        .map(|r| format!("{} {}", r["line"], r["email"]))
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "2 ann.xlsx@example.com",
            "3 bo.xlsx@example.com",
            "4 cy.xlsx@example.com"
        ]
    );
    let shop = env.customers_by_key().await;
    let dob = |email: &str| shop[&(2, email.to_owned())]["dob"].clone();
    assert_eq!(dob("ann.xlsx@example.com"), "1990-05-17");
    assert_eq!(
        dob("bo.xlsx@example.com"),
        "1985-12-01",
        "a date-time's date"
    );
    assert_eq!(dob("cy.xlsx@example.com"), "1969-07-20");
    let ann = &shop[&(2, "ann.xlsx@example.com".to_owned())];
    assert_eq!(
        custom(ann, "loyalty_no"),
        Some(&Value::from("4711")),
        "no .0"
    );
    assert_eq!(ann["group_id"], 1);
    rerun_sends_nothing(&env, &file, &args).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workbook_sheet_is_read_by_name_with_sheet_row_numbers() {
    let env = TestEnv::new(Faults::default()).await;
    let path = env.path("export.xlsx");
    let mut workbook = Workbook::new();
    workbook
        .add_worksheet()
        .set_name("Info")
        .expect("name")
        .write_string(0, 0, "not the data")
        .expect("write");
    let sheet = workbook.add_worksheet().set_name("Kunder").expect("name");
    let date = Format::new().set_num_format("yyyy-mm-dd");
    // Data from row 3 on (two empty rows above), an empty row 6, a bad row 7.
    let header = [
        "email",
        "firstname",
        "lastname",
        "dob",
        "group_id",
        "custom:loyalty_no",
    ];
    for (col, name) in (0u16..).zip(header) {
        sheet.write_string(2, col, name).expect("header");
    }
    let rows = [
        (3u32, "ylva@example.se", "Ylva", (1988u16, 3u8, 9u8), 2.0),
        (4, "zack@example.com", "Zack", (2001, 11, 30), 1.0),
        (6, "not-an-email", "Bad", (1970, 1, 1), 1.0),
    ];
    for (row, email, name, (y, m, d), group) in rows {
        sheet.write_string(row, 0, email).expect("email");
        sheet.write_string(row, 1, name).expect("firstname");
        sheet.write_string(row, 2, "Lind").expect("lastname");
        let born = ExcelDateTime::from_ymd(y, m, d).expect("date");
        sheet
            .write_datetime_with_format(row, 3, &born, &date)
            .expect("dob");
        sheet.write_number(row, 4, group).expect("group");
        sheet.write_number(row, 5, 1e6).expect("loyalty");
    }
    workbook.save(&path).expect("save");

    let report = env.path("r.csv");
    let missing = env.sync(&path, &["--sheet", "Customers"]).await;
    missing.expect_code(1);
    missing.expect_stderr("Info, Kunder");
    let args = ["--sheet", "Kunder", "--report", report.to_str().unwrap()];
    env.sync(&path, &args).await.expect_code(3);
    let mut rows: Vec<(String, String)> = read_report(&report)
        .into_iter()
        .map(|r| (r["line"].clone(), r["action"].clone()))
        .collect();
    rows.sort();
    let want = [("4", "create"), ("5", "create"), ("7", "invalid")]
        .map(|(l, a)| (l.to_owned(), a.to_owned()));
    assert_eq!(rows, want, "lines are the sheet's row numbers");
    let shop = env.customers_by_key().await;
    let ylva = &shop[&(1, "ylva@example.se".to_owned())];
    assert_eq!(
        (ylva["dob"].as_str(), ylva["group_id"].as_u64()),
        (Some("1988-03-09"), Some(2))
    );
    assert_eq!(custom(ylva, "loyalty_no"), Some(&Value::from("1000000")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_name_file_splits_joins_defaults_and_clears() {
    let env = TestEnv::new(Faults::default()).await;
    // The shop first holds Anna with a middle name, which the file clears.
    let before = env.write(
        "before.csv",
        "email,firstname,lastname,middlename\nanna.lindqvist@example.se,Anna,Lindqvist,Maria\n",
    );
    env.sync(&before, &[]).await.expect_code(0);
    let file = fixture("full-name.csv");
    let mapping = arg("full-name-mapping.toml");
    let report = env.path("r.csv");
    let args = ["--mapping", &mapping, "--report", report.to_str().unwrap()];
    let run = env.sync(&file, &args).await;
    run.expect_code(0);
    let anna_row = read_report(&report)
        .into_iter()
        .find(|r| r["line"] == "2")
        .expect("line 2");
    assert_eq!(anna_row["action"], "update");
    assert!(
        anna_row["message"].contains("middlename: Maria -> "),
        "{}",
        anna_row["message"]
    );

    let shop = env.customers_by_key().await;
    let get = |email: &str| shop[&(1, email.to_owned())].clone();
    let anna = get("anna.lindqvist@example.se");
    assert_eq!(
        (anna["firstname"].as_str(), anna["lastname"].as_str()),
        (Some("Anna"), Some("Lindqvist"))
    );
    assert!(anna.get("middlename").is_none(), "cleared: {anna}");
    assert_eq!(anna["dob"], "1980-12-24");
    assert_eq!(anna["group_id"], 1);
    assert_eq!(
        anna["addresses"][0]["street"],
        serde_json::json!(["Storgatan 12"])
    );
    // The second address columns go to `address2_*`: a further, not default, address.
    assert_eq!(
        anna["addresses"][1]["street"],
        serde_json::json!(["Hamngatan 3"])
    );
    assert_eq!(anna["addresses"][1]["city"], "Malmö");
    assert_eq!(anna["addresses"][1]["default_billing"], false);
    let cher = get("cher@example.com");
    assert_eq!(
        (cher["firstname"].as_str(), cher["lastname"].as_str()),
        (Some("Cher"), Some("-"))
    );
    assert_eq!(cher["dob"], "1946-05-20", "the second format");
    assert_eq!(cher["group_id"], 2);
    assert_eq!(
        cher["addresses"][0]["street"],
        serde_json::json!(["Kings Road 1"])
    );
    assert_eq!(
        cher["addresses"].as_array().map(Vec::len),
        Some(1),
        "no second address"
    );
    let erik = get("erik.svensson@example.se");
    assert_eq!(erik["group_id"], 3, "\"*\": a segment not listed");
    assert_eq!(erik["middlename"], "Johan");
    assert_eq!(
        erik["addresses"][0]["street"],
        serde_json::json!(["Kyrkogatan"])
    );
    assert_eq!(custom(&erik, "loyalty_no"), Some(&Value::from("C-3")));
    rerun_sends_nothing(&env, &file, &args).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_duplicate_sends_the_first_the_last_or_none() {
    let csv = "email,firstname,lastname\n\
               dup@example.com,First,Lee\n\
               other@example.com,Other,Lee\n\
               DUP@example.com,Last,Lee\n";
    for (mode, code, want) in [
        ("first", 3, Some("First")),
        ("last", 3, Some("Last")),
        ("error", 3, None),
    ] {
        let env = TestEnv::new(Faults::default()).await;
        let file = env.write("d.csv", csv);
        let report = env.path("r.csv");
        env.sync(
            &file,
            &["--on-duplicate", mode, "--report", report.to_str().unwrap()],
        )
        .await
        .expect_code(code);
        let shop = env.customers_by_key().await;
        let name = shop
            .get(&(1, "dup@example.com".to_owned()))
            .map(|c| c["firstname"].as_str().unwrap_or_default().to_owned());
        assert_eq!(name.as_deref(), want, "{mode}");
        assert!(
            shop.contains_key(&(1, "other@example.com".to_owned())),
            "{mode}"
        );
        let rows = read_report(&report);
        assert_eq!(rows.len(), 3, "{mode}: every line reported");
        let invalid: Vec<String> = rows
            .iter()
            .filter(|r| r["action"] == "invalid")
            .map(|r| r["message"].clone())
            .collect();
        match mode {
            "first" => assert!(
                invalid[0].starts_with("line 4: email: duplicate of line 2"),
                "{invalid:?}"
            ),
            "last" => assert!(
                invalid[0].starts_with("line 2: email: duplicate of line 4"),
                "{invalid:?}"
            ),
            _ => assert_eq!(invalid.len(), 2, "{invalid:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_whose_website_cannot_be_read_names_no_customer() {
    let env = TestEnv::new(Faults::default()).await;
    let seed = env.write(
        "seed.csv",
        "email,firstname,lastname,website_id
bob@example.com,Bob,Lee,1
",
    );
    env.sync(&seed, &[]).await.expect_code(0);
    // Its customer could be in any website: not a copy of line 2's (which is sent), and not
    // a reason to keep website 1's Bob from absence, so nothing may be deleted.
    let csv = "email,firstname,lastname,website_id
               dup@example.com,First,Lee,1
               bob@example.com,Bob,Lee,two
               dup@example.com,Second,Lee,two
";
    let file = env.write("w.csv", csv);
    let report = env.path("r.csv");
    let run = env
        .sync(
            &file,
            &[
                "--on-duplicate",
                "error",
                "--max-absent",
                "100%",
                "--delete-absent",
                "--max-deletes",
                "5",
                "--report",
                report.to_str().unwrap(),
            ],
        )
        .await;
    run.expect_code(1);
    run.expect_stderr("2 invalid rows have no usable email or website");
    let rows = read_report(&report);
    let status = |line: &str| {
        let row = rows.iter().find(|r| r["line"] == line).expect("reported");
        (row["status"].clone(), row["website_id"].clone())
    };
    assert_eq!(status("2"), ("ok".to_owned(), "1".to_owned()));
    assert_eq!(status("3"), ("invalid".to_owned(), String::new()));
    assert_eq!(status("4"), ("invalid".to_owned(), String::new()));
    let shop = env.customers_by_key().await;
    assert_eq!(
        shop[&(1, "dup@example.com".to_owned())]["firstname"],
        "First"
    );
    assert!(
        shop.contains_key(&(1, "bob@example.com".to_owned())),
        "kept"
    );
    assert_eq!(env.count("DELETE"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_in_a_website_the_shop_lacks_keeps_delete_absent_from_deleting() {
    let env = TestEnv::new(Faults::default()).await;
    let seed = env.write(
        "seed.csv",
        "email,firstname,lastname,website_id\nbob@example.com,Bob,Lee,2\n",
    );
    env.sync(&seed, &[]).await.expect_code(0);
    // Website 9 typed for 2: the shop has no website 9, so Bob is not known to be gone.
    let typo = env.write(
        "typo.csv",
        "email,firstname,lastname,website_id\nbob@example.com,Bob,Lee,9\n",
    );
    let args = [
        "--max-absent",
        "100%",
        "--delete-absent",
        "--max-deletes",
        "5",
    ];
    let run = env.sync(&typo, &args).await;
    run.expect_code(1);
    run.expect_stderr("1 invalid rows have no usable email or website");
    assert_eq!(env.count("DELETE"), 0);
    assert!(
        env.customers_by_key()
            .await
            .contains_key(&(2, "bob@example.com".to_owned()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delimiters_are_detected_or_given() {
    let env = TestEnv::new(Faults::default()).await;
    let tabs = env.write(
        "t.tsv",
        "email\tfirstname\tlastname\ntab@example.com\tTab\tLee, Jr\n",
    );
    env.sync(&tabs, &[]).await.expect_code(0);
    let pipes = env.write(
        "p.csv",
        "email|firstname|lastname|a;b;c;d\npipe@example.com|Pipe|Lee|1;2;3;4\n",
    );
    // Another customer than the first file's: that one is absent from this file.
    env.sync(&pipes, &["--delimiter", "|", "--max-absent", "100%"])
        .await
        .expect_code(0);
    let shop = env.customers_by_key().await;
    assert_eq!(
        shop[&(1, "tab@example.com".to_owned())]["lastname"],
        "Lee, Jr"
    );
    assert_eq!(shop[&(1, "pipe@example.com".to_owned())]["lastname"], "Lee");
    let bad = env.sync(&pipes, &["--delimiter", "||"]).await;
    bad.expect_code(2);
    bad.expect_stderr("--delimiter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_empty_value_token_clears_and_an_empty_cell_keeps() {
    let env = TestEnv::new(Faults::default()).await;
    let first = env.write(
        "a.csv",
        "email,firstname,lastname,gender,taxvat,dob,custom:loyalty_no\n\
         kim@example.com,Kim,Lee,female,SE123,1990-01-02,L-7\n",
    );
    env.sync(&first, &[]).await.expect_code(0);
    let second = env.write(
        "b.csv",
        "email,firstname,lastname,gender,taxvat,dob,custom:loyalty_no\n\
         kim@example.com,Kim,Lee,NULL,NULL,,NULL\n",
    );
    let args = ["--empty-value", "NULL"];
    env.sync(&second, &args).await.expect_code(0);
    let shop = env.customers_by_key().await;
    let kim = &shop[&(1, "kim@example.com".to_owned())];
    assert!(
        kim.get("gender").is_none() && kim.get("taxvat").is_none(),
        "{kim}"
    );
    assert_eq!(
        kim["dob"], "1990-01-02",
        "an empty cell keeps the shop's value"
    );
    assert_eq!(custom(kim, "loyalty_no"), Some(&Value::from("")));
    rerun_sends_nothing(&env, &second, &args).await;
    let required = env.write(
        "c.csv",
        "email,firstname,lastname\nkim@example.com,Kim,NULL\n",
    );
    env.sync(&required, &args).await.expect_code(3);
}

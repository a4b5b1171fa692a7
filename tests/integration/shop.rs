//! Knowing the shop before touching it: rows the shop would refuse for its configuration are
//! `invalid` in the dry run and the real run alike (so their counts agree), region codes
//! arrive as the shop's ids, a first run against a shop with customers is warned, and
//! `custsync check` tests a configuration.

use std::collections::HashMap;

use custsync_sandbox::Faults;

use crate::support::*;

const HEADER: &str = "email,firstname,lastname,website_id,store_id,group_id,address_street,\
                      address_city,address_postcode,address_country_id,address_region,\
                      address_telephone,custom:loyalty_no,custom:shoe_size";

/// Rows against the default sandbox shop (websites 1-3 with one store view each, groups 0-3,
/// the US, Canada and Austria with regions required, South Africa not allowed): each line
/// names the column the shop refuses, or `-` for a row it takes.
const ROWS: &[(&str, &str)] = &[
    ("-", "ok@example.com,Ann,Lee,1,1,1,,,,,,,7,42"),
    ("website_id", "w@example.com,Ann,Lee,99,,,,,,,,,,"),
    ("store_id", "s@example.com,Ann,Lee,1,2,,,,,,,,,"),
    ("-", "s0@example.com,Ann,Lee,2,0,,,,,,,,,"),
    ("group_id", "g@example.com,Ann,Lee,1,,9,,,,,,,,"),
    (
        "address_country_id",
        "za@example.com,Ann,Lee,1,,,1 Long St,Cape Town,8001,ZA,,555,,",
    ),
    (
        "address_region",
        "nostate@example.com,Ann,Lee,1,,,1 Main St,Springfield,12345,US,,555,,",
    ),
    (
        "address_region",
        "bavaria@example.com,Ann,Lee,1,,,1 Main St,Springfield,12345,US,Bavaria,555,,",
    ),
    (
        "-",
        "ca@example.com,Ann,Lee,1,,,1 Main St,Los Angeles,90001,US,CA,555,,",
    ),
    (
        "-",
        "california@example.com,Ann,Lee,1,,,1 Main St,Los Angeles,90001,US,California,555,,",
    ),
    (
        "-",
        "ny@example.com,Ann,Lee,1,,,1 Main St,New York,10001,us,new york,555,,",
    ),
    (
        "-",
        "de@example.com,Ann,Lee,1,,,1 Hauptstr,Berlin,10115,DE,,555,,",
    ),
    ("email", "ann(x)@example.com,Ann,Lee,1,,,,,,,,,,"),
];

fn rules_csv() -> String {
    let mut text = format!("{HEADER}\n");
    for (_, row) in ROWS {
        text.push_str(row);
        text.push('\n');
    }
    text
}

/// The report's rows by email.
fn by_email(rows: Vec<HashMap<String, String>>) -> HashMap<String, HashMap<String, String>> {
    rows.into_iter().map(|r| (r["email"].clone(), r)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dry_run_predicts_the_real_run_against_the_shop() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &rules_csv());
    let (plan, plan_summary) = (env.path("plan.csv"), env.path("plan.json"));
    let dry = env
        .sync(
            &csv,
            &[
                "--dry-run",
                "--report",
                plan.to_str().unwrap(),
                "--summary-json",
                plan_summary.to_str().unwrap(),
            ],
        )
        .await;
    dry.expect_code(3);
    assert!(
        env.customer_requests().iter().all(|r| r.method == "GET"),
        "a dry run only reads"
    );
    let planned = by_email(read_report(&plan));
    for (column, row) in ROWS {
        let email = row.split(',').next().expect("email");
        let r = &planned[email];
        if *column == "-" {
            assert_eq!(r["action"], "create", "{email}: {r:?}");
        } else {
            assert_eq!(r["action"], "invalid", "{email}: {r:?}");
            let line = r["line"].clone();
            assert!(
                r["message"].starts_with(&format!("line {line}: {column}: ")),
                "{email} names {column}: {}",
                r["message"]
            );
        }
    }
    assert_eq!(
        dry.stderr.matches("custom:shoe_size").count(),
        1,
        "the undefined attribute is named once: {}",
        dry.stderr
    );

    let (report, summary_path) = (env.path("real.csv"), env.path("real.json"));
    let real = env
        .sync(
            &csv,
            &[
                "--report",
                report.to_str().unwrap(),
                "--summary-json",
                summary_path.to_str().unwrap(),
            ],
        )
        .await;
    real.expect_code(3);
    let (planned, done) = (summary(&plan_summary), summary(&summary_path));
    assert_eq!(done["failed"], 0, "the shop refused nothing that was sent");
    for count in ["created", "updated", "invalid", "rows"] {
        assert_eq!(
            planned[count], done[count],
            "{count}: the dry run's is the real run's"
        );
    }
    let invalid = ROWS.iter().filter(|(c, _)| *c != "-").count();
    assert_eq!(done["invalid"].as_u64(), Some(invalid as u64));

    // Region codes and names arrive as the shop's ids; the undefined attribute is not sent.
    let stored = env.customers_by_key().await;
    let region = |email: &str| {
        stored[&(1, email.to_owned())]["addresses"][0]["region"]["region_id"].as_u64()
    };
    assert_eq!(region("ca@example.com"), Some(12));
    assert_eq!(region("california@example.com"), Some(12));
    assert_eq!(region("ny@example.com"), Some(43));
    let ok = &stored[&(1, "ok@example.com".to_owned())];
    assert_eq!(
        ok["custom_attributes"],
        serde_json::json!([{"attribute_code": "loyalty_no", "value": "7"}])
    );

    // Unchanged, the file sends nothing, not even a read of the shop.
    let before = env.customer_requests().len();
    env.sync(&csv, &[]).await.expect_code(3);
    assert_eq!(env.customer_requests().len(), before);
}

/// A shop with a second website that allows only the Nordic countries, and Germany's regions
/// listed but optional.
const NORDIC_SHOP: &str = r#"
allowed_countries = ["US", "DE", "SE"]
regions_optional = ["DE"]

[[websites]]
id = 1
code = "base"
name = "Main Website"

[[websites]]
id = 2
code = "nordic"
name = "Nordic Website"
allowed_countries = ["SE"]

[[store_groups]]
id = 1
website_id = 1
code = "main"
name = "Main"

[[store_groups]]
id = 2
website_id = 2
code = "nordic"
name = "Nordic"

[[store_views]]
id = 1
code = "default"
name = "Default Store View"
website_id = 1
store_group_id = 1

[[store_views]]
id = 2
code = "nordic_sv"
name = "Nordic Svenska"
website_id = 2
store_group_id = 2

[[customer_groups]]
id = 1
code = "General"

[[countries]]
id = "DE"
regions = [{ id = 79, code = "NDS", name = "Niedersachsen" }]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn countries_are_checked_per_website_and_optional_regions_as_configured() {
    let env = TestEnv::with_shop(NORDIC_SHOP).await;
    let csv = env.write(
        "in.csv",
        "email,firstname,lastname,website_id,address_street,address_city,address_postcode,\
         address_country_id,address_region,address_telephone\n\
         us2@example.com,A,B,2,1 Main St,Springfield,12345,US,CA,555\n\
         se2@example.com,A,B,2,Storgatan 1,Lund,22222,SE,,555\n\
         de1@example.com,A,B,1,Hauptstr 1,Hannover,30159,DE,,555\n\
         nds@example.com,A,B,1,Hauptstr 1,Hannover,30159,DE,Niedersachsen,555\n",
    );
    let report = env.path("r.csv");
    let args = ["--report", report.to_str().unwrap()];
    // Without being told, the client takes Germany's region list as required, as Commerce's
    // default is.
    env.sync(&csv, &[&args[..], &["--dry-run"]].concat())
        .await
        .expect_code(3);
    let rows = by_email(read_report(&report));
    assert!(rows["de1@example.com"]["message"].contains("address_region"));

    let run = env
        .sync(&csv, &[&args[..], &["--regions-optional", "de"]].concat())
        .await;
    run.expect_code(3);
    let rows = by_email(read_report(&report));
    let action = |e: &str| rows[e]["action"].clone();
    assert_eq!(
        (action("us2@example.com"), action("se2@example.com")),
        ("invalid".to_owned(), "create".to_owned())
    );
    assert!(
        rows["us2@example.com"]["message"]
            .contains("address_country_id: `US` is not a country website 2 (nordic) allows")
    );
    assert_eq!(
        (action("de1@example.com"), action("nds@example.com")),
        ("create".to_owned(), "create".to_owned())
    );
    assert!(
        rows.values()
            .all(|r| r["action"] == "invalid" || r["status"] == "ok"),
        "{rows:?}"
    );
    let stored = env.customers_by_key().await;
    assert_eq!(
        stored[&(1, "nds@example.com".to_owned())]["addresses"][0]["region_id"],
        79
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_state_store_against_a_shop_with_customers_is_warned() {
    let env = TestEnv::new(Faults::default()).await;
    let shop = Shop::connect(&env).await;
    for i in 0..3 {
        let customer = serde_json::json!({"customer": {"email": format!("user{i}@example.com"),
            "firstname": "F", "lastname": "L", "website_id": 1}});
        shop.send(reqwest::Method::POST, "V1/customers", Some(customer))
            .await;
    }
    let csv = env.write("in.csv", &customers_csv(5, ""));
    let run = env.sync(&csv, &["--dry-run"]).await;
    run.expect_code(0);
    assert!(
        run.stderr
            .contains("the state store is empty, but the shop already has 3 customers")
            && run.stderr.contains("custsync pull"),
        "{}",
        run.stderr
    );
    env.custsync(&["pull"], true).await.expect_code(0);
    let run = env.sync(&csv, &["--dry-run"]).await;
    assert!(!run.stderr.contains("already has"), "{}", run.stderr);
}

/// `custsync check` against `endpoint` with the sandbox's IMS and this client secret.
async fn check(env: &TestEnv, endpoint: &str, secret: &str) -> Run {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_custsync"));
    cmd.env_clear()
        .env("CUSTSYNC_CLIENT_SECRET", secret)
        .args(["check", "--endpoint", endpoint])
        .args([
            "--ims-url",
            &env.sandbox.ims_url(),
            "--client-id",
            "sandbox",
        ]);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run"))
        .await
        .expect("join");
    Run::from(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_the_shop_or_what_is_wrong() {
    let env = TestEnv::new(Faults::default()).await;
    let run = env.custsync(&["check"], true).await;
    run.expect_code(0);
    for line in [
        "token:      works (IMS, client id sandbox)",
        "customers:  0 in the shop",
        "websites:   3",
        "  1 base \"Main Website\": store views 1 default \"Default Store View\"",
        "customer groups: 4",
        "  US United States: 65 regions, required",
        "  loyalty_no \"Loyalty number\" (text)",
        "all well",
    ] {
        assert!(run.stdout.contains(line), "{line}\n{}", run.stdout);
    }
    assert!(
        !env.state().exists(),
        "check changes nothing, and creates no state store"
    );

    // A wrong secret.
    let run = check(&env, &env.sandbox.endpoint(), "wrong").await;
    run.expect_code(1);
    run.expect_stderr("error: token:");

    // Mistaken bases: with /V1, and a path that is no REST base.
    let base = env.sandbox.endpoint();
    for (endpoint, says) in [
        (
            format!("{base}/V1"),
            format!("give the base without /V1 ({base})"),
        ),
        (
            base.replace("/sandbox", "/shop"),
            "Request does not match any route.".to_owned(),
        ),
    ] {
        let run = check(&env, &endpoint, SECRET).await;
        run.expect_code(1);
        assert!(run.stderr.contains(&says), "{endpoint}: {}", run.stderr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_without_credentials_says_it_checks_syntax_only() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &customers_csv(2, ""));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_custsync"));
    cmd.env_clear()
        .args(["sync", csv.to_str().unwrap(), "--dry-run"])
        .args(["--endpoint", &env.sandbox.endpoint(), "--state"])
        .arg(env.state());
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run"))
        .await
        .expect("join");
    let run = Run::from(out);
    run.expect_code(0);
    assert!(
        run.stderr
            .contains("without credentials this dry run cannot read the shop's model")
            && run.stderr.contains("would create 2"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(env.customer_requests().is_empty(), "nothing sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_the_shop_would_refuse_is_not_left_in_doubt() {
    let env = TestEnv::new(Faults::default()).await;
    let good = "email,firstname,lastname,group_id\nann@example.com,Ann,Lee,1\n";
    let csv = env.write("in.csv", good);
    env.sync(&csv, &[]).await.expect_code(0);
    env.write("in.csv", &good.replace(",1\n", ",9\n"));
    let run = env.sync(&csv, &[]).await;
    run.expect_code(3);
    assert_eq!(env.count("PUT"), 0, "group 9 is refused before sending");
    // Back to what the shop has: nothing to send, no update taken for one whose answer was lost.
    env.write("in.csv", good);
    let before = env.customer_requests().len();
    let run = env.sync(&csv, &[]).await;
    run.expect_code(0);
    run.expect_stderr("1 unchanged");
    assert_eq!(env.customer_requests().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn further_addresses_are_checked_and_their_regions_resolved() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write(
        "in.csv",
        "email,firstname,lastname,address_street,address_city,address_postcode,\
         address_country_id,address_region,address_telephone,address2_street,address2_city,\
         address2_postcode,address2_country_id,address2_region,address2_telephone\n\
         two@example.com,A,B,1 Main St,Los Angeles,90001,US,CA,555,2 Broadway,New York,10001,US,NY,555\n\
         za@example.com,A,B,1 Main St,Los Angeles,90001,US,CA,555,1 Long St,Cape Town,8001,ZA,,555\n",
    );
    let report = env.path("r.csv");
    env.sync(&csv, &["--report", report.to_str().unwrap()])
        .await
        .expect_code(3);
    let rows = by_email(read_report(&report));
    assert_eq!(rows["two@example.com"]["status"], "ok");
    assert!(
        rows["za@example.com"]["message"].contains("address2_country_id: `ZA`"),
        "{:?}",
        rows["za@example.com"]
    );
    let stored = env.customers_by_key().await;
    let mut regions: Vec<u64> = stored[&(1, "two@example.com".to_owned())]["addresses"]
        .as_array()
        .expect("addresses")
        .iter()
        .filter_map(|a| a["region_id"].as_u64())
        .collect();
    regions.sort_unstable();
    assert_eq!(regions, [12, 43]);
}

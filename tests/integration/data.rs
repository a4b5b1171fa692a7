//! What data teams need around the sync: addresses, change messages, existing shops.

use custsync_sandbox::Faults;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

const HEADER: &str = "email,firstname,lastname,address_street,address_city,address_postcode,address_country_id,address_telephone";

/// Adds `address` to `customer` (as the shop has it) the way another system would: a PUT
/// of its addresses with the new one last.
async fn add_in_shop(env: &TestEnv, customer: &Value, address: Value) {
    let id = customer["id"].as_u64().expect("id");
    let mut addresses = customer["addresses"].as_array().expect("addresses").clone();
    addresses.push(address);
    let body = json!({"customer": {"addresses": addresses}});
    let path = format!("V1/customers/{id}");
    Shop::connect(env)
        .await
        .send(Method::PUT, &path, Some(body))
        .await;
}

fn with_addresses(lastname: &str, city: &str) -> String {
    let mut s = format!("{HEADER}\n");
    for i in 0..5 {
        s.push_str(&format!(
            "a{i}@example.com,Ann,{lastname},Storgatan {i}|Lgh 2,{city},2235{i},SE,+46 555 {i}\n"
        ));
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_without_address_columns_leaves_the_known_address_as_it_was() {
    let env = TestEnv::new(Faults::default()).await;
    env.sync(
        &env.write("a.csv", &with_addresses("Lee", "Lund")),
        &["--rate", "0"],
    )
    .await
    .expect_code(0);
    // A file without address columns changes the last names; the shop keeps the addresses.
    let names: String = (0..5)
        .map(|i| format!("a{i}@example.com,Ann,Berg\n"))
        .collect();
    let csv = env.write("b.csv", &format!("email,firstname,lastname\n{names}"));
    env.sync(&csv, &["--rate", "0"]).await.expect_code(0);
    // The move to Malmö is told from Lund, the address the shop has, not from nothing.
    let csv = env.write("c.csv", &with_addresses("Berg", "Malmö"));
    let (rows, _) = env.sync_with_outputs(&csv, &["--dry-run"], 0).await;
    assert!(
        rows.iter().all(|r| r["message"] == "city: Lund -> Malmö"),
        "{:?}",
        rows[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_default_address_stays_one_through_any_number_of_syncs() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &with_addresses("Lee", "Lund"));
    env.sync(&csv, &["--rate", "0"]).await.expect_code(0);
    let csv = env.write("in.csv", &with_addresses("Lee-Updated", "Lund"));
    env.sync(&csv, &["--rate", "0"]).await.expect_code(0);
    let csv = env.write("in.csv", &with_addresses("Lee-Updated", "Malmö"));
    let report = env.path("r.csv");
    env.sync(
        &csv,
        &[
            "--rate",
            "0",
            "--dry-run",
            "--report",
            report.to_str().unwrap(),
        ],
    )
    .await
    .expect_code(0);
    let rows = read_report(&report);
    assert!(
        rows.iter()
            .all(|r| r["action"] == "update" && r["message"] == "city: Lund -> Malmö"),
        "{rows:?}"
    );
    env.sync(&csv, &["--rate", "0"]).await.expect_code(0);

    let stored = env.customers_by_key().await;
    assert_eq!(stored.len(), 5);
    for c in stored.values() {
        let addresses = c["addresses"].as_array().expect("addresses");
        assert_eq!(addresses.len(), 1, "exactly one address: {c}");
        assert_eq!(addresses[0]["city"], "Malmö");
        assert_eq!(addresses[0]["default_billing"], true);
        assert_eq!(c["lastname"], "Lee-Updated");
        assert_eq!(c["default_billing"], addresses[0]["id"].to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_customers_other_addresses_are_kept() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &with_addresses("Lee", "Lund"));
    env.sync(&csv, &["--rate", "0"]).await.expect_code(0);
    // Someone adds a second (non-default) address in the shop.
    let c = &env.customers_by_key().await[&(1, "a0@example.com".to_owned())];
    let work = json!({"firstname": "Ann", "lastname": "Lee", "street": ["Work 1"],
        "city": "Malmö", "postcode": "21100", "country_id": "SE", "telephone": "1"});
    add_in_shop(&env, c, work).await;

    let csv = env.write("in.csv", &with_addresses("Lee", "Uppsala"));
    env.sync(&csv, &["--rate", "0"]).await.expect_code(0);
    let c = &env.customers_by_key().await[&(1, "a0@example.com".to_owned())];
    let cities: Vec<&str> = c["addresses"]
        .as_array()
        .expect("a")
        .iter()
        .map(|a| a["city"].as_str().expect("city"))
        .collect();
    assert_eq!(cities.len(), 2, "{c}");
    assert!(
        cities.contains(&"Uppsala") && cities.contains(&"Malmö"),
        "{cities:?}"
    );
}

/// Fills the shop with `seed` as another system would: through a state directory of its own.
async fn seed_elsewhere(env: &TestEnv, seed: &std::path::Path) {
    let cmd = env.sync_cmd_with_state(&env.path("other-state"), seed, &["--rate", "0"]);
    run_command(cmd).await.expect_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shop_with_customers_is_adopted_without_duplicates() {
    let env = TestEnv::new(Faults::default()).await;
    // Another system created these customers (own state directory).
    let seed = env.write("seed.csv", &customers_csv(40, ""));
    seed_elsewhere(&env, &seed).await;
    let posts = env.count("POST");

    // Our file: the same 40 people, 10 of them with a new lastname, plus 5 new ones.
    let mut text = String::from("email,firstname,lastname,dob,gender,website_id\n");
    for (i, line) in customers_csv(45, "").lines().skip(1).enumerate() {
        text.push_str(&if i < 10 {
            line.replacen(&format!("Last{i},"), "Changed,", 1)
        } else {
            line.to_owned()
        });
        text.push('\n');
    }
    let csv = env.write("in.csv", &text);
    let report = env.path("r.csv");
    let run = env
        .sync(&csv, &["--rate", "0", "--report", report.to_str().unwrap()])
        .await;
    run.expect_code(0);
    // Counted as what happened in the shop: 5 created, the others updated or unchanged.
    run.expect_stderr("45 rows: 5 created, 10 updated, 30 unchanged");
    assert_eq!(env.customers_by_key().await.len(), 45, "no duplicates");
    assert_eq!(env.count("POST") - posts, 45, "one create attempt per row");
    assert_eq!(env.count("PUT"), 10, "only the changed ones are updated");
    let rows = read_report(&report);
    assert_eq!(
        rows.iter()
            .filter(|r| r["message"].contains("adopted existing customer"))
            .count(),
        40
    );

    let before = env.sandbox.stats().requests.len();
    env.sync(&csv, &["--rate", "0"]).await.expect_code(0);
    assert_eq!(
        env.sandbox.stats().requests.len(),
        before,
        "adopted customers are unchanged next time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_pull_a_sync_of_the_same_people_sends_only_real_changes() {
    let env = TestEnv::new(Faults::default()).await;
    let n = 250;
    let seed = env.write("seed.csv", &customers_csv(n, ""));
    seed_elsewhere(&env, &seed).await;
    let (posts, gets) = (env.count("POST"), env.count("GET"));

    let run = env
        .custsync(&["pull", "--page-size", "100", "--rate", "0"], true)
        .await;
    run.expect_code(0);
    run.expect_stderr(&format!("pulled {n} customers in 3 pages"));
    assert_eq!(env.count("GET") - gets, 3, "three pages of 100");

    // Same people; two with a changed lastname.
    let text = customers_csv(n, "")
        .replacen("Last3,", "Changed3,", 1)
        .replacen("Last9,", "Changed9,", 1);
    let csv = env.write("in.csv", &text);
    let report = env.path("r.csv");
    let args = ["--rate", "0", "-vv", "--report", report.to_str().unwrap()];
    let run = env.sync(&csv, &args).await;
    run.expect_code(0);
    // The file lacks columns the shop has (group and store): every row is validated.
    run.expect_stderr("by_row_hash=0 by_values_hash=0");
    assert_eq!(env.count("POST"), posts, "nothing created");
    assert_eq!(env.count("PUT"), 2);
    let rows = read_report(&report);
    let update = rows
        .iter()
        .find(|r| r["action"] == "update")
        .expect("an update");
    assert!(
        update["message"].contains("lastname: Last") && update["message"].contains("-> Changed"),
        "{update:?}"
    );
    assert_eq!(
        rows.iter().filter(|r| r["action"] == "unchanged").count(),
        n - 2
    );

    let before = env.sandbox.stats().requests.len();
    let run = env.sync(&csv, &["--rate", "0", "-vv"]).await;
    run.expect_code(0);
    // ... and their row hashes learnt, as the two updates' confirmed writes did theirs.
    run.expect_stderr(&format!("by_row_hash={n} by_values_hash=0"));
    assert_eq!(env.sandbox.stats().requests.len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_pull_a_file_holding_the_shops_values_is_not_validated_again() {
    let env = TestEnv::new(Faults::default()).await;
    let n = 60;
    let mut text = String::from(
        "email,firstname,lastname,dob,gender,group_id,website_id,store_id,address_street,\
         address_city,address_postcode,address_country_id,address_telephone\n",
    );
    for i in 0..n {
        text.push_str(&format!(
            "u{i}@example.com,Ånna{i},Berg,1980-01-{:02},{},1,1,1,Gatan {i}|Lgh 2,Lund,22100,SE,+46 1\n",
            i % 28 + 1,
            i % 2 + 1
        ));
    }
    let seed = env.write("seed.csv", &text);
    seed_elsewhere(&env, &seed).await;
    eprintln!(
        "DEBUG {}",
        env.customers_by_key().await.values().next().unwrap()
    );
    env.custsync(&["pull", "--rate", "0"], true)
        .await
        .expect_code(0);

    // One city moved; one gender written as a word, which is the same value.
    let edited = text
        .replacen("Gatan 3|Lgh 2,Lund", "Gatan 3|Lgh 2,Ystad", 1)
        .replacen("Berg,1980-01-06,2", "Berg,1980-01-06,female", 1);
    let csv = env.write("in.csv", &edited);
    let report = env.path("r.csv");
    let args = ["--rate", "0", "-vv", "--report", report.to_str().unwrap()];
    let run = env.sync(&csv, &args).await;
    run.expect_code(0);
    run.expect_stderr(&format!("by_row_hash=0 by_values_hash={}", n - 2));
    assert_eq!(env.count("PUT"), 1);
    let rows = read_report(&report);
    let updated: Vec<_> = rows.iter().filter(|r| r["action"] == "update").collect();
    assert_eq!(updated.len(), 1, "{rows:?}");
    assert_eq!(updated[0]["message"], "city: Lund -> Ystad");
    assert_eq!(
        rows.iter().filter(|r| r["action"] == "unchanged").count(),
        n - 1
    );

    // Known by their row hashes from now on, the update's too; nothing is sent.
    let before = env.sandbox.stats().requests.len();
    let run = env.sync(&csv, &["--rate", "0", "-vv"]).await;
    run.expect_code(0);
    run.expect_stderr(&format!("by_row_hash={n} by_values_hash=0"));
    assert_eq!(env.sandbox.stats().requests.len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_drops_the_mappings_the_shop_no_longer_backs() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &customers_csv(3, ""));
    env.sync(&csv, &["--rate", "0"]).await.expect_code(0);
    let ids = env.customers_by_key().await;
    let id = |i: usize| {
        ids[&(1, format!("user{i}@example.com"))]["id"]
            .as_u64()
            .expect("id")
    };
    // In the shop, user0's e-mail changes and user2 is deleted.
    let shop = Shop::connect(&env).await;
    let mut renamed = shop
        .send(Method::GET, &format!("V1/customers/{}", id(0)), None)
        .await;
    renamed["email"] = json!("user0.new@example.com");
    let path = format!("V1/customers/{}", id(0));
    let body = json!({ "customer": renamed });
    shop.send(Method::PUT, &path, Some(body)).await;
    let path = format!("V1/customers/{}", id(2));
    shop.send(Method::DELETE, &path, None).await;

    let run = env.custsync(&["pull", "--rate", "0"], true).await;
    run.expect_code(0);
    run.expect_stderr("dropped 2 mappings");
    let export = env.custsync(&["state", "export"], false).await;
    let mut mappings: Vec<&str> = export.stdout.lines().skip(1).collect();
    mappings.sort();
    let mapped: Vec<String> = mappings
        .iter()
        .map(|l| l.split(',').take(3).collect::<Vec<_>>().join(","))
        .collect();
    assert_eq!(
        mapped,
        [
            format!("1,user0.new@example.com,{}", id(0)),
            format!("1,user1@example.com,{}", id(1)),
        ],
        "one key an id, and only ids the shop has"
    );
    // The file's user0 and user2 are not in the shop any more: created, not called unchanged.
    let report = env.path("r.csv");
    let args = [
        "--rate",
        "0",
        "--max-absent",
        "100%",
        "--report",
        report.to_str().unwrap(),
    ];
    env.sync(&csv, &args).await.expect_code(0);
    // The report is in the order rows finished.
    let mut created: Vec<String> = (read_report(&report).iter())
        .filter(|r| r["action"] == "create")
        .map(|r| r["email"].clone())
        .collect();
    created.sort();
    assert_eq!(created, ["user0@example.com", "user2@example.com"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_deletes_stop_the_run_before_its_first_request() {
    let env = TestEnv::new(Faults::default()).await;
    env.sync(
        &env.write("all.csv", &customers_csv(10, "")),
        &["--rate", "0"],
    )
    .await
    .expect_code(0);
    // Three customers gone from the file, two renamed.
    let text: String = customers_csv(10, "")
        .lines()
        .take(8)
        .map(|l| {
            format!(
                "{}
",
                l.replace("Last1,", "New1,").replace("Last2,", "New2,")
            )
        })
        .collect();
    let csv = env.write("less.csv", &text);
    let report = env.path("r.csv");
    let mut args = vec!["--rate", "0", "--max-absent", "100%", "--delete-absent"];
    args.extend(["--report", report.to_str().unwrap()]);
    let writes = |env: &TestEnv| env.count("PUT") + env.count("DELETE");
    let before = writes(&env);
    let refused = env
        .sync(&csv, &[&args[..], &["--max-deletes", "2"]].concat())
        .await;
    refused.expect_code(1);
    refused.expect_stderr("3 customers are absent, more than --max-deletes 2");
    assert_eq!(writes(&env), before, "nothing sent, nothing deleted");
    let not_sent = (read_report(&report).into_iter())
        .filter(|r| r["status"] == "not_sent")
        .count();
    assert_eq!(not_sent, 2, "the updates are reported not sent");

    env.sync(&csv, &[&args[..], &["--max-deletes", "3"]].concat())
        .await
        .expect_code(0);
    assert_eq!((env.count("PUT"), env.count("DELETE")), (2, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_tools_export_import_and_forget() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &customers_csv(12, ""));
    env.sync(&csv, &["--rate", "0"]).await.expect_code(0);

    let stats = env.custsync(&["state", "stats"], false).await;
    stats.expect_code(0);
    assert!(stats.stdout.contains("entries:    12"), "{}", stats.stdout);

    let export = env.custsync(&["state", "export"], false).await;
    export.expect_code(0);
    let lines: Vec<&str> = export.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "website_id,email,customer_id,payload_hash,synced_at"
    );
    assert_eq!(lines.len(), 13);
    let file = env.path("export.csv");
    env.custsync(
        &["state", "export", "--output", file.to_str().unwrap()],
        false,
    )
    .await
    .expect_code(0);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file)
            .expect("export")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    let forget = env
        .custsync(&["state", "forget", "USER3@example.com"], false)
        .await;
    forget.expect_code(0);
    env.custsync(&["state", "forget", "nobody@example.com"], false)
        .await
        .expect_code(1);
    // Forgotten: the next sync meets "already exists" and adopts the customer again.
    let report = env.path("r.csv");
    env.sync(&csv, &["--rate", "0", "--report", report.to_str().unwrap()])
        .await
        .expect_code(0);
    let rows = read_report(&report);
    let row = rows
        .iter()
        .find(|r| r["email"] == "user3@example.com")
        .expect("row");
    assert!(
        row["message"].contains("adopted existing customer"),
        "{row:?}"
    );
    assert_eq!(env.customers_by_key().await.len(), 12);

    // Import into a fresh state: the sync is then all unchanged.
    std::fs::remove_dir_all(env.state()).expect("rm state");
    env.custsync(&["state", "import", file.to_str().unwrap()], false)
        .await
        .expect_code(0);
    let before = env.sandbox.stats().requests.len();
    env.sync(&csv, &["--rate", "0"]).await.expect_code(0);
    assert_eq!(env.sandbox.stats().requests.len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_export_syncs_through_a_mapping_file() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = fixture("legacy-export.csv");
    let mapping = fixture("legacy-mapping.toml");
    let report = env.path("r.csv");
    let run = env
        .sync(
            &csv,
            &[
                "--rate",
                "0",
                "--mapping",
                mapping.to_str().unwrap(),
                "--map",
                "Given Name=firstname",
                "--report",
                report.to_str().unwrap(),
            ],
        )
        .await;
    run.expect_code(3);
    assert!(
        run.stderr.contains("Customer No") && run.stderr.contains("Fax"),
        "ignored columns are listed: {}",
        run.stderr
    );
    let stored = env.customers_by_key().await;
    assert_eq!(stored.len(), 2);
    let ann = &stored[&(2, "ann@example.com".to_owned())];
    assert_eq!(
        (
            ann["firstname"].as_str(),
            ann["dob"].as_str(),
            ann["group_id"].as_u64()
        ),
        (Some("Ann"), Some("1990-05-17"), Some(1))
    );
    assert_eq!(ann["custom_attributes"][0]["value"], "L-1");
    assert_eq!(stored[&(2, "bo@example.com".to_owned())]["group_id"], 2);
    let rows = read_report(&report);
    let msg =
        |line: &str| rows.iter().find(|r| r["line"] == line).expect("line")["message"].clone();
    assert!(msg("4").contains("31/02/1990"), "{}", msg("4"));
    assert!(msg("5").contains("`Gold`"), "{}", msg("5"));
    for line in ["4", "5"] {
        let row = rows.iter().find(|r| r["line"] == line).expect("line");
        assert_eq!(
            row["website_id"], "2",
            "the mapping's website, invalid or not"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_customers_are_listed_and_deleted_only_within_the_limit() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &customers_csv(30, ""));
    env.sync(&csv, &["--rate", "0"]).await.expect_code(0);
    // The next file drops users 0..5 and has an invalid row for user 5 (still "named").
    let mut text = customers_csv(30, "");
    for i in 0..5 {
        text = text.replacen(&format!("user{i}@example.com,Fïrst{i},Last{i},"), "", 1);
    }
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("1980-"))
        .map(|l| {
            if l.starts_with("user5@") {
                l.replacen("1980-01-06", "1980-13-45", 1)
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    let csv = env.write("in.csv", &text);
    let absent = env.path("absent.csv");
    let summary_path = env.path("s.json");
    let run = env
        .sync(
            &csv,
            &[
                "--dry-run",
                "--max-absent",
                "5",
                "--absent-report",
                absent.to_str().unwrap(),
                "--summary-json",
                summary_path.to_str().unwrap(),
            ],
        )
        .await;
    run.expect_code(3);
    run.expect_stderr("absent from the file but in the state store: 5");
    assert_eq!(summary(&summary_path)["absent"].as_u64(), Some(5));
    let listed = std::fs::read_to_string(&absent).expect("absent report");
    assert_eq!(listed.lines().next(), Some("website_id,email,customer_id"));
    assert_eq!(listed.lines().count(), 6);
    assert!(
        listed.contains("1,user0@example.com,") && !listed.contains("user5@"),
        "{listed}"
    );

    let refused = env
        .sync(
            &csv,
            &[
                "--rate",
                "0",
                "--max-absent",
                "5",
                "--delete-absent",
                "--max-deletes",
                "4",
            ],
        )
        .await;
    refused.expect_code(1);
    refused.expect_stderr("5 customers are absent, more than --max-deletes 4");
    assert_eq!(env.count("DELETE"), 0);
    assert_eq!(env.customers_by_key().await.len(), 30);

    // Within --max-deletes but over --max-absent (the default 10% of 30): still nothing.
    let delete = ["--rate", "0", "--delete-absent", "--max-deletes", "5"];
    let guarded = env.sync(&csv, &delete).await;
    guarded.expect_code(1);
    guarded.expect_stderr("--max-absent 10%");
    assert_eq!(env.count("DELETE"), 0);

    let run = env
        .sync(&csv, &[&delete[..], &["--max-absent", "5"]].concat())
        .await;
    run.expect_code(3);
    assert_eq!(env.count("DELETE"), 5);
    let stored = env.customers_by_key().await;
    assert_eq!(stored.len(), 25);
    assert!(!stored.contains_key(&(1, "user0@example.com".to_owned())));
    assert!(
        stored.contains_key(&(1, "user5@example.com".to_owned())),
        "an invalid row still protects its customer"
    );
    let run = env
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
    run.expect_code(3);
    assert_eq!(summary(&summary_path)["absent"].as_u64(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_absent_needs_a_limit() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &customers_csv(3, ""));
    env.sync(&csv, &["--delete-absent"]).await.expect_code(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_deleted_in_the_shop_is_created_again() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &customers_csv(3, ""));
    env.sync(&csv, &["--rate", "0"]).await.expect_code(0);
    let old = env.customers_by_key().await[&(1, "user1@example.com".to_owned())]["id"]
        .as_u64()
        .expect("id");
    Shop::connect(&env)
        .await
        .send(Method::DELETE, &format!("V1/customers/{old}"), None)
        .await;
    let csv = env.write("in.csv", &customers_csv(3, "-v2"));
    let report = env.path("r.csv");
    env.sync(&csv, &["--rate", "0", "--report", report.to_str().unwrap()])
        .await
        .expect_code(0);
    let stored = env.customers_by_key().await;
    assert_eq!(stored.len(), 3);
    let new = &stored[&(1, "user1@example.com".to_owned())];
    assert_eq!(new["lastname"], "Last1-v2");
    let row = read_report(&report)
        .into_iter()
        .find(|r| r["email"] == "user1@example.com")
        .expect("row");
    assert!(
        row["message"].contains(&format!("customer {old} no longer existed")),
        "{row:?}"
    );
    assert_eq!(row["customer_id"], new["id"].to_string());
}

/// Rows with a default address and a second one (`address2_*`) in `city2`.
fn with_two_addresses(city2: &str) -> String {
    let mut s = format!(
        "{HEADER},address2_street,address2_city,address2_postcode,address2_country_id,address2_telephone\n"
    );
    for i in 0..3 {
        s.push_str(&format!(
            "b{i}@example.com,Bo,Ek,Storgatan {i},Lund,2235{i},SE,+46 555 {i},Hamngatan {i},{city2},2112{i},SE,+46 40 {i}\n"
        ));
    }
    s
}

/// Each address of a customer in the shop: (id, city, default billing).
fn addresses(c: &Value) -> Vec<(u64, String, bool)> {
    let mut list: Vec<_> = c["addresses"]
        .as_array()
        .expect("addresses")
        .iter()
        .map(|a| {
            (
                a["id"].as_u64().expect("id"),
                a["city"].as_str().expect("city").to_owned(),
                a["default_billing"] == true,
            )
        })
        .collect();
    list.sort();
    list
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_addresses_keep_their_ids_and_the_shops_own_survives() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = env.write("in.csv", &with_two_addresses("Malmö"));
    env.sync(&csv, &["--rate", "0"]).await.expect_code(0);
    let key = (1, "b0@example.com".to_owned());
    let before = env.customers_by_key().await[&key].clone();
    let ids = addresses(&before);
    assert_eq!(ids.len(), 2, "a default and a further address: {before}");
    assert!(
        ids.iter()
            .any(|(_, city, default)| city == "Lund" && *default)
    );
    assert!(
        ids.iter()
            .any(|(_, city, default)| city == "Malmö" && !*default)
    );

    // Someone adds a third address to b0 in the shop.
    let work = json!({"firstname": "Bo", "lastname": "Ek", "street": ["Work 1"],
        "city": "Ystad", "postcode": "27100", "country_id": "SE", "telephone": "1"});
    add_in_shop(&env, &before, work).await;

    // The second address moves: one PUT a customer, both ids kept, the shop's third kept.
    let puts = env.count("PUT");
    let csv = env.write("in.csv", &with_two_addresses("Helsingborg"));
    let report = env.path("r.csv");
    env.sync(&csv, &["--rate", "0", "--report", report.to_str().unwrap()])
        .await
        .expect_code(0);
    assert_eq!(env.count("PUT") - puts, 3, "one PUT per customer");
    let rows = read_report(&report);
    assert!(
        rows.iter()
            .all(|r| r["action"] == "update"
                && r["message"] == "address2_city: Malmö -> Helsingborg"),
        "{rows:?}"
    );
    let stored = env.customers_by_key().await;
    let after = addresses(&stored[&key]);
    let id_of = |list: &[(u64, String, bool)], city: &str| {
        list.iter().find(|(_, c, _)| c == city).map(|(id, ..)| *id)
    };
    assert_eq!(id_of(&after, "Lund"), id_of(&ids, "Lund"), "{after:?}");
    assert_eq!(
        id_of(&after, "Helsingborg"),
        id_of(&ids, "Malmö"),
        "{after:?}"
    );
    assert!(
        id_of(&after, "Ystad").is_some(),
        "the shop's own: {after:?}"
    );
    assert_eq!(after.len(), 3, "{after:?}");
    for c in stored.values() {
        assert_eq!(addresses(c).iter().filter(|(.., d)| *d).count(), 1, "{c}");
    }

    // A re-run sends nothing.
    let requests = env.customer_requests().len();
    env.sync(&csv, &["--rate", "0"]).await.expect_code(0);
    assert_eq!(
        env.customer_requests().len(),
        requests,
        "a re-run sends nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shop_holding_both_addresses_is_adopted_without_a_put_and_keeps_their_ids() {
    let env = TestEnv::new(Faults::default()).await;
    // Another system created these customers with both addresses (own state directory).
    let seed = env.write("seed.csv", &with_two_addresses("Malmö"));
    seed_elsewhere(&env, &seed).await;
    let key = (1, "b1@example.com".to_owned());
    let ids = addresses(&env.customers_by_key().await[&key]);

    let puts = env.count("PUT");
    env.sync(&seed, &["--rate", "0"]).await.expect_code(0);
    assert_eq!(env.count("PUT"), puts, "already up to date: nothing to PUT");

    let csv = env.write("in.csv", &with_two_addresses("Lomma"));
    env.sync(&csv, &["--rate", "0"]).await.expect_code(0);
    assert_eq!(env.count("PUT") - puts, 3, "one PUT per customer");
    let after = addresses(&env.customers_by_key().await[&key]);
    let cities: Vec<(u64, &str)> = after.iter().map(|(id, c, _)| (*id, c.as_str())).collect();
    assert_eq!(cities, [(ids[0].0, "Lund"), (ids[1].0, "Lomma")], "{ids:?}");
}

/// Rows naming California three ways, each with a second address in `city2`.
fn regions_and_second_addresses(city2: &str) -> String {
    let mut s = String::from(
        "email,firstname,lastname,address_street,address_city,address_postcode,\
         address_country_id,address_region,address_telephone,address2_street,address2_city,\
         address2_postcode,address2_country_id,address2_telephone\n",
    );
    for (i, region) in ["CA", "california", "California"].iter().enumerate() {
        s.push_str(&format!(
            "r{i}@example.com,Ro,Ek,{i} Main St,Los Angeles,90001,US,{region},555-{i},\
             Hamngatan {i},{city2},2112{i},SE,+46 40 {i}\n"
        ));
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_pull_regions_by_code_and_second_addresses_are_the_shops() {
    let env = TestEnv::new(Faults::default()).await;
    let seed = env.write("seed.csv", &regions_and_second_addresses("Malmö"));
    seed_elsewhere(&env, &seed).await;
    let before = env.customers_by_key().await;
    env.custsync(&["pull", "--rate", "0"], true)
        .await
        .expect_code(0);

    // The same file: nothing to send, however the region is spelt.
    let report = env.path("r.csv");
    let args = ["--rate", "0", "--report", report.to_str().unwrap()];
    env.sync(&seed, &args).await.expect_code(0);
    let rows = read_report(&report);
    assert!(rows.iter().all(|r| r["action"] == "unchanged"), "{rows:?}");
    assert_eq!(env.count("PUT"), 0);

    // The second address moves: updated in place, not added beside the old one.
    let moved = env.write("moved.csv", &regions_and_second_addresses("Ystad"));
    env.sync(&moved, &args).await.expect_code(0);
    let rows = read_report(&report);
    assert!(
        rows.iter()
            .all(|r| r["action"] == "update" && r["message"] == "address2_city: Malmö -> Ystad"),
        "{rows:?}"
    );
    let after = env.customers_by_key().await;
    for (key, c) in &after {
        let was: Vec<u64> = addresses(&before[key]).iter().map(|a| a.0).collect();
        let now = addresses(c);
        assert_eq!(now.iter().map(|a| a.0).collect::<Vec<_>>(), was, "{c}");
        assert!(now.iter().any(|(_, city, d)| city == "Ystad" && !*d), "{c}");
    }
    let before = env.sandbox.stats().requests.len();
    env.sync(&moved, &["--rate", "0"]).await.expect_code(0);
    assert_eq!(
        env.sandbox.stats().requests.len(),
        before,
        "a re-run sends nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_name_reaches_the_rows_address_too() {
    let env = TestEnv::new(Faults::default()).await;
    let row = |lastname: &str| {
        format!("{HEADER}\nanna@example.com,Anna,{lastname},Storgatan 1,Lund,22350,SE,+46 555\n")
    };
    let csv = env.write("in.csv", &row("Berg"));
    env.sync(&csv, &["--rate", "0"]).await.expect_code(0);
    let csv = env.write("in.csv", &row("Lind"));
    env.sync(&csv, &["--rate", "0"]).await.expect_code(0);
    let shop = env.customers_by_key().await;
    let anna = &shop[&(1, "anna@example.com".to_owned())];
    assert_eq!(anna["lastname"], "Lind");
    let addresses = anna["addresses"].as_array().expect("addresses");
    assert_eq!(addresses.len(), 1, "{anna}");
    assert_eq!(addresses[0]["lastname"], "Lind", "{anna}");
}

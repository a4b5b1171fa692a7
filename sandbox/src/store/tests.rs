//! Tests of the store through its own calls: Magento's rules on create, update and delete,
//! the journal across reopening, and searches over the stored customers.
#![cfg(test)]

use std::fs::{self, OpenOptions};
use std::io::Write;

use chrono::TimeZone;

use super::journal::JOURNAL;
use super::*;

/// The default shop, which every test here runs against.
fn shop() -> &'static Shop {
    static SHOP: std::sync::OnceLock<Shop> = std::sync::OnceLock::new();
    SHOP.get_or_init(Shop::default)
}

fn at(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, day, 10, 0, 0)
        .single()
        .expect("valid test date")
}

fn customer(email: &str) -> Value {
    json!({"customer": {"email": email, "firstname": "Ann", "lastname": "Lee"}})
}

fn address(city: &str) -> Value {
    json!({"firstname": "Ann", "lastname": "Lee", "street": ["1 Main"], "city": city,
           "telephone": "555", "postcode": "11122", "country_id": "SE"})
}

fn err(result: Result<Value, ApiError>) -> ApiError {
    result.expect_err("the call should fail")
}

#[test]
fn create_answers_magento_shape_without_password() {
    let mut store = CustomerStore::open(None).expect("memory store");
    let mut body = customer("Ann@Example.com");
    body["password"] = json!("Secret123");
    body["customer"]["extension_attributes"] = json!({"is_subscribed": true});
    let c = store.create(shop(), &body, None, at(1)).expect("created");
    assert_eq!(c["id"], 1);
    assert_eq!(c["email"], "Ann@Example.com");
    assert_eq!(c["website_id"], 1);
    assert_eq!(c["store_id"], 1);
    assert_eq!(c["group_id"], 1);
    assert_eq!(c["created_in"], "Default Store View");
    assert_eq!(c["created_at"], "2025-03-01 10:00:00");
    assert_eq!(c["addresses"], json!([]));
    assert_eq!(c["extension_attributes"], json!({"is_subscribed": true}));
    assert_eq!(c["disable_auto_group_change"], 0);
    assert!(c.get("middlename").is_none() && c.get("custom_attributes").is_none());
    assert!(!c.to_string().contains("Secret123"));
    assert_eq!(store.get("1").expect("stored"), c);
}

#[test]
fn duplicate_email_is_case_insensitive_and_per_website() {
    let mut store = CustomerStore::open(None).expect("memory store");
    store
        .create(shop(), &customer("ann@x.com"), None, at(1))
        .expect("first");
    let dup = err(store.create(shop(), &customer("ANN@X.COM"), None, at(1)));
    assert_eq!(
        (dup.status, dup.message.as_str()),
        (
            400,
            "A customer with the same email address already exists in an associated website."
        )
    );
    let mut other_site = customer("ANN@X.COM");
    other_site["customer"]["website_id"] = json!(2);
    let c = store
        .create(shop(), &other_site, None, at(1))
        .expect("second website");
    assert_eq!(
        (c["store_id"].clone(), c["created_in"].clone()),
        (json!(2), json!("Second Store View"))
    );
    // The Store header picks the website when the body names none.
    let c = store
        .create(shop(), &customer("ann@x.com"), Some(3), at(1))
        .expect("third website");
    assert_eq!(c["website_id"], 3);

    // Changing another customer's email onto a taken one fails too.
    store
        .create(shop(), &customer("bob@x.com"), None, at(1))
        .expect("bob");
    let e = err(store.update(
        shop(),
        "4",
        &json!({"customer": {"email": "Ann@x.com"}}),
        at(2),
    ));
    assert!(e.message.starts_with("A customer with the same email"));
    // Deleting frees the email.
    store.delete("1").expect("deleted");
    store
        .create(shop(), &customer("ann@x.com"), None, at(1))
        .expect("email free again");
}

#[test]
fn create_validation_messages() {
    let mut store = CustomerStore::open(None).expect("memory store");
    let cases: Vec<(Value, u16, &str, Option<Value>)> = vec![
        (
            json!({}),
            400,
            "\"%fieldName\" is required. Enter and try again.",
            Some(json!({"fieldName": "customer"})),
        ),
        (
            json!({"customer": {"firstname": "A", "lastname": "B"}}),
            400,
            "The customer email is missing. Enter and try again.",
            None,
        ),
        (
            json!({"customer": {"email": "a b@c.se", "firstname": "A", "lastname": "B"}}),
            400,
            "\"Email\" is not a valid email address.",
            None,
        ),
        (
            json!({"customer": {"email": "a@b.se", "firstname": "", "lastname": "B"}}),
            400,
            "\"First Name\" is a required value.",
            None,
        ),
        (
            json!({"customer": {"email": "a@b.se", "firstname": "A$", "lastname": "B"}}),
            400,
            "First Name is not valid!",
            None,
        ),
        (
            json!({"customer": {"email": "a@b.se", "firstname": "A", "lastname": "B", "middlename": "(x)"}}),
            400,
            "Middle Name is not valid!",
            None,
        ),
        (
            json!({"customer": {"email": "a@b.se", "firstname": "A", "lastname": "B", "dob": "2025-03-02"}}),
            400,
            "The Date of Birth should not be greater than today.",
            None,
        ),
        (
            json!({"customer": {"email": "a@b.se", "firstname": "A", "lastname": "B", "group_id": 9}}),
            400,
            "The specified customer group id does not exist.",
            None,
        ),
        (
            json!({"customer": {"email": "a@b.se", "firstname": "A", "lastname": "B", "website_id": 9}}),
            404,
            "The website with id %1 that was requested wasn't found. Verify the website and try again.",
            Some(json!([9])),
        ),
        (
            json!({"customer": {"email": "a@b.se", "firstname": "A", "lastname": "B", "website_id": 1, "store_id": 2}}),
            400,
            "The store view is not in the associated website.",
            None,
        ),
        (
            json!({"customer": {"email": "a@b.se", "firstname": "A", "lastname": "B"}, "password": "short"}),
            400,
            "The password needs at least %1 characters. Create a new password and try again.",
            Some(json!([8])),
        ),
    ];
    for (body, status, message, params) in cases {
        let e = err(store.create(shop(), &body, None, at(1)));
        assert_eq!(
            (e.status, e.message.as_str(), e.parameters),
            (status, message, params),
            "body {body}"
        );
    }
    let mut bad_address = customer("a@b.se");
    bad_address["customer"]["addresses"] = json!([address("Lund"), {"country_id": "SE"}]);
    let e = err(store.create(shop(), &bad_address, None, at(1)));
    assert_eq!(e.message, "One or more input exceptions have occurred.");
    assert!(
        store.all().is_empty(),
        "a failing address must store nothing"
    );
}

#[test]
fn put_merges_present_keys_only() {
    let mut store = CustomerStore::open(None).expect("memory store");
    let mut body = customer("ann@x.com");
    body["customer"]["middlename"] = json!("Q");
    body["customer"]["custom_attributes"] = json!([{"attribute_code": "loyalty_no", "value": "1"}, {"attribute_code": "b", "value": "2"}]);
    body["customer"]["extension_attributes"] = json!({"is_subscribed": true});
    let c = store.create(shop(), &body, None, at(1)).expect("created");
    assert_eq!(
        c["custom_attributes"],
        json!([{"attribute_code": "loyalty_no", "value": "1"}]),
        "a code the shop does not define is dropped"
    );

    let put = json!({"customer": {"lastname": "Doe", "middlename": null,
        "custom_attributes": [{"attribute_code": "b", "value": "9"}]}});
    let c = store.update(shop(), "1", &put, at(2)).expect("updated");
    assert_eq!(
        (c["firstname"].clone(), c["lastname"].clone()),
        (json!("Ann"), json!("Doe"))
    );
    assert!(c.get("middlename").is_none(), "explicit null clears");
    assert_eq!(
        c["custom_attributes"],
        json!([{"attribute_code": "loyalty_no", "value": "1"}])
    );
    assert_eq!(c["extension_attributes"]["is_subscribed"], true);
    assert_eq!(c["created_at"], "2025-03-01 10:00:00");
    assert_eq!(c["updated_at"], "2025-03-02 10:00:00");
    assert_eq!(store.get("1").expect("stored"), c);

    let e = err(store.update(shop(), "7", &put, at(2)));
    assert_eq!(
        (e.status, e.parameters),
        (
            404,
            Some(json!({"fieldName": "customerId", "fieldValue": 7}))
        )
    );
    let e = err(store.update(shop(), "1", &json!({"customer": {"email": null}}), at(2)));
    assert_eq!(
        e.message,
        "The customer email is missing. Enter and try again."
    );
    let e = err(store.update(shop(), "1", &json!({"customer": {"shoe_size": 9}}), at(2)));
    assert_eq!(
        (e.status, e.parameters),
        (400, Some(json!({"fieldName": "ShoeSize"}))),
        "unknown properties have no setter in Magento"
    );
}

#[test]
fn address_replace_keeps_ids_and_never_piles_up() {
    let mut store = CustomerStore::open(None).expect("memory store");
    let mut body = customer("ann@x.com");
    let mut first = address("Lund");
    first["default_billing"] = json!(true);
    first["default_shipping"] = json!(true);
    body["customer"]["addresses"] = json!([first]);
    let c = store.create(shop(), &body, None, at(1)).expect("created");
    let address_id = c["addresses"][0]["id"].as_i64().expect("address id");
    assert_eq!(c["default_billing"], address_id.to_string());
    assert_eq!(c["addresses"][0]["customer_id"], 1);
    assert_eq!(c["addresses"][0]["default_shipping"], true);
    assert_eq!(
        c["addresses"][0]["region"],
        json!({"region_code": null, "region": null, "region_id": 0})
    );

    for city in ["Malmö", "Umeå", "Malmö"] {
        let mut a = address(city);
        a["id"] = json!(address_id);
        let c = store
            .update(shop(), "1", &json!({"customer": {"addresses": [a]}}), at(2))
            .expect("address updated");
        let list = c["addresses"].as_array().expect("list");
        assert_eq!(list.len(), 1);
        assert_eq!(
            (list[0]["id"].as_i64(), list[0]["city"].as_str()),
            (Some(address_id), Some(city))
        );
        assert_eq!(
            c["default_billing"],
            address_id.to_string(),
            "defaults survive"
        );
        assert_eq!(list[0]["default_billing"], true);
    }

    // A list without the old id replaces the address: new id, defaults gone with it.
    let c = store
        .update(
            shop(),
            "1",
            &json!({"customer": {"addresses": [address("Kiruna")]}}),
            at(3),
        )
        .expect("replaced");
    let list = c["addresses"].as_array().expect("list");
    assert_eq!(list.len(), 1);
    assert_ne!(list[0]["id"].as_i64(), Some(address_id));
    assert!(c.get("default_billing").is_none() && c.get("default_shipping").is_none());

    // Leaving addresses out keeps them; [] deletes all.
    let c = store
        .update(shop(), "1", &json!({"customer": {"lastname": "X"}}), at(3))
        .expect("kept");
    assert_eq!(c["addresses"].as_array().map(Vec::len), Some(1));
    let c = store
        .update(shop(), "1", &json!({"customer": {"addresses": []}}), at(3))
        .expect("cleared");
    assert_eq!(c["addresses"], json!([]));

    let mut foreign = address("Lund");
    foreign["id"] = json!(999);
    let e = err(store.update(
        shop(),
        "1",
        &json!({"customer": {"addresses": [foreign]}}),
        at(3),
    ));
    assert_eq!(
        (e.status, e.parameters),
        (
            404,
            Some(json!({"fieldName": "addressId", "fieldValue": 999}))
        )
    );
}

#[test]
fn put_with_other_body_id_saves_under_body_id() {
    let mut store = CustomerStore::open(None).expect("memory store");
    let mut first = customer("a@x.com");
    first["customer"]["firstname"] = json!("Una");
    store.create(shop(), &first, None, at(1)).expect("a");
    store
        .create(shop(), &customer("b@x.com"), None, at(1))
        .expect("b");
    // The URL customer's data lands on record 2, so its email collides with record 1.
    let e = err(store.update(shop(), "1", &json!({"customer": {"id": 2}}), at(2)));
    assert!(e.message.starts_with("A customer with the same email"));

    let c = store
        .update(
            shop(),
            "1",
            &json!({"customer": {"id": 2, "email": "new@x.com"}}),
            at(2),
        )
        .expect("saved under 2");
    assert_eq!(
        (c["id"].clone(), c["email"].clone(), c["firstname"].clone()),
        (json!(2), json!("new@x.com"), json!("Una"))
    );
    assert_eq!(store.get("1").expect("untouched")["email"], "a@x.com");
    // b@x.com was freed by the overwrite.
    store
        .create(shop(), &customer("b@x.com"), None, at(2))
        .expect("b@x.com free");
    let e = err(store.update(shop(), "1", &json!({"customer": {"id": 77}}), at(2)));
    assert_eq!(
        (e.status, e.parameters),
        (
            404,
            Some(json!({"fieldName": "customerId", "fieldValue": 77}))
        )
    );
}

#[test]
fn a_data_directory_serves_one_sandbox_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = || Some(dir.path().to_owned());
    let first = LazyStore::new(data()).expect("open");
    let second = LazyStore::new(data());
    assert!(matches!(second, Err(SandboxError::Locked { .. })));
    drop(first);
    assert!(LazyStore::new(data()).is_ok(), "free again once closed");
}

#[test]
fn journal_replays_after_reopen_and_skips_torn_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let _lock = LazyStore::new(Some(data.clone())).expect("data directory");
    let before = {
        let mut store = CustomerStore::open(Some(&data)).expect("opened");
        let mut body = customer("a@x.com");
        body["customer"]["addresses"] = json!([address("Lund")]);
        store.create(shop(), &body, None, at(1)).expect("a");
        store
            .create(shop(), &customer("b@x.com"), None, at(1))
            .expect("b");
        store
            .create(shop(), &customer("c@x.com"), None, at(1))
            .expect("c");
        store
            .update(
                shop(),
                "2",
                &json!({"customer": {"lastname": "Changed"}}),
                at(2),
            )
            .expect("b updated");
        store.delete("3").expect("c deleted");
        store.all()
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&data).expect("dir").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
    let journal = data.join(JOURNAL);
    let mut file = OpenOptions::new()
        .append(true)
        .open(&journal)
        .expect("journal");
    file.write_all(br#"{"op":"put","customer":{"id":9,"ema"#)
        .expect("torn write");
    drop(file);

    let mut store = CustomerStore::open(Some(&data)).expect("reopened");
    assert_eq!(store.all(), before);
    assert_eq!(store.get("2").expect("b")["lastname"], "Changed");
    // Ids are never reused, not even the deleted customer's 3; address ids continue too.
    let mut body = customer("d@x.com");
    body["customer"]["addresses"] = json!([address("Lund")]);
    let d = store.create(shop(), &body, None, at(3)).expect("d");
    assert_eq!(d["id"], 4);
    assert_eq!(d["addresses"][0]["id"], 2);
    let err = store
        .create(shop(), &customer("A@X.COM"), None, at(3))
        .expect_err("index rebuilt");
    assert_eq!(err.status, 400);
    drop(store);

    // Compaction left the id counters and one line per live customer (a, b), then d was
    // appended.
    let text = fs::read_to_string(&journal).expect("journal text");
    assert_eq!(text.lines().count(), 1 + 2 + 1);

    // Damage that is not at the end is refused, not silently dropped.
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(1, "garbage");
    fs::write(&journal, lines.join("\n")).expect("rewrite");
    match CustomerStore::open(Some(&data)) {
        Err(SandboxError::JournalCorrupt { line, .. }) => assert_eq!(line, 2),
        other => panic!("expected JournalCorrupt, got {other:?}"),
    }
}

#[test]
fn a_journal_is_rewritten_only_when_it_must_be() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let _lock = LazyStore::new(Some(data.clone())).expect("data directory");
    let journal = data.join(JOURNAL);
    {
        let mut store = CustomerStore::open(Some(&data)).expect("opened");
        store
            .create(shop(), &customer("a@x.com"), None, at(1))
            .expect("a");
        store
            .create(shop(), &customer("b@x.com"), None, at(1))
            .expect("b");
    }
    let modified = || {
        fs::metadata(&journal)
            .expect("journal")
            .modified()
            .expect("mtime")
    };
    let before = modified();
    std::thread::sleep(std::time::Duration::from_millis(20));
    drop(CustomerStore::open(Some(&data)).expect("reopened"));
    assert_eq!(modified(), before, "nothing to compact: left as it is");

    // The last record whole but its newline lost: appending after it would join two
    // records on one line, so the journal is rewritten first.
    let text = fs::read_to_string(&journal).expect("journal text");
    fs::write(&journal, text.trim_end()).expect("drop the final newline");
    {
        let mut store = CustomerStore::open(Some(&data)).expect("reopened");
        store
            .create(shop(), &customer("c@x.com"), None, at(2))
            .expect("c");
    }
    let store = CustomerStore::open(Some(&data)).expect("reopened");
    let emails: Vec<Value> = store.all().iter().map(|c| c["email"].clone()).collect();
    assert_eq!(
        emails,
        vec![json!("a@x.com"), json!("b@x.com"), json!("c@x.com")]
    );
}

#[test]
fn search_filters_paging_and_clamp() {
    let mut store = CustomerStore::open(None).expect("memory store");
    for (i, (email, website)) in [
        ("a@x.com", 1),
        ("b@y.com", 1),
        ("c@x.com", 2),
        ("D@x.com", 1),
        ("e@z.com", 3),
    ]
    .into_iter()
    .enumerate()
    {
        let mut body = customer(email);
        body["customer"]["website_id"] = json!(website);
        body["customer"]["lastname"] = json!(format!("L{}", 5 - i));
        store.create(shop(), &body, None, at(1)).expect("created");
    }
    let run = |pairs: &[(&str, &str)]| {
        let criteria = SearchCriteria::from_query(pairs.iter().copied()).expect("criteria");
        store.search(shop(), &criteria).expect("known fields")
    };
    let ids = |v: &Value| -> Vec<i64> {
        v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["id"].as_i64())
            .collect()
    };

    // like, case-insensitive, ANDed with a numeric website filter.
    let r = run(&[
        (
            "searchCriteria[filterGroups][0][filters][0][field]",
            "email",
        ),
        (
            "searchCriteria[filterGroups][0][filters][0][value]",
            "%@X.com",
        ),
        (
            "searchCriteria[filterGroups][0][filters][0][conditionType]",
            "like",
        ),
        (
            "searchCriteria[filter_groups][1][filters][0][field]",
            "website_id",
        ),
        ("searchCriteria[filter_groups][1][filters][0][value]", "1"),
    ]);
    assert_eq!((ids(&r), r["total_count"].clone()), (vec![1, 4], json!(2)));

    // Filters of one group are ORed; eq on email ignores case.
    let r = run(&[
        (
            "searchCriteria[filterGroups][0][filters][0][field]",
            "email",
        ),
        (
            "searchCriteria[filterGroups][0][filters][0][value]",
            "d@X.COM",
        ),
        (
            "searchCriteria[filterGroups][0][filters][1][field]",
            "website_id",
        ),
        ("searchCriteria[filterGroups][0][filters][1][value]", "3"),
    ]);
    assert_eq!(ids(&r), vec![4, 5]);

    // in / gt, sorting DESC by lastname, paging with clamp past the end.
    let r = run(&[
        (
            "searchCriteria[filterGroups][0][filters][0][field]",
            "entity_id",
        ),
        ("searchCriteria[filterGroups][0][filters][0][value]", "1"),
        (
            "searchCriteria[filterGroups][0][filters][0][condition_type]",
            "gt",
        ),
        ("searchCriteria[sortOrders][0][field]", "lastname"),
        ("searchCriteria[sortOrders][0][direction]", "ASC"),
        ("searchCriteria[pageSize]", "3"),
        ("searchCriteria[currentPage]", "9"),
    ]);
    assert_eq!(r["total_count"], 4);
    assert_eq!(ids(&r), vec![2], "page 9 of 2 is the last page");
    assert_eq!(r["search_criteria"]["page_size"], 3);
    assert_eq!(r["search_criteria"]["current_page"], 9);
    assert_eq!(r["search_criteria"]["sort_orders"][0]["direction"], "ASC");
    assert_eq!(
        r["search_criteria"]["filter_groups"][0]["filters"][0]["condition_type"],
        "gt"
    );

    let r = run(&[
        (
            "searchCriteria[filterGroups][0][filters][0][field]",
            "email",
        ),
        (
            "searchCriteria[filterGroups][0][filters][0][value]",
            "a@x.com,e@z.com",
        ),
        (
            "searchCriteria[filterGroups][0][filters][0][conditionType]",
            "nin",
        ),
        ("searchCriteria[sortOrders][0][field]", "id"),
        ("searchCriteria[sortOrders][0][direction]", "DESC"),
    ]);
    assert_eq!(ids(&r), vec![4, 3, 2]);
    assert!(r["search_criteria"].get("page_size").is_none());

    let r = run(&[("searchCriteria[currentPage]", "1")]);
    assert_eq!(ids(&r), vec![1, 2, 3, 4, 5], "no pageSize: no paging");

    // Paging by id alone (what pull does) reads no customer but the page's.
    let by_id = |direction| {
        let r = run(&[
            ("searchCriteria[sortOrders][0][field]", "entity_id"),
            ("searchCriteria[sortOrders][0][direction]", direction),
            ("searchCriteria[pageSize]", "2"),
            ("searchCriteria[currentPage]", "2"),
        ]);
        (ids(&r), r["total_count"].clone())
    };
    assert_eq!(by_id("ASC"), (vec![3, 4], json!(5)));
    assert_eq!(by_id("DESC"), (vec![3, 2], json!(5)));
}

#[test]
fn email_searches_find_every_website_through_the_index() {
    let mut store = CustomerStore::open(None).expect("memory store");
    for (email, website) in [("a@x.com", 2), ("b@x.com", 1), ("A@X.com", 1)] {
        let mut body = customer(email);
        body["customer"]["website_id"] = json!(website);
        store.create(shop(), &body, None, at(1)).expect("created");
    }
    let run = |pairs: &[(&str, &str)]| {
        let criteria = SearchCriteria::from_query(pairs.iter().copied()).expect("criteria");
        let r = store.search(shop(), &criteria).expect("known fields");
        let ids: Vec<i64> = r["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["id"].as_i64())
            .collect();
        (ids, r["total_count"].clone())
    };
    let email = [
        (
            "searchCriteria[filterGroups][0][filters][0][field]",
            "email",
        ),
        (
            "searchCriteria[filterGroups][0][filters][0][value]",
            "a@X.COM",
        ),
    ];
    assert_eq!(
        run(&email),
        (vec![1, 3], json!(2)),
        "both websites, id order"
    );
    let mut on_website = email.to_vec();
    on_website.extend([
        (
            "searchCriteria[filterGroups][1][filters][0][field]",
            "website_id",
        ),
        ("searchCriteria[filterGroups][1][filters][0][value]", "1"),
    ]);
    assert_eq!(
        run(&on_website),
        (vec![3], json!(1)),
        "other groups still apply"
    );
    let missing = [
        (
            "searchCriteria[filterGroups][0][filters][0][field]",
            "email",
        ),
        (
            "searchCriteria[filterGroups][0][filters][0][value]",
            "zz@x.com",
        ),
    ];
    assert_eq!(run(&missing), (vec![], json!(0)));
}

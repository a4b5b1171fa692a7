//! Tests of the store through its own calls: Magento's rules on create, update and delete;
//! the helpers the store's other tests (`journal_tests.rs`, `search_tests.rs`) share.
#![cfg(test)]

use chrono::TimeZone;

use super::*;

/// The default shop, which every test here runs against.
pub(super) fn shop() -> &'static Shop {
    static SHOP: std::sync::OnceLock<Shop> = std::sync::OnceLock::new();
    SHOP.get_or_init(Shop::default)
}

pub(super) fn at(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, day, 10, 0, 0)
        .single()
        .expect("valid test date")
}

pub(super) fn customer(email: &str) -> Value {
    json!({"customer": {"email": email, "firstname": "Ann", "lastname": "Lee"}})
}

pub(super) fn address(city: &str) -> Value {
    json!({"firstname": "Ann", "lastname": "Lee", "street": ["1 Main"], "city": city,
           "telephone": "555", "postcode": "11122", "country_id": "SE"})
}

pub(super) fn err(result: Result<Value, ApiError>) -> ApiError {
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

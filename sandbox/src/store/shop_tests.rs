//! The store's rules that depend on the shop, each test naming the Magento source or test the
//! behaviour comes from (issue 11: the sandbox must refuse what the shop refuses).

use chrono::TimeZone;

use super::*;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 10, 0, 0)
        .single()
        .expect("valid test date")
}

fn body(extra: Value) -> Value {
    let mut customer = json!({"email": "ann@example.com", "firstname": "Ann", "lastname": "Lee"});
    for (k, v) in extra.as_object().expect("object") {
        customer[k] = v.clone();
    }
    json!({ "customer": customer })
}

fn us_address(region: Value) -> Value {
    json!({"firstname": "Ann", "lastname": "Lee", "street": ["1 Main"], "city": "LA",
        "telephone": "555", "postcode": "90001", "country_id": "US", "region": region})
}

fn create(store: &mut CustomerStore, shop: &Shop, extra: Value) -> Result<Value, ApiError> {
    store.create(shop, &body(extra), None, now())
}

fn store() -> CustomerStore {
    CustomerStore::open(None).expect("memory store")
}

/// `ServiceInputProcessor` (2.4.7+): a key without a setter on `CustomerInterface`, or on its
/// extension attributes, is a 400 naming it (integration test
/// `ServiceInputProcessorTest::testValidateApiPayload`), before anything is validated.
#[test]
fn an_unknown_property_is_a_400_naming_it() {
    let shop = Shop::default();
    let mut store = store();
    let e =
        create(&mut store, &shop, json!({"shoe_size": 9, "email": "bad"})).expect_err("unknown");
    assert_eq!(
        (e.status, e.message.as_str(), e.parameters),
        (
            400,
            "\"%fieldName\" is not supported. Correct the field name and try again.",
            Some(json!({"fieldName": "ShoeSize"}))
        )
    );
    let e = create(
        &mut store,
        &shop,
        json!({"extension_attributes": {"vip": true}}),
    )
    .expect_err("unknown extension attribute");
    assert_eq!(e.parameters, Some(json!({"fieldName": "Vip"})));
    // PHP method names ignore case: `firstName` is `setFirstname`.
    let camel =
        json!({"customer": {"email": "ann@example.com", "firstName": "Anna", "LASTNAME": "Lee"}});
    let c = store.create(&shop, &camel, None, now()).expect("created");
    assert_eq!(
        (c["firstname"].clone(), c["lastname"].clone()),
        (json!("Anna"), json!("Lee"))
    );
    assert!(store.all().len() == 1);
}

/// `Eav/Model/Entity/Attribute/Backend/Time/Created::beforeSave` sets `created_at` only when
/// it is empty: a migrated date is kept (a DATETIME: a date gets midnight).
#[test]
fn created_at_given_on_create_is_kept() {
    let shop = Shop::default();
    let mut store = store();
    let c = create(
        &mut store,
        &shop,
        json!({"created_at": "2019-05-04 08:09:10"}),
    )
    .expect("created");
    assert_eq!(c["created_at"], "2019-05-04 08:09:10");
    assert_eq!(c["updated_at"], "2025-03-01 10:00:00");
    let c = create(
        &mut store,
        &shop,
        json!({"email": "b@example.com", "created_at": "2018-01-02"}),
    )
    .expect("created");
    assert_eq!(c["created_at"], "2018-01-02 00:00:00");
    let e = create(
        &mut store,
        &shop,
        json!({"email": "c@example.com", "created_at": "soon"}),
    )
    .expect_err("not a date");
    assert_eq!(e.status, 500);
}

/// `AccountManagementApi::createAccount` sets `confirmation` to null on the customer it
/// answers with; the stored customer keeps what was saved.
#[test]
fn the_post_answer_has_no_confirmation() {
    let shop = Shop::default();
    let mut store = store();
    let c = create(&mut store, &shop, json!({"confirmation": "abc"})).expect("created");
    assert!(c.get("confirmation").is_none(), "{c}");
    assert_eq!(store.get("1").expect("stored")["confirmation"], "abc");
}

/// `AccountManagement::createAccountWithPasswordHash` skips an address whose country the
/// website does not allow (`isAddressAllowedForWebsite`; integration test
/// `CreateAccountTest::testCreateNewCustomerWithPasswordHashWithNotAllowedCountry`); a save
/// that names one is refused by `Validator\Country::validateCountry`.
#[test]
fn an_address_in_a_country_not_allowed_is_skipped_on_create() {
    let shop = Shop::default();
    let mut store = store();
    let mut cuba = us_address(json!({"region_code": "CA"}));
    cuba["country_id"] = json!("CU");
    let c = create(
        &mut store,
        &shop,
        json!({"addresses": [cuba.clone(), us_address(json!({"region_code": "CA"}))]}),
    )
    .expect("created without the Cuban address");
    let addresses = c["addresses"].as_array().expect("list");
    assert_eq!(addresses.len(), 1);
    assert_eq!(addresses[0]["country_id"], "US");
    let e = store
        .update(
            &shop,
            "1",
            &json!({"customer": {"addresses": [cuba]}}),
            now(),
        )
        .expect_err("not allowed");
    assert_eq!(
        (e.status, e.parameters),
        (400, Some(json!({"fieldName": "countryId", "value": "CU"})))
    );
}

/// `Validator\Country::validateRegion` on a create: the region code `CA` is saved as 12
/// "California"; region 500 is not a US region and nothing is stored (the address failing
/// rolls the customer back, `createAccountWithPasswordHash`).
#[test]
fn regions_are_resolved_and_checked_on_save() {
    let shop = Shop::default();
    let mut store = store();
    let c = create(
        &mut store,
        &shop,
        json!({"addresses": [us_address(json!({"region_code": "CA"}))]}),
    )
    .expect("created");
    let a = &c["addresses"][0];
    assert_eq!(a["region_id"], 12);
    assert_eq!(
        a["region"],
        json!({"region_code": "CA", "region": "California", "region_id": 12})
    );
    let e = create(
        &mut store,
        &shop,
        json!({"email": "b@example.com", "addresses": [us_address(json!({"region_id": 500}))]}),
    )
    .expect_err("no region 500 in the US");
    assert_eq!(
        e.parameters,
        Some(json!({"fieldName": "regionId", "value": "500"}))
    );
    assert_eq!(store.all().len(), 1);
}

/// Store and website on create (`createAccountWithPasswordHash`): a store view outside the
/// website is a 400 (integration test `CreateAccountTest`, case
/// `send_email_store_id_not_match_website`: website 1, store 5); an unknown website is
/// `WebsiteRepository::getById`'s 404, an unknown store without a website
/// `StoreRepository::getById`'s 404; an unknown group the resource model's 400.
#[test]
fn websites_stores_and_groups_as_the_shop_has_them() {
    let shop = Shop::default();
    let mut store = store();
    let cases = [
        (
            json!({"website_id": 1, "store_id": 5}),
            400,
            "The store view is not in the associated website.",
            None,
        ),
        (
            json!({"website_id": 1, "store_id": 2}),
            400,
            "The store view is not in the associated website.",
            None,
        ),
        (
            json!({"store_id": 5}),
            404,
            "The store that was requested wasn't found. Verify the store and try again.",
            None,
        ),
        (
            json!({"website_id": 99}),
            404,
            "The website with id %1 that was requested wasn't found. Verify the website and try again.",
            Some(json!([99])),
        ),
        (
            json!({"group_id": 9}),
            400,
            "The specified customer group id does not exist.",
            None,
        ),
    ];
    for (extra, status, message, params) in cases {
        let e = create(&mut store, &shop, extra.clone()).expect_err("refused");
        assert_eq!(
            (e.status, e.message.as_str(), e.parameters),
            (status, message, params),
            "{extra}"
        );
    }
    let c = create(&mut store, &shop, json!({"store_id": 3})).expect("store 3 is website 3's");
    assert_eq!(
        (c["website_id"].clone(), c["created_in"].clone()),
        (json!(3), json!("Third Store View"))
    );
}

/// Magento's EAV e-mail rule (`Eav/Model/Attribute/Data/AbstractData::_validateInputRule`
/// with Laminas' `EmailAddress`): `..`, a local part over 64 characters and, when the shop
/// checks them (Magento 2.1; `Framework/Validator/EmailAddress.php` turns it off from 2.2 on,
/// its test `testDefaultValidateIgnoresTLD` takes `user@domain.unknown`), unknown top-level
/// domains are refused.
#[test]
fn emails_are_checked_as_the_shop_does() {
    let shop = Shop {
        email_tld_check: true,
        ..Shop::default()
    };
    let mut store = store();
    let local = "a".repeat(65);
    let cases = [
        (
            "ann..lee@example.com",
            "\"Email\" is not a valid email address.",
        ),
        (local.as_str(), "\"Email\" uses too many characters."),
        ("ann@gmail.con", "\"Email\" is not a valid hostname."),
    ];
    for (email, first_line) in cases {
        let email = if email == local {
            format!("{local}@example.com")
        } else {
            email.to_owned()
        };
        let e = create(&mut store, &shop, json!({ "email": email })).expect_err("invalid");
        assert_eq!(e.status, 400);
        assert_eq!(e.message.lines().next(), Some(first_line), "{email}");
    }
    for email in ["ann@gmail.con", "user@domain.unknown"] {
        create(&mut store, &Shop::default(), json!({ "email": email }))
            .expect("the default shop does not check TLDs");
    }
}

/// `Eav\Model\Entity\Collection\AbstractCollection::_getAttributeFieldName`: a filter on a
/// field the customer entity lacks is a 400 `Invalid attribute name: %1`; custom attributes
/// and the billing address columns `CustomerRepository::getList` joins can be filtered on.
#[test]
fn searches_name_unknown_fields() {
    let shop = Shop::default();
    let mut store = store();
    create(
        &mut store,
        &shop,
        json!({"custom_attributes": [{"attribute_code": "loyalty_no", "value": "L-7"}],
            "addresses": [{"firstname": "Ann", "lastname": "Lee", "street": ["1 Main"], "city": "LA",
                "telephone": "555", "postcode": "90001", "country_id": "US", "region_id": 12,
                "default_billing": true}]}),
    )
    .expect("created");
    let search = |field: &str, value: &str| {
        let criteria = SearchCriteria::from_query([
            ("searchCriteria[filterGroups][0][filters][0][field]", field),
            ("searchCriteria[filterGroups][0][filters][0][value]", value),
        ])
        .expect("criteria");
        store.search(&shop, &criteria)
    };
    for field in ["shoe_size", "id"] {
        let e = search(field, "1").expect_err("unknown field");
        assert_eq!(
            (e.status, e.message.as_str(), e.parameters),
            (400, "Invalid attribute name: %1", Some(json!([field])))
        );
    }
    for (field, value) in [
        ("loyalty_no", "L-7"),
        ("billing_city", "LA"),
        ("billing_region", "California"),
        ("name", "Ann Lee"),
        ("entity_id", "1"),
    ] {
        let found = search(field, value).expect("known field");
        assert_eq!(found["total_count"], 1, "{field}");
    }
}

/// A required custom attribute left empty gets the EAV rule's `"%1" is a required value.`
/// with its label, as `"First Name" is a required value.` (`CreateAccountTest`).
#[test]
fn a_required_custom_attribute_is_required() {
    let mut shop = Shop::default();
    shop.custom_attributes[0].required = true;
    let mut store = store();
    let e = create(&mut store, &shop, json!({})).expect_err("missing");
    assert_eq!(e.message, "\"Loyalty number\" is a required value.");
    create(
        &mut store,
        &shop,
        json!({"custom_attributes": [{"attribute_code": "loyalty_no", "value": "L-1"}]}),
    )
    .expect("given");
}

//! The address rules against the default shop, each with the Magento source it follows.

use serde_json::{Value, json};

use super::*;

fn us_address() -> Value {
    json!({"firstname": "A", "lastname": "B", "street": ["1 Main"], "city": "LA",
        "telephone": "1", "postcode": "9", "country_id": "US"})
}

fn check(mut raw: Value, region: Value) -> Result<AddressInput, ApiError> {
    if !region.is_null() {
        raw["region"] = region;
    }
    address(&raw, &Shop::default(), 1)
}

/// `AbstractAddress::getRegionId` looks a region up by code (`Region::loadByCode`, MySQL's
/// case-insensitive collation); the saved address carries the list's code, name and id.
#[test]
fn a_region_code_or_name_becomes_its_id() {
    for region in [
        json!({"region_code": "CA"}),
        json!({"region": "ca"}),
        json!({"region": "California"}),
        json!({"region_id": 12}),
    ] {
        let a = check(us_address(), region.clone()).expect("valid");
        assert_eq!(a.fields["region_id"], 12, "{region}");
        assert_eq!(
            a.fields["region"],
            json!({"region_code": "CA", "region": "California", "region_id": 12})
        );
    }
    let mut top_level = us_address();
    top_level["region_id"] = json!(23);
    let a = address(&top_level, &Shop::default(), 1).expect("valid");
    assert_eq!(a.fields["region"]["region"], "Illinois");
}

/// `Validator\Country::validateRegion`: an id outside the country's list is refused with
/// the id as the value (unit test `AddressRepositoryTest::testInvalidRegionId`); a country
/// with a required region list needs one (`"regionId" is required`).
#[test]
fn region_ids_are_checked_against_the_country() {
    let e = check(us_address(), json!({"region_id": 500})).expect_err("not a US region");
    assert_eq!(
        (e.status, e.message.as_str(), e.parameters),
        (
            400,
            "Invalid value of \"%value\" provided for the %fieldName field.",
            Some(json!({"fieldName": "regionId", "value": "500"}))
        )
    );
    let e = check(us_address(), json!({"region_id": 66})).expect_err("Alberta is Canadian");
    assert_eq!(
        e.parameters,
        Some(json!({"fieldName": "regionId", "value": "66"}))
    );
    for region in [Value::Null, json!({"region": "Atlantis"})] {
        let e = check(us_address(), region).expect_err("US needs a state");
        assert_eq!(
            (e.message.as_str(), e.parameters),
            (
                "\"%fieldName\" is required. Enter and try again.",
                Some(json!({"fieldName": "regionId"}))
            )
        );
    }
}

/// Every saved address has `region_id` and a `region` object: 0 and nulls without a region
/// (the payload of magento/magento2#14054), the text as given for a country without a list.
#[test]
fn addresses_always_carry_region_and_region_id() {
    let mut se = us_address();
    se["country_id"] = json!("SE");
    let a = address(&se, &Shop::default(), 1).expect("valid");
    assert_eq!(a.fields["region_id"], 0);
    assert_eq!(
        a.fields["region"],
        json!({"region_code": null, "region": null, "region_id": 0})
    );
    se["region"] = json!({"region": "Skåne"});
    let a = address(&se, &Shop::default(), 1).expect("valid");
    assert_eq!(
        a.fields["region"],
        json!({"region_code": "Skåne", "region": "Skåne", "region_id": 0})
    );
}

/// `Validator\General` and `Validator\Country::validateCountry`, merged by
/// `CompositeValidator` into one aggregate answer.
#[test]
fn required_fields_and_countries() {
    let mut no_country = us_address();
    no_country["country_id"] = Value::Null;
    let e = address(&no_country, &Shop::default(), 1).expect_err("country missing");
    assert_eq!(e.parameters, Some(json!({"fieldName": "countryId"})));

    let e = address(
        &json!({"country_id": "XX", "firstname": "A"}),
        &Shop::default(),
        1,
    )
    .expect_err("many errors");
    assert_eq!(e.message, "One or more input exceptions have occurred.");
    assert!(e.errors.len() >= 5);
    assert_eq!(
        e.errors.last().and_then(|e| e.parameters.clone()),
        Some(json!({"fieldName": "countryId", "value": "XX"}))
    );

    let mut ie = us_address();
    ie["country_id"] = json!("IE");
    ie["postcode"] = Value::Null;
    address(&ie, &Shop::default(), 1).expect("Irish postcodes are optional");
}

/// `ServiceInputProcessor` binds address and region keys to `AddressInterface` and
/// `RegionInterface` setters; a key without one is a 400 naming it.
#[test]
fn unknown_address_keys_are_named() {
    let mut raw = us_address();
    raw["house_no"] = json!(5);
    let e = address(&raw, &Shop::default(), 1).expect_err("no such field");
    assert_eq!(e.parameters, Some(json!({"fieldName": "HouseNo"})));
    let e = check(us_address(), json!({"state": "CA"})).expect_err("no such region field");
    assert_eq!(e.parameters, Some(json!({"fieldName": "State"})));
    assert_eq!(country_of(&us_address()).as_deref(), Some("US"));
}

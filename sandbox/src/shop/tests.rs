//! Tests of the shop model: the default shop, the example file, and the refusals of a shop
//! file that does not hold together.

use super::load::from_str;
use super::*;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/shop-example.toml");

#[test]
fn the_default_shop_fits_the_sample_file() {
    let shop = Shop::default();
    assert_eq!(shop.website_ids().collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(shop.default_store().code, "default");
    assert_eq!(shop.website_store(2).map(|s| s.id), Some(2));
    assert!((0..=3).all(|g| shop.group_exists(g)) && !shop.group_exists(4));
    assert_eq!(shop.default_customer_group, 1);
    assert!(shop.custom_attribute("loyalty_no").is_some());
    assert!(!shop.email_tld_check, "as Magento 2.2 on");
    // Every country sample-customers.csv uses is allowed, none of them needs a region.
    for id in [
        "SE", "ES", "PL", "DE", "JP", "FR", "NO", "PT", "FI", "IT", "NL", "GB",
    ] {
        let c = shop.country(id).expect("known");
        assert!(
            shop.allowed_countries(Some(1)).iter().any(|a| a == id),
            "{id}"
        );
        assert!(!c.region_required, "{id}");
    }
    let us = shop.country("US").expect("US");
    assert!(us.region_required);
    assert_eq!(us.region_named("CA").map(|r| r.id), Some(12));
    assert_eq!(us.region_named("illinois").map(|r| r.id), Some(23));
    assert_eq!(
        us.region_named("AE").map(|r| r.name.as_str()),
        Some("Armed Forces Africa")
    );
    assert!(shop.country("IE").is_some_and(|c| c.postcode_optional));
}

#[test]
fn the_example_file_loads() {
    let shop = Shop::load(std::path::Path::new(EXAMPLE)).expect("example shop");
    assert_eq!(shop.website_ids().collect::<Vec<_>>(), [1, 2]);
    assert_eq!(shop.default_store().code, "default");
    assert_eq!(
        shop.website_store(2).map(|s| s.code.as_str()),
        Some("nordic_sv")
    );
    assert!(shop.group_exists(4) && !shop.group_exists(3));
    // Per-website allowed countries.
    assert!(
        shop.allowed_countries(Some(2))
            .iter()
            .all(|c| ["SE", "NO", "DK", "FI"].contains(&c.as_str()))
    );
    assert!(shop.allowed_countries(Some(1)).iter().any(|c| c == "DE"));
    let de = shop.country("DE").expect("DE");
    assert_eq!(de.region_named("Bayern").map(|r| r.id), Some(81));
    assert!(!de.region_required, "regions_optional");
    let se = shop.country("SE").expect("SE");
    assert!(se.region_required, "a listed region list is required");
    assert_eq!(
        se.region_named("SE-M").map(|r| r.name.as_str()),
        Some("Skåne län")
    );
    let tier = shop
        .custom_attribute("loyalty_tier")
        .expect("select attribute");
    assert_eq!((tier.backend_type.as_str(), tier.options.len()), ("int", 3));
    assert!(!shop.email_tld_check);
}

/// A minimal valid shop, for the refusal cases to break one thing each.
const MINIMAL: &str = r#"
allowed_countries = ["SE"]
[[websites]]
id = 1
code = "base"
name = "Main Website"
[[store_groups]]
id = 1
website_id = 1
code = "main"
name = "Main Store"
[[store_views]]
id = 1
code = "default"
name = "Default Store View"
website_id = 1
store_group_id = 1
[[customer_groups]]
id = 1
code = "General"
"#;

#[test]
fn shop_files_that_do_not_hold_together_are_refused() {
    from_str(MINIMAL).expect("the minimal shop is valid");
    let cases = [
        ("colour = \"red\"\n", "unknown field `colour`"),
        (
            "[[websites]]\nid = 2\ncode = \"x\"\nname = \"X\"\nlang = \"sv\"\n",
            "unknown field `lang`",
        ),
        (
            "[[websites]]\nid = 1\ncode = \"y\"\nname = \"Y\"\n",
            "websites: id 1 appears twice",
        ),
        (
            "[[websites]]\nid = 2\ncode = \"y\"\nname = \"Y\"\n",
            "website 2 has no store group",
        ),
        (
            "[[store_views]]\nid = 2\ncode = \"s\"\nname = \"S\"\nwebsite_id = 1\nstore_group_id = 9\n",
            "store group 9",
        ),
        ("regions_optional = [\"XX\"]\n", "country `XX`"),
        (
            "[[custom_attributes]]\nattribute_code = \"email\"\nlabel = \"E\"\n",
            "`email`",
        ),
        (
            "[[custom_attributes]]\nattribute_code = \"x\"\nlabel = \"X\"\nfrontend_input = \"slider\"\n",
            "frontend_input `slider`",
        ),
        ("[[countries]]\nid = \"ZZ\"\n", "needs name and iso3"),
        (
            "[[countries]]\nid = \"SE\"\nregions = [{ id = 12, code = \"X\", name = \"X\" }]\n",
            "region 12",
        ),
        ("default_customer_group = 7\n", "default_customer_group 7"),
    ];
    for (extra, expected) in cases {
        // Top-level keys must come before the first table.
        let text = if extra.starts_with('[') {
            format!("{MINIMAL}{extra}")
        } else {
            format!("{extra}{MINIMAL}")
        };
        let error = from_str(&text).expect_err(extra);
        assert!(error.contains(expected), "{extra}: {error}");
    }
}

#[test]
fn a_missing_file_is_named() {
    let error = Shop::load(std::path::Path::new("/nonexistent/shop.toml")).expect_err("missing");
    assert!(
        error
            .to_string()
            .starts_with("shop file /nonexistent/shop.toml: "),
        "{error}"
    );
}

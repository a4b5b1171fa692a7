//! The shop's read endpoints over HTTP, in the shapes of Adobe's schema
//! (`accs-shop-and-bulk-openapi.yaml`), and the `--shop FILE` model behind them.

use super::*;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/shop-example.toml");

async fn get(
    c: &reqwest::Client,
    sb: &RunningSandbox,
    path: &str,
    token: Option<&str>,
    store: Option<&str>,
) -> (u16, Value) {
    let mut request = c.get(format!("{}/V1/{path}", sb.endpoint()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(store) = store {
        request = request.header("Store", store);
    }
    json_of(request.send().await.expect("answer")).await
}

#[tokio::test]
async fn read_endpoints_describe_the_default_shop() {
    let sb = sandbox(Faults::default()).await;
    let c = client();
    for (path, resource) in [
        ("store/websites", "Magento_Backend::stores"),
        ("store/storeViews", "Magento_Backend::stores"),
        (
            "customerGroups/search?searchCriteria[pageSize]=9",
            "Magento_Customer::group",
        ),
        ("directory/countries", "Magento_Backend::stores"),
        (
            "attributeMetadata/customer/custom",
            "Magento_Customer::customer",
        ),
    ] {
        let (status, body) = get(&c, &sb, path, None, None).await;
        assert_eq!(
            (status, body["parameters"]["resources"].as_str()),
            (401, Some(resource)),
            "{path} needs a token"
        );
    }
    let t = token(&c, &sb).await;
    let t = Some(t.as_str());

    // WebsiteRepository::getList and StoreRepository::getList include the admin scope 0.
    let (status, websites) = get(&c, &sb, "store/websites", t, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        websites[0],
        json!({"id": 0, "code": "admin", "name": "Admin", "default_group_id": 0})
    );
    assert_eq!(
        websites[1],
        json!({"id": 1, "code": "base", "name": "Main Website", "default_group_id": 1})
    );
    assert_eq!(websites.as_array().map(Vec::len), Some(4));
    let (_, views) = get(&c, &sb, "store/storeViews", t, None).await;
    assert_eq!(
        views[2],
        json!({"id": 2, "code": "second", "name": "Second Store View", "website_id": 2,
            "store_group_id": 2, "is_active": 1})
    );

    // Customer groups: searchCriteria as for customers, paged.
    let (status, body) = get(&c, &sb, "customerGroups/search", t, None).await;
    assert_eq!(
        (status, body["parameters"].clone()),
        (400, json!({"fieldName": "searchCriteria"}))
    );
    let (status, page) = get(
        &c,
        &sb,
        "customerGroups/search?searchCriteria[pageSize]=2&searchCriteria[currentPage]=2",
        t,
        None,
    )
    .await;
    assert_eq!((status, page["total_count"].clone()), (200, json!(4)));
    assert_eq!(
        page["items"][0],
        json!({"id": 2, "code": "Wholesale", "tax_class_id": 3, "tax_class_name": "Retail Customer"})
    );
    assert_eq!(page["search_criteria"]["page_size"], 2);
    let (status, _) = get(
        &c,
        &sb,
        "customerGroups/search?searchCriteria[filterGroups][0][filters][0][field]=colour&searchCriteria[filterGroups][0][filters][0][value]=x",
        t,
        None,
    )
    .await;
    assert_eq!(status, 500, "an unknown column is a database error");

    // Countries: region ids are strings; a country without regions has no list.
    let (_, countries) = get(&c, &sb, "directory/countries", t, None).await;
    let list = countries.as_array().expect("list");
    assert_eq!(list.len(), 22);
    let us = list.iter().find(|c| c["id"] == "US").expect("US");
    assert_eq!(us["three_letter_abbreviation"], "USA");
    assert_eq!(us["full_name_english"], "United States");
    assert_eq!(
        us["available_regions"][11],
        json!({"id": "12", "code": "CA", "name": "California"})
    );
    let se = list.iter().find(|c| c["id"] == "SE").expect("SE");
    assert!(se.get("available_regions").is_none());
    let (status, at) = get(&c, &sb, "directory/countries/AT", t, None).await;
    assert_eq!(
        (status, at["available_regions"][0]["code"].clone()),
        (200, json!("AT-9"))
    );
    let (status, body) = get(&c, &sb, "directory/countries/CU", t, None).await;
    assert_eq!(
        (status, body["message"].clone()),
        (404, json!("The country isn't available."))
    );

    let (_, attributes) = get(&c, &sb, "attributeMetadata/customer/custom", t, None).await;
    assert_eq!(attributes[0]["attribute_code"], "loyalty_no");
    assert_eq!(attributes[0]["frontend_label"], "Loyalty number");
    assert_eq!(attributes[0]["user_defined"], true);

    // An unknown Store header matches no route, as on the customer routes.
    let (status, _) = get(&c, &sb, "store/websites", t, Some("nowhere")).await;
    assert_eq!(status, 404);
    sb.shutdown().await;
}

#[tokio::test]
async fn a_shop_file_replaces_the_default_shop() {
    let listen: SocketAddr = ([127, 0, 0, 1], 0).into();
    let config = SandboxConfig {
        shop: Some(EXAMPLE.into()),
        ..SandboxConfig::default()
    };
    let sb = start(config, listen)
        .await
        .expect("sandbox with the example shop");
    let c = client();
    let bearer = token(&c, &sb).await;
    let t = Some(bearer.as_str());
    let (_, websites) = get(&c, &sb, "store/websites", t, None).await;
    assert_eq!(websites[2]["code"], "nordic");
    // The Nordic store view sees the Nordic website's countries only.
    let (_, nordic) = get(&c, &sb, "directory/countries", t, Some("nordic_sv")).await;
    let ids: Vec<&str> = nordic
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, ["DK", "FI", "NO", "SE"]);
    let (status, _) = get(&c, &sb, "directory/countries/US", t, Some("nordic_sv")).await;
    assert_eq!(status, 404);

    // Its rules: a Swedish address needs a region of its list; the US is not allowed on the
    // Nordic website, so that address is skipped on create.
    let address = |country: &str, region: Value| {
        json!({"firstname": "A", "lastname": "B", "street": ["1"], "city": "Lund",
            "telephone": "1", "postcode": "22350", "country_id": country, "region": region})
    };
    let post = |body: Value| {
        c.post(format!("{}/V1/customers", sb.endpoint()))
            .bearer_auth(&bearer)
            .json(&body)
            .send()
    };
    let (status, body) = json_of(
        post(
            json!({"customer": {"email": "a@example.se", "firstname": "A", "lastname": "B",
            "website_id": 2, "addresses": [address("SE", json!({"region": "Skåne län"})),
            address("US", json!({"region_code": "CA"}))]}}),
        )
        .await
        .expect("answer"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["store_id"], 3, "the website's default store");
    assert_eq!(body["addresses"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["addresses"][0]["region_id"], 1011);
    let (status, body) = json_of(
        post(
            json!({"customer": {"email": "b@example.se", "firstname": "A", "lastname": "B",
            "website_id": 2, "addresses": [address("SE", Value::Null)]}}),
        )
        .await
        .expect("answer"),
    )
    .await;
    assert_eq!(
        (status, body["parameters"].clone()),
        (400, json!({"fieldName": "regionId"}))
    );
    sb.shutdown().await;

    // A shop file with an unknown key does not start.
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("shop.toml");
    std::fs::write(&bad, "colour = \"red\"\n").expect("write");
    let config = SandboxConfig {
        shop: Some(bad),
        ..SandboxConfig::default()
    };
    let error = start(config, listen).await.expect_err("refused");
    assert!(
        error.to_string().contains("unknown field `colour`"),
        "{error}"
    );
}

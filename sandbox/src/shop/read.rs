//! The answers of the shop's read endpoints, in the shapes of Adobe's published schema
//! (`accs-shop-and-bulk-openapi.yaml`): pure functions of the shop model.

use serde_json::{Map, Value, json};

use super::{Country, Shop};
use crate::error::ApiError;
use crate::search::SearchCriteria;
use crate::stored::Stored;

/// `GET /V1/store/websites` (`WebsiteRepository::getList`, which loads the collection with
/// `setLoadDefault(true)`: the admin website 0 comes first).
pub(crate) fn websites(shop: &Shop) -> Value {
    let admin = json!({"id": 0, "code": "admin", "name": "Admin", "default_group_id": 0});
    let list = shop.websites.iter().map(|w| {
        json!({"id": w.id, "code": w.code, "name": w.name, "default_group_id": w.default_group_id})
    });
    Value::Array(std::iter::once(admin).chain(list).collect())
}

/// `GET /V1/store/storeViews` (`StoreRepository::getList`, the admin store view 0 included).
pub(crate) fn store_views(shop: &Shop) -> Value {
    let admin = json!({"id": 0, "code": "admin", "name": "Admin", "website_id": 0,
        "store_group_id": 0, "is_active": 1});
    let list = shop.store_views.iter().map(|s| {
        json!({"id": s.id, "code": s.code, "name": s.name, "website_id": s.website_id,
            "store_group_id": s.store_group_id, "is_active": 1})
    });
    Value::Array(std::iter::once(admin).chain(list).collect())
}

/// Fields a customer group search may filter on: `GroupRepository::getList` maps them onto
/// the `customer_group` table's columns.
const GROUP_FIELDS: &[&str] = &["id", "code", "tax_class_id", "tax_class_name"];

/// `GET /V1/customerGroups/search`, paged like the customer search. A filter on another
/// field reaches the database as an unknown column: Magento's 500.
pub(crate) fn customer_groups(shop: &Shop, criteria: &SearchCriteria) -> Result<Value, ApiError> {
    if criteria.filter_fields().any(|f| !GROUP_FIELDS.contains(&f)) {
        return Err(ApiError::internal());
    }
    let groups: Vec<Stored> = shop
        .customer_groups
        .iter()
        .map(|g| {
            let record = json!({"id": g.id, "code": g.code, "tax_class_id": g.tax_class_id,
                "tax_class_name": g.tax_class_name});
            Stored::new(record.as_object().expect("a JSON object"))
        })
        .collect();
    Ok(criteria.run(groups.iter()))
}

/// `GET /V1/directory/countries`: the countries allowed in the request's scope (the store
/// view's website, or the default scope), each with its regions.
pub(crate) fn countries(shop: &Shop, website: Option<i64>) -> Value {
    let mut list: Vec<&Country> = shop
        .allowed_countries(website)
        .iter()
        .filter_map(|id| shop.country(id))
        .collect();
    list.sort_by(|a, b| a.id.cmp(&b.id));
    list.dedup_by(|a, b| a.id == b.id);
    Value::Array(list.into_iter().map(country_info).collect())
}

/// `GET /V1/directory/countries/{countryId}`; a country not allowed in the scope is a 404
/// (`CountryInformationAcquirer::getCountryInfo`).
pub(crate) fn country(shop: &Shop, website: Option<i64>, id: &str) -> Result<Value, ApiError> {
    shop.allowed_countries(website)
        .iter()
        .find(|c| *c == id)
        .and_then(|c| shop.country(c))
        .map(country_info)
        .ok_or_else(|| ApiError::new(404, "The country isn't available."))
}

/// `CountryInformationInterface`: region ids are strings there, and `available_regions` is
/// left out for a country without regions.
fn country_info(c: &Country) -> Value {
    let mut info = Map::new();
    info.insert("id".into(), json!(c.id));
    info.insert("two_letter_abbreviation".into(), json!(c.id));
    info.insert("three_letter_abbreviation".into(), json!(c.iso3));
    info.insert("full_name_locale".into(), json!(c.name));
    info.insert("full_name_english".into(), json!(c.name));
    if !c.regions.is_empty() {
        let regions = c
            .regions
            .iter()
            .map(|r| json!({"id": r.id.to_string(), "code": r.code, "name": r.name}))
            .collect();
        info.insert("available_regions".into(), Value::Array(regions));
    }
    Value::Object(info)
}

/// `GET /V1/attributeMetadata/customer/custom`: `AttributeMetadataInterface` of each custom
/// attribute.
pub(crate) fn custom_attributes(shop: &Shop) -> Value {
    let list = shop.custom_attributes.iter().map(|a| {
        let options: Vec<Value> = a
            .options
            .iter()
            .map(|(value, label)| json!({"label": label, "value": value}))
            .collect();
        json!({
            "attribute_code": a.code,
            "frontend_input": a.frontend_input,
            "input_filter": "",
            "store_label": a.label,
            "validation_rules": [],
            "multiline_count": 0,
            "visible": true,
            "required": a.required,
            "data_model": "",
            "options": options,
            "frontend_class": "",
            "user_defined": true,
            "sort_order": a.sort_order,
            "frontend_label": a.label,
            "note": "",
            "system": false,
            "backend_type": a.backend_type,
            "is_used_in_grid": false,
            "is_visible_in_grid": false,
            "is_filterable_in_grid": false,
            "is_searchable_in_grid": false,
        })
    });
    Value::Array(list.collect())
}

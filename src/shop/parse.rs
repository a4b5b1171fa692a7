//! The read endpoints' answers, in the shapes of Adobe's published schema, to the parts of the
//! [`Model`](super::Model). Pure. Ids are taken as numbers or as numeric strings (the schema
//! has region ids as strings); an entry without an id is an answer this client does not
//! understand, and says so rather than guess.

use serde_json::Value;

use super::{Attribute, Country, Group, Region, StoreView, Website};

/// What is wrong with an answer.
pub(super) type Shape = String;

fn list<'a>(v: &'a Value, what: &str) -> Result<&'a Vec<Value>, Shape> {
    v.as_array()
        .ok_or_else(|| format!("expected a list of {what}"))
}

fn id(v: &Value, key: &str) -> Option<u32> {
    match v.get(key)? {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn need_id(v: &Value, key: &str, what: &str) -> Result<u32, Shape> {
    id(v, key).ok_or_else(|| format!("a {what} without a numeric `{key}`"))
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The entries of a list but the admin one (id 0), each made by `make` with its id.
fn without_admin<T>(
    v: &Value,
    what: &str,
    make: impl Fn(&Value, u32) -> Result<T, Shape>,
) -> Result<Vec<T>, Shape> {
    let mut out = Vec::new();
    for item in list(v, &format!("{what}s"))? {
        let id = need_id(item, "id", what)?;
        if id != 0 {
            out.push(make(item, id)?);
        }
    }
    Ok(out)
}

/// `GET /V1/store/websites`: `store-data-website-interface[]`, without the admin website 0.
pub(super) fn websites(v: &Value) -> Result<Vec<Website>, Shape> {
    without_admin(v, "website", |w, id| {
        Ok(Website {
            id,
            code: text(w, "code"),
            name: text(w, "name"),
        })
    })
}

/// `GET /V1/store/storeViews`: `store-data-store-interface[]`, without the admin store view 0.
pub(super) fn store_views(v: &Value) -> Result<Vec<StoreView>, Shape> {
    without_admin(v, "store view", |s, id| {
        Ok(StoreView {
            id,
            code: text(s, "code"),
            name: text(s, "name"),
            website_id: need_id(s, "website_id", "store view")?,
        })
    })
}

/// `GET /V1/customerGroups/search`: `customer-data-group-search-results-interface`, as the
/// page's groups and the `total_count`.
pub(super) fn groups(v: &Value) -> Result<(Vec<Group>, u64), Shape> {
    let items = v.get("items").ok_or("a search result without `items`")?;
    let total = v
        .get("total_count")
        .and_then(Value::as_u64)
        .ok_or("a search result without `total_count`")?;
    let groups = list(items, "groups")?
        .iter()
        .map(|g| {
            Ok(Group {
                id: need_id(g, "id", "customer group")?,
                code: text(g, "code"),
            })
        })
        .collect::<Result<_, Shape>>()?;
    Ok((groups, total))
}

/// `GET /V1/directory/countries`: `directory-data-country-information-interface[]`, each with
/// its `available_regions` (left out for a country without regions).
pub(super) fn countries(v: &Value) -> Result<Vec<Country>, Shape> {
    let mut out = Vec::new();
    for c in list(v, "countries")? {
        let Some(code) = c.get("id").and_then(Value::as_str) else {
            return Err("a country without its `id`".into());
        };
        let regions = match c.get("available_regions") {
            None | Some(Value::Null) => Vec::new(),
            Some(r) => list(r, "regions")?
                .iter()
                .map(|r| {
                    Ok(Region {
                        id: need_id(r, "id", "region")?,
                        code: text(r, "code"),
                        name: text(r, "name"),
                    })
                })
                .collect::<Result<_, Shape>>()?,
        };
        let name = [text(c, "full_name_english"), text(c, "full_name_locale")]
            .into_iter()
            .find(|n| !n.is_empty())
            .unwrap_or_else(|| code.to_owned());
        out.push(Country {
            id: code.to_uppercase(),
            name,
            regions,
        });
    }
    Ok(out)
}

/// `GET /V1/attributeMetadata/customer/custom`: `customer-data-attribute-metadata-interface[]`.
pub(super) fn attributes(v: &Value) -> Result<Vec<Attribute>, Shape> {
    list(v, "attributes")?
        .iter()
        .map(|a| {
            let code = text(a, "attribute_code");
            if code.is_empty() {
                return Err("an attribute without its `attribute_code`".into());
            }
            let label = [text(a, "frontend_label"), text(a, "store_label")]
                .into_iter()
                .find(|l| !l.is_empty())
                .unwrap_or_default();
            Ok(Attribute {
                code,
                label,
                input: text(a, "frontend_input"),
                required: a.get("required").and_then(Value::as_bool) == Some(true),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn websites_and_store_views_without_admin() {
        let w = json!([
            {"id": 0, "code": "admin", "name": "Admin", "default_group_id": 0},
            {"id": 1, "code": "base", "name": "Main Website", "default_group_id": 1}
        ]);
        assert_eq!(
            websites(&w),
            Ok(vec![Website {
                id: 1,
                code: "base".into(),
                name: "Main Website".into()
            }])
        );
        let s = json!([
            {"id": 0, "code": "admin", "name": "Admin", "website_id": 0, "store_group_id": 0, "is_active": 1},
            {"id": 1, "code": "default", "name": "Default Store View", "website_id": 1, "store_group_id": 1, "is_active": 1}
        ]);
        assert_eq!(
            store_views(&s).map(|v| (v[0].id, v[0].website_id)),
            Ok((1, 1))
        );
        assert!(websites(&json!({"message": "x"})).is_err());
        assert!(
            store_views(&json!([{"id": 2, "code": "x"}])).is_err(),
            "no website_id"
        );
    }

    #[test]
    fn groups_page() {
        let g = json!({"items": [
            {"id": 0, "code": "NOT LOGGED IN", "tax_class_id": 3, "tax_class_name": "Retail Customer"},
            {"id": 1, "code": "General", "tax_class_id": 3}
        ], "search_criteria": {}, "total_count": 2});
        let (items, total) = groups(&g).expect("groups");
        assert_eq!(
            (items.len(), items[1].code.as_str(), total),
            (2, "General", 2)
        );
        assert!(groups(&json!({"items": []})).is_err());
    }

    #[test]
    fn countries_with_regions_as_strings() {
        let c = json!([
            {"id": "US", "two_letter_abbreviation": "US", "three_letter_abbreviation": "USA",
             "full_name_locale": "United States", "full_name_english": "United States",
             "available_regions": [{"id": "12", "code": "CA", "name": "California"}]},
            {"id": "SE", "two_letter_abbreviation": "SE", "three_letter_abbreviation": "SWE",
             "full_name_locale": "Sverige", "full_name_english": "Sweden"}
        ]);
        let list = countries(&c).expect("countries");
        assert_eq!(list[0].regions[0].id, 12);
        assert_eq!(
            (list[1].name.as_str(), list[1].regions.len()),
            ("Sweden", 0)
        );
        let bad = json!([{"id": "US", "available_regions": [{"code": "CA"}]}]);
        assert!(countries(&bad).is_err());
    }

    #[test]
    fn custom_attributes() {
        let a = json!([{"attribute_code": "loyalty_no", "frontend_input": "text",
            "store_label": "Loyalty number", "frontend_label": "", "required": true}]);
        assert_eq!(
            attributes(&a),
            Ok(vec![Attribute {
                code: "loyalty_no".into(),
                label: "Loyalty number".into(),
                input: "text".into(),
                required: true
            }])
        );
    }
}

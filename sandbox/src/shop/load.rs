//! Building a [`Shop`] from its TOML description, checking that it holds together; the
//! default shop is such a description too (`default.toml`).

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;

use super::directory::{COUNTRIES, REGIONS};
use super::{
    Country, CustomAttribute, CustomerGroup, Region, Shop, ShopError, StoreGroup, StoreView,
    Website,
};
use crate::stored::{CUSTOMER_INTS, CUSTOMER_STRINGS, SPECIAL_KEYS};

/// The default shop's description.
const DEFAULT_SHOP: &str = include_str!("default.toml");

/// Input types of customer attributes Magento offers, with the backend type each stores in.
const INPUTS: &[(&str, &str)] = &[
    ("text", "varchar"),
    ("textarea", "text"),
    ("select", "int"),
    ("multiselect", "varchar"),
    ("date", "datetime"),
    ("boolean", "int"),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShopFile {
    default_website: Option<i64>,
    #[serde(default = "default_group")]
    default_customer_group: i64,
    allowed_countries: Vec<String>,
    #[serde(default)]
    regions_optional: Vec<String>,
    #[serde(default)]
    postcode_optional: Vec<String>,
    /// Magento 2.2 on does not check (see `email.rs`).
    #[serde(default)]
    email_tld_check: bool,
    websites: Vec<WebsiteIn>,
    store_groups: Vec<StoreGroupIn>,
    store_views: Vec<StoreViewIn>,
    customer_groups: Vec<CustomerGroupIn>,
    #[serde(default)]
    countries: Vec<CountryIn>,
    #[serde(default)]
    custom_attributes: Vec<AttributeIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebsiteIn {
    id: i64,
    code: String,
    name: String,
    default_group_id: Option<i64>,
    allowed_countries: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreGroupIn {
    id: i64,
    website_id: i64,
    code: String,
    name: String,
    #[serde(default = "default_root_category")]
    root_category_id: i64,
    default_store_id: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreViewIn {
    id: i64,
    code: String,
    name: String,
    website_id: i64,
    store_group_id: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomerGroupIn {
    id: i64,
    code: String,
    #[serde(default = "default_tax_class")]
    tax_class_id: i64,
    #[serde(default = "default_tax_class_name")]
    tax_class_name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CountryIn {
    id: String,
    name: Option<String>,
    iso3: Option<String>,
    regions: Option<Vec<RegionIn>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionIn {
    id: i64,
    code: String,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttributeIn {
    attribute_code: String,
    label: String,
    #[serde(default = "default_input")]
    frontend_input: String,
    backend_type: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    sort_order: i64,
    #[serde(default)]
    options: Vec<OptionIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OptionIn {
    value: String,
    label: String,
}

fn default_group() -> i64 {
    1
}
fn default_root_category() -> i64 {
    2
}
fn default_tax_class() -> i64 {
    3
}
fn default_tax_class_name() -> String {
    "Retail Customer".to_owned()
}
fn default_input() -> String {
    "text".to_owned()
}

/// Reads and checks a shop file.
pub(super) fn from_file(path: &Path) -> Result<Shop, ShopError> {
    let error = |message: String| ShopError {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    from_str(&text).map_err(error)
}

/// The default shop.
pub(super) fn default_shop() -> Shop {
    from_str(DEFAULT_SHOP).expect("the built-in default shop is valid (tested)")
}

/// Parses and checks a shop description; the error names the key or value at fault.
pub(super) fn from_str(text: &str) -> Result<Shop, String> {
    let file: ShopFile = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
    build(file)
}

fn build(file: ShopFile) -> Result<Shop, String> {
    unique("websites", file.websites.iter().map(|w| (w.id, &w.code)))?;
    unique(
        "store_groups",
        file.store_groups.iter().map(|g| (g.id, &g.code)),
    )?;
    unique(
        "store_views",
        file.store_views.iter().map(|s| (s.id, &s.code)),
    )?;
    unique(
        "customer_groups",
        file.customer_groups.iter().map(|g| (g.id, &g.code)),
    )?;
    if file.websites.iter().any(|w| w.id < 1)
        || file.store_groups.iter().any(|g| g.id < 1)
        || file.store_views.iter().any(|s| s.id < 1)
    {
        return Err(
            "website, store group and store view ids start at 1 (0 is the admin scope)".into(),
        );
    }
    if let Some(s) = file
        .store_views
        .iter()
        .find(|s| s.code == "all" || s.code == "admin")
    {
        return Err(format!("store view code `{}` is reserved", s.code));
    }
    let mut store_groups = Vec::new();
    for g in &file.store_groups {
        if !file.websites.iter().any(|w| w.id == g.website_id) {
            return Err(format!(
                "store group {} names website {}, which is not in [[websites]]",
                g.id, g.website_id
            ));
        }
        let mut own = file.store_views.iter().filter(|s| s.store_group_id == g.id);
        let default_store_id = match g.default_store_id {
            Some(id) if own.any(|s| s.id == id) => id,
            Some(id) => {
                return Err(format!(
                    "store group {}: default_store_id {id} is not one of its store views",
                    g.id
                ));
            }
            None => own
                .map(|s| s.id)
                .min()
                .ok_or_else(|| format!("store group {} has no store view", g.id))?,
        };
        store_groups.push(StoreGroup {
            id: g.id,
            website_id: g.website_id,
            code: g.code.clone(),
            name: g.name.clone(),
            root_category_id: g.root_category_id,
            default_store_id,
        });
    }
    for s in &file.store_views {
        let group = store_groups.iter().find(|g| g.id == s.store_group_id);
        if group.is_none_or(|g| g.website_id != s.website_id) {
            return Err(format!(
                "store view {} names store group {} of website {}, which is not in [[store_groups]]",
                s.id, s.store_group_id, s.website_id
            ));
        }
    }

    let mut countries = directory(&file)?;
    let known = |id: &String| countries.iter().any(|c| &c.id == id);
    let mut allowed_lists = vec![("allowed_countries", &file.allowed_countries)];
    allowed_lists.extend(file.websites.iter().filter_map(|w| {
        w.allowed_countries
            .as_ref()
            .map(|l| ("websites.allowed_countries", l))
    }));
    allowed_lists.push(("regions_optional", &file.regions_optional));
    allowed_lists.push(("postcode_optional", &file.postcode_optional));
    for (key, list) in allowed_lists {
        if let Some(id) = list.iter().find(|id| !known(id)) {
            return Err(format!(
                "{key}: country `{id}` is not in the built-in directory; describe it in [[countries]] with name and iso3"
            ));
        }
    }
    for c in &mut countries {
        c.region_required = !c.regions.is_empty() && !file.regions_optional.contains(&c.id);
        c.postcode_optional = file.postcode_optional.contains(&c.id);
    }

    let mut websites = Vec::new();
    for w in &file.websites {
        let mut own = store_groups.iter().filter(|g| g.website_id == w.id);
        let default_group_id = match w.default_group_id {
            Some(id) if own.any(|g| g.id == id) => id,
            Some(id) => {
                return Err(format!(
                    "website {}: default_group_id {id} is not one of its store groups",
                    w.id
                ));
            }
            None => own
                .map(|g| g.id)
                .min()
                .ok_or_else(|| format!("website {} has no store group", w.id))?,
        };
        websites.push(Website {
            id: w.id,
            code: w.code.clone(),
            name: w.name.clone(),
            default_group_id,
            allowed_countries: w.allowed_countries.clone(),
        });
    }
    websites.sort_by_key(|w| w.id);
    let default_website = match file.default_website {
        Some(id) if websites.iter().any(|w| w.id == id) => id,
        Some(id) => return Err(format!("default_website {id} is not in [[websites]]")),
        None => websites
            .first()
            .map(|w| w.id)
            .ok_or("the shop needs at least one [[websites]]")?,
    };
    if !file
        .customer_groups
        .iter()
        .any(|g| g.id == file.default_customer_group)
    {
        return Err(format!(
            "default_customer_group {} is not in [[customer_groups]]",
            file.default_customer_group
        ));
    }

    let mut store_views: Vec<StoreView> = file
        .store_views
        .into_iter()
        .map(|s| StoreView {
            id: s.id,
            code: s.code,
            name: s.name,
            website_id: s.website_id,
            store_group_id: s.store_group_id,
        })
        .collect();
    store_views.sort_by_key(|s| s.id);
    store_groups.sort_by_key(|g| g.id);
    let mut customer_groups: Vec<CustomerGroup> = file
        .customer_groups
        .into_iter()
        .map(|g| CustomerGroup {
            id: g.id,
            code: g.code,
            tax_class_id: g.tax_class_id,
            tax_class_name: g.tax_class_name,
        })
        .collect();
    customer_groups.sort_by_key(|g| g.id);
    Ok(Shop {
        websites,
        store_groups,
        store_views,
        customer_groups,
        default_website,
        default_customer_group: file.default_customer_group,
        countries,
        allowed: file.allowed_countries,
        custom_attributes: attributes(file.custom_attributes)?,
        email_tld_check: file.email_tld_check,
    })
}

/// Ids and codes must be unique within a list.
fn unique<'a>(list: &str, items: impl Iterator<Item = (i64, &'a String)>) -> Result<(), String> {
    let (mut ids, mut codes) = (HashSet::new(), HashSet::new());
    for (id, code) in items {
        if !ids.insert(id) {
            return Err(format!("{list}: id {id} appears twice"));
        }
        if code.trim().is_empty() || !codes.insert(code.as_str()) {
            return Err(format!("{list}: code `{code}` is empty or appears twice"));
        }
    }
    Ok(())
}

/// The directory entries the shop can refer to: the built-in countries, overridden or
/// extended by `[[countries]]`.
fn directory(file: &ShopFile) -> Result<Vec<Country>, String> {
    let mut countries: Vec<Country> = COUNTRIES
        .iter()
        .map(|&(id, iso3, name)| Country {
            id: id.to_owned(),
            iso3: iso3.to_owned(),
            name: name.to_owned(),
            regions: built_in_regions(id),
            region_required: false,
            postcode_optional: false,
        })
        .collect();
    let mut region_ids = HashSet::new();
    for c in &file.countries {
        if c.id.len() != 2 || !c.id.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(format!(
                "countries: `{}` is not a two-letter upper-case country code",
                c.id
            ));
        }
        let built_in = countries.iter().position(|b| b.id == c.id);
        let (name, iso3) = match (&c.name, &c.iso3, built_in) {
            (Some(n), Some(i), _) => (n.clone(), i.clone()),
            (n, i, Some(pos)) => (
                n.clone().unwrap_or_else(|| countries[pos].name.clone()),
                i.clone().unwrap_or_else(|| countries[pos].iso3.clone()),
            ),
            _ => {
                return Err(format!(
                    "countries: `{}` is not in the built-in directory and needs name and iso3",
                    c.id
                ));
            }
        };
        let regions = match (&c.regions, built_in) {
            (Some(list), _) => list
                .iter()
                .map(|r| Region {
                    id: r.id,
                    code: r.code.clone(),
                    name: r.name.clone(),
                })
                .collect(),
            (None, Some(pos)) => countries[pos].regions.clone(),
            (None, None) => Vec::new(),
        };
        let country = Country {
            id: c.id.clone(),
            iso3,
            name,
            regions,
            region_required: false,
            postcode_optional: false,
        };
        match built_in {
            Some(pos) => countries[pos] = country,
            None => countries.push(country),
        }
    }
    for r in countries.iter().flat_map(|c| &c.regions) {
        if r.id < 1
            || !region_ids.insert(r.id)
            || r.code.trim().is_empty()
            || r.name.trim().is_empty()
        {
            return Err(format!(
                "countries: region {} `{}` needs a positive id no other region has, a code and a name",
                r.id, r.code
            ));
        }
    }
    countries.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(countries)
}

fn built_in_regions(country: &str) -> Vec<Region> {
    REGIONS
        .iter()
        .filter(|(c, _, _)| *c == country)
        .flat_map(|&(_, first, list)| {
            (first..).zip(list).map(|(id, &(code, name))| Region {
                id,
                code: code.to_owned(),
                name: name.to_owned(),
            })
        })
        .collect()
}

fn attributes(list: Vec<AttributeIn>) -> Result<Vec<CustomAttribute>, String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for a in list {
        let code = a.attribute_code;
        let well_formed = code.len() <= 60
            && code.starts_with(|c: char| c.is_ascii_lowercase())
            && code
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        let customer_field = [CUSTOMER_INTS, CUSTOMER_STRINGS, SPECIAL_KEYS]
            .iter()
            .any(|fields| fields.contains(&code.as_str()));
        if !well_formed || customer_field || !seen.insert(code.clone()) {
            return Err(format!(
                "custom_attributes: `{code}` must be a new code of lower-case letters, digits and _ (up to 60), not a customer field"
            ));
        }
        let Some(&(_, backend)) = INPUTS.iter().find(|(input, _)| *input == a.frontend_input)
        else {
            return Err(format!(
                "custom_attributes: `{code}` has frontend_input `{}`; use text, textarea, select, multiselect, date or boolean",
                a.frontend_input
            ));
        };
        out.push(CustomAttribute {
            code,
            label: a.label,
            backend_type: a.backend_type.unwrap_or_else(|| backend.to_owned()),
            frontend_input: a.frontend_input,
            required: a.required,
            sort_order: a.sort_order,
            options: a.options.into_iter().map(|o| (o.value, o.label)).collect(),
        });
    }
    Ok(out)
}

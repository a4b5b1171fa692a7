//! The shop as its configuration decides what it accepts: its [`Model`] (websites, store
//! views, customer groups, the countries each website allows with their regions, custom
//! customer attributes), read from its API, and the rows it would refuse for it.
//!
//! A syntactically valid row can still be one the shop refuses (website 99, group 9, a US
//! address without a state). Checked here before it is sent, such a row is `invalid` in the dry
//! run and in the real run alike, so that the dry run's counts are the real run's.
//!
//! | file | owns |
//! | --- | --- |
//! | `mod.rs` | the model and its look-ups |
//! | `parse.rs` | the read endpoints' answers (Adobe's schema shapes) to the model; pure |
//! | `fetch.rs` | the GETs that read the model |
//! | `check.rs` | one row against the model: what to send, or which column the shop refuses; pure |
//! | `gate.rs` | the sync's use of it: the model read once, lazily, cached; rows vetted |
//! | `vouch.rs` | a store bound on trust: a sample of its mappings checked against the shop |

mod check;
mod fetch;
mod gate;
mod parse;
mod vouch;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use check::{Problem, Rules, Vetted, check, listed_up_to};
pub use fetch::{FetchError, customer_count, fetch};
pub use gate::{Gate, Setup, ShopError};

/// A website (the admin website 0 left out).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Website {
    pub id: u32,
    pub code: String,
    pub name: String,
}

/// A store view (the admin store view 0 left out).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreView {
    pub id: u32,
    pub code: String,
    pub name: String,
    pub website_id: u32,
}

/// A customer group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: u32,
    pub code: String,
}

/// A country some website allows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Country {
    pub id: String,
    pub name: String,
    /// Its region list (`available_regions`); empty when the shop has none for it.
    pub regions: Vec<Region>,
}

/// A region of a country.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    pub id: u32,
    pub code: String,
    pub name: String,
}

/// A custom customer attribute.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    pub code: String,
    pub label: String,
    /// `frontend_input`: text, select, date...
    pub input: String,
    pub required: bool,
}

/// What the shop's configuration says about customers, as its API describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Model {
    pub websites: Vec<Website>,
    pub store_views: Vec<StoreView>,
    pub groups: Vec<Group>,
    /// Every country some website allows, by id.
    pub countries: BTreeMap<String, Country>,
    /// The countries each website allows, by website id.
    pub allowed: BTreeMap<u32, BTreeSet<String>>,
    pub custom_attributes: Vec<Attribute>,
}

impl Model {
    pub fn website(&self, id: u32) -> Option<&Website> {
        self.websites.iter().find(|w| w.id == id)
    }

    pub fn store_view(&self, id: u32) -> Option<&StoreView> {
        self.store_views.iter().find(|s| s.id == id)
    }

    /// A website's store views, by id.
    pub fn store_views_of(&self, website: u32) -> impl Iterator<Item = &StoreView> {
        self.store_views
            .iter()
            .filter(move |s| s.website_id == website)
    }

    pub fn group(&self, id: u32) -> Option<&Group> {
        self.groups.iter().find(|g| g.id == id)
    }

    /// Whether `website` allows addresses in `country`.
    pub fn allows(&self, website: u32, country: &str) -> bool {
        self.allowed
            .get(&website)
            .is_some_and(|list| list.contains(country))
    }

    pub fn country(&self, id: &str) -> Option<&Country> {
        self.countries.get(id)
    }

    pub fn attribute(&self, code: &str) -> Option<&Attribute> {
        self.custom_attributes.iter().find(|a| a.code == code)
    }
}

impl Country {
    /// The region a row names: by code, then by name (both as the shop compares them, without
    /// regard to case), then by id. The first match wins, as Magento's `loadByCode` takes the
    /// first row (the US list has several `AE` regions).
    pub fn region(&self, text: &str) -> Option<&Region> {
        let text = text.trim();
        let lower = text.to_lowercase();
        self.regions
            .iter()
            .find(|r| r.code.eq_ignore_ascii_case(text))
            .or_else(|| self.regions.iter().find(|r| r.name.to_lowercase() == lower))
            .or_else(|| {
                let id = text.parse::<u32>().ok()?;
                self.regions.iter().find(|r| r.id == id)
            })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn region(id: u32, code: &str, name: &str) -> Region {
        Region {
            id,
            code: code.into(),
            name: name.into(),
        }
    }

    /// A shop like the sandbox's default: websites 1 and 2, the US with regions required,
    /// Germany with an optional list, Sweden without one; website 2 allows only Sweden.
    pub(crate) fn model() -> Model {
        let country = |id: &str, name: &str, regions| Country {
            id: id.into(),
            name: name.into(),
            regions,
        };
        let us = country(
            "US",
            "United States",
            vec![
                region(1, "AL", "Alabama"),
                region(12, "CA", "California"),
                region(43, "NY", "New York"),
            ],
        );
        let de = country("DE", "Germany", vec![region(79, "NDS", "Niedersachsen")]);
        let se = country("SE", "Sweden", vec![]);
        Model {
            websites: vec![
                Website {
                    id: 1,
                    code: "base".into(),
                    name: "Main Website".into(),
                },
                Website {
                    id: 2,
                    code: "second".into(),
                    name: "Second Website".into(),
                },
            ],
            store_views: vec![
                StoreView {
                    id: 1,
                    code: "default".into(),
                    name: "Default Store View".into(),
                    website_id: 1,
                },
                StoreView {
                    id: 2,
                    code: "second".into(),
                    name: "Second Store View".into(),
                    website_id: 2,
                },
            ],
            groups: [(0, "NOT LOGGED IN"), (1, "General"), (2, "Wholesale")]
                .into_iter()
                .map(|(id, code)| Group {
                    id,
                    code: code.into(),
                })
                .collect(),
            countries: [us, de, se]
                .into_iter()
                .map(|c| (c.id.clone(), c))
                .collect(),
            allowed: [
                (1, ["US", "DE", "SE"].map(String::from).into()),
                (2, ["SE".to_owned()].into()),
            ]
            .into(),
            custom_attributes: vec![Attribute {
                code: "loyalty_no".into(),
                label: "Loyalty number".into(),
                input: "text".into(),
                required: false,
            }],
        }
    }

    #[test]
    fn regions_by_code_name_or_id() {
        let m = model();
        let us = m.country("US").expect("US");
        for (text, want) in [
            ("CA", Some(12)),
            ("ca", Some(12)),
            (" California ", Some(12)),
            ("new york", Some(43)),
            ("43", Some(43)),
            ("44", None),
            ("Calif", None),
            ("", None),
        ] {
            assert_eq!(us.region(text).map(|r| r.id), want, "{text:?}");
        }
        assert!(m.allows(1, "DE") && !m.allows(2, "DE") && !m.allows(3, "SE"));
    }
}

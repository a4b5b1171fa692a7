//! The shop the sandbox stands for: its websites, store groups and store views, customer
//! groups, allowed countries with their regions, and custom customer attributes. Every rule
//! that depends on a shop's configuration reads it from here, and the read endpoints
//! (`/V1/store/websites`, `/V1/store/storeViews`, `/V1/customerGroups/search`,
//! `/V1/directory/countries`, `/V1/attributeMetadata/customer/custom`) describe it, so that a
//! rehearsal against the sandbox meets the same refusals as the real shop.
//!
//! # The default shop
//!
//! What `sample-customers.csv` needs: websites 1 (`base`), 2 (`second`) and 3 (`third`), one
//! store group and one store view each (1 `default`, 2 `second`, 3 `third`); customer groups
//! 0 (NOT LOGGED IN) to 3, 1 the default; the custom attribute `loyalty_no`; and 22 allowed
//! countries, of which the United States, Canada and Austria come with their regions and need
//! one. The other countries have no region list here, although a real Magento 2.4 ships lists
//! for many of them (Sweden, Spain, Germany...; each `AddDataFor*` directory patch also marks
//! its country as requiring a region): mirror a real shop with `--shop FILE`.
//!
//! # The shop file (`custsync sandbox --shop FILE`)
//!
//! TOML; it replaces the default shop as a whole. Unknown keys are refused, naming the key.
//! `sandbox/shop-example.toml` is a complete example.
//!
//! ```toml
//! default_website = 1          # optional: the lowest website id
//! default_customer_group = 1   # optional, 1 (customer/create_account/default_group)
//! allowed_countries = ["US", "SE", "DE"]   # general/country/allow, every website
//! regions_optional = ["DE"]    # countries with a region list that do not require a region
//! postcode_optional = ["IE"]   # general/country/optional_zip_countries
//! email_tld_check = false      # optional, false: true refuses top-level domains IANA does not know (Magento 2.1)
//!
//! [[websites]]
//! id = 1
//! code = "base"
//! name = "Main Website"
//! default_group_id = 1                # optional: the website's first store group
//! allowed_countries = ["US", "SE"]    # optional: the shop-wide list
//!
//! [[store_groups]]
//! id = 1
//! website_id = 1
//! code = "main_website_store"
//! name = "Main Website Store"
//! root_category_id = 2        # optional, 2
//! default_store_id = 1        # optional: the group's first store view
//!
//! [[store_views]]
//! id = 1
//! code = "default"
//! name = "Default Store View"
//! website_id = 1
//! store_group_id = 1
//!
//! [[customer_groups]]
//! id = 1
//! code = "General"
//! tax_class_id = 3                    # optional, 3
//! tax_class_name = "Retail Customer"  # optional, "Retail Customer"
//!
//! [[countries]]               # needed only for a country the built-in directory lacks, or
//! id = "DE"                   # to give its regions (ids as the shop's
//! name = "Germany"            # GET /V1/directory/countries shows them)
//! iso3 = "DEU"
//! regions = [{ id = 79, code = "NDS", name = "Niedersachsen" }]
//!
//! [[custom_attributes]]
//! attribute_code = "loyalty_no"
//! label = "Loyalty number"
//! frontend_input = "text"     # optional: text, textarea, select, multiselect, date, boolean
//! backend_type = "varchar"    # optional: from frontend_input
//! required = false            # optional
//! sort_order = 100            # optional
//! options = [{ value = "1", label = "Gold" }]   # optional, for select and multiselect
//! ```
//!
//! The built-in directory (`directory.rs`) knows the names and three-letter codes of common
//! countries and the regions of the United States, Canada and Austria, whose ids are the same
//! in every Magento install.

mod directory;
mod load;
pub(crate) mod read;

use std::path::{Path, PathBuf};

/// Why a shop file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("shop file {}: {message}", path.display())]
pub struct ShopError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, naming the key or value.
    pub message: String,
}

/// A website.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Website {
    pub(crate) id: i64,
    pub(crate) code: String,
    pub(crate) name: String,
    pub(crate) default_group_id: i64,
    /// `general/country/allow` at website scope; `None` = the shop-wide list.
    pub(crate) allowed_countries: Option<Vec<String>>,
}

/// A store group (a "store" in Magento's admin).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoreGroup {
    pub(crate) id: i64,
    pub(crate) website_id: i64,
    pub(crate) code: String,
    pub(crate) name: String,
    pub(crate) root_category_id: i64,
    pub(crate) default_store_id: i64,
}

/// A store view.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoreView {
    pub(crate) id: i64,
    pub(crate) code: String,
    pub(crate) name: String,
    pub(crate) website_id: i64,
    pub(crate) store_group_id: i64,
}

/// A customer group.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CustomerGroup {
    pub(crate) id: i64,
    pub(crate) code: String,
    pub(crate) tax_class_id: i64,
    pub(crate) tax_class_name: String,
}

/// A country of the directory, with its regions.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Country {
    pub(crate) id: String,
    pub(crate) iso3: String,
    pub(crate) name: String,
    pub(crate) regions: Vec<Region>,
    /// In `general/region/state_required`: an address must name one of `regions`.
    pub(crate) region_required: bool,
    /// In `general/country/optional_zip_countries`.
    pub(crate) postcode_optional: bool,
}

/// A region of a country.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Region {
    pub(crate) id: i64,
    pub(crate) code: String,
    pub(crate) name: String,
}

/// A custom (user-defined) customer attribute.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CustomAttribute {
    pub(crate) code: String,
    pub(crate) label: String,
    pub(crate) frontend_input: String,
    pub(crate) backend_type: String,
    pub(crate) required: bool,
    pub(crate) sort_order: i64,
    /// `(value, label)` pairs.
    pub(crate) options: Vec<(String, String)>,
}

/// The shop model. Built by [`Shop::default`] or [`Shop::load`], which check that it holds
/// together (every store view in a website, a default store for every website, ...), so the
/// lookups below can rely on it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Shop {
    pub(crate) websites: Vec<Website>,
    pub(crate) store_groups: Vec<StoreGroup>,
    pub(crate) store_views: Vec<StoreView>,
    pub(crate) customer_groups: Vec<CustomerGroup>,
    pub(crate) default_website: i64,
    pub(crate) default_customer_group: i64,
    /// Every country the shop allows somewhere, by id.
    pub(crate) countries: Vec<Country>,
    /// `general/country/allow` at default scope.
    pub(crate) allowed: Vec<String>,
    pub(crate) custom_attributes: Vec<CustomAttribute>,
    pub(crate) email_tld_check: bool,
}

impl Shop {
    /// Reads a shop file (the format is in the module documentation).
    pub(crate) fn load(path: &Path) -> Result<Self, ShopError> {
        load::from_file(path)
    }

    pub(crate) fn website(&self, id: i64) -> Option<&Website> {
        self.websites.iter().find(|w| w.id == id)
    }

    pub(crate) fn website_ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.websites.iter().map(|w| w.id)
    }

    pub(crate) fn store_view(&self, id: i64) -> Option<&StoreView> {
        self.store_views.iter().find(|s| s.id == id)
    }

    pub(crate) fn store_by_code(&self, code: &str) -> Option<&StoreView> {
        self.store_views.iter().find(|s| s.code == code)
    }

    /// The default store view of a website: its default group's default store.
    pub(crate) fn website_store(&self, website: i64) -> Option<&StoreView> {
        let group_id = self.website(website)?.default_group_id;
        let group = self.store_groups.iter().find(|g| g.id == group_id)?;
        self.store_view(group.default_store_id)
    }

    /// The store view a request without store or website falls back to (`StoreManager::getStore()`).
    pub(crate) fn default_store(&self) -> &StoreView {
        self.website_store(self.default_website)
            .or_else(|| self.store_views.first())
            .expect("a loaded shop has a store view")
    }

    pub(crate) fn group_exists(&self, id: i64) -> bool {
        self.customer_groups.iter().any(|g| g.id == id)
    }

    /// The countries allowed for a website (`None`: default scope).
    pub(crate) fn allowed_countries(&self, website: Option<i64>) -> &[String] {
        website
            .and_then(|w| self.website(w))
            .and_then(|w| w.allowed_countries.as_deref())
            .unwrap_or(&self.allowed)
    }

    pub(crate) fn country(&self, id: &str) -> Option<&Country> {
        self.countries.iter().find(|c| c.id == id)
    }

    pub(crate) fn custom_attribute(&self, code: &str) -> Option<&CustomAttribute> {
        self.custom_attributes.iter().find(|a| a.code == code)
    }
}

impl Default for Shop {
    /// The default shop (see the module documentation).
    fn default() -> Self {
        load::default_shop()
    }
}

impl Country {
    /// A region of this country by id.
    pub(crate) fn region(&self, id: i64) -> Option<&Region> {
        self.regions.iter().find(|r| r.id == id)
    }

    /// A region named by its code or its name, case-insensitively (MySQL's `_ci` collation);
    /// the first match wins, as `Region::loadByCode` returns the first row (the US list has
    /// five `AE` regions).
    pub(crate) fn region_named(&self, text: &str) -> Option<&Region> {
        let text = text.trim();
        self.regions
            .iter()
            .find(|r| r.code.eq_ignore_ascii_case(text))
            .or_else(|| {
                let lower = text.to_lowercase();
                self.regions.iter().find(|r| r.name.to_lowercase() == lower)
            })
    }
}

#[cfg(test)]
mod tests;

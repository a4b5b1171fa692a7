//! One row against the shop's [`Model`]: what to send, or each column the shop would refuse.
//! Pure: the rules are table-tested against a model written in the test.
//!
//! The rules are the shop's own (Magento's, for its configuration): the website must be one
//! of the shop's; a store view one of that website's (0 is none in particular); the group one
//! of the shop's; an address's country one the customer's website allows; a country with a
//! region list needs one of its regions, given by code, name or id, unless its region is
//! optional (`general/region/state_required`, which Commerce sets for every country whose list
//! it ships, so a shop that changed it says so in `regions_optional`); a custom attribute the
//! shop requires must be given on create. `custom:` columns the shop does not define are not
//! sent (the shop would drop them silently).

use std::collections::BTreeSet;
use std::fmt::Display;

use super::{Country, Model};
use crate::customer::{self, Customer, Text};
use crate::input::Field;

/// Items named in a message before "and N more".
const LISTED: usize = 8;

/// The shop's settings its API does not tell.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    /// Countries whose region list does not make a region required (`regions_optional`),
    /// in upper case.
    pub regions_optional: BTreeSet<String>,
    /// The custom attribute that identifies customers (`--key custom:<code>`), which the shop
    /// must define: without it every row would be sent without its key.
    pub key_attribute: Option<String>,
}

impl Rules {
    /// From the `regions_optional` list, in any case.
    pub fn new(regions_optional: &[String]) -> Self {
        Rules {
            regions_optional: regions_optional
                .iter()
                .map(|c| c.trim().to_uppercase())
                .filter(|c| !c.is_empty())
                .collect(),
            key_attribute: None,
        }
    }

    /// The same, for a run keyed by custom attribute `code` (`None`: by e-mail).
    pub fn keyed_by(self, code: Option<&str>) -> Self {
        Rules {
            key_attribute: code.map(str::to_owned),
            ..self
        }
    }

    /// Whether an address in `country` must name one of its regions.
    pub fn region_required(&self, country: &Country) -> bool {
        !country.regions.is_empty() && !self.regions_optional.contains(&country.id)
    }
}

/// What a row the shop accepts needs before it is sent.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Vetted {
    /// The address's region as the shop's directory has it, when its country has a list.
    pub region: Option<customer::Region>,
    /// The same for each of the further addresses, in their order.
    pub further_regions: Vec<Option<customer::Region>>,
    /// `custom:` attribute codes the shop does not define: not sent.
    pub undefined: Vec<Text>,
}

/// A column the shop would refuse, and why.
#[derive(Debug, PartialEq, Eq)]
pub struct Problem {
    pub field: Field,
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field.name(), self.reason)
    }
}

/// Checks `customer` against the shop. `create`: the row is a create (a required custom
/// attribute must be given); `address`: its addresses are sent (an update whose addresses did
/// not change sends none, so the shop checks none).
pub fn check(
    model: &Model,
    rules: &Rules,
    customer: &Customer,
    create: bool,
    address: bool,
) -> Result<Vetted, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut refuse = |field, reason| problems.push(Problem { field, reason });
    let website_id = customer.website_id;
    let website = model.website(website_id);
    if website.is_none() {
        let list = listed(
            model
                .websites
                .iter()
                .map(|w| format!("{} {}", w.id, w.code)),
        );
        refuse(
            Field::WebsiteId,
            format!("website {website_id} is not a website of the shop (it has {list})"),
        );
    }
    if let (Some(store_id), Some(w)) = (customer.store_id.filter(|&s| s != 0), website) {
        match model.store_view(store_id) {
            None => refuse(
                Field::StoreId,
                format!("store view {store_id} is not a store view of the shop"),
            ),
            Some(s) if s.website_id != website_id => {
                let own = listed(
                    model
                        .store_views_of(w.id)
                        .map(|s| format!("{} {}", s.id, s.code)),
                );
                refuse(
                    Field::StoreId,
                    format!(
                        "store view {store_id} ({}) is not in website {website_id} ({}), whose \
                         store views are {own}",
                        s.code, w.code
                    ),
                );
            }
            Some(_) => {}
        }
    }
    if let Some(group) = customer.group_id
        && model.group(group).is_none()
    {
        let list = listed(model.groups.iter().map(|g| format!("{} {}", g.id, g.code)));
        refuse(
            Field::GroupId,
            format!("customer group {group} is not a group of the shop (it has {list})"),
        );
    }
    // The default address, then `address2_*`, ...: each in a country its website allows, with
    // a region from the country's list when it needs one.
    let addresses = std::iter::once((None, customer.address.as_ref())).chain(
        (customer.further_addresses.iter())
            .zip(2u16..)
            .map(|(a, number)| (Some(number), a.as_ref())),
    );
    let mut regions = Vec::new();
    for (number, a) in addresses {
        let (Some(a), Some(w), true) = (a, website, address) else {
            regions.push(None);
            continue;
        };
        let field = |base: Field| match (number, base.index()) {
            (Some(number), Some(of)) => Field::Further { number, of },
            _ => base,
        };
        let country = model.country(&a.country_id);
        let region = match country.filter(|_| model.allows(w.id, &a.country_id)) {
            None => Err((
                field(Field::CountryId),
                format!(
                    "`{}` is not a country website {} ({}) allows",
                    a.country_id, w.id, w.code
                ),
            )),
            Some(country) => regional(country, rules, given_region(a))
                .map_err(|reason| (field(Field::Region), reason)),
        };
        match region {
            Ok(r) => regions.push(r),
            Err((field, reason)) => {
                refuse(field, reason);
                regions.push(None);
            }
        }
    }
    let region = regions.remove(0);
    if create {
        for attr in model.custom_attributes.iter().filter(|a| a.required) {
            let given = customer
                .custom_attributes
                .iter()
                .any(|(code, value)| *code == attr.code && !value.trim().is_empty());
            if !given {
                refuse(
                    Field::Custom(attr.code.clone()),
                    format!("the shop requires a value (\"{}\")", attr.label),
                );
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let undefined = customer
        .custom_attributes
        .iter()
        .filter(|(code, _)| model.attribute(code).is_none())
        .map(|(code, _)| code.clone())
        .collect();
    Ok(Vetted {
        region,
        further_regions: regions,
        undefined,
    })
}

/// The region an address names; an empty one (`--empty-value`: cleared) names none.
fn given_region(a: &customer::Address) -> Option<&str> {
    a.region.as_deref().filter(|r| !r.trim().is_empty())
}

/// The region to send for an address in `country` that names `given`: the shop's, when its
/// list has it; `None` when the country has no list, or the region is optional and not in it
/// (sent as the text given); an error when the shop requires one of its regions.
fn regional(
    country: &Country,
    rules: &Rules,
    given: Option<&str>,
) -> Result<Option<customer::Region>, String> {
    let found = given.and_then(|g| country.region(g));
    if let Some(r) = found {
        return Ok(Some(customer::Region {
            id: r.id,
            code: r.code.as_str().into(),
            name: r.name.as_str().into(),
        }));
    }
    if !rules.region_required(country) {
        return Ok(None);
    }
    let example = country
        .regions
        .first()
        .map(|r| format!(", e.g. `{}` or `{}`", r.code, r.name))
        .unwrap_or_default();
    let how = format!(
        "give one of its {} regions by code or name{example}",
        country.regions.len()
    );
    Err(match given {
        None => format!("{} ({}) requires a region: {how}", country.id, country.name),
        Some(g) => format!(
            "`{g}` is not a region of {} ({}): {how}",
            country.id, country.name
        ),
    })
}

/// The first `max` items, comma-separated, and how many more; "none" for none.
pub fn listed_up_to(items: impl Iterator<Item = impl Display>, max: usize) -> String {
    let mut shown = Vec::new();
    let mut more = 0;
    for item in items {
        if shown.len() < max {
            shown.push(item.to_string());
        } else {
            more += 1;
        }
    }
    match (shown.is_empty(), more) {
        (true, _) => "none".into(),
        (false, 0) => shown.join(", "),
        (false, n) => format!("{} and {n} more", shown.join(", ")),
    }
}

/// [`listed_up_to`] a few, for a row's message.
fn listed(items: impl Iterator<Item = impl Display>) -> String {
    listed_up_to(items, LISTED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::Address;
    use crate::shop::tests::model;

    /// A customer of website 1 with nothing the shop could refuse.
    fn customer() -> Customer {
        crate::customer::tests::ann()
    }

    fn living_in(country: &str, region: Option<&str>) -> Customer {
        let mut c = customer();
        c.address = Some(Address {
            street: vec!["1 Main St".into()],
            city: "Springfield".into(),
            postcode: "12345".into(),
            country_id: country.into(),
            region: region.map(Into::into),
            telephone: "555".into(),
            company: None,
            shop_region: None,
        });
        c
    }

    /// The columns refused, or the region id sent.
    type Verdict = Result<Option<u32>, Vec<String>>;

    fn verdict(c: &Customer, rules: &Rules, create: bool, address: bool) -> Verdict {
        check(&model(), rules, c, create, address)
            .map(|v| v.region.map(|r| r.id))
            .map_err(|p| p.iter().map(|p| p.field.name()).collect())
    }

    #[test]
    fn rows_against_the_shop() {
        let plain = Rules::default();
        let de_optional = Rules::new(&["de".to_owned()]);
        let with = |f: fn(&mut Customer)| {
            let mut c = customer();
            f(&mut c);
            c
        };
        let cols = |c: &[&str]| Err(c.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        #[rustfmt::skip]
        let cases: Vec<(&str, Customer, &Rules, Verdict)> = vec![
            ("a plain customer", customer(), &plain, Ok(None)),
            ("website 99", with(|c| c.website_id = 99), &plain, cols(&["website_id"])),
            ("store of the website", with(|c| c.store_id = Some(1)), &plain, Ok(None)),
            ("store 0 is none in particular", with(|c| c.store_id = Some(0)), &plain, Ok(None)),
            ("store of another website", with(|c| c.store_id = Some(2)), &plain, cols(&["store_id"])),
            ("no such store", with(|c| c.store_id = Some(9)), &plain, cols(&["store_id"])),
            ("group 2", with(|c| c.group_id = Some(2)), &plain, Ok(None)),
            ("group 9", with(|c| c.group_id = Some(9)), &plain, cols(&["group_id"])),
            ("group and website", with(|c| { c.group_id = Some(9); c.website_id = 99 }), &plain,
                cols(&["website_id", "group_id"])),
            ("US by code", living_in("US", Some("CA")), &plain, Ok(Some(12))),
            ("US by name", living_in("US", Some("new york")), &plain, Ok(Some(43))),
            ("US without a state", living_in("US", None), &plain, cols(&["address_region"])),
            ("US, state cleared", living_in("US", Some("")), &plain, cols(&["address_region"])),
            ("US, no such state", living_in("US", Some("Bavaria")), &plain, cols(&["address_region"])),
            ("DE list, required", living_in("DE", None), &plain, cols(&["address_region"])),
            ("DE list, optional", living_in("DE", None), &de_optional, Ok(None)),
            ("DE optional, other text", living_in("DE", Some("Bayern")), &de_optional, Ok(None)),
            ("DE optional, in the list", living_in("DE", Some("NDS")), &de_optional, Ok(Some(79))),
            ("SE, no list", living_in("SE", Some("Skåne")), &plain, Ok(None)),
            ("not allowed anywhere", living_in("FR", None), &plain, cols(&["address_country_id"])),
            ("not allowed in website 2", { let mut c = living_in("US", Some("CA")); c.website_id = 2; c },
                &plain, cols(&["address_country_id"])),
            ("allowed in website 2", { let mut c = living_in("SE", None); c.website_id = 2; c },
                &plain, Ok(None)),
        ];
        for (name, c, rules, want) in cases {
            assert_eq!(verdict(&c, rules, true, true), want, "{name}");
        }
    }

    #[test]
    fn further_addresses_are_checked_each_with_its_columns() {
        let mut c = living_in("US", Some("CA"));
        let other = |country: &str, region: Option<&str>| living_in(country, region).address;
        c.further_addresses = vec![None, other("US", Some("NY")), other("FR", None)];
        let problems = check(&model(), &Rules::default(), &c, true, true).expect_err("FR");
        let columns: Vec<String> = problems.iter().map(|p| p.field.name()).collect();
        assert_eq!(columns, ["address4_country_id"]);
        c.further_addresses[2] = other("US", None);
        let problems = check(&model(), &Rules::default(), &c, true, true).expect_err("no state");
        assert_eq!(problems[0].field.name(), "address4_region");
        c.further_addresses[2] = other("SE", None);
        let vetted = check(&model(), &Rules::default(), &c, true, true).expect("valid");
        let ids = |r: &[Option<customer::Region>]| -> Vec<Option<u32>> {
            r.iter().map(|r| r.as_ref().map(|r| r.id)).collect()
        };
        assert_eq!(vetted.region.map(|r| r.id), Some(12));
        assert_eq!(ids(&vetted.further_regions), [None, Some(43), None]);
    }

    #[test]
    fn an_address_not_sent_is_not_checked() {
        let c = living_in("US", None);
        assert_eq!(verdict(&c, &Rules::default(), false, false), Ok(None));
    }

    #[test]
    fn custom_attributes_undefined_are_named_and_required_ones_asked_for_on_create() {
        let mut m = model();
        m.custom_attributes.push(crate::shop::Attribute {
            code: "tier".into(),
            label: "Tier".into(),
            input: "select".into(),
            required: true,
        });
        let mut c = customer();
        c.custom_attributes = vec![
            ("loyalty_no".into(), "7".into()),
            ("shoe_size".into(), "9".into()),
        ];
        let problems = check(&m, &Rules::default(), &c, true, true).expect_err("tier is required");
        assert_eq!(
            problems[0].to_string(),
            "custom:tier: the shop requires a value (\"Tier\")"
        );
        let vetted = check(&m, &Rules::default(), &c, false, true).expect("an update need not");
        assert_eq!(vetted.undefined, vec![Text::from("shoe_size")]);
    }

    #[test]
    fn messages_name_what_the_shop_has() {
        let refused = |c: &Customer| {
            check(&model(), &Rules::default(), c, true, true).expect_err("refused")[0].to_string()
        };
        let mut c = customer();
        c.website_id = 99;
        assert_eq!(
            refused(&c),
            "website_id: website 99 is not a website of the shop (it has 1 base, 2 second)"
        );
        assert_eq!(
            refused(&living_in("US", None)),
            "address_region: US (United States) requires a region: give one of its 3 regions by \
             code or name, e.g. `AL` or `Alabama`"
        );
        let mut c = customer();
        c.store_id = Some(2);
        assert_eq!(
            refused(&c),
            "store_id: store view 2 (second) is not in website 1 (base), whose store views are 1 default"
        );
        assert_eq!(listed(0..10), "0, 1, 2, 3, 4, 5, 6, 7 and 2 more");
        assert_eq!(listed(0..0), "none");
    }
}

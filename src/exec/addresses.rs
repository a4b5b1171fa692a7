//! Which of a customer's addresses in the shop are the row's, and the address list a PUT sends.
//!
//! A PUT with `addresses` replaces the customer's whole list, so the list sent is the shop's
//! own with the row's addresses put in place of the ones they replace (by the ids the store
//! keeps): every address someone added in the shop goes back as it is, and each of the row's
//! keeps its id. Pure: the answers come in as JSON, the decisions go out.

use serde_json::Value;

use crate::customer::{Customer, default_address};

/// The ids of the row's addresses among a customer's: the default one, and the further ones
/// by number (index `i` is `address{i+2}_*`'s).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Ours {
    pub default: Option<u64>,
    pub further: Vec<Option<u64>>,
}

pub(super) fn id_of(v: &Value) -> Option<u64> {
    v.get("id").and_then(Value::as_u64)
}

fn list(customer: &Value) -> Vec<Value> {
    customer
        .get("addresses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The row's addresses in `saved` (an answer about the customer): the default address, and
/// each further address by the id it was sent with (`sent`), else the first other address
/// that holds what it sends (one created without an id, or found when adopting).
pub(super) fn ours_in(customer: &Customer, saved: &Value, sent: &[Option<u64>]) -> Ours {
    let default = customer
        .address
        .as_ref()
        .and(default_address(saved))
        .and_then(id_of);
    let addresses = list(saved);
    let mut taken: Vec<u64> = default.into_iter().collect();
    let mut further = Vec::with_capacity(customer.further_addresses.len());
    for (i, address) in customer.further_addresses.iter().enumerate() {
        let id = address.as_ref().and_then(|a| {
            let by_id = sent
                .get(i)
                .copied()
                .flatten()
                .filter(|id| addresses.iter().any(|r| id_of(r) == Some(*id)));
            by_id.or_else(|| {
                addresses
                    .iter()
                    .filter(|r| id_of(r).is_some_and(|id| !taken.contains(&id)))
                    .find(|r| a.same_as(r))
                    .and_then(id_of)
            })
        });
        taken.extend(id);
        further.push(id);
    }
    // Trailing gaps are not kept, so that an entry without further addresses stays short.
    while further.last() == Some(&None) {
        further.pop();
    }
    Ours { default, further }
}

/// The customer's addresses with the row's in place of the ones they replace (the default one
/// by id, else the current default; a further one by id), every other address kept as it is;
/// when the row gives a default address, the others are no longer default. For a create,
/// `current` is `null`: the row's addresses alone, without ids.
pub(super) fn merged(customer: &Customer, current: &Value, ours: &Ours) -> Value {
    let addresses = list(current);
    let present = |id: &u64| addresses.iter().any(|a| id_of(a) == Some(*id));
    let replaced = customer.address.as_ref().and_then(|_| {
        ours.default
            .filter(present)
            .or_else(|| default_address(current).and_then(id_of))
    });
    let further: Vec<(usize, Option<u64>)> = customer
        .further()
        .map(|(n, _)| {
            let id = ours.further.get(n - 2).copied().flatten();
            (n, id.filter(|id| present(id) && Some(*id) != replaced))
        })
        .collect();
    let gone =
        |id: Option<u64>| id.is_some() && (id == replaced || further.iter().any(|&(_, f)| f == id));
    let mut out: Vec<Value> = addresses
        .into_iter()
        .filter(|a| !gone(id_of(a)))
        .map(|mut a| {
            if customer.address.is_some() {
                a["default_billing"] = Value::Bool(false);
                a["default_shipping"] = Value::Bool(false);
            }
            a
        })
        .collect();
    out.extend(customer.address_json(replaced));
    out.extend(
        further
            .into_iter()
            .filter_map(|(n, id)| customer.further_address_json(n, id)),
    );
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::customer::{Address, Text};

    fn address(city: &str) -> Address {
        Address {
            street: vec![Text::from("1 Main")],
            city: city.into(),
            postcode: "22100".into(),
            country_id: "SE".into(),
            region: None,
            telephone: "123".into(),
            company: None,
            shop_region: None,
        }
    }

    fn customer(further: Vec<Option<Address>>) -> Customer {
        Customer {
            address: Some(address("Lund")),
            further_addresses: further,
            key_attribute: None,
            ..crate::customer::tests::ann()
        }
    }

    /// The shop's answer: the row's addresses with ids 10, 11, ..., and one someone added.
    fn shop(c: &Customer) -> Value {
        let mut list = vec![c.address_json(Some(10)).expect("default")];
        for (n, _) in c.further() {
            list.push(
                c.further_address_json(n, Some(9 + n as u64))
                    .expect("further"),
            );
        }
        list.push(json!({
            "id": 99, "street": ["Work 1"], "city": "Shop", "postcode": "21100",
            "country_id": "SE", "telephone": "1", "default_billing": false,
        }));
        json!({ "id": 1, "default_billing": "10", "addresses": list })
    }

    #[test]
    fn further_addresses_are_found_by_id_else_by_what_they_hold() {
        let c = customer(vec![None, Some(address("Malmö"))]);
        let saved = shop(&c);
        let want = Ours {
            default: Some(10),
            further: vec![None, Some(12)],
        };
        assert_eq!(ours_in(&c, &saved, &[]), want, "by content");
        assert_eq!(ours_in(&c, &saved, &[None, Some(12)]), want, "by id");
        let plain = customer(Vec::new());
        assert_eq!(
            ours_in(&plain, &saved, &[]).further,
            Vec::<Option<u64>>::new()
        );
    }

    #[test]
    fn an_edit_of_the_second_address_keeps_every_id_and_the_shops_own() {
        let before = customer(vec![Some(address("Malmö"))]);
        let current = shop(&before);
        let after = customer(vec![Some(address("Ystad"))]);
        let ours = ours_in(&before, &current, &[]);
        let sent = merged(&after, &current, &ours);
        let ids: Vec<_> = sent
            .as_array()
            .expect("list")
            .iter()
            .map(|a| (id_of(a), a["city"].clone(), a["default_billing"].clone()))
            .collect();
        assert_eq!(
            ids,
            [
                (Some(99), json!("Shop"), json!(false)),
                (Some(10), json!("Lund"), json!(true)),
                (Some(11), json!("Ystad"), json!(false)),
            ]
        );
    }

    #[test]
    fn only_further_addresses_leave_the_shops_default_alone() {
        let mut c = customer(vec![Some(address("Malmö"))]);
        c.address = None;
        let current = json!({ "addresses": [
            { "id": 5, "city": "Home", "default_billing": true, "default_shipping": true }
        ] });
        let sent = merged(&c, &current, &Ours::default());
        assert_eq!(sent[0]["id"], json!(5));
        assert_eq!(sent[0]["default_billing"], json!(true));
        assert_eq!(sent[1]["city"], json!("Malmö"));
        assert!(sent[1].get("id").is_none(), "a new address");
    }
}

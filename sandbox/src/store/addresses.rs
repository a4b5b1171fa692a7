//! Magento's rules for a customer's address list on save (`CustomerRepository::save`; see
//! "addresses present replaces the whole list" in `commerce-customer-api.md`): which ids an
//! address may carry, the ids new addresses get, and how the customer's default billing and
//! shipping addresses follow a list that replaces the old one. The field rules of one address
//! are in `crate::address`.

use serde_json::{Map, Value, json};

use crate::address::{self, AddressInput};
use crate::error::ApiError;
use crate::shop::Shop;

/// Validates the sent address list of a customer of `website`; `own_ids` are the customer's
/// address ids on update (an id outside them is unknown), `None` on create (ids sent are
/// ignored, every address is new). `Ok(None)` when no list was sent: the addresses stay as
/// they are.
pub(super) fn prepare_addresses(
    raw: Option<&Value>,
    own_ids: Option<&[i64]>,
    shop: &Shop,
    website: i64,
) -> Result<Option<Vec<AddressInput>>, ApiError> {
    let items = match raw {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(ApiError::wrong_type(other, "array")),
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let mut address = address::address(item, shop, website)?;
        match (own_ids, address.id) {
            (None, _) => address.id = None,
            (Some(own), Some(id)) if !own.contains(&id) => {
                return Err(ApiError::no_such_entity("addressId", json!(id)));
            }
            _ => {}
        }
        out.push(address);
    }
    Ok(Some(out))
}

/// Gives the validated addresses ids (kept, or new ones from `next_address_id` on), ties them
/// to the customer and derives the customer's default address ids from the flags sent and the
/// previous defaults.
pub(super) fn place_addresses(
    rec: &mut Map<String, Value>,
    customer_id: i64,
    inputs: Vec<AddressInput>,
    next_address_id: i64,
) {
    let mut next = next_address_id;
    let mut flags = Vec::with_capacity(inputs.len());
    let mut list = Vec::with_capacity(inputs.len());
    for input in inputs {
        let id = input.id.unwrap_or_else(|| {
            next += 1;
            next - 1
        });
        let mut fields = input.fields;
        fields.insert("id".into(), json!(id));
        fields.insert("customer_id".into(), json!(customer_id));
        flags.push((id, input.default_billing, input.default_shipping));
        list.push(Value::Object(fields));
    }
    let billing = flags.iter().map(|&(id, b, _)| (id, b));
    let chosen_billing = resolve_default(rec.get("default_billing"), billing);
    let shipping = flags.iter().map(|&(id, _, s)| (id, s));
    let chosen_shipping = resolve_default(rec.get("default_shipping"), shipping);
    for (key, chosen) in [
        ("default_billing", chosen_billing),
        ("default_shipping", chosen_shipping),
    ] {
        match chosen {
            Some(id) => rec.insert(key.into(), json!(id.to_string())),
            None => rec.remove(key),
        };
    }
    rec.insert("addresses".into(), Value::Array(list));
    sync_address_flags(rec);
}

/// The default address after a list replacement: the last address flagged true wins; else
/// the previous default if it survived and was not flagged false; else none.
fn resolve_default(
    current: Option<&Value>,
    flags: impl Iterator<Item = (i64, Option<bool>)> + Clone,
) -> Option<i64> {
    if let Some((id, _)) = flags.clone().filter(|(_, f)| *f == Some(true)).last() {
        return Some(id);
    }
    let current: i64 = current?.as_str()?.parse().ok()?;
    flags
        .into_iter()
        .any(|(id, f)| id == current && f != Some(false))
        .then_some(current)
}

/// Sets each address's boolean default flags from the customer's default address ids.
pub(super) fn sync_address_flags(rec: &mut Map<String, Value>) {
    let billing = rec
        .get("default_billing")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let shipping = rec
        .get("default_shipping")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(Value::Array(list)) = rec.get_mut("addresses") {
        for address in list.iter_mut().filter_map(Value::as_object_mut) {
            let id = address.get("id").map(Value::to_string);
            address.insert(
                "default_billing".into(),
                json!(id.is_some() && id == billing),
            );
            address.insert(
                "default_shipping".into(),
                json!(id.is_some() && id == shipping),
            );
        }
    } else {
        rec.insert("addresses".into(), json!([]));
    }
}

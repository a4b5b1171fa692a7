//! Whether the state store's mappings are this shop's, before a store bound on trust writes
//! through them.
//!
//! A store binds itself to its shop with its first mapping, and a run elsewhere is refused.
//! But `state rebind`, and a store whose mappings came from elsewhere (a `state import`, a
//! custsync from before bindings), bind on the user's word. Were those ids another shop's, the
//! first update would overwrite whichever customer has that id here (an update is a PUT to the
//! id: Magento changes the e-mail too), and `--delete-absent` would delete strangers. So the
//! first run after such a binding reads a sample of the mapped ids from the shop and stops,
//! before anything is written, when one of them is another customer. Once one of them is
//! found to be its key's customer, the binding is checked for good.

use serde_json::Value;

use crate::api::Client;
use crate::customer::{Key, KeyKind, custom_attribute, website_of};
use crate::retry::Retrier;
use crate::state::{StateError, Store};

/// How many mappings are checked: one search.
const SAMPLE: usize = 100;

/// The mappings checked are not the shop's.
#[derive(Debug, thiserror::Error)]
#[error(
    "the state store's mappings are not this shop's: {what}; nothing was sent. The store was \
     bound to this shop by `custsync state rebind` or from mappings made elsewhere (an import). \
     If that was a mistake, rebind it to its own shop; to start over with this one, `custsync \
     pull` into a fresh --state"
)]
pub struct NotThisShop {
    what: String,
}

/// What the shop said of the mappings sampled.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Every id found is the customer of its key.
    Same { found: usize },
    /// Customer `id` is `shop`'s here; the store maps `key` to it.
    Other { id: u64, shop: String, key: String },
}

/// The shop's customers `found` (by id) against the store's mappings `sample`.
fn verdict(kind: &KeyKind, sample: &[(Key, u64)], found: &[Value]) -> Verdict {
    let mut seen = 0;
    for (key, id) in sample {
        let Some(customer) = found
            .iter()
            .find(|c| c.get("id").and_then(Value::as_u64) == Some(*id))
        else {
            continue;
        };
        seen += 1;
        let theirs = key_of(kind, customer);
        if theirs.as_ref() != Some(key) {
            let shop = theirs.map_or_else(
                || "a customer without that key".to_owned(),
                |k| format!("{} in website {}", k.value, k.website_id),
            );
            return Verdict::Other {
                id: *id,
                shop,
                key: format!("{} in website {}", key.value, key.website_id),
            };
        }
    }
    Verdict::Same { found: seen }
}

/// The key of a customer as the API gives it.
fn key_of(kind: &KeyKind, customer: &Value) -> Option<Key> {
    let value = match kind.attribute() {
        None => customer.get("email")?.as_str()?.to_owned(),
        Some(code) => custom_attribute(customer, code)?,
    };
    Some(kind.key(website_of(customer)?, &value))
}

/// Checks the store's mappings against the shop when it is bound on trust (see the module
/// doc), and records that they passed (unless `dry_run`).
pub async fn vouch(
    client: &Client,
    retrier: &Retrier,
    store: &std::sync::Arc<Store>,
    dry_run: bool,
) -> Result<(), super::ShopError> {
    let of = std::sync::Arc::clone(store);
    let sampled = tokio::task::spawn_blocking(move || -> Result<_, StateError> {
        if !of.unchecked()? {
            return Ok(None);
        }
        let sample = (of.entries().take(SAMPLE))
            .map(|e| e.map(|(key, entry)| (key, entry.customer_id)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some((of.key_kind()?, sample)))
    })
    .await
    .map_err(|_| super::ShopError::Panicked)??;
    let Some((kind, sample)) = sampled else {
        return Ok(());
    };
    let ids: Vec<u64> = sample.iter().map(|(_, id)| *id).collect();
    let found = retrier
        .run(|| client.by_ids(&ids))
        .await
        .map_err(super::ShopError::Vouch)?;
    match verdict(&kind, &sample, &found) {
        // Ids the shop does not have overwrite no one; the next run checks again.
        Verdict::Same { found: 0 } => Ok(()),
        Verdict::Same { .. } if dry_run => Ok(()),
        Verdict::Same { .. } => {
            let of = std::sync::Arc::clone(store);
            tokio::task::spawn_blocking(move || of.set_checked(true))
                .await
                .map_err(|_| super::ShopError::Panicked)??;
            Ok(())
        }
        Verdict::Other { id, shop, key } => Err(NotThisShop {
            what: format!("customer {id} is {shop} here, but the store maps {key} to it"),
        }
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_sampled_id_must_be_the_customer_of_its_key() {
        let email = KeyKind::Email;
        let ann = (Key::new(1, "ann@x.io"), 7);
        let bob = (Key::new(2, "bob@x.io"), 8);
        let sample = [ann.clone(), bob];
        let shop = |id: u64, email: &str, website: Value| json!({"id": id, "email": email, "website_id": website});
        // (the shop's customers) -> verdict
        let cases = [
            (
                vec![
                    shop(7, "ANN@x.io", json!(1)),
                    shop(8, "bob@x.io", json!("2")),
                ],
                Verdict::Same { found: 2 },
            ),
            (
                vec![shop(8, "bob@x.io", json!(2))],
                Verdict::Same { found: 1 },
            ),
            (vec![], Verdict::Same { found: 0 }),
            (
                vec![shop(7, "zed@x.io", json!(1))],
                Verdict::Other {
                    id: 7,
                    shop: "zed@x.io in website 1".into(),
                    key: "ann@x.io in website 1".into(),
                },
            ),
            (
                vec![shop(7, "ann@x.io", json!(3))],
                Verdict::Other {
                    id: 7,
                    shop: "ann@x.io in website 3".into(),
                    key: "ann@x.io in website 1".into(),
                },
            ),
        ];
        for (found, want) in cases {
            assert_eq!(verdict(&email, &sample, &found), want, "{found:?}");
        }

        let legacy = KeyKind::Custom("legacy_id".into());
        let keyed = [(Key::custom(1, "L-1"), 7)];
        let with = |value: &str| {
            json!({"id": 7, "email": "a@x.io", "website_id": 1,
                "custom_attributes": [{"attribute_code": "legacy_id", "value": value}]})
        };
        assert_eq!(
            verdict(&legacy, &keyed, &[with("L-1")]),
            Verdict::Same { found: 1 }
        );
        assert!(matches!(
            verdict(&legacy, &keyed, &[with("L-2")]),
            Verdict::Other { id: 7, .. }
        ));
        assert!(matches!(
            verdict(
                &legacy,
                &keyed,
                &[json!({"id": 7, "email": "a@x.io", "website_id": 1})]
            ),
            Verdict::Other { id: 7, .. }
        ));
    }
}

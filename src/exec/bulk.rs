//! What the executor does for [`crate::bulk`]: the bodies a bulk carries, and a row's end
//! once the shop's queue has worked its operation, decided exactly as for a request of its
//! own (the answer checked, one id one key, "already exists" adopted).
//!
//! A bulk update runs Magento's `save` without the merge that a PUT of one customer gets, so
//! a partial body would clear every field it leaves out: [`full_record`] sends the customer as
//! the shop has it, with the file's values put in.

use serde_json::{Map, Value};

use super::addresses::{Ours, merged, ours_in};
use super::{Done, Ended, Executor, Failure, not_found};
use crate::api::{ApiError, email_lists, with_email};
use crate::customer::Customer;
use crate::outcome::Action;
use crate::plan::{Planned, Step};
use crate::state::{Doubt, Entry};

/// The calls whose answers are checked, as messages name them.
const BULK_CREATE: &str = "the bulk create";
const BULK_UPDATE: &str = "the bulk update";

/// The `customer` of a create: the row's values, and its addresses without ids.
pub fn create_body(customer: &Customer) -> Value {
    let mut body = customer.to_json(None);
    if customer.has_addresses() {
        body["addresses"] = merged(customer, &Value::Null, &Ours::default());
    }
    body
}

/// The complete `customer` of a bulk update of `entry`'s customer: `current` (as the shop
/// has it) with every value the file gives put in: custom attributes and extension
/// attributes merged by name, the row's addresses in place of the ones they replace, every
/// other address kept with its id. Nothing the file does not mention is left out.
pub fn full_record(customer: &Customer, current: &Value, entry: &Entry) -> Value {
    let id = entry.customer_id;
    let mut body = match current {
        Value::Object(c) => c.clone(),
        _ => Map::new(),
    };
    let Value::Object(ours) = customer.to_json(Some(id)) else {
        unreachable!("a customer's JSON is an object")
    };
    for (name, value) in ours {
        match (name.as_str(), body.get_mut(&name), value) {
            ("custom_attributes", Some(Value::Array(theirs)), Value::Array(mine)) => {
                for attr in mine {
                    let code = attr.get("attribute_code").cloned();
                    match theirs
                        .iter_mut()
                        .find(|a| a.get("attribute_code") == code.as_ref())
                    {
                        Some(slot) => *slot = attr,
                        None => theirs.push(attr),
                    }
                }
            }
            ("extension_attributes", Some(Value::Object(theirs)), Value::Object(mine)) => {
                theirs.extend(mine);
            }
            (_, _, value) => {
                body.insert(name, value);
            }
        }
    }
    let sent = ours_in(customer, current, &entry.further_address_ids).further;
    let target = Ours {
        default: entry.address_id,
        further: sent,
    };
    body.insert("addresses".into(), merged(customer, current, &target));
    Value::Object(body)
}

impl Executor {
    /// A bulk operation completed: `saved` (its result) is checked and recorded as the answer
    /// to the row's own request would be.
    pub async fn answered(&self, planned: Planned, saved: &Value) -> Ended {
        let Planned { row, step } = planned;
        match step {
            Step::Create { customer, hash, .. } => {
                let done = Done::new(
                    &customer,
                    saved,
                    hash,
                    String::new(),
                    (BULK_CREATE, None, &[]),
                );
                self.conclude(row, Action::Create, customer, None, done, false)
                    .await
            }
            Step::Update {
                customer,
                entry,
                hash,
                changes,
                doubt,
                ..
            } => {
                let id = entry.customer_id;
                let further = &entry.further_address_ids;
                let done = Done::new(
                    &customer,
                    saved,
                    hash,
                    String::new(),
                    (BULK_UPDATE, Some(id), further),
                )
                .map(|mut done| {
                    done.note = doubt.map(Doubt::message).unwrap_or_default().to_owned();
                    done.changes = changes;
                    done
                });
                self.conclude(row, Action::Update, customer, Some(id), done, true)
                    .await
            }
            other => unreachable!("{} rows are not sent", other.action().as_str()),
        }
    }

    /// A bulk create failed as "already exists": the customer is adopted as the row's own
    /// request would adopt it (found by e-mail, updated when it differs). Anything but a
    /// create is sent as a request of its own.
    pub async fn adopt_row(&self, planned: Planned, sent_before: bool) -> Ended {
        let Planned { row, step } = planned;
        match step {
            Step::Create { customer, hash, .. } => {
                let done =
                    (self.adopt(&customer, hash).await).map(|d| d.found_before(!sent_before));
                self.conclude(row, Action::Create, customer, None, done, false)
                    .await
            }
            step => self.send(Planned { row, step }).await,
        }
    }

    /// The creates of a bulk that met "already exists", adopted together: under the e-mail
    /// key, their customers are found a hundred e-mails a search (after a bulk whose answer
    /// was lost went again, that is every row of it: one search a row cost minutes at the
    /// default rate); then each is adopted as [`Executor::adopt_row`] adopts one.
    pub async fn adopt_all(&self, rows: Vec<(Planned, bool)>) -> Vec<Ended> {
        let mut creates = Vec::new();
        let mut ended = Vec::with_capacity(rows.len());
        for (planned, sent_before) in rows {
            match planned.step {
                Step::Create { customer, hash, .. } if customer.key_attribute.is_none() => {
                    creates.push((planned.row, customer, hash, sent_before));
                }
                step => {
                    let planned = Planned {
                        row: planned.row,
                        step,
                    };
                    ended.push(self.adopt_row(planned, sent_before).await);
                }
            }
        }
        let (lists, alone) = email_lists(creates, |(_, c, _, _)| (c.website_id, c.email.as_str()));
        for (website_id, rows) in lists {
            let emails: Vec<&str> = rows.iter().map(|(_, c, _, _)| c.email.as_str()).collect();
            let found = self
                .retry(|| self.client.by_emails(&emails, website_id))
                .await;
            let found = &found;
            let adopted = rows
                .into_iter()
                .map(|(row, customer, hash, sent_before)| async move {
                    let done = match found {
                        Ok(found) => match with_email(found, &customer.email) {
                            Some(remote) => {
                                self.adopt_remote(&customer, hash, remote.clone()).await
                            }
                            None => Err(not_found(&customer)),
                        },
                        // The search failed: each goes its own way, as a row alone would.
                        Err(_) => self.adopt(&customer, hash).await,
                    };
                    let done = done.map(|d| d.found_before(!sent_before));
                    (self.conclude(row, Action::Create, customer, None, done, false)).await
                });
            ended.extend(futures::future::join_all(adopted).await);
        }
        for (row, customer, hash, sent_before) in alone {
            let done = (self.adopt(&customer, hash).await).map(|d| d.found_before(!sent_before));
            let conclusion = self.conclude(row, Action::Create, customer, None, done, false);
            ended.push(conclusion.await);
        }
        ended
    }

    /// A bulk operation failed (or its bulk could not be submitted): the row fails with
    /// `error`; `unwritten` says that nothing of it can have reached the shop, so that an
    /// update's doubt mark may go.
    pub async fn refused(&self, planned: Planned, error: ApiError, unwritten: bool) -> Ended {
        let Planned { row, step } = planned;
        let action = step.action();
        let (customer, known) = match step {
            Step::Create { customer, .. } => (customer, None),
            Step::Update {
                customer, entry, ..
            } => (customer, Some(entry.customer_id)),
            other => unreachable!("{} rows are not sent", other.action().as_str()),
        };
        let failure = Failure {
            error,
            customer_id: known,
            unwritten,
        };
        // Updates, and creates under a custom key, were marked in doubt before they left.
        let in_doubt = action == Action::Update || customer.key_attribute.is_some();
        self.conclude(row, action, customer, known, Err(failure), in_doubt)
            .await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::customer::{Address, Text};

    #[test]
    fn a_full_record_keeps_everything_the_file_does_not_mention() {
        let customer = Customer {
            lastname: "New".into(),
            address: Some(Address {
                street: vec![Text::from("1 Main")],
                city: "Lund".into(),
                postcode: "22100".into(),
                country_id: "SE".into(),
                region: None,
                telephone: "123".into(),
                company: None,
                shop_region: None,
            }),
            ..crate::customer::tests::ann()
        };
        let current = json!({
            "id": 7, "email": "ann@example.com", "firstname": "Ann", "lastname": "Old",
            "middlename": "Q", "taxvat": "SE1", "dob": "1990-05-17", "gender": 2, "group_id": 3,
            "website_id": 1, "store_id": 2, "created_at": "2020-01-01 00:00:00",
            "extension_attributes": {"is_subscribed": false, "company_attributes": {"x": 1}},
            "custom_attributes": [
                {"attribute_code": "loyalty_no", "value": "1"},
                {"attribute_code": "tier", "value": "gold"}],
            "addresses": [
                {"id": 10, "street": ["old"], "city": "Lund", "postcode": "22100",
                 "country_id": "SE", "telephone": "1", "default_billing": true,
                 "default_shipping": true},
                {"id": 11, "street": ["added in the shop"], "city": "Malmö", "postcode": "21100",
                 "country_id": "SE", "telephone": "2"}]
        });
        let entry = Entry {
            customer_id: 7,
            payload_hash: 1,
            synced_at: 0,
            address_id: Some(10),
            further_address_ids: Vec::new(),
        };
        let body = full_record(&customer, &current, &entry);
        assert_eq!(body["id"], json!(7));
        assert_eq!(body["lastname"], json!("New"), "the file's value");
        for kept in ["middlename", "taxvat", "group_id", "store_id", "created_at"] {
            assert_eq!(body[kept], current[kept], "{kept} kept");
        }
        assert_eq!(
            body["extension_attributes"],
            json!({"is_subscribed": true, "company_attributes": {"x": 1}})
        );
        assert_eq!(
            body["custom_attributes"],
            json!([{"attribute_code": "loyalty_no", "value": "123"},
                   {"attribute_code": "tier", "value": "gold"}])
        );
        let addresses = body["addresses"].as_array().expect("addresses");
        assert_eq!(addresses.len(), 2);
        let by_id = |id: u64| {
            addresses
                .iter()
                .find(|a| a["id"] == json!(id))
                .expect("address")
        };
        assert_eq!(
            by_id(10)["street"],
            json!(["1 Main"]),
            "ours, replaced in place"
        );
        assert_eq!(
            by_id(11)["street"],
            json!(["added in the shop"]),
            "theirs, kept"
        );
    }
}

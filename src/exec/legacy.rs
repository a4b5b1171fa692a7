//! Adoption under `--key custom:<code>`: the customer a refused create stands for is the one
//! with the row's legacy id, whatever its e-mail (the e-mail may have changed since a create
//! whose answer was lost). It is found by the attribute; when none has it, the e-mail is
//! taken by a customer of another legacy id (or of none), which is never adopted: the row
//! fails, naming it. A create whose answer was lost is marked in doubt, so that the next
//! create of the key looks for its customer by the key before it creates one.

use serde_json::Value;

use secrecy::SecretString;

use super::{Done, Executor, Failure};
use crate::api::{ALREADY_EXISTS, ApiError};
use crate::customer::{Customer, custom_attribute};

impl Executor {
    /// The shop's customer whose attribute `code` holds the row's key value exactly, for a
    /// create refused as "already exists".
    pub(super) async fn find_by_key(
        &self,
        customer: &Customer,
        code: &str,
    ) -> Result<Value, Failure> {
        let value = customer.custom_value(code).unwrap_or_default().trim();
        let website = customer.website_id;
        if let Some(one) = self.holder(customer, code).await? {
            return Ok(one);
        }
        let holder = self
            .retry(|| self.client.find(&customer.email, website))
            .await
            .map_err(|error| Failure::new(error, None))?;
        let message = match holder {
            None => format!(
                "{ALREADY_EXISTS} (and no customer with this email or with {code} {value} was \
                 found in website {website})"
            ),
            Some(other) => format!(
                "{ALREADY_EXISTS} (customer {} has this email with {code} {}, not {value}: a \
                 customer of another legacy id is never adopted; correct the email in the file \
                 or in the shop)",
                other
                    .get("id")
                    .map_or_else(|| "?".to_owned(), Value::to_string),
                custom_attribute(&other, code)
                    .map_or_else(|| "unset".to_owned(), |v| format!("{v:?}")),
            ),
        };
        Err(refused(message))
    }

    /// The one customer whose attribute `code` holds the row's key value exactly, if any
    /// (several: refused, none is adopted).
    async fn holder(&self, customer: &Customer, code: &str) -> Result<Option<Value>, Failure> {
        let value = customer.custom_value(code).unwrap_or_default().trim();
        let website = customer.website_id;
        let found = self
            .retry(|| self.client.find_by_attribute(code, value, website))
            .await
            .map_err(|error| Failure::new(error, None))?;
        // Magento compares without regard to case; the key is the value exactly.
        let mut ours = found
            .into_iter()
            .filter(|c| custom_attribute(c, code).is_some_and(|v| v.trim() == value));
        match (ours.next(), ours.next()) {
            // Not settled (the key stays in doubt): the next run looks again, rather than
            // create yet another customer with the value.
            (Some(_), Some(_)) => Err(Failure {
                unwritten: false,
                ..refused(format!(
                    "{ALREADY_EXISTS} (and several customers of website {website} have {code} \
                     {value}, so none is adopted: leave one with it in the shop)"
                ))
            }),
            (one, _) => Ok(one),
        }
    }

    /// A create whose earlier attempt is in doubt ([`crate::state::Doubt::Create`]): the
    /// customer the shop may have made is looked for by its key first, and adopted when
    /// found (its e-mail may have changed since, so "already exists" would not catch it).
    pub(super) async fn create_unless_found(
        &self,
        customer: &Customer,
        code: &str,
        password: Option<&SecretString>,
        hash: u128,
    ) -> Result<Done, Failure> {
        match self.holder(customer, code).await? {
            Some(remote) => self.adopt_remote(customer, hash, remote).await,
            None => self.create(customer, password, hash).await,
        }
    }
}

/// A create the shop refused, with why it was not resolved: nothing was written.
fn refused(message: String) -> Failure {
    Failure::new(
        ApiError::Status {
            status: 400,
            message,
            retry_after: None,
        },
        None,
    )
}

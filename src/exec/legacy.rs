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
        if let Some(one) = self.holder(customer, code, true).await? {
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
    /// (several: refused, none is adopted). `refused_as_existing`: the shop refused the row's
    /// create as "already exists", which the failure then quotes; else nothing was sent.
    async fn holder(
        &self,
        customer: &Customer,
        code: &str,
        refused_as_existing: bool,
    ) -> Result<Option<Value>, Failure> {
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
        let (first, second) = (ours.next(), ours.next());
        if second.is_none() {
            return Ok(first);
        }
        let several = format!(
            "several customers of website {website} have {code} {value}, so none is adopted: \
             leave one with it in the shop"
        );
        let failure = match refused_as_existing {
            true => refused(format!("{ALREADY_EXISTS} (and {several})")),
            false => Failure::new(
                ApiError::Unexpected {
                    url: format!("the search for {code} {value}"),
                    detail: format!("{several}; nothing was created"),
                },
                None,
            ),
        };
        // Not settled (the key stays in doubt): the next run looks again, rather than create
        // yet another customer with the value.
        Err(Failure {
            unwritten: false,
            ..failure
        })
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
        match self.holder(customer, code, false).await? {
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

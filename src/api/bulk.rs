//! Commerce's asynchronous bulk routes and the status route that follows them. One call is
//! one exchange under the shared throttle, like every other call of the [`Client`]; what the
//! answers mean is [`crate::bulk`]'s to judge.
//!
//! The route depends on the base: SaaS bases put the async segment after `V1`
//! (`{base}/V1/async/bulk/customers`), bases with `/rest/<store>` before it
//! (`{base}/async/bulk/V1/customers`). A route parameter becomes `by<Param>`, so a bulk update
//! goes to `…/customers/byCustomerId`. The status route is `{base}/V1/bulk/{uuid}/...` in both.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};

use super::{ApiError, Client};

/// Most of a bulk's answer or status read: a status carries every operation's data and
/// result, a few KiB each, for up to 5,000 operations.
const MAX_BULK_BODY: usize = 64 * 1024 * 1024;

/// What a bulk request asks the shop's queue to do with each of its items.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BulkKind {
    /// `POST …/customers`: create each customer.
    Create,
    /// `PUT …/customers/byCustomerId`: save each complete customer under its `id`.
    Update,
}

/// The path (after the base) of a bulk route, for a base with or without `/rest/<store>`.
pub fn bulk_path(endpoint: &str, kind: BulkKind) -> String {
    let rest_form = endpoint
        .split("://")
        .nth(1)
        .unwrap_or(endpoint)
        .split('/')
        .skip(1)
        .any(|segment| segment == "rest");
    let base = if rest_form {
        "async/bulk/V1/customers"
    } else {
        "V1/async/bulk/customers"
    };
    match kind {
        BulkKind::Create => base.to_owned(),
        BulkKind::Update => format!("{base}/byCustomerId"),
    }
}

impl Client {
    /// Submits one bulk: `items` are ordinary request bodies (`{"customer": …}`); `hidden`
    /// the secrets they carry (passwords), kept out of any message. Returns the `202` answer.
    pub async fn bulk_submit(
        &self,
        kind: BulkKind,
        items: &[Value],
        hidden: &[&str],
    ) -> Result<Value, ApiError> {
        let method = match kind {
            BulkKind::Create => Method::POST,
            BulkKind::Update => Method::PUT,
        };
        let path = bulk_path(&self.settings.endpoint, kind);
        let body = Value::Array(items.to_vec());
        self.call(method, path, Some(&body), &[], MAX_BULK_BODY, hidden)
            .await
    }

    /// `GET /V1/bulk/{uuid}/detailed-status`: every operation with its status and result.
    pub async fn bulk_status(&self, uuid: &str) -> Result<Value, ApiError> {
        let path = format!("V1/bulk/{uuid}/detailed-status");
        self.call(Method::GET, path, None, &[], MAX_BULK_BODY, &[])
            .await
    }

    /// The customers with these ids (a page at most: [`crate::defaults::MAX_PAGE_SIZE`]), in one search
    /// (`entity_id in (…)`); the ones the shop does not have are missing from the answer.
    pub async fn by_ids(&self, ids: &[u64]) -> Result<Vec<Value>, ApiError> {
        let list = ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        self.search_in("entity_id", &list, ids.len(), None).await
    }

    /// The customers of website `website_id` with these e-mails, in one search (`email in
    /// (…)`, the list separated by commas: an e-mail that holds one cannot be asked this
    /// way); the ones the shop does not have are missing from the answer.
    pub async fn by_emails(
        &self,
        emails: &[&str],
        website_id: u32,
    ) -> Result<Vec<Value>, ApiError> {
        let list = emails.join(",");
        (self.search_in("email", &list, emails.len(), Some(website_id))).await
    }

    /// `GET /V1/customers/search` for the customers whose `field` is one of `list` (at most
    /// `count` of them), in website `website` if given. Magento's `in` condition takes a
    /// comma-separated list (Adobe's "Search using REST endpoints").
    async fn search_in(
        &self,
        field: &str,
        list: &str,
        count: usize,
        website: Option<u32>,
    ) -> Result<Vec<Value>, ApiError> {
        let size = count.max(1).to_string();
        let website = website.map(|w| w.to_string());
        let mut query = vec![
            ("searchCriteria[filterGroups][0][filters][0][field]", field),
            ("searchCriteria[filterGroups][0][filters][0][value]", list),
            (
                "searchCriteria[filterGroups][0][filters][0][conditionType]",
                "in",
            ),
            ("searchCriteria[pageSize]", &size),
            ("searchCriteria[currentPage]", "1"),
        ];
        if let Some(website) = &website {
            query.extend([
                (
                    "searchCriteria[filterGroups][1][filters][0][field]",
                    "website_id",
                ),
                (
                    "searchCriteria[filterGroups][1][filters][0][value]",
                    website,
                ),
                (
                    "searchCriteria[filterGroups][1][filters][0][conditionType]",
                    "eq",
                ),
            ]);
        }
        let path = "V1/customers/search".to_owned();
        let found = self
            .call(Method::GET, path, None, &query, MAX_BULK_BODY, &[])
            .await?;
        match found.get("items") {
            Some(Value::Array(items)) => Ok(items.clone()),
            Some(Value::Null) | None if count == 0 => Ok(Vec::new()),
            _ => Err(ApiError::Unexpected {
                url: format!("{}/V1/customers/search", self.shown_endpoint),
                detail: "a search answer without items".into(),
            }),
        }
    }
}

/// E-mails asked for in one search ([`Client::by_emails`]): a hundred keep its address near
/// 4 KB (web servers refuse request lines over 8 KB by default).
const EMAILS_PER_SEARCH: usize = 100;

/// `items` as [`Client::by_emails`] can look them up: per website, lists of at most a hundred
/// e-mails; and apart, those whose e-mail holds a comma (it would split a list), to be looked
/// up one by one. `of` gives an item's website and e-mail.
pub fn email_lists<T>(
    items: impl IntoIterator<Item = T>,
    of: impl Fn(&T) -> (u32, &str),
) -> (Vec<(u32, Vec<T>)>, Vec<T>) {
    let mut by_website: BTreeMap<u32, Vec<T>> = BTreeMap::new();
    let mut alone = Vec::new();
    for item in items {
        let (website_id, listed) = {
            let (website_id, email) = of(&item);
            (website_id, !email.contains(','))
        };
        match listed {
            true => by_website.entry(website_id).or_default().push(item),
            false => alone.push(item),
        }
    }
    let mut lists = Vec::new();
    for (website_id, mut items) in by_website {
        while !items.is_empty() {
            let rest = items.split_off(items.len().min(EMAILS_PER_SEARCH));
            lists.push((website_id, std::mem::replace(&mut items, rest)));
        }
    }
    (lists, alone)
}

/// The customer of `found` (a search's answer) with this e-mail, as Magento compares them.
pub fn with_email<'a>(found: &'a [Value], email: &str) -> Option<&'a Value> {
    let email = email.trim().to_lowercase();
    found.iter().find(|c| {
        (c.get("email").and_then(Value::as_str)).is_some_and(|e| e.trim().to_lowercase() == email)
    })
}

/// The item of a create bulk: the customer, and its password when the row gives one.
pub fn create_item(customer: Value, password: Option<&str>) -> Value {
    let mut item = json!({ "customer": customer });
    if let Some(p) = password {
        item["password"] = json!(p);
    }
    item
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_go_a_hundred_a_list_per_website_and_a_comma_alone() {
        let mut items: Vec<(u32, String)> = (0..250).map(|i| (1, format!("a{i}@x.io"))).collect();
        items.extend((0..3).map(|i| (2, format!("b{i}@x.io"))));
        items.push((1, "last,first@x.io".into()));
        let (lists, alone) = email_lists(items, |(w, e)| (*w, e.as_str()));
        let shape: Vec<(u32, usize)> = lists.iter().map(|(w, l)| (*w, l.len())).collect();
        assert_eq!(shape, [(1, 100), (1, 100), (1, 50), (2, 3)]);
        assert_eq!(alone, [(1, "last,first@x.io".to_owned())]);
        let found = [json!({"id": 1, "email": "A0@X.io "})];
        assert_eq!(with_email(&found, "a0@x.io"), Some(&found[0]));
        assert_eq!(with_email(&found, "a1@x.io"), None);
    }

    #[test]
    fn routes_for_both_base_forms() {
        let cases = [
            (
                "https://na1.api.commerce.adobe.com/T1",
                BulkKind::Create,
                "V1/async/bulk/customers",
            ),
            (
                "https://na1.api.commerce.adobe.com/T1",
                BulkKind::Update,
                "V1/async/bulk/customers/byCustomerId",
            ),
            (
                "https://shop.example/rest/default",
                BulkKind::Create,
                "async/bulk/V1/customers",
            ),
            (
                "https://shop.example/rest/de",
                BulkKind::Update,
                "async/bulk/V1/customers/byCustomerId",
            ),
            (
                "http://127.0.0.1:9/sandbox",
                BulkKind::Create,
                "V1/async/bulk/customers",
            ),
            // A host called "rest" is not a /rest/ base.
            (
                "https://rest/T1",
                BulkKind::Create,
                "V1/async/bulk/customers",
            ),
        ];
        for (base, kind, want) in cases {
            assert_eq!(bulk_path(base, kind), want, "{base}");
        }
    }
}

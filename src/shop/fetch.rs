//! Reading the shop's [`Model`] from its API: a handful of GETs, under the run's rate limit and
//! retries like any other request (so `requests` counts them).
//!
//! Websites, store views, customer groups (paged) and custom attributes are read once; the
//! allowed countries once per website, in the scope of one of its store views, because each
//! website may allow other countries (Magento checks an address against its customer's
//! website).

use serde_json::Value;

use super::{Model, parse};
use crate::api::{ApiError, Client};
use crate::retry::Retrier;

/// Magento's answer to a path no route serves.
const ROUTE_MISS: &str = "Request does not match any route.";
/// Customer groups per search page.
const GROUP_PAGE: u32 = 300;

/// The model could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The base answers no route: not a Commerce REST base.
    #[error(
        "{base} is not the REST base of a Commerce shop: GET {base}/{path} answered HTTP 404 \
         \"{ROUTE_MISS}\". The base is https://<region>.api.commerce.adobe.com/<tenant-id> on \
         Adobe Commerce as a Cloud Service (no /rest/), https://shop.example/rest/default on \
         premise (no /V1); an unknown --store code is answered the same way"
    )]
    WrongBase { base: String, path: &'static str },
    /// The API refused or did not answer.
    #[error("reading the shop's {what} (GET {path}): {source}")]
    Api {
        what: &'static str,
        path: &'static str,
        source: ApiError,
    },
    /// An answer this client does not understand.
    #[error("reading the shop's {what} (GET {path}): not an answer as Commerce gives it: {why}")]
    Shape {
        what: &'static str,
        path: &'static str,
        why: String,
    },
}

impl FetchError {
    /// The credentials are refused (IMS, or a 401 to a fresh token).
    pub fn is_auth(&self) -> bool {
        matches!(self, FetchError::Api { source, .. } if source.is_fatal())
    }
}

/// The reads, with what each one is for messages.
struct Reads<'a> {
    client: &'a Client,
    retrier: &'a Retrier,
}

impl Reads<'_> {
    async fn get<T>(
        &self,
        (what, path): (&'static str, &'static str),
        query: &[(&str, &str)],
        store: Option<&str>,
        parse: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Result<T, FetchError> {
        let answer = self
            .retrier
            .run(|| self.client.read(path, query, store))
            .await
            .map_err(|source| failed(self.client, (what, path), source))?;
        parse(&answer).map_err(|why| FetchError::Shape { what, path, why })
    }
}

const WEBSITES: (&str, &str) = ("websites", "V1/store/websites");
const STORE_VIEWS: (&str, &str) = ("store views", "V1/store/storeViews");
const GROUPS: (&str, &str) = ("customer groups", "V1/customerGroups/search");
const COUNTRIES: (&str, &str) = ("allowed countries", "V1/directory/countries");
const ATTRIBUTES: (&str, &str) = (
    "custom customer attributes",
    "V1/attributeMetadata/customer/custom",
);

/// Reads the whole model.
pub async fn fetch(client: &Client, retrier: &Retrier) -> Result<Model, FetchError> {
    let reads = Reads { client, retrier };
    let mut model = Model {
        websites: reads.get(WEBSITES, &[], None, parse::websites).await?,
        store_views: reads
            .get(STORE_VIEWS, &[], None, parse::store_views)
            .await?,
        groups: groups(&reads).await?,
        custom_attributes: reads.get(ATTRIBUTES, &[], None, parse::attributes).await?,
        ..Model::default()
    };
    // The shop's default scope, read only for a website without a store view to ask in.
    let mut default_scope = None;
    let websites: Vec<u32> = model.websites.iter().map(|w| w.id).collect();
    for website in websites {
        let scope = model.store_views_of(website).min_by_key(|s| s.id);
        let countries = match scope {
            Some(view) => {
                let code = view.code.clone();
                reads
                    .get(COUNTRIES, &[], Some(&code), parse::countries)
                    .await?
            }
            None => match &default_scope {
                Some(list) => Clone::clone(list),
                None => default_scope
                    .insert(reads.get(COUNTRIES, &[], None, parse::countries).await?)
                    .clone(),
            },
        };
        let allowed = countries.iter().map(|c| c.id.clone()).collect();
        model.allowed.insert(website, allowed);
        for c in countries {
            model.countries.entry(c.id.clone()).or_insert(c);
        }
    }
    Ok(model)
}

/// Every customer group, page by page.
async fn groups(reads: &Reads<'_>) -> Result<Vec<super::Group>, FetchError> {
    let size = GROUP_PAGE.to_string();
    let mut all = Vec::new();
    for page in 1u32.. {
        let page = page.to_string();
        let query = [
            ("searchCriteria[currentPage]", page.as_str()),
            ("searchCriteria[pageSize]", size.as_str()),
        ];
        let (items, total) = reads.get(GROUPS, &query, None, parse::groups).await?;
        let last = items.is_empty();
        all.extend(items);
        if last || all.len() as u64 >= total {
            break;
        }
    }
    Ok(all)
}

/// How many customers the shop has (a search page of one gives the total).
pub async fn customer_count(client: &Client, retrier: &Retrier) -> Result<u64, FetchError> {
    const SEARCH: &str = "V1/customers/search";
    retrier
        .run(|| client.page(1, 1))
        .await
        .map(|(_, total)| total)
        .map_err(|source| failed(client, ("customers", SEARCH), source))
}

/// The error of a read that failed: a route miss says the base is wrong.
fn failed(
    client: &Client,
    (what, path): (&'static str, &'static str),
    source: ApiError,
) -> FetchError {
    match &source {
        ApiError::Status {
            status: 404,
            message,
            ..
        } if message == ROUTE_MISS => FetchError::WrongBase {
            base: client.endpoint().to_owned(),
            path,
        },
        _ => FetchError::Api { what, path, source },
    }
}

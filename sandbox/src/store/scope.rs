//! Magento's rules for the website and store view of a customer, read against the shop model.

use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::shop::{Shop, StoreView};
use crate::stored::int_of;

/// Website and store view of a new customer, in the order of
/// `AccountManagement::createAccountWithPasswordHash` (0 counts as not given, as PHP's `!`):
/// the store is the website's default store, else the request's store view (`Store` header,
/// `scope`), else the shop's default; the website is the store's; then the store must be one
/// of the website's (`validateCustomerStoreIdByWebsiteId`), so a store view the shop does not
/// have, named with a website, is "not in the associated website" (the integration test
/// `CreateAccountTest::createInvalidAccountDataProvider`, case
/// `send_email_store_id_not_match_website`: website 1, store 5).
pub(super) fn resolve_scope(
    shop: &Shop,
    website: Option<i64>,
    store: Option<i64>,
    scope: Option<i64>,
) -> Result<(i64, StoreView), ApiError> {
    let website = website.filter(|&w| w != 0);
    let store_id = match (store.filter(|&s| s != 0), website) {
        (Some(s), _) => s,
        (None, Some(w)) => website_store(shop, w)?.id,
        (None, None) => scope.unwrap_or_else(|| shop.default_store().id),
    };
    let website = match website {
        Some(w) => w,
        None => store_view(shop, store_id)?.website_id,
    };
    website_store(shop, website)?;
    shop.store_view(store_id)
        .filter(|s| s.website_id == website)
        .map(|s| (website, s.clone()))
        .ok_or_else(not_in_website)
}

/// Keeps website and store consistent on update: an explicitly sent store must belong to the
/// website; a store merely inherited follows a website change.
pub(super) fn fix_scope(
    shop: &Shop,
    rec: &mut Map<String, Value>,
    store_sent: bool,
) -> Result<(), ApiError> {
    let Some(website) = int_of(rec, "website_id") else {
        return Err(ApiError::bad(
            "\"Associate to Website\" is a required value.",
        ));
    };
    let home = website_store(shop, website)?;
    let store = match int_of(rec, "store_id") {
        Some(s) => store_view(shop, s)?,
        None => home,
    };
    let store = if store.website_id == website {
        store
    } else if store_sent {
        return Err(not_in_website());
    } else {
        home
    };
    rec.insert("store_id".into(), json!(store.id));
    Ok(())
}

fn not_in_website() -> ApiError {
    ApiError::bad("The store view is not in the associated website.")
}

/// `StoreRepository::getById`'s 404.
fn store_view(shop: &Shop, id: i64) -> Result<&StoreView, ApiError> {
    shop.store_view(id).ok_or_else(|| {
        ApiError::new(
            404,
            "The store that was requested wasn't found. Verify the store and try again.",
        )
    })
}

/// The website's default store; `WebsiteRepository::getById`'s 404 for an unknown website.
fn website_store(shop: &Shop, website: i64) -> Result<&StoreView, ApiError> {
    shop.website_store(website).ok_or_else(|| {
        ApiError::new(
            404,
            "The website with id %1 that was requested wasn't found. Verify the website and try again.",
        )
        .with_params(json!([website]))
    })
}

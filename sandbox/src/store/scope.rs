//! The sandbox shop's fixed setup (websites 1 to 3, one store view each) and Magento's rules
//! for the website and store view of a customer.

use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::stored::int_of;

/// One store view of the fixed shop setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoreView {
    pub(crate) id: i64,
    pub(crate) code: &'static str,
    pub(crate) name: &'static str,
    pub(crate) website: i64,
}

/// Websites 1..=3 with one store view each.
pub(crate) const STORE_VIEWS: [StoreView; 3] = [
    StoreView {
        id: 1,
        code: "default",
        name: "Default Store View",
        website: 1,
    },
    StoreView {
        id: 2,
        code: "second",
        name: "Second Store View",
        website: 2,
    },
    StoreView {
        id: 3,
        code: "third",
        name: "Third Store View",
        website: 3,
    },
];

/// Website and store view of a new customer (`AccountManagement::createAccountWithPasswordHash`).
pub(super) fn resolve_scope(
    website: Option<i64>,
    store: Option<i64>,
    scope: Option<i64>,
) -> Result<(i64, StoreView), ApiError> {
    if let Some(w) = website {
        website_store(w)?;
    }
    let store = match (store, website) {
        (Some(s), _) => store_view(s)?,
        (None, Some(w)) => website_store(w)?,
        (None, None) => store_view(scope.unwrap_or(1))?,
    };
    let website = website.unwrap_or(store.website);
    if store.website != website {
        return Err(ApiError::bad(
            "The store view is not in the associated website.",
        ));
    }
    Ok((website, store))
}

/// Keeps website and store consistent on update: an explicitly sent store must belong to the
/// website; a store merely inherited follows a website change.
pub(super) fn fix_scope(rec: &mut Map<String, Value>, store_sent: bool) -> Result<(), ApiError> {
    let Some(website) = int_of(rec, "website_id") else {
        return Err(ApiError::bad(
            "\"Associate to Website\" is a required value.",
        ));
    };
    let home = website_store(website)?;
    let store = match int_of(rec, "store_id") {
        Some(s) => store_view(s)?,
        None => home,
    };
    let store = if store.website == website {
        store
    } else if store_sent {
        return Err(ApiError::bad(
            "The store view is not in the associated website.",
        ));
    } else {
        home
    };
    rec.insert("store_id".into(), json!(store.id));
    Ok(())
}

fn store_view(id: i64) -> Result<StoreView, ApiError> {
    STORE_VIEWS
        .iter()
        .copied()
        .find(|s| s.id == id)
        .ok_or_else(|| {
            ApiError::new(
                404,
                "The store that was requested wasn't found. Verify the store and try again.",
            )
        })
}

fn website_store(website: i64) -> Result<StoreView, ApiError> {
    STORE_VIEWS.iter().copied().find(|s| s.website == website).ok_or_else(|| {
        ApiError::new(
            404,
            "The website with id %1 that was requested wasn't found. Verify the website and try again.",
        )
        .with_params(json!([website]))
    })
}

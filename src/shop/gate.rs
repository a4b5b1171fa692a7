//! The sync's use of the shop model: every row to create or update passes the [`Gate`] before
//! it is sent (in a dry run too), so that a row the shop would refuse is `invalid` in both.
//!
//! The model is read lazily, when the first such row arrives: a re-run of an unchanged file
//! sends nothing and reads nothing. It comes from the state store's cache when that was read
//! from the same target within the hour; otherwise from the shop (a handful of GETs, through
//! the run's client, so counted in `requests`), and then cached (not by a dry run, which
//! changes no state). When the state store was empty, the shop's customer count is read too:
//! a first run against a shop that already has customers is told to `pull` first.
//!
//! A dry run without credentials (which it needs for nothing else) cannot read the model: it
//! says so and checks its rows for syntax only, as before there was a model to check against.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::vouch::{NotThisShop, vouch};
use super::{FetchError, Model, Rules, check, customer_count, fetch};
use crate::api::{ApiError, Client};
use crate::console;
use crate::customer::{Change, Customer, Text};
use crate::input::Field;
use crate::plan::{Planned, Step};
use crate::retry::Retrier;
use crate::state::{Binding, Entry, StateError, Store};

/// How long a cached model is trusted.
const CACHE_SECS: i64 = 3600;

/// The model could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShopError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("internal error: the state store task stopped unexpectedly")]
    Panicked,
    /// An earlier read failed (and stopped the run).
    #[error("the shop's model could not be read")]
    Unavailable,
    /// `--key custom:<code>` names an attribute the shop does not define.
    #[error(
        "--key custom:{code}: the shop defines no custom customer attribute `{code}` (it has: \
         {defined}); nothing was sent. Create the attribute in the shop, or give the --key of \
         one it has"
    )]
    UnknownKey { code: String, defined: String },
    /// The state store's mappings could not be checked against the shop.
    #[error("checking the state store's mappings against the shop: {0}")]
    Vouch(#[source] ApiError),
    #[error(transparent)]
    NotThisShop(#[from] NotThisShop),
}

/// Where the model stands.
enum Load {
    NotYet,
    Ready(Model),
    /// Not to be had: a dry run without credentials, and nothing cached.
    Unchecked,
    /// Reading it failed; the run is stopping.
    Failed,
}

/// Vets the rows to send against the shop; see the module doc.
pub struct Gate {
    /// `None` for a dry run without credentials.
    client: Option<Arc<Client>>,
    retrier: Retrier,
    store: Arc<Store>,
    target: Binding,
    rules: Rules,
    /// A dry run: caches nothing.
    dry_run: bool,
    quiet: bool,
    /// The state store had no mapping when the run began.
    empty_store: bool,
    /// `--force`: an update goes even when it changes nothing.
    force: bool,
    /// The store was empty and the shop was not: under a custom key each create first looks
    /// for its customer by the key (see [`Gate::vet`]).
    look_first: bool,
    /// Rows refused for a website the shop does not have (see [`Gate::unknown_websites`]).
    unknown_websites: u64,
    load: Load,
    /// The store's mappings were found to be this shop's (see `vouch.rs`).
    vouched: bool,
    /// Undefined `custom:` codes already named on stderr.
    named: BTreeSet<Text>,
}

/// What a [`Gate`] works with.
pub struct Setup {
    pub client: Option<Arc<Client>>,
    pub retrier: Retrier,
    pub store: Arc<Store>,
    pub target: Binding,
    pub rules: Rules,
    pub dry_run: bool,
    pub quiet: bool,
    pub empty_store: bool,
    pub force: bool,
}

impl Gate {
    pub fn new(s: Setup) -> Self {
        Gate {
            client: s.client,
            retrier: s.retrier,
            store: s.store,
            target: s.target,
            rules: s.rules,
            dry_run: s.dry_run,
            quiet: s.quiet,
            empty_store: s.empty_store,
            force: s.force,
            look_first: false,
            unknown_websites: 0,
            load: Load::NotYet,
            vouched: false,
            named: BTreeSet::new(),
        }
    }

    /// Retries its reads made.
    pub fn retries(&self) -> u64 {
        self.retrier.retries()
    }

    /// Rows refused for a website the shop does not have: the customer each means may be in
    /// another website, so, as rows whose website cannot be read, they keep `--delete-absent`
    /// from deleting anyone.
    pub fn unknown_websites(&self) -> u64 {
        self.unknown_websites
    }

    /// Has the model at hand, reading it the first time; after a failure, fails at once.
    pub async fn ready(&mut self) -> Result<(), ShopError> {
        match self.load {
            Load::Ready(_) | Load::Unchecked => return Ok(()),
            Load::Failed => return Err(ShopError::Unavailable),
            Load::NotYet => {}
        }
        if let Err(e) = self.vouched().await {
            self.load = Load::Failed;
            return Err(e);
        }
        match self.read().await {
            Ok(Some(model)) => {
                if let Some(code) = &self.rules.key_attribute
                    && model.attribute(code).is_none()
                {
                    self.load = Load::Failed;
                    let codes = model.custom_attributes.iter().map(|a| a.code.as_str());
                    let defined = codes.collect::<Vec<_>>().join(", ");
                    return Err(ShopError::UnknownKey {
                        code: code.clone(),
                        defined: if defined.is_empty() {
                            "none".into()
                        } else {
                            defined
                        },
                    });
                }
                self.load = Load::Ready(model);
                Ok(())
            }
            Ok(None) => {
                self.load = Load::Unchecked;
                if !self.quiet {
                    console::warn(
                        "warning: without credentials this dry run cannot read the shop's model \
                         (websites, customer groups, countries), so its rows are checked for \
                         syntax only: the real run may find some of them invalid. Give the \
                         credentials a real run needs to check them as the shop will.",
                    );
                }
                Ok(())
            }
            Err(e) => {
                self.load = Load::Failed;
                Err(e)
            }
        }
    }

    /// Makes sure, once, that a store bound on trust holds this shop's mappings, before a row
    /// is written or a customer deleted through them (see `vouch.rs`). Without a client (a
    /// dry run without credentials) nothing can be checked.
    pub async fn vouched(&mut self) -> Result<(), ShopError> {
        if let (false, Some(client)) = (self.vouched, self.client.as_deref()) {
            vouch(client, &self.retrier, &self.store, self.dry_run).await?;
            self.vouched = true;
        }
        Ok(())
    }

    /// The model, from the cache or the shop; `None` when neither can give it.
    async fn read(&mut self) -> Result<Option<Model>, ShopError> {
        let now = chrono::Utc::now().timestamp();
        let (store, target) = (Arc::clone(&self.store), self.target.clone());
        let cached = tokio::task::spawn_blocking(move || store.cached_model(&target))
            .await
            .map_err(|_| ShopError::Panicked)??
            .filter(|(read_at, _)| (0..CACHE_SECS).contains(&(now - read_at)))
            .and_then(|(_, json)| serde_json::from_value::<Model>(json).ok());
        let model = match cached {
            Some(model) => model,
            None => {
                let Some(client) = self.client.as_deref() else {
                    return Ok(None);
                };
                let model = fetch(client, &self.retrier).await?;
                tracing::debug!(
                    websites = model.websites.len(),
                    countries = model.countries.len(),
                    "read the shop's model"
                );
                if !self.dry_run {
                    self.cache(now, &model).await?;
                }
                model
            }
        };
        if self.empty_store
            && let Some(client) = self.client.as_deref()
        {
            // Only advice: a count that cannot be read is no reason to stop.
            let count = match customer_count(client, &self.retrier).await {
                Ok(count) => count,
                Err(e) => {
                    tracing::warn!("cannot tell whether the shop already has customers: {e}");
                    0
                }
            };
            // Under a custom key a customer whose e-mail changed is not "already existing":
            // each create looks for its key first, or it would be a second customer.
            self.look_first = count > 0 && self.rules.key_attribute.is_some();
            if count > 0 && !self.quiet {
                let key = (self.rules.key_attribute.as_ref())
                    .map_or_else(String::new, |code| format!(" --key custom:{code}"));
                let how = match self.look_first {
                    true => "looked up by its key first",
                    false => "sent as a create, refused as already existing, then looked up",
                };
                console::warn(&format!(
                    "warning: the state store is empty, but the shop already has {count} \
                     customers: each row of one of them is {how} and adopted (several \
                     requests a row). Run `custsync pull{key}` first to record them, so that \
                     this run only updates what differs."
                ));
            }
        }
        Ok(Some(model))
    }

    async fn cache(&self, now: i64, model: &Model) -> Result<(), ShopError> {
        let json = serde_json::to_value(model).expect("the model serialises to JSON");
        let (store, target) = (Arc::clone(&self.store), self.target.clone());
        tokio::task::spawn_blocking(move || store.cache_model(&target, now, json))
            .await
            .map_err(|_| ShopError::Panicked)??;
        Ok(())
    }

    /// A create or update as the shop will take it (region ids resolved, undefined custom
    /// attributes left out), or `invalid` naming each column the shop would refuse. Any other
    /// row, or any row before [`Gate::ready`] succeeded, passes as it is.
    pub fn vet(&mut self, planned: Planned) -> Planned {
        let Load::Ready(model) = &self.load else {
            return planned;
        };
        let Planned { row, mut step } = planned;
        let (customer, create, address) = match &mut step {
            Step::Create {
                customer, recheck, ..
            } => {
                *recheck |= self.look_first;
                let address = customer.address.is_some();
                (customer, true, address)
            }
            Step::Update {
                customer,
                send_address,
                ..
            } => (customer, false, *send_address),
            _ => return Planned { row, step },
        };
        match check(model, &self.rules, customer, create, address) {
            Ok(vetted) => {
                if let Some(a) = customer.address.as_mut() {
                    a.shop_region = vetted.region;
                }
                let further = customer.further_addresses.iter_mut();
                for (a, region) in further.zip(vetted.further_regions) {
                    if let Some(a) = a {
                        a.shop_region = region;
                    }
                }
                customer
                    .custom_attributes
                    .retain(|(code, _)| !vetted.undefined.contains(code));
                let step = same_regions_dropped(model, step, self.force);
                if !vetted.undefined.is_empty() {
                    self.name_undefined(vetted.undefined);
                }
                Planned { row, step }
            }
            Err(problems) => {
                let website = problems.iter().any(|p| p.field == Field::WebsiteId);
                self.unknown_websites += u64::from(website);
                let reasons: Vec<String> = problems.iter().map(ToString::to_string).collect();
                let message = format!("line {}: {}", row.line, reasons.join("; "));
                Planned {
                    row,
                    step: Step::Invalid(message),
                }
            }
        }
    }

    /// Says once, for each, that the shop defines no such custom attribute.
    fn name_undefined(&mut self, codes: Vec<Text>) {
        let new: Vec<String> = codes
            .into_iter()
            .filter(|c| self.named.insert(c.clone()))
            .map(|c| format!("custom:{c}"))
            .collect();
        if !new.is_empty() && !self.quiet {
            console::note(&format!(
                "note: the shop defines no custom customer attribute for {}: not sent (the shop \
                 would drop it)",
                new.join(", ")
            ));
        }
    }
}

/// An update without the region changes that are none: the value last known (the shop's
/// region name, as `pull` records it) and the row's (a code, an id, another case) naming the
/// same region of the shop. An update left with no change at all is unchanged, its new hash
/// recorded, unless it is sent anyway (`--force`, a write in doubt).
fn same_regions_dropped(model: &Model, mut step: Step, force: bool) -> Step {
    let Step::Update {
        customer,
        entry,
        hash,
        changes,
        doubt,
        ..
    } = &mut step
    else {
        return step;
    };
    let before = changes.len();
    changes.retain(|c| !same_region(model, customer, c));
    if before == 0 || !changes.is_empty() || doubt.is_some() || force {
        return step;
    }
    Step::Unchanged {
        customer_id: Some(entry.customer_id),
        note: None,
        refresh: Some((
            customer.key(),
            Entry {
                payload_hash: *hash,
                ..entry.clone()
            },
        )),
    }
}

/// Whether `change` is of a region, from one the shop resolves to the same region as the
/// row's (resolved already: `shop_region`).
fn same_region(model: &Model, customer: &Customer, change: &Change) -> bool {
    let number = match change.field.as_str() {
        "region" => 1,
        field => match field
            .strip_prefix("address")
            .and_then(|f| f.strip_suffix("_region"))
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) if n >= 2 => n,
            _ => return false,
        },
    };
    let address = match number {
        1 => customer.address.as_ref(),
        n => customer
            .further_addresses
            .get(n - 2)
            .and_then(Option::as_ref),
    };
    let (Some(address), Some(old)) = (address, change.old.as_deref()) else {
        return false;
    };
    let Some(resolved) = &address.shop_region else {
        return false;
    };
    (model.country(&address.country_id))
        .and_then(|c| c.region(old))
        .is_some_and(|r| r.id == resolved.id)
}

//! `custsync pull`: record the customers a shop already has, so that the first sync against it
//! updates them instead of meeting "already exists" for each.
//!
//! Pages through `GET /V1/customers/search` (oldest first), under the same rate limit and
//! retries as the sync. Each customer becomes a mapping `(website_id, email) -> id` with the
//! shop's current values; its payload hash is left unknown, so the next sync compares the
//! file's values with the shop's and sends only what differs.

use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::api::{ApiError, Client};
use crate::config::PullConfig;
use crate::connect::{self, ConnectError};
use crate::console;
use crate::customer::{Key, default_address, remote_fields};
use crate::defaults::MAX_PAGE_SIZE;
use crate::retry::Retrier;
use crate::state::{Entry, Op, StateError, Store};
use crate::throttle::Throttle;

/// Failures that stop a pull.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PullError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
}

/// What a pull did.
#[derive(Debug, Default)]
pub struct Pulled {
    pub customers: u64,
    pub pages: u32,
    pub skipped: u64,
    /// Stopped by SIGINT/SIGTERM; what was pulled is recorded.
    pub interrupted: bool,
}

/// Runs `custsync pull`: opens the store (refused when it is bound to another target),
/// connects (the embedded sandbox without an endpoint) and pulls.
pub async fn run(cfg: &PullConfig, cancel: &CancellationToken) -> Result<Pulled, PullError> {
    let store = Store::open(&cfg.connect.state_dir)?;
    connect::admit(&store, &cfg.connect, false, cfg.quiet)?;
    let throttle = Arc::new(Throttle::new(cfg.rate));
    let (sandbox, client) = connect::connect(&cfg.connect, 4, throttle).await?;
    let client = client.expect("not a dry run, so the configuration has credentials");
    let retrier = Retrier::new(cfg.retry, cancel.clone());
    let pulled = pull(&client, &retrier, &store, cfg.page_size, cfg.quiet, cancel).await;
    if let Some(sb) = sandbox {
        sb.shutdown().await;
    }
    pulled
}

/// Pages through every customer of the shop and records them in `store`.
async fn pull(
    client: &Client,
    retrier: &Retrier,
    store: &Store,
    page_size: u32,
    quiet: bool,
    cancel: &CancellationToken,
) -> Result<Pulled, PullError> {
    let page_size = page_size.clamp(1, MAX_PAGE_SIZE);
    let started = Instant::now();
    let writer = store.writer()?;
    let mut done = Pulled::default();
    let mut bar: Option<ProgressBar> = None;
    let mut last_line = Instant::now();
    loop {
        if cancel.is_cancelled() {
            done.interrupted = true;
            break;
        }
        let page = done.pages + 1;
        let (items, total) = retrier.run(|| client.page(page, page_size)).await?;
        done.pages = page;
        for c in &items {
            match mapping(c) {
                Some((key, entry)) => {
                    writer.send(Op::Put(key, entry, Some(remote_fields(c))));
                    done.customers += 1;
                }
                None => done.skipped += 1,
            }
        }
        if !quiet {
            if console::fancy() {
                let b = bar.get_or_insert_with(|| {
                    let b = ProgressBar::new(total);
                    b.set_style(
                        ProgressStyle::with_template(
                            "{bar:30} {pos}/{len} customers [{elapsed_precise}]",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                    b
                });
                b.set_position(done.customers + done.skipped);
            } else if last_line.elapsed().as_secs() >= 10 {
                let seen = done.customers + done.skipped;
                let mut fields = serde_json::Map::new();
                fields.insert("customers".into(), seen.into());
                fields.insert("total".into(), total.into());
                console::progress_line(&format!("progress: {seen} of {total} customers"), fields);
                last_line = Instant::now();
            }
        }
        // A page past the end repeats the last one, so stop on the count, not on an empty page.
        if items.is_empty() || u64::from(page) * u64::from(page_size) >= total {
            break;
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    writer.finish()?;
    // The next sync plans against an index instead of a sled read per row.
    store.rebuild_index()?;
    tracing::debug!(elapsed = ?started.elapsed(), "pull finished");
    Ok(done)
}

/// The state entry for a customer as the search returns it; `None` without id or email.
fn mapping(c: &Value) -> Option<(Key, Entry)> {
    let id = c.get("id")?.as_u64()?;
    let email = c.get("email")?.as_str()?;
    let website = u32::try_from(c.get("website_id")?.as_u64()?).ok()?;
    let entry = Entry {
        customer_id: id,
        // Unknown: no payload of ours has the hash 0, so the next sync compares values.
        payload_hash: 0,
        synced_at: chrono::Utc::now().timestamp(),
        address_id: default_address(c).and_then(|a| a.get("id")?.as_u64()),
        further_address_ids: Vec::new(),
    };
    Some((Key::new(website, email), entry))
}

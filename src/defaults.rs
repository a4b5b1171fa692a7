//! Every default and limit of the client, named once.
//!
//! clap's `default_value_t`s in [`crate::cli`], the settings of [`crate::config`] and the
//! `Default`s of [`crate::retry`] all read them from here, so that a default changes in one
//! line. This module imports nothing from the crate: both `cli` and `config` may use it without
//! importing each other.

use std::time::Duration;

/// `--rate`: requests per second to the Commerce API, all requests counted.
pub const DEFAULT_RATE: u32 = 10;
/// `--concurrency`: requests in flight.
pub const DEFAULT_CONCURRENCY: u32 = 8;
/// The largest `--concurrency` accepted.
pub const MAX_CONCURRENCY: u32 = 1024;
/// Most rows in one `--bulk` request: Magento's limit on items of an async request.
pub const MAX_BULK: u32 = 5000;
/// `--retries`: retries per request on 5xx, 408, timeouts and connection errors.
pub const DEFAULT_RETRIES: u32 = 5;
/// `--backoff-base-ms`: the backoff before the first retry, doubled on each one after.
pub const DEFAULT_BACKOFF_BASE_MS: u64 = 500;
/// The longest backoff between two tries.
pub const DEFAULT_BACKOFF_CAP: Duration = Duration::from_secs(30);
/// `--timeout`: seconds a request may take before it counts as lost.
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;
/// `--website-id`: the website of rows without one.
pub const DEFAULT_WEBSITE_ID: u32 = 1;
/// `--max-errors`: failed rows after which sending stops; 0 never stops.
pub const DEFAULT_MAX_ERRORS: u64 = 0;
/// `--max-absent`: state-store keys that may be absent from the file before nothing is sent.
pub const DEFAULT_MAX_ABSENT: &str = "10%";
/// `--outage-after`: seconds without an answer, while requests fail, that stop the sending.
pub const DEFAULT_OUTAGE_AFTER_SECS: u64 = 60;
/// Seconds between two progress lines off a terminal.
pub const DEFAULT_PROGRESS_SECS: u64 = 10;
/// The file read for options when neither `--config` nor `CUSTSYNC_CONFIG` names one.
pub const DEFAULT_CONFIG_FILE: &str = "custsync.toml";
/// `--keep-runs`: the runs the history in the state directory keeps.
pub const DEFAULT_KEEP_RUNS: u32 = 30;
/// `--empty-value`: the cell text that clears a field, as in Magento's own import.
pub const DEFAULT_EMPTY_VALUE: &str = "__EMPTY__VALUE__";
/// `--state`: the state directory, relative to the working directory.
pub const DEFAULT_STATE_DIR: &str = ".custsync";
/// `--page-size` of `pull`.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// SaaS limits a search page to 300 customers.
pub const MAX_PAGE_SIZE: u32 = 300;
/// `--ims-url`: Adobe IMS's token endpoint.
pub const DEFAULT_IMS_URL: &str = "https://ims-na1.adobelogin.com/ims/token/v3";
/// `--scopes`: the IMS scopes of Adobe's Customer REST API tutorial.
pub const DEFAULT_SCOPES: &str = "openid,AdobeID,email,additional_info.projectedProductContext,profile,commerce.aco.ingestion,commerce.accs,org.read,additional_info.roles";
/// `custsync sandbox --listen`: loopback, so that customer data is not shared by accident.
pub const DEFAULT_SANDBOX_LISTEN: &str = "127.0.0.1:8080";

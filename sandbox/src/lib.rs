//! The embedded Commerce sandbox: an emulator of Adobe Commerce's customer REST API
//! (`/sandbox/V1/customers...`, also under PaaS bases `/rest/<store>/V1/...`), of its async
//! bulk API (`/sandbox/V1/async/bulk/customers...` with a queue consumer, and the
//! `/sandbox/V1/bulk/{uuid}/...` status routes), of the read endpoints that describe a shop
//! (`/sandbox/V1/store/websites`, `.../store/storeViews`, `.../customerGroups/search`,
//! `.../directory/countries`, `.../attributeMetadata/customer/custom`) and of Adobe IMS's token
//! route (`/ims/token/v3`), answering as the real services do (see
//! `commerce-customer-api.md`) for a configurable shop model, with optional persistence and
//! fault injection for rehearsing failures.
//!
//! The server runs on the caller's tokio runtime. It has its own accept loop instead of
//! `axum::serve` so that it can count connections and close one without answering (the
//! "write, then drop" fault); the routes are an axum [`axum::Router`].
//!
//! Module map: `shop` (the shop model: websites, stores, groups, countries, custom
//! attributes; its TOML file and read endpoints), `store` (customers, Magento's rules,
//! journal), `stored` (a stored customer), `validate` (field rules), `address` (address and
//! region rules), `email` (the e-mail check), `search` (search criteria), `routes` (HTTP
//! handlers), `bulk` (the async bulk routes, their queue and consumer), `faults` (fault
//! injection), `error` (error types).

mod address;
mod bulk;
mod email;
mod error;
mod faults;
mod routes;
mod search;
mod shop;
mod store;
mod stored;
mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use secrecy::SecretString;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;

pub use bulk::DEFAULT_CONSUMER_RATE;
pub use error::SandboxError;
pub use faults::Faults;
pub use shop::ShopError;

use bulk::BulkQueue;
use faults::FaultGate;
use routes::{AppState, KillSwitch, lock};
use shop::Shop;
use store::LazyStore;

/// How long `shutdown` waits for requests in flight before cutting them off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The IMS client id a sandbox accepts unless told otherwise.
pub const DEFAULT_CLIENT_ID: &str = "sandbox";

/// The IMS client secret a sandbox accepts unless told otherwise.
pub const DEFAULT_CLIENT_SECRET: &str = "sandbox";

/// How the sandbox is set up.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// `None` keeps customers in memory only; `Some(dir)` persists them in
    /// `dir/customers.jsonl` (the directory is created with mode 0700).
    pub data_dir: Option<PathBuf>,
    /// The IMS client id accepted (default [`DEFAULT_CLIENT_ID`]).
    pub client_id: String,
    /// The IMS client secret accepted (default [`DEFAULT_CLIENT_SECRET`]).
    pub client_secret: SecretString,
    /// Failures to inject on the customer routes.
    pub faults: Faults,
    /// Keep a [`RequestRecord`] of every request for [`RunningSandbox::stats`] (for tests:
    /// a million requests would hold a few hundred MB).
    pub log_requests: bool,
    /// A shop file (TOML; the format is in the `shop` module's documentation) describing the
    /// shop to stand for; `None` is the default shop, which `sample-customers.csv` fits.
    pub shop: Option<PathBuf>,
    /// Operations per second the queue consumer of the async bulk routes applies (default
    /// [`DEFAULT_CONSUMER_RATE`]; 0 = as fast as it can).
    pub consumer_rate: u32,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            data_dir: None,
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            client_secret: SecretString::from(DEFAULT_CLIENT_SECRET),
            faults: Faults::default(),
            log_requests: false,
            shop: None,
            consumer_rate: DEFAULT_CONSUMER_RATE,
        }
    }
}

/// What the sandbox has seen so far.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// One record per HTTP request received, in the order their answers were decided (only
    /// with [`SandboxConfig::log_requests`]).
    pub requests: Vec<RequestRecord>,
    /// TCP connections accepted.
    pub connections: u64,
    /// Access tokens issued by the IMS route.
    pub tokens_issued: u64,
}

/// One request the sandbox received.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// When it arrived.
    pub at: Instant,
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path without the query, e.g. `/sandbox/V1/customers`.
    pub path: String,
    /// Status answered; 0 when the connection was closed without an answer.
    pub status: u16,
    /// The `Store` header, if sent.
    pub store: Option<String>,
    /// The `x-api-key` header, if sent.
    pub api_key: Option<String>,
}

/// A running sandbox. Dropping it stops the server too, but without waiting; call
/// [`RunningSandbox::shutdown`] for a graceful stop.
pub struct RunningSandbox {
    addr: SocketAddr,
    state: Arc<AppState>,
    stop: watch::Sender<()>,
    server: JoinHandle<()>,
    /// The bulk queue's consumer, which ends when `stop` is dropped.
    consumer: JoinHandle<()>,
}

impl std::fmt::Debug for RunningSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningSandbox")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Starts the sandbox on `listen` (port 0 picks a free port) as tasks on the current tokio
/// runtime. Fails when the shop file, the data directory or the journal cannot be used or
/// the address cannot be bound.
pub async fn start(
    config: SandboxConfig,
    listen: SocketAddr,
) -> Result<RunningSandbox, SandboxError> {
    let shop = match &config.shop {
        Some(path) => Shop::load(path)?,
        None => Shop::default(),
    };
    let store = LazyStore::new(config.data_dir)?;
    let bind_err = |source| SandboxError::Bind {
        addr: listen,
        source,
    };
    let listener = TcpListener::bind(listen).await.map_err(bind_err)?;
    let addr = listener.local_addr().map_err(bind_err)?;
    let state = Arc::new(AppState {
        shop,
        store,
        tokens: std::sync::Mutex::default(),
        requests: std::sync::Mutex::default(),
        connections: AtomicU64::new(0),
        tokens_issued: AtomicU64::new(0),
        client_id: config.client_id,
        client_secret: config.client_secret,
        faults: FaultGate::new(config.faults),
        log_requests: config.log_requests,
        bulks: BulkQueue::new(config.consumer_rate),
    });
    let (stop, stopped) = watch::channel(());
    let consumer = tokio::spawn(bulk::consumer::run(Arc::clone(&state), stopped.clone()));
    let server = tokio::spawn(accept_loop(listener, Arc::clone(&state), stopped));
    tracing::info!(%addr, "sandbox listening");
    Ok(RunningSandbox {
        addr,
        state,
        stop,
        server,
        consumer,
    })
}

impl RunningSandbox {
    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The REST base to give a client: `http://{addr}/sandbox`.
    pub fn endpoint(&self) -> String {
        format!("http://{}/sandbox", self.addr)
    }

    /// The IMS token URL: `http://{addr}/ims/token/v3`.
    pub fn ims_url(&self) -> String {
        format!("http://{}{}", self.addr, routes::IMS_PATH)
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> Stats {
        Stats {
            requests: lock(&self.state.requests).clone(),
            connections: self.state.connections.load(Ordering::Relaxed),
            tokens_issued: self.state.tokens_issued.load(Ordering::Relaxed),
        }
    }

    /// Reads the stored customers now rather than on the first customer request, so that a
    /// journal that cannot be read is reported at once; returns how many there are.
    pub async fn load(&self) -> Result<usize, SandboxError> {
        Ok(lock(self.state.store.get().await?).len())
    }

    /// Every stored customer as `GET /V1/customers/{id}` returns it, sorted by id.
    pub async fn customers(&self) -> Result<Vec<serde_json::Value>, SandboxError> {
        Ok(lock(self.state.store.get().await?).all())
    }

    /// Stops accepting, lets requests in flight finish (up to a few seconds), then syncs the
    /// journal to disk.
    pub async fn shutdown(self) {
        let Self {
            state,
            stop,
            server,
            consumer,
            ..
        } = self;
        // Dropping the sender is the stop signal for the accept loop and every connection.
        drop(stop);
        if let Err(e) = server.await {
            tracing::warn!(error = %e, "sandbox server task ended abnormally");
        }
        // After the server, so that nothing queues behind its back; it stops between two
        // operations, so the journal it writes to is whole when synced below.
        if let Err(e) = consumer.await {
            tracing::warn!(error = %e, "sandbox bulk consumer ended abnormally");
        }
        let store = state.store.loaded().map(|s| lock(s).sync());
        if let Some(Err(e)) = store {
            tracing::warn!(error = %e, "could not sync the sandbox journal");
        }
    }
}

/// Accepts connections until told to stop, then drains them.
async fn accept_loop(listener: TcpListener, state: Arc<AppState>, mut stop: watch::Receiver<()>) {
    let app = routes::router(Arc::clone(&state));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    state.connections.fetch_add(1, Ordering::Relaxed);
                    // As real servers do: without it, Nagle's algorithm holds back the end of an
                    // answer until the client's delayed ACK, adding milliseconds to each request.
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve_connection(stream, app.clone(), stop.clone()));
                }
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "sandbox accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("sandbox shutdown: cutting off requests still running");
        connections.shutdown().await;
    }
}

/// Serves one connection (keep-alive included) until the client closes it, a handler fires
/// the kill switch, or the sandbox stops.
async fn serve_connection(stream: TcpStream, app: axum::Router, mut stop: watch::Receiver<()>) {
    let kill = KillSwitch(Arc::new(Notify::new()));
    let switch = kill.clone();
    let service = app.map_request(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(switch.clone());
        request
    });
    let conn = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "sandbox connection ended with an error");
                }
                return;
            }
            // Returning drops `conn`, which closes the socket with no response written.
            () = kill.0.notified() => return,
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

#[cfg(test)]
mod tests;

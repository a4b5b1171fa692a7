//! Where requests go: the embedded sandbox (started for the run) or a real shop. The target is
//! announced on the first line of stderr, so that nobody mistakes a rehearsal for the real thing,
//! and the state store must be bound to it ([`admit`]) before anything is sent.
//!
//! This is also the sandbox's launcher, the one module of custsync that uses the
//! `custsync_sandbox` crate: `sync` and `pull` start it embedded through [`connect`], and
//! `custsync sandbox` runs it standalone through [`serve_sandbox`]. The rest of the client
//! talks to the emulator only over HTTP, as it would to a real shop, so that nothing it does
//! can lean on how the emulator works (`tests/integration/walls.rs` keeps it so).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use custsync_sandbox::{self as sandbox, Faults, RunningSandbox, SandboxConfig, SandboxError};
use secrecy::SecretString;

use crate::api::{self, ApiError, Client, Credentials};
use crate::cli::SandboxArgs;
use crate::config::{Connect, DEFAULT_SCOPES, Env, Target};
use crate::console;
use crate::state::{Admission, Binding, StateError, Store};
use crate::throttle::Throttle;

/// The target could not be reached or set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("the embedded sandbox could not start: {0}")]
    Sandbox(#[from] SandboxError),
}

/// The target as the state store records its binding: the embedded sandbox, or the endpoint
/// normalised (scheme, host, port, path without a trailing slash; no credentials, query or
/// fragment) with the `--store` code.
pub fn binding(c: &Connect) -> Binding {
    match &c.target {
        Target::Sandbox => Binding::Sandbox,
        Target::Remote(r) => Binding::Shop {
            endpoint: normalised(&r.endpoint),
            store: c
                .store
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        },
    }
}

fn normalised(endpoint: &str) -> String {
    match reqwest::Url::parse(endpoint) {
        Ok(url) => {
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}{port}{}",
                url.scheme(),
                url.host_str().unwrap_or_default(),
                url.path().trim_end_matches('/')
            )
        }
        // The configuration let only URLs through; keep what there is, without credentials.
        Err(_) => crate::redact::url(endpoint.trim_end_matches('/')),
    }
}

/// Checks, before anything is sent, that the state store may be used with this run's target,
/// and arranges its binding (see [`Store::admit`]); returns the target. Called before the
/// run's tasks start, so that its few small sled reads block nothing else.
pub fn admit(
    store: &Store,
    c: &Connect,
    dry_run: bool,
    quiet: bool,
) -> Result<Binding, StateError> {
    let target = binding(c);
    let admission = store.admit(&target, sandbox_has_data(&c.state_dir), dry_run)?;
    if let Admission::Legacy { entries } = admission
        && !quiet
    {
        let what = if dry_run {
            "the next real run binds it"
        } else {
            "it is now bound"
        };
        console::note(&format!(
            "note: the state store {} holds {entries} mappings that name no shop (an import, or \
             a custsync from before bindings); {what} to {target}, once a sample of them is \
             found to be its customers (move it with `custsync state rebind`)",
            c.state_dir.display()
        ));
    }
    Ok(target)
}

/// Whether the embedded sandbox of a state directory holds data: a file of its own, not empty.
fn sandbox_has_data(state: &Path) -> bool {
    let Ok(files) = std::fs::read_dir(data_dir(state)) else {
        return false;
    };
    files
        .flatten()
        .any(|f| f.file_name() != "lock" && f.metadata().is_ok_and(|m| m.is_file() && m.len() > 0))
}

/// Starts the embedded sandbox when there is no endpoint and builds the client: for a dry
/// run too, which reads the shop's model with it (a dry run against a shop may lack
/// credentials: then there is no client).
pub async fn connect(
    c: &Connect,
    max_idle: usize,
    throttle: Arc<Throttle>,
) -> Result<(Option<RunningSandbox>, Option<Client>), ConnectError> {
    let settings = |endpoint: String, credentials| api::Settings {
        endpoint,
        credentials,
        store: c.store.clone(),
        timeout: c.timeout,
        max_idle,
    };
    let data = data_dir(&c.state_dir);
    match &c.target {
        Target::Sandbox => {
            let config = SandboxConfig {
                data_dir: Some(data.clone()),
                ..SandboxConfig::default()
            };
            let (client_id, secret) = (config.client_id.clone(), config.client_secret.clone());
            let sb = sandbox::start(config, ([127, 0, 0, 1], 0).into()).await?;
            console::note(&format!(
                "target: the embedded Commerce sandbox at {} (data in {}); give --endpoint to reach a real shop",
                sb.endpoint(),
                data.display()
            ));
            let credentials = Credentials::Ims {
                url: sb.ims_url(),
                client_id,
                secret,
                scopes: DEFAULT_SCOPES.to_owned(),
            };
            let client = Client::new(settings(sb.endpoint(), credentials), throttle)?;
            Ok((Some(sb), Some(client)))
        }
        Target::Remote(r) => {
            console::note(&format!("target: {}", crate::redact::url(&r.endpoint)));
            let client = match &r.credentials {
                Some(creds) => Some(Client::new(
                    settings(r.endpoint.clone(), creds.clone()),
                    throttle,
                )?),
                None => None,
            };
            Ok((None, client))
        }
    }
}

/// Runs `custsync sandbox`: starts the sandbox standalone, reads its customers, prints where
/// to reach it, and serves until `stop` resolves (a signal), then shuts it down gracefully.
pub async fn serve_sandbox(
    args: &SandboxArgs,
    env: &Env,
    stop: impl Future<Output = ()>,
) -> Result<(), SandboxError> {
    let sb = sandbox::start(sandbox_config(args, env), args.listen).await?;
    // Now, not on the first request: a journal that cannot be read stops here.
    let loaded = sb.load().await?;
    tracing::info!(customers = loaded, "sandbox customers loaded");
    println!("endpoint: {}", sb.endpoint());
    println!("ims-url: {}", sb.ims_url());
    stop.await;
    sb.shutdown().await;
    Ok(())
}

/// The sandbox's data directory under a state directory.
fn data_dir(state: &Path) -> PathBuf {
    state.join("sandbox")
}

/// Resolves `sandbox` arguments.
fn sandbox_config(args: &SandboxArgs, env: &Env) -> SandboxConfig {
    SandboxConfig {
        data_dir: (!args.ephemeral).then(|| data_dir(&args.state)),
        client_id: args
            .client_id
            .clone()
            .unwrap_or_else(|| sandbox::DEFAULT_CLIENT_ID.to_owned()),
        client_secret: env
            .sandbox_secret
            .clone()
            .unwrap_or_else(|| SecretString::from(sandbox::DEFAULT_CLIENT_SECRET)),
        faults: Faults {
            latency: Duration::from_millis(args.latency_ms),
            p_429: args.p_429,
            retry_after: Duration::from_secs(args.retry_after),
            p_503: args.p_503,
            p_write_then_500: args.p_write_then_500,
            p_write_then_drop: args.p_write_then_drop,
            token_ttl: args.token_ttl.map(Duration::from_secs),
            rate_limit: args.rate_limit,
            p_bulk_retriable: args.p_bulk_retriable,
            p_bulk_answer_lost: args.p_bulk_answer_lost,
        },
        log_requests: false,
        shop: args.shop.clone(),
        consumer_rate: args.consumer_rate.unwrap_or(sandbox::DEFAULT_CONSUMER_RATE),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use secrecy::ExposeSecret;

    use super::*;
    use crate::cli::{Cli, Command};

    #[test]
    fn endpoints_are_bound_normalised() {
        for (given, bound) in [
            (
                "https://na1.api.commerce.adobe.com/T1",
                "https://na1.api.commerce.adobe.com/T1",
            ),
            (
                "HTTPS://Shop.Example:443/rest/default/",
                "https://shop.example/rest/default",
            ),
            (
                "http://user:pw@127.0.0.1:8080/sandbox",
                "http://127.0.0.1:8080/sandbox",
            ),
            (
                "https://shop.example:8443/rest/default?x=1#f",
                "https://shop.example:8443/rest/default",
            ),
            ("http://[::1]:80/sandbox", "http://[::1]/sandbox"),
        ] {
            assert_eq!(normalised(given), bound, "{given}");
        }
    }

    fn sandbox_args(args: &[&str]) -> SandboxArgs {
        let argv = ["custsync", "sandbox"].iter().chain(args);
        let Command::Sandbox(a) = Cli::try_parse_from(argv).expect("parse").command else {
            panic!("sandbox")
        };
        a
    }

    #[test]
    fn sandbox_config_from_arguments_and_environment() {
        let c = sandbox_config(&sandbox_args(&["--p-429", "0.5"]), &Env::default());
        assert_eq!(c.data_dir, Some(PathBuf::from(".custsync/sandbox")));
        assert_eq!(c.client_id, sandbox::DEFAULT_CLIENT_ID);
        assert_eq!(
            c.client_secret.expose_secret(),
            sandbox::DEFAULT_CLIENT_SECRET
        );
        assert_eq!(c.faults.p_429, 0.5);

        let env = Env {
            sandbox_secret: Some(SecretString::from("other")),
            ..Env::default()
        };
        let c = sandbox_config(&sandbox_args(&["--ephemeral"]), &env);
        assert_eq!(c.data_dir, None, "ephemeral keeps customers in memory");
        assert_eq!(c.client_secret.expose_secret(), "other");
        assert_eq!(c.shop, None, "the default shop");
        let c = sandbox_config(&sandbox_args(&["--shop", "shop.toml"]), &Env::default());
        assert_eq!(c.shop, Some(PathBuf::from("shop.toml")));
    }
}

//! Where requests go: the embedded sandbox (started for the run) or a real shop. The target is
//! announced on the first line of output, so that nobody mistakes a rehearsal for the real thing.
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

/// Starts the embedded sandbox when there is no endpoint and builds the client, unless this is
/// a dry run (which sends nothing and needs neither).
pub async fn connect(
    c: &Connect,
    dry_run: bool,
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
        Target::Sandbox if dry_run => {
            println!(
                "target: the embedded Commerce sandbox (data in {}); dry run, so it is not started",
                data.display()
            );
            Ok((None, None))
        }
        Target::Sandbox => {
            let config = SandboxConfig {
                data_dir: Some(data.clone()),
                ..SandboxConfig::default()
            };
            let (client_id, secret) = (config.client_id.clone(), config.client_secret.clone());
            let sb = sandbox::start(config, ([127, 0, 0, 1], 0).into()).await?;
            println!(
                "target: the embedded Commerce sandbox at {} (data in {}); give --endpoint to reach a real shop",
                sb.endpoint(),
                data.display()
            );
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
            println!("target: {}", crate::redact::url(&r.endpoint));
            let client = match (&r.credentials, dry_run) {
                (Some(creds), false) => Some(Client::new(
                    settings(r.endpoint.clone(), creds.clone()),
                    throttle,
                )?),
                _ => None,
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
        },
        log_requests: false,
        shop: args.shop.clone(),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use secrecy::ExposeSecret;

    use super::*;
    use crate::cli::{Cli, Command};

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

//! Where requests go: the embedded sandbox (started for the run) or a real shop. The target is
//! announced on the first line of output, so that nobody mistakes a rehearsal for the real thing.

use std::sync::Arc;

use crate::api::{self, ApiError, Client, Credentials};
use crate::config::{Connect, DEFAULT_SCOPES, Target};
use crate::sandbox::{self, RunningSandbox, SandboxConfig, SandboxError};
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
    let data = c.state_dir.join("sandbox");
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
            println!("target: {}", r.endpoint);
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

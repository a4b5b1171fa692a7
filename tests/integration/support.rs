//! `TestEnv`: a temp directory, an in-process sandbox (with faults), and the real `custsync`
//! binary pointed at it.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use custsync_sandbox::{self as sandbox, Faults, RequestRecord, RunningSandbox, SandboxConfig};
use serde_json::Value;

/// The client secret the tests' sandboxes accept; grep'd for in every output.
pub const SECRET: &str = "s3cr3t-Sandbox-Value-77";

/// Requests a run with rows to send makes to read the default sandbox shop's model, unless it
/// is cached: websites, store views, customer groups, custom attributes, and the allowed
/// countries of each of its three websites.
pub const MODEL_READS: usize = 7;
/// The requests before the first row of a first run (empty state store): the model, and the
/// customer count that tells whether the shop already has customers.
pub const FIRST_RUN_READS: usize = MODEL_READS + 1;

pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub sandbox: RunningSandbox,
}

/// A sandbox with these faults, its customers in memory or in `data`.
async fn start_sandbox(
    faults: Faults,
    data: Option<PathBuf>,
    shop: Option<PathBuf>,
) -> RunningSandbox {
    start_sandbox_at(faults, data, shop, "127.0.0.1:0".parse().expect("addr")).await
}

async fn start_sandbox_at(
    faults: Faults,
    data: Option<PathBuf>,
    shop: Option<PathBuf>,
    listen: std::net::SocketAddr,
) -> RunningSandbox {
    start_configured(
        SandboxConfig {
            faults,
            data_dir: data,
            shop,
            ..SandboxConfig::default()
        },
        listen,
    )
    .await
}

/// A sandbox with `config`, accepting the tests' secret and recording every request.
async fn start_configured(config: SandboxConfig, listen: std::net::SocketAddr) -> RunningSandbox {
    sandbox::start(
        SandboxConfig {
            client_secret: SECRET.to_owned().into(),
            log_requests: true,
            ..config
        },
        listen,
    )
    .await
    .expect("sandbox starts")
}

impl TestEnv {
    /// A sandbox (in memory) with these faults.
    pub async fn new(faults: Faults) -> Self {
        TestEnv {
            dir: tempfile::tempdir().expect("tempdir"),
            sandbox: start_sandbox(faults, None, None).await,
        }
    }

    /// A sandbox (in memory) that answers every request `latency` late, and has no other
    /// fault: the tests that need a run to last a while.
    pub async fn with_latency(latency: std::time::Duration) -> Self {
        Self::new(Faults {
            latency,
            ..Faults::default()
        })
        .await
    }

    /// A sandbox (in memory) with these faults whose bulk queue works `consumer_rate`
    /// operations a second.
    pub async fn with_consumer(faults: Faults, consumer_rate: u32) -> Self {
        let config = SandboxConfig {
            faults,
            consumer_rate,
            ..SandboxConfig::default()
        };
        TestEnv {
            dir: tempfile::tempdir().expect("tempdir"),
            sandbox: start_configured(config, "127.0.0.1:0".parse().expect("addr")).await,
        }
    }

    /// A sandbox (in memory) standing for the shop this TOML describes (`--shop FILE`).
    pub async fn with_shop(shop: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("shop.toml");
        fs::write(&path, shop).expect("write the shop file");
        let sandbox = start_sandbox(Faults::default(), None, Some(path)).await;
        TestEnv { dir, sandbox }
    }

    /// A sandbox that keeps its customers on disk, so that [`TestEnv::restart`] can give the
    /// same shop other faults.
    pub async fn persistent(faults: Faults) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let sandbox = start_sandbox(faults, Some(dir.path().join("shop")), None).await;
        TestEnv { dir, sandbox }
    }

    /// Restarts a [`TestEnv::persistent`] sandbox with `faults` at the same address, as a shop
    /// comes back where it was, so that a state store bound to it still is (its request log
    /// starts empty).
    pub async fn restart(&mut self, faults: Faults) {
        let addr = self.sandbox.addr();
        let stand_in = start_sandbox(Faults::default(), None, None).await;
        std::mem::replace(&mut self.sandbox, stand_in)
            .shutdown()
            .await;
        let restarted = start_sandbox_at(faults, Some(self.path("shop")), None, addr).await;
        std::mem::replace(&mut self.sandbox, restarted)
            .shutdown()
            .await;
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn state(&self) -> PathBuf {
        self.path("state")
    }

    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.path(name);
        fs::write(&p, content).expect("write file");
        p
    }

    /// `custsync sync <csv>` against the sandbox, with the given extra arguments.
    pub fn sync_cmd(&self, csv: &Path, args: &[&str]) -> Command {
        self.sync_cmd_with_state(&self.state(), csv, args)
    }

    /// The same with another state directory.
    pub fn sync_cmd_with_state(&self, state: &Path, csv: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_custsync"));
        cmd.env_clear()
            .current_dir(self.dir.path())
            .env("CUSTSYNC_CLIENT_SECRET", SECRET)
            .arg("sync")
            .arg(csv)
            .arg("--state")
            .arg(state)
            .args(["--endpoint", &self.sandbox.endpoint()])
            .args(["--ims-url", &self.sandbox.ims_url()])
            .args(["--client-id", "sandbox"])
            .args(["--backoff-base-ms", "5"])
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// `custsync <args>` with the sandbox's connection settings where the command takes them.
    pub async fn custsync(&self, args: &[&str], connect: bool) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_custsync"));
        cmd.env_clear()
            .current_dir(self.dir.path())
            .env("CUSTSYNC_CLIENT_SECRET", SECRET)
            .args(args)
            .arg("--state")
            .arg(self.state());
        if connect {
            cmd.args(["--endpoint", &self.sandbox.endpoint()])
                .args(["--ims-url", &self.sandbox.ims_url()])
                .args(["--client-id", "sandbox"]);
        }
        run_command(cmd).await
    }

    /// Runs the sync to completion off the async workers (the sandbox runs on them).
    pub async fn sync(&self, csv: &Path, args: &[&str]) -> Run {
        run_command(self.sync_cmd(csv, args)).await
    }

    /// Runs a sync at `--rate 0` with `args`, a report and a summary, expecting exit `code`;
    /// the report's rows and the summary.
    pub async fn sync_with_outputs(
        &self,
        csv: &Path,
        args: &[&str],
        code: i32,
    ) -> (Vec<HashMap<String, String>>, Value) {
        let report = self.path("r.csv");
        let summary_path = self.path("s.json");
        let mut all = vec![
            "--rate",
            "0",
            "--report",
            report.to_str().expect("UTF-8 path"),
            "--summary-json",
            summary_path.to_str().expect("UTF-8 path"),
        ];
        all.extend(args);
        self.sync(csv, &all).await.expect_code(code);
        (read_report(&report), summary(&summary_path))
    }

    pub fn spawn(&self, csv: &Path, args: &[&str]) -> Child {
        self.sync_cmd(csv, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn custsync")
    }

    /// Customer requests received so far (IMS excluded).
    pub fn customer_requests(&self) -> Vec<RequestRecord> {
        self.sandbox
            .stats()
            .requests
            .into_iter()
            .filter(|r| r.path.starts_with("/sandbox/"))
            .collect()
    }

    pub fn count(&self, method: &str) -> usize {
        self.customer_requests()
            .iter()
            .filter(|r| r.method == method)
            .count()
    }

    /// Stored customers by (website_id, lower-cased email); panics on a duplicate key.
    pub async fn customers_by_key(&self) -> HashMap<(u64, String), Value> {
        let mut out = HashMap::new();
        for c in self.sandbox.customers().await.expect("sandbox customers") {
            let key = (
                c["website_id"].as_u64().expect("website_id"),
                c["email"].as_str().expect("email").to_lowercase(),
            );
            assert!(
                out.insert(key.clone(), c).is_none(),
                "duplicate customer {key:?}"
            );
        }
        out
    }
}

/// Runs a prepared command to completion off the async workers (the sandbox runs on them).
pub async fn run_command(mut cmd: Command) -> Run {
    Run::from(
        tokio::task::spawn_blocking(move || cmd.output().expect("run custsync"))
            .await
            .expect("join"),
    )
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts that stderr says `needle`, showing stderr when it does not.
    #[track_caller]
    pub fn expect_stderr(&self, needle: &str) -> &Self {
        assert!(self.stderr.contains(needle), "{}", self.stderr);
        self
    }
}

/// A file of the top-level `fixtures/` folder (its README says what each one shows).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// A CSV of `n` customers in website 1, `lastname` varying by `version`.
pub fn customers_csv(n: usize, version: &str) -> String {
    let mut s = String::from("email,firstname,lastname,dob,gender,website_id\n");
    for i in 0..n {
        s.push_str(&format!(
            "user{i}@example.com,Fïrst{i},Last{i}{version},1980-01-{:02},{},1\n",
            i % 28 + 1,
            i % 3 + 1
        ));
    }
    s
}

/// The report as rows of column -> value.
pub fn read_report(path: &Path) -> Vec<HashMap<String, String>> {
    let mut r = csv::Reader::from_path(path).expect("report exists");
    let headers = r.headers().expect("header").clone();
    assert_eq!(
        headers.iter().collect::<Vec<_>>(),
        custsync::report::COLUMNS.to_vec(),
        "report columns"
    );
    r.records()
        .map(|rec| {
            let rec = rec.expect("record");
            headers
                .iter()
                .zip(rec.iter())
                .map(|(h, v)| (h.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

pub fn summary(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).expect("summary exists")).expect("summary json")
}

/// The summary at `path` is a fatal stop's before any row: exit code 1, no rows, an error
/// that says `says`.
#[track_caller]
pub fn assert_fatal_summary(path: &Path, says: &str) {
    let s = summary(path);
    assert_eq!(
        (s["exit_code"].as_u64(), s["rows"].as_u64()),
        (Some(1), Some(0)),
        "{s}"
    );
    let error = s["error"].as_str().unwrap_or_default();
    assert!(error.contains(says), "{s}");
}

/// A direct client of the sandbox, for seeding a shop the way another system would.
pub struct Shop {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Shop {
    pub async fn connect(env: &TestEnv) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::new();
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", "sandbox"),
            ("client_secret", SECRET),
            ("scope", custsync::config::DEFAULT_SCOPES),
        ];
        let token: Value = http
            .post(env.sandbox.ims_url())
            .form(&form)
            .send()
            .await
            .expect("ims")
            .json()
            .await
            .expect("token json");
        Shop {
            http,
            base: env.sandbox.endpoint(),
            token: token["access_token"].as_str().expect("token").to_owned(),
        }
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}/{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        assert!(resp.status().is_success(), "{}", resp.status());
        resp.json().await.expect("json")
    }
}

//! What the benches share: a state directory custsync accepts, and the timed `custsync sync`
//! against an in-process sandbox, so that both benches measure the same command.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use custsync_sandbox::RunningSandbox;

/// Makes `state` private: custsync refuses a state directory other users may enter.
pub fn make_private(state: &Path) {
    std::fs::set_permissions(state, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod state");
}

/// Runs `custsync sync csv --quiet --state state` against `sb`, with `extra` arguments, and
/// asserts it succeeds; the time it took.
pub async fn timed_sync(sb: &RunningSandbox, csv: &Path, state: &Path, extra: &[&str]) -> Duration {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_custsync"));
    cmd.env("CUSTSYNC_CLIENT_SECRET", "sandbox")
        .args(["sync", csv.to_str().expect("csv path")])
        .args(["--quiet", "--state", state.to_str().expect("state path")])
        .args(["--endpoint", &sb.endpoint(), "--ims-url", &sb.ims_url()])
        .args(["--client-id", "sandbox"])
        .args(extra)
        .stdout(Stdio::null());
    // The whole command, start-up and token included: what `time custsync sync` shows.
    let started = Instant::now();
    let status = tokio::task::spawn_blocking(move || cmd.status().expect("run"))
        .await
        .expect("join");
    let elapsed = started.elapsed();
    assert!(status.success(), "custsync failed: {status}");
    elapsed
}

//! The end of a run: the state store stamped and its index brought up to date with what the
//! run wrote and deleted, the summary written and sent to `--notify`, the final line printed
//! (with a dry run's table), then how the run ended: a fatal error, a wrong base path, the
//! `--max-absent` verdict or a refused delete comes back as the run's error only now, once
//! everything it did is on disk.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Map;

use super::ending::{Ending, Finished, SyncError};
use super::send::Sent;
use crate::absent::Absence;
use crate::config::SyncConfig;
use crate::console;
use crate::exit::Exit;
use crate::notify;
use crate::report;
use crate::state::{Index, Store};

/// What a run did, as its end needs it.
pub struct Work {
    /// The index the rows were planned against.
    pub index: Arc<Index>,
    pub sent: Sent,
    pub absent: Absence,
    /// Requests sent, retries and look-ups included (0 in a dry run).
    pub requests: u64,
    /// Retries made.
    pub retries: u64,
}

/// Writes what the run did and says how it ended; see the module doc.
pub async fn finish(
    cfg: &SyncConfig,
    store: &Store,
    work: Work,
    started: Instant,
    interrupted: bool,
) -> Result<Finished, SyncError> {
    let Work {
        index,
        sent,
        absent,
        requests,
        retries,
    } = work;
    if !cfg.dry_run {
        // The reading and the sending are over: this is the last holder of the index.
        let mut index = Arc::unwrap_or_clone(index);
        index.update(sent.confirmed, &absent.deleted);
        store.set_last_run(chrono::Utc::now().timestamp())?;
        // Last: the index is trusted from the moment its generation is stored.
        store.save_index(&index)?;
    }
    store.flush()?;

    let tally = &sent.tally;
    let summary = tally.summary(
        absent.count,
        requests,
        retries,
        cfg.dry_run,
        started.elapsed(),
    );
    if let Some(path) = &cfg.summary_json {
        report::write_summary(path, &summary)?;
    }
    let error: Option<SyncError> = match (sent.fatal, sent.wrong_base, absent.refused) {
        (Some(e), _, _) => Some(e.into()),
        (None, Some(e), _) => Some(e.into()),
        (None, None, Some(e)) => Some(e.into()),
        (None, None, None) => None,
    };
    let ending = match (interrupted, sent.stopped) {
        (true, _) => Ending::Interrupted,
        (false, Some(stop)) => Ending::Stopped(stop),
        (false, None) => Ending::Complete,
    };
    let finished = Finished { summary, ending };
    let ok = error.is_none() && finished.exit() == Exit::Ok;

    if let Some(url) = &cfg.notify {
        notify::post(url, &finished.summary).await;
    }
    if cfg.dry_run {
        console::final_line(tally.table(absent.count).trim_end(), ok, Map::new());
    }
    let mut fields = Map::new();
    if let Ok(v) = serde_json::to_value(&finished.summary) {
        fields.insert("summary".into(), v);
    }
    console::final_line(&report::human(&finished.summary), ok, fields);
    if tally.failed() > 0 && cfg.report.is_none() {
        console::alert("some rows failed: run again with --report FILE to see which and why");
    }
    match error {
        Some(e) => Err(e),
        None => Ok(finished),
    }
}

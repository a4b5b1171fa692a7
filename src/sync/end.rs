//! The end of a run: the state store stamped and its index brought up to date with what the
//! run wrote and deleted, the summary written and printed (with a dry run's table), then how
//! the run ended: a fatal error or a refused delete comes back as the run's error only now,
//! once everything it did is on disk.

use std::time::Instant;

use super::ending::{Ending, Finished, SyncError};
use super::send::Sent;
use crate::absent::Absence;
use crate::config::SyncConfig;
use crate::outputs::Output;
use crate::report;
use crate::state::{Index, Store};

/// What a run did, as its end needs it.
pub struct Work {
    /// The index the rows were planned against.
    pub index: Index,
    pub sent: Sent,
    pub absent: Absence,
    /// Requests sent, retries and look-ups included (0 in a dry run).
    pub requests: u64,
    /// Retries made.
    pub retries: u64,
    /// The claimed `--summary-json` file.
    pub summary: Option<Output>,
}

/// Writes what the run did and says how it ended; see the module doc.
pub fn finish(
    cfg: &SyncConfig,
    store: &Store,
    work: Work,
    started: Instant,
    interrupted: bool,
) -> Result<Finished, SyncError> {
    let Work {
        mut index,
        sent,
        absent,
        requests,
        retries,
        summary: summary_file,
    } = work;
    if !cfg.dry_run {
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
    if let Some(output) = summary_file {
        report::write_summary(output, &summary)?;
    }
    if cfg.dry_run {
        print!("{}", tally.table(absent.count));
    }
    println!("{}", report::human(&summary));
    if tally.failed() > 0 && cfg.report.is_none() && !cfg.quiet {
        eprintln!("some rows failed: run again with --report FILE to see which and why");
    }

    if let Some(e) = sent.fatal {
        return Err(e);
    }
    if let Some(why) = absent.refused {
        return Err(why.into());
    }
    let ending = if interrupted {
        Ending::Interrupted
    } else {
        Ending::Complete
    };
    Ok(Finished { summary, ending })
}

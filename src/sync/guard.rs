//! The `--max-absent` guard: no row is sent (and no request made, the shop's model read among
//! them) before it is known that the file does not leave more of the store's customers absent
//! than the limit allows (a truncated or empty export).
//!
//! That is known only once the whole file is planned, so the sender holds the rows it would
//! send (rows that send nothing are reported as they come) until the planner's count arrives.
//! Held rows cost memory; past [`HOLD_LIMIT`] of them, a second read of the file (a
//! *census*: the planner again, against no store, for the keys alone) gives the count
//! instead, without holding more: a re-run that sends nothing never waits, and a big change
//! set costs one more pass over the file. An input that cannot be read twice (a pipe) keeps
//! holding.
//!
//! `--delete-absent --max-deletes N` is decided at the same point: a run that would delete
//! more than N stops before its first request too, so that no run is half done.
//!
//! The guard is not needed at all when the store is empty or the limits allow every key to be
//! absent: then rows go out as they are planned.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::absent::{self, MaxAbsent};
use crate::config::SyncConfig;
use crate::customer::{Fields, Key};
use crate::outcome::Skip;
use crate::plan::Planner;
use crate::state::{Doubt, Entry, Index, Known, Lookup, StateError};

use super::ending::SyncError;

/// Rows to send held before a census is taken instead.
pub const HOLD_LIMIT: usize = 10_000;

/// What the guard needs to decide.
pub struct Guard {
    cfg: Arc<SyncConfig>,
    /// The input can be read a second time.
    rereadable: bool,
}

impl Guard {
    /// The guard of a run; `None` when the run sends nothing (a dry run) or the limit cannot be
    /// exceeded.
    pub fn new(cfg: &Arc<SyncConfig>) -> Option<Self> {
        let unlimited =
            cfg.absent.max_absent == MaxAbsent::Percent(100.0) && cfg.absent.max_deletes.is_none();
        if cfg.dry_run || unlimited {
            return None;
        }
        let rereadable = std::fs::metadata(&cfg.input).is_ok_and(|m| m.is_file());
        Some(Guard {
            cfg: Arc::clone(cfg),
            rereadable,
        })
    }

    /// Whether the guard can stop a run against a store with `keys` keys.
    pub fn needed(&self, keys: u64) -> bool {
        let deletes = self.cfg.absent.max_deletes.is_some_and(|max| max < keys);
        keys > 0 && (self.limit().allowed(keys) < keys || deletes)
    }

    /// Whether `held` rows are enough to take a census instead of holding more.
    pub fn census_due(&self, held: usize) -> bool {
        self.rereadable && held >= HOLD_LIMIT
    }

    /// The verdict on `absent` of the index's keys: which stop the run takes, if it must
    /// stop (the reason comes back as the run's error, see `absent::settle`).
    pub fn decide(&self, absent: u64, index: &Index) -> Result<(), Skip> {
        if !self.limit().allows(absent, index.len() as u64) {
            return Err(Skip::TooManyAbsent);
        }
        match self.cfg.absent.max_deletes {
            Some(max) if absent > max => Err(Skip::TooManyDeletes),
            _ => Ok(()),
        }
    }

    /// Reads the whole file again for its keys alone: how many of the index's it does not name
    /// (`None` when `cancel` stopped it first).
    pub async fn census(
        &self,
        index: Arc<Index>,
        cancel: &CancellationToken,
    ) -> Result<Option<u64>, SyncError> {
        let cfg = Arc::clone(&self.cfg);
        let cancel = cancel.clone();
        tokio::task::spawn_blocking(move || -> Result<Option<u64>, SyncError> {
            let reader = super::open_input(&cfg)?;
            let mut planner = Planner::new(&NoStore, cfg.plan);
            for record in reader {
                if cancel.is_cancelled() {
                    return Ok(None);
                }
                planner.plan(record?)?;
            }
            Ok(Some(absent::count(&index, &planner.into_keys())))
        })
        .await
        .map_err(|_| SyncError::ReaderPanicked)?
    }

    fn limit(&self) -> MaxAbsent {
        self.cfg.absent.max_absent
    }
}

/// A store that knows nothing, for a census: every valid row plans as a create, and the
/// planner gathers the file's keys as it always does.
struct NoStore;

impl Lookup for NoStore {
    fn key_count(&self) -> usize {
        0
    }

    fn known(&self, _digest: u64) -> Option<Known> {
        None
    }

    fn entry(&self, _key: &Key) -> Result<Option<Entry>, StateError> {
        Ok(None)
    }

    fn fields(&self, _key: &Key) -> Result<Option<Fields>, StateError> {
        Ok(None)
    }

    fn is_failed(&self, _key: &Key) -> Result<bool, StateError> {
        Ok(false)
    }

    fn in_doubt(&self, _digest: u64) -> Option<Doubt> {
        None
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};
    use crate::config::Env;
    use crate::state::Store;

    fn guard(dir: &std::path::Path, csv: &str, args: &[&str]) -> Option<Guard> {
        let input = dir.join("in.csv");
        std::fs::write(&input, csv).expect("csv");
        let argv = ["custsync", "sync", input.to_str().expect("utf-8")];
        let Command::Sync(s) = Cli::try_parse_from(argv.iter().chain(args))
            .expect("parse")
            .command
        else {
            panic!("sync")
        };
        let cfg = SyncConfig::resolve(s, &Env::default(), false).expect("config");
        Guard::new(&Arc::new(cfg))
    }

    #[test]
    fn the_guard_is_needed_only_when_the_limit_can_be_exceeded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let g = guard(dir.path(), "email,firstname,lastname\n", &[]).expect("a guard");
        // (store keys) -> needed at 10%
        for (keys, want) in [(0, false), (1, true), (1000, true)] {
            assert_eq!(g.needed(keys), want, "{keys} keys");
        }
        let count = guard(dir.path(), "email\n", &["--max-absent", "50"]).expect("a guard");
        assert!(!count.needed(50) && count.needed(51));
        assert!(guard(dir.path(), "email\n", &["--max-absent", "100%"]).is_none());
        assert!(guard(dir.path(), "email\n", &["--dry-run"]).is_none());
        assert!(!g.census_due(HOLD_LIMIT - 1) && g.census_due(HOLD_LIMIT));
    }

    #[tokio::test]
    async fn a_census_counts_the_store_keys_the_file_does_not_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("state")).expect("store");
        for i in 0..10 {
            let entry = Entry {
                customer_id: i + 1,
                payload_hash: 1,
                synced_at: 0,
                address_id: None,
                further_address_ids: Vec::new(),
            };
            store
                .put(&Key::new(1, &format!("u{i}@example.com")), entry, None)
                .expect("put");
        }
        let index = Arc::new(store.build_index().expect("index"));
        // Five of the ten, one of them in an invalid row (still named), and a stranger.
        let csv = "email,firstname,lastname,dob\nu0@example.com,A,B,\nU1@Example.com,A,B,\n\
                   u2@example.com,A,B,\nu3@example.com,A,B,1990-02-30\nu4@example.com,A,B,\n\
                   new@example.com,A,B,\n";
        let g = guard(dir.path(), csv, &[]).expect("a guard");
        let cancel = CancellationToken::new();
        let absent = g.census(Arc::clone(&index), &cancel).await.expect("census");
        assert_eq!(absent, Some(5));
        assert!(g.decide(5, &index).is_err(), "5 of 10 is over 10%");
        cancel.cancel();
        assert_eq!(g.census(index, &cancel).await.expect("census"), None);
    }
}

//! What the store knows of its target: the shop it is bound to, and that shop's model, cached.
//!
//! # The binding
//!
//! A store's mappings are customer ids of one shop; used against another they would update
//! the wrong customers or none. So a store is bound to its target ([`Binding`]: the embedded
//! sandbox, or an endpoint with its `--store`) by the first mapping it records, and a run that
//! goes elsewhere is refused before it sends anything ([`Store::admit`]). `state rebind` moves
//! the binding on purpose.
//!
//! A store from before bindings (mappings, no binding) cannot say which shop it holds. Its
//! mappings came from the embedded sandbox only if that sandbox has data in the state
//! directory; otherwise they came from a real shop, and the run that would use them against
//! the embedded sandbox is the cron job that lost its `CUSTSYNC_ENDPOINT`: refused. Against an
//! endpoint the store is taken to be that shop's and bound at once (the run says so), since
//! nothing else can be known. Such a binding, and one `state rebind` makes, is unchecked until
//! a run finds a sample of the mappings to be that shop's customers (see `shop/vouch.rs`).
//!
//! # The shop model cache
//!
//! The shop's model (websites, groups, countries...) is kept here as the JSON [`crate::shop`]
//! makes of it, with its target and the time it was read, so that runs within the hour do not
//! read it again. The store does not look inside it.

use std::sync::PoisonError;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{StateError, Store};

/// Key of the binding in the store's default tree.
pub(super) const BINDING_KEY: &str = "binding";
/// Key of the cached shop model.
const MODEL_KEY: &str = "shop_model";

/// Where a store's customers live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Binding {
    /// The embedded sandbox, whose data is under the state directory.
    Sandbox,
    /// A shop: its REST base normalised (scheme, host, port, path without a trailing slash;
    /// no credentials) and the `--store` code every request carries.
    Shop {
        endpoint: String,
        store: Option<String>,
    },
}

impl std::fmt::Display for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Binding::Sandbox => f.write_str("the embedded sandbox"),
            Binding::Shop {
                endpoint,
                store: None,
            } => f.write_str(endpoint),
            Binding::Shop {
                endpoint,
                store: Some(s),
            } => write!(f, "{endpoint} with --store {s}"),
        }
    }
}

/// The binding as stored: the target and when it was bound.
#[derive(Serialize, Deserialize)]
struct Bound {
    target: Binding,
    /// Unix seconds.
    bound_at: i64,
    /// Bound to mappings not made against this target (`state rebind`, or a store from
    /// before bindings such as an import): a sample of them is checked against the shop
    /// before the first write (see `shop/vouch.rs`). A binding by the store's own first
    /// mapping, or one from before this field, needs no check.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    unchecked: bool,
}

/// The cached model as stored.
#[derive(Serialize, Deserialize)]
struct CachedModel {
    target: Binding,
    /// Unix seconds.
    read_at: i64,
    model: Value,
}

/// What [`Store::admit`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Bound to this target already.
    Bound,
    /// Not bound and empty of mappings: bound by the run's first mapping (not by a dry run).
    Unbound,
    /// Mappings from before bindings: bound to this target now (not by a dry run).
    Legacy { entries: usize },
}

/// The verdict on a run's target, a function of what the store holds; see the module doc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Same,
    Unbound,
    Legacy,
    Differs,
    /// Legacy mappings that did not come from the embedded sandbox, against it.
    LegacyNotSandbox,
}

fn verdict(
    bound: Option<&Binding>,
    target: &Binding,
    has_entries: bool,
    sandbox_has_data: bool,
) -> Verdict {
    match bound {
        Some(b) if b == target => Verdict::Same,
        Some(_) => Verdict::Differs,
        None if !has_entries => Verdict::Unbound,
        None if *target == Binding::Sandbox && !sandbox_has_data => Verdict::LegacyNotSandbox,
        None => Verdict::Legacy,
    }
}

impl Store {
    /// The target the store is bound to, if any.
    pub fn binding(&self) -> Result<Option<Binding>, StateError> {
        Ok(self.read_bound()?.map(|b| b.target))
    }

    /// When the store was bound (Unix seconds), with the target.
    pub fn bound_at(&self) -> Result<Option<(Binding, i64)>, StateError> {
        Ok(self.read_bound()?.map(|b| (b.target, b.bound_at)))
    }

    fn read_bound(&self) -> Result<Option<Bound>, StateError> {
        let v = self.db.get(BINDING_KEY).map_err(|e| self.err(e))?;
        // A binding this version cannot read binds nothing: treated as absent, and
        // overwritten by the next bind.
        Ok(v.and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Checks that a run may use this store with `target`, before it sends anything, and
    /// arranges the binding (unless `dry_run`): see the module doc. `sandbox_has_data`: the
    /// embedded sandbox of this state directory holds customers.
    pub fn admit(
        &self,
        target: &Binding,
        sandbox_has_data: bool,
        dry_run: bool,
    ) -> Result<Admission, StateError> {
        let bound = self.binding()?;
        match verdict(bound.as_ref(), target, !self.is_empty(), sandbox_has_data) {
            Verdict::Same => Ok(Admission::Bound),
            Verdict::Differs => Err(StateError::Bound {
                dir: self.dir.clone(),
                bound: bound.map(|b| b.to_string()).unwrap_or_default(),
                target: target.to_string(),
            }),
            Verdict::LegacyNotSandbox => Err(StateError::LegacyNotSandbox {
                dir: self.dir.clone(),
                entries: self.len(),
            }),
            Verdict::Unbound => {
                if !dry_run {
                    *self
                        .pending_binding
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Some(target.clone());
                }
                Ok(Admission::Unbound)
            }
            Verdict::Legacy => {
                if !dry_run {
                    self.bind(target)?;
                }
                Ok(Admission::Legacy {
                    entries: self.len(),
                })
            }
        }
    }

    /// Binds the store to `target` (the shop model cached for another target is dropped);
    /// returns the binding it had. Its mappings were not made against `target`, so the
    /// binding stays unchecked until a run has checked them (see [`Store::unchecked`]).
    pub fn bind(&self, target: &Binding) -> Result<Option<Binding>, StateError> {
        let old = self.binding()?;
        if old.as_ref() == Some(target) {
            return Ok(old);
        }
        self.db
            .insert(BINDING_KEY, encode_binding(target, !self.is_empty()))
            .map_err(|e| self.err(e))?;
        self.db.remove(MODEL_KEY).map_err(|e| self.err(e))?;
        Ok(old)
    }

    /// Whether the store holds mappings that no run has yet checked against the shop it is
    /// bound to (or, unbound, would be bound to).
    pub fn unchecked(&self) -> Result<bool, StateError> {
        Ok(!self.is_empty() && self.read_bound()?.is_none_or(|b| b.unchecked))
    }

    /// Records that a run checked the mappings against the shop the store is bound to
    /// (`checked`), or that mappings from elsewhere joined them (`state import`).
    pub fn set_checked(&self, checked: bool) -> Result<(), StateError> {
        let Some(mut bound) = self.read_bound()? else {
            return Ok(());
        };
        bound.unchecked = !checked;
        let bytes = serde_json::to_vec(&bound).expect("a binding serialises to memory");
        self.db
            .insert(BINDING_KEY, bytes)
            .map_err(|e| self.err(e))?;
        self.db.flush().map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The binding the state writer records with the first mapping, if the store has none yet.
    pub(super) fn pending_binding(&self) -> Option<Vec<u8>> {
        self.pending_binding
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|target| encode_binding(target, false))
    }

    /// The shop model cached for `target` and when it was read (Unix seconds).
    pub fn cached_model(&self, target: &Binding) -> Result<Option<(i64, Value)>, StateError> {
        let v = self.db.get(MODEL_KEY).map_err(|e| self.err(e))?;
        let cached = v.and_then(|v| serde_json::from_slice::<CachedModel>(&v).ok());
        Ok(cached
            .filter(|c| c.target == *target)
            .map(|c| (c.read_at, c.model)))
    }

    /// Caches the shop model of `target`, read at `read_at` (Unix seconds).
    pub fn cache_model(
        &self,
        target: &Binding,
        read_at: i64,
        model: Value,
    ) -> Result<(), StateError> {
        let cached = CachedModel {
            target: target.clone(),
            read_at,
            model,
        };
        let bytes = serde_json::to_vec(&cached).expect("JSON values serialise to memory");
        self.db.insert(MODEL_KEY, bytes).map_err(|e| self.err(e))?;
        Ok(())
    }
}

/// Records `binding` (as [`Store::pending_binding`] gives it) unless the store is bound.
pub(super) fn bind_if_unbound(db: &sled::Db, binding: Option<Vec<u8>>) -> Result<(), sled::Error> {
    let absent: Option<&[u8]> = None;
    // A store already bound (by an earlier writer of the run) keeps its binding.
    let _ = db.compare_and_swap(BINDING_KEY, absent, binding)?;
    Ok(())
}

fn encode_binding(target: &Binding, unchecked: bool) -> Vec<u8> {
    let bound = Bound {
        target: target.clone(),
        bound_at: chrono::Utc::now().timestamp(),
        unchecked,
    };
    serde_json::to_vec(&bound).expect("a binding serialises to memory")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::Key;
    use crate::state::{Entry, Op};

    fn shop(url: &str) -> Binding {
        Binding::Shop {
            endpoint: url.into(),
            store: None,
        }
    }

    #[test]
    fn verdicts() {
        let a = shop("https://a.example/rest/default");
        let b = shop("https://b.example/rest/default");
        let sb = Binding::Sandbox;
        #[rustfmt::skip]
        let cases: &[(Option<&Binding>, &Binding, bool, bool, Verdict)] = &[
            // bound        target  entries sandbox data
            (Some(&a),      &a,     true,   false, Verdict::Same),
            (Some(&a),      &b,     true,   false, Verdict::Differs),
            (Some(&a),      &sb,    true,   true,  Verdict::Differs),
            (Some(&sb),     &a,     false,  true,  Verdict::Differs),
            (Some(&sb),     &sb,    true,   true,  Verdict::Same),
            (None,          &a,     false,  false, Verdict::Unbound),
            (None,          &sb,    false,  false, Verdict::Unbound),
            (None,          &a,     true,   false, Verdict::Legacy),
            (None,          &a,     true,   true,  Verdict::Legacy),
            (None,          &sb,    true,   true,  Verdict::Legacy),
            (None,          &sb,    true,   false, Verdict::LegacyNotSandbox),
        ];
        for (i, (bound, target, entries, data, want)) in cases.iter().enumerate() {
            assert_eq!(verdict(*bound, target, *entries, *data), *want, "case {i}");
        }
        let with_store = Binding::Shop {
            endpoint: "https://a.example/rest/default".into(),
            store: Some("de".into()),
        };
        assert_eq!(
            verdict(Some(&a), &with_store, true, false),
            Verdict::Differs
        );
        assert_eq!(
            with_store.to_string(),
            "https://a.example/rest/default with --store de"
        );
    }

    fn entry() -> Entry {
        Entry {
            customer_id: 1,
            payload_hash: 1,
            synced_at: 0,
            address_id: None,
            further_address_ids: Vec::new(),
        }
    }

    #[test]
    fn the_first_mapping_binds_and_another_target_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("s")).expect("open");
        let a = shop("https://a.example/T1");
        assert_eq!(
            store.admit(&a, false, true).expect("admit"),
            Admission::Unbound
        );
        let w = store.writer().expect("writer");
        w.send(Op::Put(Key::new(1, "x@a.io"), entry(), None));
        w.finish().expect("finish");
        assert_eq!(
            store.binding().expect("read"),
            None,
            "a dry run binds nothing"
        );

        assert_eq!(
            store.admit(&a, false, false).expect("admit"),
            Admission::Legacy { entries: 1 }
        );
        assert_eq!(store.binding().expect("read"), Some(a.clone()));
        let err = store
            .admit(&Binding::Sandbox, true, false)
            .expect_err("refused");
        let msg = err.to_string();
        assert!(
            msg.contains("https://a.example/T1") && msg.contains("the embedded sandbox"),
            "{msg}"
        );

        assert_eq!(store.bind(&Binding::Sandbox).expect("rebind"), Some(a));
        assert_eq!(
            store.admit(&Binding::Sandbox, false, false).expect("admit"),
            Admission::Bound
        );
    }

    #[test]
    fn a_fresh_store_is_bound_by_its_first_mapping_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("s")).expect("open");
        let a = shop("https://a.example/T1");
        assert_eq!(
            store.admit(&a, false, false).expect("admit"),
            Admission::Unbound
        );
        let w = store.writer().expect("writer");
        w.send(Op::Failed(Key::new(1, "x@a.io")));
        w.finish().expect("finish");
        assert_eq!(
            store.binding().expect("read"),
            None,
            "a failure records no mapping"
        );
        let w = store.writer().expect("writer");
        w.send(Op::Put(Key::new(1, "x@a.io"), entry(), None));
        w.finish().expect("finish");
        assert_eq!(store.binding().expect("read"), Some(a));
    }

    #[test]
    fn legacy_mappings_without_sandbox_data_are_not_used_with_the_sandbox() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("s")).expect("open");
        store
            .put(&Key::new(1, "x@a.io"), entry(), None)
            .expect("put");
        let err = store
            .admit(&Binding::Sandbox, false, false)
            .expect_err("refused");
        assert!(err.to_string().contains("state rebind"), "{err}");
        assert_eq!(
            store.binding().expect("read"),
            None,
            "refused: nothing written"
        );
    }

    #[test]
    fn the_model_cache_is_per_target_and_dropped_by_a_rebind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("s")).expect("open");
        let (a, b) = (shop("https://a.example/T1"), shop("https://b.example/T1"));
        store.bind(&a).expect("bind");
        let model = serde_json::json!({"websites": []});
        store.cache_model(&a, 100, model.clone()).expect("cache");
        assert_eq!(store.cached_model(&a).expect("read"), Some((100, model)));
        assert_eq!(store.cached_model(&b).expect("read"), None);
        store.bind(&a).expect("same target");
        assert!(store.cached_model(&a).expect("read").is_some(), "kept");
        store.bind(&b).expect("rebind");
        assert_eq!(store.cached_model(&a).expect("read"), None, "dropped");
    }
}

//! Which kind of key the store's mappings have: the e-mail (every store from before `--key`),
//! or one custom attribute. A key's bytes do not say which (see
//! [`crate::customer::KeyKind`]), so the store records it, and a run keyed otherwise than the
//! mappings it holds is refused before it sends anything: a file keyed by `legacy_id`
//! planned against e-mail keys would find none of them, create every customer again and
//! leave all the old ones absent.

use super::{StateError, Store};
use crate::customer::KeyKind;

/// Key of the recorded kind in the store's default tree (`email` or `custom:<code>`).
const KEY_KIND: &str = "key_kind";

impl Store {
    /// The kind of key the store's mappings have: as recorded, else the e-mail.
    pub fn key_kind(&self) -> Result<KeyKind, StateError> {
        Ok(self.recorded_key_kind()?.unwrap_or_default())
    }

    fn recorded_key_kind(&self) -> Result<Option<KeyKind>, StateError> {
        let v = self.db.get(KEY_KIND).map_err(|e| self.err(e))?;
        // A kind this version cannot read is none: refused below unless the store is empty.
        Ok(v.and_then(|v| KeyKind::parse(std::str::from_utf8(&v).ok()?).ok()))
    }

    /// Checks that a run keyed by `kind` may use this store: a store without mappings takes
    /// any kind (and records it, unless `dry_run`); one with mappings only its own.
    pub fn admit_key(&self, kind: &KeyKind, dry_run: bool) -> Result<(), StateError> {
        let recorded = self.recorded_key_kind()?;
        if self.is_empty() {
            if !dry_run && recorded.as_ref() != Some(kind) {
                self.db
                    .insert(KEY_KIND, kind.to_string().as_bytes())
                    .map_err(|e| self.err(e))?;
            }
            return Ok(());
        }
        let store = recorded.unwrap_or_default();
        if store == *kind {
            return Ok(());
        }
        Err(StateError::KeyKind {
            dir: self.dir.clone(),
            entries: self.len(),
            store: store.to_string(),
            run: kind.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::Key;
    use crate::state::Entry;

    fn entry() -> Entry {
        Entry {
            customer_id: 7,
            payload_hash: 1,
            synced_at: 0,
            address_id: None,
            further_address_ids: Vec::new(),
        }
    }

    #[test]
    fn a_store_takes_one_kind_of_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&dir.path().join("s")).expect("open");
        let legacy = KeyKind::Custom("legacy_id".into());
        // Empty: any kind; a dry run records nothing.
        assert_eq!(s.key_kind().expect("kind"), KeyKind::Email);
        s.admit_key(&legacy, true).expect("dry run");
        assert_eq!(s.key_kind().expect("kind"), KeyKind::Email);
        s.admit_key(&legacy, false).expect("admit");
        assert_eq!(s.key_kind().expect("kind"), legacy);
        // Still empty: another kind replaces it.
        s.admit_key(&KeyKind::Email, false).expect("admit");
        s.admit_key(&legacy, false).expect("admit");
        s.put(&Key::custom(1, "L-1"), entry(), None).expect("put");
        s.admit_key(&legacy, true).expect("same kind");
        for other in [KeyKind::Email, KeyKind::Custom("erp_no".into())] {
            let e = s.admit_key(&other, false).expect_err("another kind");
            let text = e.to_string();
            assert!(text.contains("keyed by custom:legacy_id"), "{text}");
            assert!(
                text.contains(&format!("keyed by {other} (--key)")),
                "{text}"
            );
        }
    }

    #[test]
    fn a_store_from_before_keys_holds_email_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&dir.path().join("s")).expect("open");
        s.put(&Key::new(1, "a@x.io"), entry(), None).expect("put");
        s.admit_key(&KeyKind::Email, false).expect("email");
        let e = s.admit_key(&KeyKind::Custom("legacy_id".into()), false);
        assert!(
            matches!(e, Err(StateError::KeyKind { entries: 1, .. })),
            "{e:?}"
        );
    }
}

//! Tests of the store's data directory: one sandbox at a time, and the journal across
//! reopening.
#![cfg(test)]

use std::fs::{self, OpenOptions};
use std::io::Write;

use super::journal::JOURNAL;
use super::tests::{address, at, customer, shop};
use super::*;

#[test]
fn a_data_directory_serves_one_sandbox_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = || Some(dir.path().to_owned());
    let first = LazyStore::new(data()).expect("open");
    let second = LazyStore::new(data());
    assert!(matches!(second, Err(SandboxError::Locked { .. })));
    drop(first);
    assert!(LazyStore::new(data()).is_ok(), "free again once closed");
}

#[test]
fn journal_replays_after_reopen_and_skips_torn_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let _lock = LazyStore::new(Some(data.clone())).expect("data directory");
    let before = {
        let mut store = CustomerStore::open(Some(&data)).expect("opened");
        let mut body = customer("a@x.com");
        body["customer"]["addresses"] = json!([address("Lund")]);
        store.create(shop(), &body, None, at(1)).expect("a");
        store
            .create(shop(), &customer("b@x.com"), None, at(1))
            .expect("b");
        store
            .create(shop(), &customer("c@x.com"), None, at(1))
            .expect("c");
        store
            .update(
                shop(),
                "2",
                &json!({"customer": {"lastname": "Changed"}}),
                at(2),
            )
            .expect("b updated");
        store.delete("3").expect("c deleted");
        store.all()
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&data).expect("dir").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
    let journal = data.join(JOURNAL);
    let mut file = OpenOptions::new()
        .append(true)
        .open(&journal)
        .expect("journal");
    file.write_all(br#"{"op":"put","customer":{"id":9,"ema"#)
        .expect("torn write");
    drop(file);

    let mut store = CustomerStore::open(Some(&data)).expect("reopened");
    assert_eq!(store.all(), before);
    assert_eq!(store.get("2").expect("b")["lastname"], "Changed");
    // Ids are never reused, not even the deleted customer's 3; address ids continue too.
    let mut body = customer("d@x.com");
    body["customer"]["addresses"] = json!([address("Lund")]);
    let d = store.create(shop(), &body, None, at(3)).expect("d");
    assert_eq!(d["id"], 4);
    assert_eq!(d["addresses"][0]["id"], 2);
    let err = store
        .create(shop(), &customer("A@X.COM"), None, at(3))
        .expect_err("index rebuilt");
    assert_eq!(err.status, 400);
    drop(store);

    // Compaction left the id counters and one line per live customer (a, b), then d was
    // appended.
    let text = fs::read_to_string(&journal).expect("journal text");
    assert_eq!(text.lines().count(), 1 + 2 + 1);

    // Damage that is not at the end is refused, not silently dropped.
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(1, "garbage");
    fs::write(&journal, lines.join("\n")).expect("rewrite");
    match CustomerStore::open(Some(&data)) {
        Err(SandboxError::JournalCorrupt { line, .. }) => assert_eq!(line, 2),
        other => panic!("expected JournalCorrupt, got {other:?}"),
    }
}

#[test]
fn a_journal_is_rewritten_only_when_it_must_be() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let _lock = LazyStore::new(Some(data.clone())).expect("data directory");
    let journal = data.join(JOURNAL);
    {
        let mut store = CustomerStore::open(Some(&data)).expect("opened");
        store
            .create(shop(), &customer("a@x.com"), None, at(1))
            .expect("a");
        store
            .create(shop(), &customer("b@x.com"), None, at(1))
            .expect("b");
    }
    let modified = || {
        fs::metadata(&journal)
            .expect("journal")
            .modified()
            .expect("mtime")
    };
    let before = modified();
    std::thread::sleep(std::time::Duration::from_millis(20));
    drop(CustomerStore::open(Some(&data)).expect("reopened"));
    assert_eq!(modified(), before, "nothing to compact: left as it is");

    // The last record whole but its newline lost: appending after it would join two
    // records on one line, so the journal is rewritten first.
    let text = fs::read_to_string(&journal).expect("journal text");
    fs::write(&journal, text.trim_end()).expect("drop the final newline");
    {
        let mut store = CustomerStore::open(Some(&data)).expect("reopened");
        store
            .create(shop(), &customer("c@x.com"), None, at(2))
            .expect("c");
    }
    let store = CustomerStore::open(Some(&data)).expect("reopened");
    let emails: Vec<Value> = store.all().iter().map(|c| c["email"].clone()).collect();
    assert_eq!(
        emails,
        vec![json!("a@x.com"), json!("b@x.com"), json!("c@x.com")]
    );
}

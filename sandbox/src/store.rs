//! The sandbox shop's customers: Magento's create/update/delete rules applied to JSON records
//! kept in memory, with an optional append-only journal on disk. Pure logic, no HTTP.
//!
//! Records are kept in the exact shape `GET /V1/customers/{id}` returns, so reads are clones.
//! The journal (`customers.jsonl`) gets one line per change, written before the change is
//! answered, so a killed process loses nothing it already confirmed; on open it is replayed
//! (a torn last line is skipped) and rewritten compactly.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::error::{ApiError, SandboxError};
use super::search::SearchCriteria;
use super::validate::{self, AddressInput, cast_bool, cast_int, cast_string};

/// File name of the journal inside the data directory.
const JOURNAL: &str = "customers.jsonl";

/// One store view of the fixed shop setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoreView {
    pub(crate) id: i64,
    pub(crate) code: &'static str,
    pub(crate) name: &'static str,
    pub(crate) website: i64,
}

/// Websites 1..=3 with one store view each.
pub(crate) const STORE_VIEWS: [StoreView; 3] = [
    StoreView {
        id: 1,
        code: "default",
        name: "Default Store View",
        website: 1,
    },
    StoreView {
        id: 2,
        code: "second",
        name: "Second Store View",
        website: 2,
    },
    StoreView {
        id: 3,
        code: "third",
        name: "Third Store View",
        website: 3,
    },
];

/// Customer groups 0 (NOT LOGGED IN) to 3 exist; 1 is the default.
const GROUPS: std::ops::RangeInclusive<i64> = 0..=3;
const DEFAULT_GROUP: i64 = 1;

const CUSTOMER_INTS: &[&str] = &[
    "id",
    "group_id",
    "gender",
    "store_id",
    "website_id",
    "disable_auto_group_change",
];
const CUSTOMER_STRINGS: &[&str] = &[
    "default_billing",
    "default_shipping",
    "confirmation",
    "created_at",
    "updated_at",
    "created_in",
    "dob",
    "email",
    "firstname",
    "lastname",
    "middlename",
    "prefix",
    "suffix",
    "taxvat",
];
/// Keys the server manages; values sent by clients are ignored.
const SERVER_KEYS: &[&str] = &["id", "created_at", "updated_at", "created_in"];
/// Keys with their own merge rules.
const SPECIAL_KEYS: &[&str] = &["addresses", "custom_attributes", "extension_attributes"];

/// Customers in memory plus the journal that makes them durable.
#[derive(Debug)]
pub(crate) struct CustomerStore {
    customers: BTreeMap<i64, Stored>,
    /// (website_id, lower-cased email) -> id: Magento's per-website, case-insensitive unique key.
    emails: HashMap<(i64, String), i64>,
    next_id: i64,
    next_address_id: i64,
    journal: Option<Journal>,
}

/// A stored customer, kept as its JSON text: a million customers as parsed maps took over
/// 6 GB, as text under 1 GB. Parsing one costs microseconds, and only the customer a request
/// names (or the page a search returns) is parsed, apart from filtered searches.
#[derive(Debug)]
pub(crate) struct Stored(Box<str>);

impl Stored {
    fn new(record: &Map<String, Value>) -> Self {
        let text = serde_json::to_string(record).expect("a JSON map serialises to memory");
        Stored(text.into_boxed_str())
    }

    /// The customer as a map.
    pub(crate) fn record(&self) -> Map<String, Value> {
        serde_json::from_str(&self.0).expect("a stored customer is a JSON object this store wrote")
    }
}

/// One line of the journal: `put` (a whole customer), `delete` (an id) or `seq` (the id
/// counters).
#[derive(Deserialize)]
struct JournalLine<'a> {
    op: String,
    #[serde(borrow)]
    customer: Option<&'a RawValue>,
    id: Option<i64>,
    next_id: Option<i64>,
    next_address_id: Option<i64>,
}

/// What the store indexes of a journaled customer.
#[derive(Deserialize)]
struct Indexed {
    id: i64,
    email: Option<String>,
    website_id: Option<i64>,
    #[serde(default)]
    addresses: Vec<AddressId>,
}

#[derive(Deserialize)]
struct AddressId {
    id: Option<i64>,
}

/// The customer store, replayed from its journal when a customer request first needs it: a
/// sync that sends nothing (the re-run of an unchanged file) must not wait for a journal of a
/// million customers, nor hold them in memory.
#[derive(Debug)]
pub(crate) struct LazyStore {
    dir: Option<PathBuf>,
    /// Held from the start: two sandboxes on one journal would corrupt it.
    _lock: Option<File>,
    store: tokio::sync::OnceCell<Mutex<CustomerStore>>,
}

impl LazyStore {
    /// Takes the data directory (created with mode 0700) without reading it; `None` keeps
    /// customers in memory only.
    pub(crate) fn new(dir: Option<PathBuf>) -> Result<Self, SandboxError> {
        let lock = match &dir {
            Some(dir) => {
                create_private_dir(dir)?;
                Some(lock(dir)?)
            }
            None => None,
        };
        Ok(Self {
            dir,
            _lock: lock,
            store: tokio::sync::OnceCell::new(),
        })
    }

    /// The store, replaying the journal on a blocking thread the first time.
    pub(crate) async fn get(&self) -> Result<&Mutex<CustomerStore>, SandboxError> {
        self.store
            .get_or_try_init(|| async {
                let dir = self.dir.clone();
                let open = tokio::task::spawn_blocking(move || CustomerStore::open(dir.as_deref()));
                match open.await {
                    Ok(store) => store.map(Mutex::new),
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                }
            })
            .await
    }

    /// The store, if anything has needed it yet.
    pub(crate) fn loaded(&self) -> Option<&Mutex<CustomerStore>> {
        self.store.get()
    }
}

#[derive(Debug)]
struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Appends one record with a single write of the whole line, so a crash leaves at most a
    /// torn last line. No fsync: the promise is surviving a killed process, not a power cut.
    fn append(&mut self, record: &Value) -> io::Result<()> {
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        self.file.write_all(&line)
    }
}

/// Takes `dir/lock`, or says which sandbox data directory is in use.
fn lock(dir: &Path) -> Result<File, SandboxError> {
    let path = dir.join("lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| SandboxError::DataDir {
            path: dir.to_owned(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(SandboxError::Locked { path }),
        Err(fs::TryLockError::Error(source)) => Err(SandboxError::DataDir {
            path: dir.to_owned(),
            source,
        }),
    }
}

impl CustomerStore {
    /// Opens the store: in memory when `dir` is `None`, else replaying and compacting
    /// `dir/customers.jsonl` (the caller holds the directory's lock).
    fn open(dir: Option<&Path>) -> Result<Self, SandboxError> {
        let mut store = Self {
            customers: BTreeMap::new(),
            emails: HashMap::new(),
            next_id: 1,
            next_address_id: 1,
            journal: None,
        };
        let Some(dir) = dir else {
            return Ok(store);
        };
        let path = dir.join(JOURNAL);
        let journal_err = |source| SandboxError::Journal {
            path: path.clone(),
            source,
        };
        let compact = match File::open(&path) {
            // Rewriting a journal of a million customers takes seconds: only for a torn end,
            // which the next append would join, or when a quarter of it is records that later
            // ones replaced.
            Ok(file) => {
                let (records, clean) = store.replay(io::BufReader::new(file), &path)?;
                let live = store.customers.len();
                !clean || records > live + live / 4 + 1
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => true,
            Err(e) => return Err(journal_err(e)),
        };
        if compact {
            store.compact(&path).map_err(journal_err)?;
        } else {
            store.journal = Some(Journal {
                path: path.clone(),
                file: private_file(&path, true).map_err(journal_err)?,
            });
        }
        Ok(store)
    }

    /// Replays the journal line by line (a million customers are 700 MB of it). Returns how
    /// many records it applied, and whether the file ends cleanly (every line whole).
    fn replay(
        &mut self,
        mut journal: impl io::BufRead,
        path: &Path,
    ) -> Result<(usize, bool), SandboxError> {
        let read_err = |source| SandboxError::Journal {
            path: path.to_owned(),
            source,
        };
        // A bad line is an error only once another record follows it: a process killed
        // mid-write leaves a partial last line, whose change was never answered, so dropping
        // it is what the client expects.
        let (mut bad, mut records, mut whole) = (None, 0, true);
        let mut line = Vec::new();
        for n in 1.. {
            line.clear();
            if journal.read_until(b'\n', &mut line).map_err(read_err)? == 0 {
                break;
            }
            whole = line.last() == Some(&b'\n');
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            if text.is_empty() {
                continue;
            }
            if let Some(line) = bad {
                return Err(SandboxError::JournalCorrupt {
                    path: path.to_owned(),
                    line,
                });
            }
            match self.apply(text) {
                Some(()) => records += 1,
                None => bad = Some(n),
            }
        }
        if let Some(line) = bad {
            tracing::warn!(path = %path.display(), line, "skipping torn last journal line");
        }
        Ok((records, bad.is_none() && whole))
    }

    /// Applies one journal line; `None` when it is not a record this store wrote. A customer's
    /// text is kept as it is, with only what the store indexes read from it: building maps
    /// took most of the time of loading a million customers.
    fn apply(&mut self, line: &[u8]) -> Option<()> {
        let record: JournalLine = serde_json::from_slice(line).ok()?;
        match record.op.as_str() {
            "put" => {
                let text = record.customer?.get();
                let c: Indexed = serde_json::from_str(text).ok()?;
                let email = c
                    .email
                    .zip(c.website_id)
                    .map(|(e, w)| (w, e.to_lowercase()));
                let addresses = c.addresses.iter().filter_map(|a| a.id).max();
                self.insert_stored(c.id, email, addresses, Stored(text.into()));
            }
            "delete" => self.remove_record(record.id?),
            "seq" => {
                self.next_id = self.next_id.max(record.next_id?);
                self.next_address_id = self.next_address_id.max(record.next_address_id?);
            }
            _ => return None,
        }
        Some(())
    }

    /// Rewrites the journal as one record per live customer, keeping the id counters so that
    /// ids of deleted customers are never handed out again (as MySQL's auto-increment does).
    fn compact(&mut self, path: &Path) -> io::Result<()> {
        let tmp = path.with_extension("jsonl.tmp");
        let mut out = io::BufWriter::new(private_file(&tmp, false)?);
        let seq =
            json!({"op": "seq", "next_id": self.next_id, "next_address_id": self.next_address_id});
        serde_json::to_writer(&mut out, &seq)?;
        out.write_all(b"\n")?;
        for customer in self.customers.values() {
            writeln!(out, "{{\"op\":\"put\",\"customer\":{}}}", customer.0)?;
        }
        let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        self.journal = Some(Journal {
            path: path.to_owned(),
            file: private_file(path, true)?,
        });
        Ok(())
    }

    /// Flushes the journal to disk (used on shutdown).
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.journal.as_ref().map_or(Ok(()), |j| j.file.sync_all())
    }

    /// How many customers there are.
    pub(crate) fn len(&self) -> usize {
        self.customers.len()
    }

    /// All customers in response shape, by id.
    pub(crate) fn all(&self) -> Vec<Value> {
        self.customers
            .values()
            .map(|c| Value::Object(c.record()))
            .collect()
    }

    /// `GET /V1/customers/{id}`.
    pub(crate) fn get(&self, id: &str) -> Result<Value, ApiError> {
        let id = parse_id(id)?;
        self.customers
            .get(&id)
            .map(|c| Value::Object(c.record()))
            .ok_or_else(|| no_such_customer(id))
    }

    /// `DELETE /V1/customers/{id}`.
    pub(crate) fn delete(&mut self, id: &str) -> Result<(), ApiError> {
        let id = parse_id(id)?;
        if !self.customers.contains_key(&id) {
            return Err(no_such_customer(id));
        }
        self.journal_append(&json!({"op": "delete", "id": id}))?;
        self.remove_record(id);
        Ok(())
    }

    /// `GET /V1/customers/search`.
    pub(crate) fn search(&self, criteria: &SearchCriteria) -> Value {
        // The search a client makes after a lost create names one email: take the few
        // customers the email index knows instead of reading every customer.
        let Some(email) = criteria.email_eq() else {
            return criteria.run(self.customers.values());
        };
        let email = email.to_lowercase();
        let mut ids: Vec<i64> = STORE_VIEWS
            .iter()
            .filter_map(|s| self.emails.get(&(s.website, email.clone())).copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        criteria.run(ids.iter().filter_map(|id| self.customers.get(id)))
    }

    /// `POST /V1/customers` (`AccountManagement::createAccount`). `scope` is the store view
    /// of the request (`Store` header), used when the customer names neither store nor website.
    pub(crate) fn create(
        &mut self,
        body: &Value,
        scope: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<Value, ApiError> {
        let body = body.as_object().ok_or_else(ApiError::decoding)?;
        let input = customer_input(body)?;
        let password = body.get("password").map(cast_string).transpose()?.flatten();
        let email = input.get("email").and_then(Value::as_str);
        if let Some(password) = &password {
            validate::check_password(password, email)?;
        }
        let (website_id, store) = resolve_scope(
            int_of(&input, "website_id"),
            int_of(&input, "store_id"),
            scope,
        )?;
        if int_of(&input, "id").is_some()
            && email.is_some_and(|e| self.emails.contains_key(&(website_id, e.to_lowercase())))
        {
            return Err(ApiError::bad("This customer already exists in this store."));
        }

        let mut rec: Map<String, Value> = input
            .iter()
            .filter(|(k, v)| {
                !v.is_null()
                    && !SERVER_KEYS.contains(&k.as_str())
                    && !SPECIAL_KEYS.contains(&k.as_str())
                    && !matches!(k.as_str(), "default_billing" | "default_shipping")
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        rec.insert("website_id".into(), json!(website_id));
        rec.insert("store_id".into(), json!(store.id));
        rec.insert("created_in".into(), json!(store.name));
        rec.entry("group_id").or_insert(json!(DEFAULT_GROUP));
        rec.entry("disable_auto_group_change").or_insert(json!(0));
        let subscribed = subscription(input.get("extension_attributes"))?.unwrap_or(false);
        rec.insert(
            "extension_attributes".into(),
            json!({ "is_subscribed": subscribed }),
        );
        merge_custom_attributes(&mut rec, input.get("custom_attributes"))?;
        self.validate_customer(&rec, None, now)?;
        let addresses = prepare_addresses(input.get("addresses"), None)?.unwrap_or_default();

        let id = self.next_id;
        rec.insert("id".into(), json!(id));
        let stamp = timestamp(now);
        rec.insert("created_at".into(), json!(stamp));
        rec.insert("updated_at".into(), json!(stamp));
        self.place_addresses(&mut rec, id, addresses);
        self.commit(rec)
    }

    /// `PUT /V1/customers/{id}` with Magento 2.4's merge plugin: the stored customer with
    /// every key present in the request set on it (explicit `null` clears).
    pub(crate) fn update(
        &mut self,
        url_id: &str,
        body: &Value,
        now: DateTime<Utc>,
    ) -> Result<Value, ApiError> {
        let id = parse_id(url_id)?;
        let stored = self
            .customers
            .get(&id)
            .ok_or_else(|| no_such_customer(id))?
            .record();
        let body = body.as_object().ok_or_else(ApiError::decoding)?;
        let input = customer_input(body)?;
        let target_id = int_of(&input, "id").unwrap_or(id);
        let target = self
            .customers
            .get(&target_id)
            .ok_or_else(|| no_such_customer(target_id))?
            .record();

        let mut rec = stored;
        if target_id != id {
            // Magento saves the merged URL customer under the body id; that record keeps its
            // own addresses and creation data (the URL customer's addresses are not moved).
            for key in [
                "addresses",
                "default_billing",
                "default_shipping",
                "created_at",
                "created_in",
            ] {
                match target.get(key) {
                    Some(v) => rec.insert(key.to_owned(), v.clone()),
                    None => rec.remove(key),
                };
            }
        }
        for (key, value) in &input {
            if SERVER_KEYS.contains(&key.as_str()) || SPECIAL_KEYS.contains(&key.as_str()) {
                continue;
            }
            if value.is_null() {
                rec.remove(key);
            } else {
                rec.insert(key.clone(), value.clone());
            }
        }
        if let Some(subscribed) = subscription(input.get("extension_attributes"))? {
            rec.insert(
                "extension_attributes".into(),
                json!({ "is_subscribed": subscribed }),
            );
        }
        merge_custom_attributes(&mut rec, input.get("custom_attributes"))?;
        let store_sent = input.get("store_id").is_some_and(|v| !v.is_null());
        fix_scope(&mut rec, store_sent)?;
        rec.entry("group_id").or_insert(json!(DEFAULT_GROUP));
        self.validate_customer(&rec, Some(target_id), now)?;

        let own_ids: Vec<i64> = addresses_of(&rec).filter_map(|a| int_of(a, "id")).collect();
        match prepare_addresses(input.get("addresses"), Some(&own_ids))? {
            Some(addresses) => self.place_addresses(&mut rec, target_id, addresses),
            None => {
                for key in ["default_billing", "default_shipping"] {
                    let points_home = rec
                        .get(key)
                        .and_then(Value::as_str)
                        .is_none_or(|d| own_ids.iter().any(|a| a.to_string() == d));
                    if !points_home {
                        return Err(ApiError::bad(
                            "The %fieldName value is invalid. Set the correct value and try again.",
                        )
                        .with_params(json!({ "fieldName": key })));
                    }
                }
                sync_address_flags(&mut rec);
            }
        }
        rec.insert("id".into(), json!(target_id));
        rec.insert("updated_at".into(), json!(timestamp(now)));
        self.commit(rec)
    }

    /// The checks of `ResourceModel\Customer::_beforeSave` and the EAV/name/dob validators, in
    /// Magento's order; `own_id` is the customer being saved (excluded from the unique check).
    fn validate_customer(
        &self,
        rec: &Map<String, Value>,
        own_id: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        if !int_of(rec, "group_id").is_some_and(|g| GROUPS.contains(&g)) {
            return Err(ApiError::bad(
                "The specified customer group id does not exist.",
            ));
        }
        let text = |k: &str| {
            rec.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
        };
        let Some(email) = text("email") else {
            return Err(ApiError::bad(
                "The customer email is missing. Enter and try again.",
            ));
        };
        let website = int_of(rec, "website_id").unwrap_or_default();
        if let Some(&holder) = self.emails.get(&(website, email.to_lowercase()))
            && Some(holder) != own_id
        {
            return Err(ApiError::bad(
                "A customer with the same email address already exists in an associated website.",
            ));
        }
        for (key, label) in [("firstname", "First Name"), ("lastname", "Last Name")] {
            if text(key).is_none() {
                return Err(ApiError::bad(format!("\"{label}\" is a required value.")));
            }
        }
        if !validate::is_valid_email(email) {
            return Err(ApiError::bad("\"Email\" is not a valid email address."));
        }
        for (key, label) in [
            ("firstname", "First Name"),
            ("lastname", "Last Name"),
            ("middlename", "Middle Name"),
        ] {
            if let Some(name) = rec.get(key).and_then(Value::as_str) {
                let optional_and_empty = key == "middlename" && name.is_empty();
                if !optional_and_empty && !validate::is_valid_name(name) {
                    return Err(ApiError::bad(format!("{label} is not valid!")));
                }
            }
        }
        if let Some(dob) = rec.get("dob").and_then(Value::as_str)
            && validate::parse_dob(dob)? > now.date_naive()
        {
            return Err(ApiError::bad(
                "The Date of Birth should not be greater than today.",
            ));
        }
        Ok(())
    }

    /// Gives the validated addresses ids (kept or new), ties them to the customer and derives
    /// the customer's default address ids from the flags sent and the previous defaults.
    fn place_addresses(
        &self,
        rec: &mut Map<String, Value>,
        customer_id: i64,
        inputs: Vec<AddressInput>,
    ) {
        let mut next = self.next_address_id;
        let mut flags = Vec::with_capacity(inputs.len());
        let mut list = Vec::with_capacity(inputs.len());
        for input in inputs {
            let id = input.id.unwrap_or_else(|| {
                next += 1;
                next - 1
            });
            let mut fields = input.fields;
            fields.insert("id".into(), json!(id));
            fields.insert("customer_id".into(), json!(customer_id));
            flags.push((id, input.default_billing, input.default_shipping));
            list.push(Value::Object(fields));
        }
        let billing = flags.iter().map(|&(id, b, _)| (id, b));
        let chosen_billing = resolve_default(rec.get("default_billing"), billing);
        let shipping = flags.iter().map(|&(id, _, s)| (id, s));
        let chosen_shipping = resolve_default(rec.get("default_shipping"), shipping);
        for (key, chosen) in [
            ("default_billing", chosen_billing),
            ("default_shipping", chosen_shipping),
        ] {
            match chosen {
                Some(id) => rec.insert(key.into(), json!(id.to_string())),
                None => rec.remove(key),
            };
        }
        rec.insert("addresses".into(), Value::Array(list));
        sync_address_flags(rec);
    }

    fn journal_append(&mut self, record: &Value) -> Result<(), ApiError> {
        if let Some(journal) = &mut self.journal {
            journal.append(record).map_err(|e| {
                tracing::error!(path = %journal.path.display(), error = %e, "journal write failed");
                ApiError::internal()
            })?;
        }
        Ok(())
    }

    /// Journals the record, then makes it visible.
    fn commit(&mut self, rec: Map<String, Value>) -> Result<Value, ApiError> {
        let record = json!({"op": "put", "customer": rec});
        self.journal_append(&record)?;
        let answer = Value::Object(rec.clone());
        self.insert_record(rec);
        Ok(answer)
    }

    fn insert_record(&mut self, rec: Map<String, Value>) {
        let Some(id) = int_of(&rec, "id") else { return };
        let addresses = addresses_of(&rec).filter_map(|a| int_of(a, "id")).max();
        self.insert_stored(id, email_key(&rec), addresses, Stored::new(&rec));
    }

    /// Stores a customer under `id` with its email key and highest address id.
    fn insert_stored(
        &mut self,
        id: i64,
        email: Option<(i64, String)>,
        max_address_id: Option<i64>,
        stored: Stored,
    ) {
        self.remove_record(id);
        if let Some(key) = email {
            self.emails.insert(key, id);
        }
        self.next_id = self.next_id.max(id + 1);
        if let Some(max) = max_address_id {
            self.next_address_id = self.next_address_id.max(max + 1);
        }
        self.customers.insert(id, stored);
    }

    fn remove_record(&mut self, id: i64) {
        if let Some(old) = self.customers.remove(&id)
            && let Some(key) = email_key(&old.record())
            && self.emails.get(&key) == Some(&id)
        {
            self.emails.remove(&key);
        }
    }
}

fn create_private_dir(dir: &Path) -> Result<(), SandboxError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| SandboxError::DataDir {
        path: dir.to_owned(),
        source,
    })
}

/// Opens a file readable by the owner only: it holds personal data.
fn private_file(path: &Path, append: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true);
    if append {
        options.append(true);
    } else {
        options.write(true).truncate(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn timestamp(now: DateTime<Utc>) -> String {
    now.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn int_of(map: &Map<String, Value>, key: &str) -> Option<i64> {
    map.get(key).and_then(Value::as_i64)
}

fn email_key(rec: &Map<String, Value>) -> Option<(i64, String)> {
    let email = rec.get("email")?.as_str()?;
    Some((int_of(rec, "website_id")?, email.to_lowercase()))
}

fn addresses_of(rec: &Map<String, Value>) -> impl Iterator<Item = &Map<String, Value>> {
    rec.get("addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

/// The URL id: Magento binds it as an integer; anything else matches no customer.
fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::no_such_entity("customerId", json!(raw)))
}

fn no_such_customer(id: i64) -> ApiError {
    ApiError::no_such_entity("customerId", json!(id))
}

/// Takes `customer` out of a request body and casts its fields; keys without a setter on
/// `CustomerInterface` get Magento's 500.
fn customer_input(body: &Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    let raw = match body.get("customer") {
        None | Some(Value::Null) => return Err(ApiError::required("customer")),
        Some(Value::Object(raw)) => raw,
        Some(other) => {
            return Err(ApiError::wrong_type(
                other,
                "\\Magento\\Customer\\Api\\Data\\CustomerInterface",
            ));
        }
    };
    let mut out = Map::new();
    for (key, value) in raw {
        let cast = if CUSTOMER_INTS.contains(&key.as_str()) {
            cast_int(value)?.map_or(Value::Null, |i| json!(i))
        } else if CUSTOMER_STRINGS.contains(&key.as_str()) {
            cast_string(value)?.map_or(Value::Null, Value::String)
        } else if SPECIAL_KEYS.contains(&key.as_str()) {
            match value {
                Value::Null | Value::Object(_) if key == "extension_attributes" => value.clone(),
                Value::Null | Value::Array(_) if key != "extension_attributes" => value.clone(),
                other => return Err(ApiError::wrong_type(other, "array")),
            }
        } else {
            return Err(ApiError::internal());
        };
        out.insert(key.clone(), cast);
    }
    Ok(out)
}

/// `extension_attributes.is_subscribed` as sent; `None` = leave the subscription alone.
fn subscription(ext: Option<&Value>) -> Result<Option<bool>, ApiError> {
    match ext {
        Some(Value::Object(ext)) => Ok(ext
            .get("is_subscribed")
            .map(cast_bool)
            .transpose()?
            .flatten()),
        _ => Ok(None),
    }
}

/// Merges sent custom attributes by `attribute_code` into the record: the EAV save writes
/// only the attributes it is given, so the others keep their values.
fn merge_custom_attributes(
    rec: &mut Map<String, Value>,
    sent: Option<&Value>,
) -> Result<(), ApiError> {
    let Some(Value::Array(sent)) = sent else {
        return Ok(());
    };
    let mut attrs: Vec<Value> = rec
        .get("custom_attributes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for attr in sent {
        let code = attr
            .get("attribute_code")
            .and_then(|c| cast_string(c).ok().flatten())
            .filter(|c| !c.is_empty())
            .ok_or_else(|| ApiError::required("attribute_code"))?;
        let value = attr.get("value").cloned().unwrap_or(Value::Null);
        let item = json!({ "attribute_code": code, "value": value });
        match attrs
            .iter_mut()
            .find(|a| a.get("attribute_code").and_then(Value::as_str) == Some(&code))
        {
            Some(existing) => *existing = item,
            None => attrs.push(item),
        }
    }
    if attrs.is_empty() {
        rec.remove("custom_attributes");
    } else {
        rec.insert("custom_attributes".into(), Value::Array(attrs));
    }
    Ok(())
}

/// Validates the sent address list; `own_ids` are the customer's address ids on update (an id
/// outside them is unknown), `None` on create (ids sent are ignored, every address is new).
/// `Ok(None)` when no list was sent: the addresses stay as they are.
fn prepare_addresses(
    raw: Option<&Value>,
    own_ids: Option<&[i64]>,
) -> Result<Option<Vec<AddressInput>>, ApiError> {
    let items = match raw {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(ApiError::wrong_type(other, "array")),
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let mut address = validate::address(item)?;
        match (own_ids, address.id) {
            (None, _) => address.id = None,
            (Some(own), Some(id)) if !own.contains(&id) => {
                return Err(ApiError::no_such_entity("addressId", json!(id)));
            }
            _ => {}
        }
        out.push(address);
    }
    Ok(Some(out))
}

/// The default address after a list replacement: the last address flagged true wins; else
/// the previous default if it survived and was not flagged false; else none.
fn resolve_default(
    current: Option<&Value>,
    flags: impl Iterator<Item = (i64, Option<bool>)> + Clone,
) -> Option<i64> {
    if let Some((id, _)) = flags.clone().filter(|(_, f)| *f == Some(true)).last() {
        return Some(id);
    }
    let current: i64 = current?.as_str()?.parse().ok()?;
    flags
        .into_iter()
        .any(|(id, f)| id == current && f != Some(false))
        .then_some(current)
}

/// Sets each address's boolean default flags from the customer's default address ids.
fn sync_address_flags(rec: &mut Map<String, Value>) {
    let billing = rec
        .get("default_billing")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let shipping = rec
        .get("default_shipping")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(Value::Array(list)) = rec.get_mut("addresses") {
        for address in list.iter_mut().filter_map(Value::as_object_mut) {
            let id = address.get("id").map(Value::to_string);
            address.insert(
                "default_billing".into(),
                json!(id.is_some() && id == billing),
            );
            address.insert(
                "default_shipping".into(),
                json!(id.is_some() && id == shipping),
            );
        }
    } else {
        rec.insert("addresses".into(), json!([]));
    }
}

/// Website and store view of a new customer (`AccountManagement::createAccountWithPasswordHash`).
fn resolve_scope(
    website: Option<i64>,
    store: Option<i64>,
    scope: Option<i64>,
) -> Result<(i64, StoreView), ApiError> {
    if let Some(w) = website {
        website_store(w)?;
    }
    let store = match (store, website) {
        (Some(s), _) => store_view(s)?,
        (None, Some(w)) => website_store(w)?,
        (None, None) => store_view(scope.unwrap_or(1))?,
    };
    let website = website.unwrap_or(store.website);
    if store.website != website {
        return Err(ApiError::bad(
            "The store view is not in the associated website.",
        ));
    }
    Ok((website, store))
}

/// Keeps website and store consistent on update: an explicitly sent store must belong to the
/// website; a store merely inherited follows a website change.
fn fix_scope(rec: &mut Map<String, Value>, store_sent: bool) -> Result<(), ApiError> {
    let Some(website) = int_of(rec, "website_id") else {
        return Err(ApiError::bad(
            "\"Associate to Website\" is a required value.",
        ));
    };
    let home = website_store(website)?;
    let store = match int_of(rec, "store_id") {
        Some(s) => store_view(s)?,
        None => home,
    };
    let store = if store.website == website {
        store
    } else if store_sent {
        return Err(ApiError::bad(
            "The store view is not in the associated website.",
        ));
    } else {
        home
    };
    rec.insert("store_id".into(), json!(store.id));
    Ok(())
}

fn store_view(id: i64) -> Result<StoreView, ApiError> {
    STORE_VIEWS
        .iter()
        .copied()
        .find(|s| s.id == id)
        .ok_or_else(|| {
            ApiError::new(
                404,
                "The store that was requested wasn't found. Verify the store and try again.",
            )
        })
}

fn website_store(website: i64) -> Result<StoreView, ApiError> {
    STORE_VIEWS.iter().copied().find(|s| s.website == website).ok_or_else(|| {
        ApiError::new(
            404,
            "The website with id %1 that was requested wasn't found. Verify the website and try again.",
        )
        .with_params(json!([website]))
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, day, 10, 0, 0)
            .single()
            .expect("valid test date")
    }

    fn customer(email: &str) -> Value {
        json!({"customer": {"email": email, "firstname": "Ann", "lastname": "Lee"}})
    }

    fn address(city: &str) -> Value {
        json!({"firstname": "Ann", "lastname": "Lee", "street": ["1 Main"], "city": city,
               "telephone": "555", "postcode": "11122", "country_id": "SE"})
    }

    fn err(result: Result<Value, ApiError>) -> ApiError {
        result.expect_err("the call should fail")
    }

    #[test]
    fn create_answers_magento_shape_without_password() {
        let mut store = CustomerStore::open(None).expect("memory store");
        let mut body = customer("Ann@Example.com");
        body["password"] = json!("Secret123");
        body["customer"]["extension_attributes"] = json!({"is_subscribed": true});
        let c = store.create(&body, None, at(1)).expect("created");
        assert_eq!(c["id"], 1);
        assert_eq!(c["email"], "Ann@Example.com");
        assert_eq!(c["website_id"], 1);
        assert_eq!(c["store_id"], 1);
        assert_eq!(c["group_id"], 1);
        assert_eq!(c["created_in"], "Default Store View");
        assert_eq!(c["created_at"], "2025-03-01 10:00:00");
        assert_eq!(c["addresses"], json!([]));
        assert_eq!(c["extension_attributes"], json!({"is_subscribed": true}));
        assert_eq!(c["disable_auto_group_change"], 0);
        assert!(c.get("middlename").is_none() && c.get("custom_attributes").is_none());
        assert!(!c.to_string().contains("Secret123"));
        assert_eq!(store.get("1").expect("stored"), c);
    }

    #[test]
    fn duplicate_email_is_case_insensitive_and_per_website() {
        let mut store = CustomerStore::open(None).expect("memory store");
        store
            .create(&customer("ann@x.com"), None, at(1))
            .expect("first");
        let dup = err(store.create(&customer("ANN@X.COM"), None, at(1)));
        assert_eq!(
            (dup.status, dup.message.as_str()),
            (
                400,
                "A customer with the same email address already exists in an associated website."
            )
        );
        let mut other_site = customer("ANN@X.COM");
        other_site["customer"]["website_id"] = json!(2);
        let c = store
            .create(&other_site, None, at(1))
            .expect("second website");
        assert_eq!(
            (c["store_id"].clone(), c["created_in"].clone()),
            (json!(2), json!("Second Store View"))
        );
        // The Store header picks the website when the body names none.
        let c = store
            .create(&customer("ann@x.com"), Some(3), at(1))
            .expect("third website");
        assert_eq!(c["website_id"], 3);

        // Changing another customer's email onto a taken one fails too.
        store
            .create(&customer("bob@x.com"), None, at(1))
            .expect("bob");
        let e = err(store.update("4", &json!({"customer": {"email": "Ann@x.com"}}), at(2)));
        assert!(e.message.starts_with("A customer with the same email"));
        // Deleting frees the email.
        store.delete("1").expect("deleted");
        store
            .create(&customer("ann@x.com"), None, at(1))
            .expect("email free again");
    }

    #[test]
    fn create_validation_messages() {
        let mut store = CustomerStore::open(None).expect("memory store");
        let cases: Vec<(Value, u16, &str, Option<Value>)> = vec![
            (
                json!({}),
                400,
                "\"%fieldName\" is required. Enter and try again.",
                Some(json!({"fieldName": "customer"})),
            ),
            (
                json!({"customer": {"firstname": "A", "lastname": "B"}}),
                400,
                "The customer email is missing. Enter and try again.",
                None,
            ),
            (
                json!({"customer": {"email": "a@b", "firstname": "A", "lastname": "B"}}),
                400,
                "\"Email\" is not a valid email address.",
                None,
            ),
            (
                json!({"customer": {"email": "a@b.se", "firstname": "", "lastname": "B"}}),
                400,
                "\"First Name\" is a required value.",
                None,
            ),
            (
                json!({"customer": {"email": "a@b.se", "firstname": "A$", "lastname": "B"}}),
                400,
                "First Name is not valid!",
                None,
            ),
            (
                json!({"customer": {"email": "a@b.se", "firstname": "A", "lastname": "B", "middlename": "(x)"}}),
                400,
                "Middle Name is not valid!",
                None,
            ),
            (
                json!({"customer": {"email": "a@b.se", "firstname": "A", "lastname": "B", "dob": "2025-03-02"}}),
                400,
                "The Date of Birth should not be greater than today.",
                None,
            ),
            (
                json!({"customer": {"email": "a@b.se", "firstname": "A", "lastname": "B", "group_id": 9}}),
                400,
                "The specified customer group id does not exist.",
                None,
            ),
            (
                json!({"customer": {"email": "a@b.se", "firstname": "A", "lastname": "B", "website_id": 9}}),
                404,
                "The website with id %1 that was requested wasn't found. Verify the website and try again.",
                Some(json!([9])),
            ),
            (
                json!({"customer": {"email": "a@b.se", "firstname": "A", "lastname": "B", "website_id": 1, "store_id": 2}}),
                400,
                "The store view is not in the associated website.",
                None,
            ),
            (
                json!({"customer": {"email": "a@b.se", "firstname": "A", "lastname": "B"}, "password": "short"}),
                400,
                "The password needs at least %1 characters. Create a new password and try again.",
                Some(json!([8])),
            ),
        ];
        for (body, status, message, params) in cases {
            let e = err(store.create(&body, None, at(1)));
            assert_eq!(
                (e.status, e.message.as_str(), e.parameters),
                (status, message, params),
                "body {body}"
            );
        }
        let mut bad_address = customer("a@b.se");
        bad_address["customer"]["addresses"] = json!([address("Lund"), {"country_id": "XX"}]);
        let e = err(store.create(&bad_address, None, at(1)));
        assert_eq!(e.message, "One or more input exceptions have occurred.");
        assert!(
            store.all().is_empty(),
            "a failing address must store nothing"
        );
    }

    #[test]
    fn put_merges_present_keys_only() {
        let mut store = CustomerStore::open(None).expect("memory store");
        let mut body = customer("ann@x.com");
        body["customer"]["middlename"] = json!("Q");
        body["customer"]["custom_attributes"] =
            json!([{"attribute_code": "a", "value": "1"}, {"attribute_code": "b", "value": "2"}]);
        body["customer"]["extension_attributes"] = json!({"is_subscribed": true});
        store.create(&body, None, at(1)).expect("created");

        let put = json!({"customer": {"lastname": "Doe", "middlename": null,
            "custom_attributes": [{"attribute_code": "a", "value": "9"}]}});
        let c = store.update("1", &put, at(2)).expect("updated");
        assert_eq!(
            (c["firstname"].clone(), c["lastname"].clone()),
            (json!("Ann"), json!("Doe"))
        );
        assert!(c.get("middlename").is_none(), "explicit null clears");
        assert_eq!(
            c["custom_attributes"],
            json!([{"attribute_code": "a", "value": "9"}, {"attribute_code": "b", "value": "2"}])
        );
        assert_eq!(c["extension_attributes"]["is_subscribed"], true);
        assert_eq!(c["created_at"], "2025-03-01 10:00:00");
        assert_eq!(c["updated_at"], "2025-03-02 10:00:00");
        assert_eq!(store.get("1").expect("stored"), c);

        let e = err(store.update("7", &put, at(2)));
        assert_eq!(
            (e.status, e.parameters),
            (
                404,
                Some(json!({"fieldName": "customerId", "fieldValue": 7}))
            )
        );
        let e = err(store.update("1", &json!({"customer": {"email": null}}), at(2)));
        assert_eq!(
            e.message,
            "The customer email is missing. Enter and try again."
        );
        let e = err(store.update("1", &json!({"customer": {"shoe_size": 9}}), at(2)));
        assert_eq!(
            e.status, 500,
            "unknown properties have no setter in Magento"
        );
    }

    #[test]
    fn address_replace_keeps_ids_and_never_piles_up() {
        let mut store = CustomerStore::open(None).expect("memory store");
        let mut body = customer("ann@x.com");
        let mut first = address("Lund");
        first["default_billing"] = json!(true);
        first["default_shipping"] = json!(true);
        body["customer"]["addresses"] = json!([first]);
        let c = store.create(&body, None, at(1)).expect("created");
        let address_id = c["addresses"][0]["id"].as_i64().expect("address id");
        assert_eq!(c["default_billing"], address_id.to_string());
        assert_eq!(c["addresses"][0]["customer_id"], 1);
        assert_eq!(c["addresses"][0]["default_shipping"], true);
        assert_eq!(
            c["addresses"][0]["region"],
            json!({"region_code": null, "region": null, "region_id": 0})
        );

        for city in ["Malmö", "Umeå", "Malmö"] {
            let mut a = address(city);
            a["id"] = json!(address_id);
            let c = store
                .update("1", &json!({"customer": {"addresses": [a]}}), at(2))
                .expect("address updated");
            let list = c["addresses"].as_array().expect("list");
            assert_eq!(list.len(), 1);
            assert_eq!(
                (list[0]["id"].as_i64(), list[0]["city"].as_str()),
                (Some(address_id), Some(city))
            );
            assert_eq!(
                c["default_billing"],
                address_id.to_string(),
                "defaults survive"
            );
            assert_eq!(list[0]["default_billing"], true);
        }

        // A list without the old id replaces the address: new id, defaults gone with it.
        let c = store
            .update(
                "1",
                &json!({"customer": {"addresses": [address("Kiruna")]}}),
                at(3),
            )
            .expect("replaced");
        let list = c["addresses"].as_array().expect("list");
        assert_eq!(list.len(), 1);
        assert_ne!(list[0]["id"].as_i64(), Some(address_id));
        assert!(c.get("default_billing").is_none() && c.get("default_shipping").is_none());

        // Leaving addresses out keeps them; [] deletes all.
        let c = store
            .update("1", &json!({"customer": {"lastname": "X"}}), at(3))
            .expect("kept");
        assert_eq!(c["addresses"].as_array().map(Vec::len), Some(1));
        let c = store
            .update("1", &json!({"customer": {"addresses": []}}), at(3))
            .expect("cleared");
        assert_eq!(c["addresses"], json!([]));

        let mut foreign = address("Lund");
        foreign["id"] = json!(999);
        let e = err(store.update("1", &json!({"customer": {"addresses": [foreign]}}), at(3)));
        assert_eq!(
            (e.status, e.parameters),
            (
                404,
                Some(json!({"fieldName": "addressId", "fieldValue": 999}))
            )
        );
    }

    #[test]
    fn put_with_other_body_id_saves_under_body_id() {
        let mut store = CustomerStore::open(None).expect("memory store");
        let mut first = customer("a@x.com");
        first["customer"]["firstname"] = json!("Una");
        store.create(&first, None, at(1)).expect("a");
        store.create(&customer("b@x.com"), None, at(1)).expect("b");
        // The URL customer's data lands on record 2, so its email collides with record 1.
        let e = err(store.update("1", &json!({"customer": {"id": 2}}), at(2)));
        assert!(e.message.starts_with("A customer with the same email"));

        let c = store
            .update(
                "1",
                &json!({"customer": {"id": 2, "email": "new@x.com"}}),
                at(2),
            )
            .expect("saved under 2");
        assert_eq!(
            (c["id"].clone(), c["email"].clone(), c["firstname"].clone()),
            (json!(2), json!("new@x.com"), json!("Una"))
        );
        assert_eq!(store.get("1").expect("untouched")["email"], "a@x.com");
        // b@x.com was freed by the overwrite.
        store
            .create(&customer("b@x.com"), None, at(2))
            .expect("b@x.com free");
        let e = err(store.update("1", &json!({"customer": {"id": 77}}), at(2)));
        assert_eq!(
            (e.status, e.parameters),
            (
                404,
                Some(json!({"fieldName": "customerId", "fieldValue": 77}))
            )
        );
    }

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
            store.create(&body, None, at(1)).expect("a");
            store.create(&customer("b@x.com"), None, at(1)).expect("b");
            store.create(&customer("c@x.com"), None, at(1)).expect("c");
            store
                .update("2", &json!({"customer": {"lastname": "Changed"}}), at(2))
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
        let d = store.create(&body, None, at(3)).expect("d");
        assert_eq!(d["id"], 4);
        assert_eq!(d["addresses"][0]["id"], 2);
        let err = store
            .create(&customer("A@X.COM"), None, at(3))
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
            store.create(&customer("a@x.com"), None, at(1)).expect("a");
            store.create(&customer("b@x.com"), None, at(1)).expect("b");
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
            store.create(&customer("c@x.com"), None, at(2)).expect("c");
        }
        let store = CustomerStore::open(Some(&data)).expect("reopened");
        let emails: Vec<Value> = store.all().iter().map(|c| c["email"].clone()).collect();
        assert_eq!(
            emails,
            vec![json!("a@x.com"), json!("b@x.com"), json!("c@x.com")]
        );
    }

    #[test]
    fn search_filters_paging_and_clamp() {
        let mut store = CustomerStore::open(None).expect("memory store");
        for (i, (email, website)) in [
            ("a@x.com", 1),
            ("b@y.com", 1),
            ("c@x.com", 2),
            ("D@x.com", 1),
            ("e@z.com", 3),
        ]
        .into_iter()
        .enumerate()
        {
            let mut body = customer(email);
            body["customer"]["website_id"] = json!(website);
            body["customer"]["lastname"] = json!(format!("L{}", 5 - i));
            store.create(&body, None, at(1)).expect("created");
        }
        let run = |pairs: &[(&str, &str)]| {
            let criteria = SearchCriteria::from_query(pairs.iter().copied()).expect("criteria");
            store.search(&criteria)
        };
        let ids = |v: &Value| -> Vec<i64> {
            v["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["id"].as_i64())
                .collect()
        };

        // like, case-insensitive, ANDed with a numeric website filter.
        let r = run(&[
            (
                "searchCriteria[filterGroups][0][filters][0][field]",
                "email",
            ),
            (
                "searchCriteria[filterGroups][0][filters][0][value]",
                "%@X.com",
            ),
            (
                "searchCriteria[filterGroups][0][filters][0][conditionType]",
                "like",
            ),
            (
                "searchCriteria[filter_groups][1][filters][0][field]",
                "website_id",
            ),
            ("searchCriteria[filter_groups][1][filters][0][value]", "1"),
        ]);
        assert_eq!((ids(&r), r["total_count"].clone()), (vec![1, 4], json!(2)));

        // Filters of one group are ORed; eq on email ignores case.
        let r = run(&[
            (
                "searchCriteria[filterGroups][0][filters][0][field]",
                "email",
            ),
            (
                "searchCriteria[filterGroups][0][filters][0][value]",
                "d@X.COM",
            ),
            (
                "searchCriteria[filterGroups][0][filters][1][field]",
                "website_id",
            ),
            ("searchCriteria[filterGroups][0][filters][1][value]", "3"),
        ]);
        assert_eq!(ids(&r), vec![4, 5]);

        // in / gt, sorting DESC by lastname, paging with clamp past the end.
        let r = run(&[
            (
                "searchCriteria[filterGroups][0][filters][0][field]",
                "entity_id",
            ),
            ("searchCriteria[filterGroups][0][filters][0][value]", "1"),
            (
                "searchCriteria[filterGroups][0][filters][0][condition_type]",
                "gt",
            ),
            ("searchCriteria[sortOrders][0][field]", "lastname"),
            ("searchCriteria[sortOrders][0][direction]", "ASC"),
            ("searchCriteria[pageSize]", "3"),
            ("searchCriteria[currentPage]", "9"),
        ]);
        assert_eq!(r["total_count"], 4);
        assert_eq!(ids(&r), vec![2], "page 9 of 2 is the last page");
        assert_eq!(r["search_criteria"]["page_size"], 3);
        assert_eq!(r["search_criteria"]["current_page"], 9);
        assert_eq!(r["search_criteria"]["sort_orders"][0]["direction"], "ASC");
        assert_eq!(
            r["search_criteria"]["filter_groups"][0]["filters"][0]["condition_type"],
            "gt"
        );

        let r = run(&[
            (
                "searchCriteria[filterGroups][0][filters][0][field]",
                "email",
            ),
            (
                "searchCriteria[filterGroups][0][filters][0][value]",
                "a@x.com,e@z.com",
            ),
            (
                "searchCriteria[filterGroups][0][filters][0][conditionType]",
                "nin",
            ),
            ("searchCriteria[sortOrders][0][field]", "id"),
            ("searchCriteria[sortOrders][0][direction]", "DESC"),
        ]);
        assert_eq!(ids(&r), vec![4, 3, 2]);
        assert!(r["search_criteria"].get("page_size").is_none());

        let r = run(&[("searchCriteria[currentPage]", "1")]);
        assert_eq!(ids(&r), vec![1, 2, 3, 4, 5], "no pageSize: no paging");

        // Paging by id alone (what pull does) reads no customer but the page's.
        let by_id = |direction| {
            let r = run(&[
                ("searchCriteria[sortOrders][0][field]", "entity_id"),
                ("searchCriteria[sortOrders][0][direction]", direction),
                ("searchCriteria[pageSize]", "2"),
                ("searchCriteria[currentPage]", "2"),
            ]);
            (ids(&r), r["total_count"].clone())
        };
        assert_eq!(by_id("ASC"), (vec![3, 4], json!(5)));
        assert_eq!(by_id("DESC"), (vec![3, 2], json!(5)));
    }

    #[test]
    fn email_searches_find_every_website_through_the_index() {
        let mut store = CustomerStore::open(None).expect("memory store");
        for (email, website) in [("a@x.com", 2), ("b@x.com", 1), ("A@X.com", 1)] {
            let mut body = customer(email);
            body["customer"]["website_id"] = json!(website);
            store.create(&body, None, at(1)).expect("created");
        }
        let run = |pairs: &[(&str, &str)]| {
            let criteria = SearchCriteria::from_query(pairs.iter().copied()).expect("criteria");
            let r = store.search(&criteria);
            let ids: Vec<i64> = r["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["id"].as_i64())
                .collect();
            (ids, r["total_count"].clone())
        };
        let email = [
            (
                "searchCriteria[filterGroups][0][filters][0][field]",
                "email",
            ),
            (
                "searchCriteria[filterGroups][0][filters][0][value]",
                "a@X.COM",
            ),
        ];
        assert_eq!(
            run(&email),
            (vec![1, 3], json!(2)),
            "both websites, id order"
        );
        let mut on_website = email.to_vec();
        on_website.extend([
            (
                "searchCriteria[filterGroups][1][filters][0][field]",
                "website_id",
            ),
            ("searchCriteria[filterGroups][1][filters][0][value]", "1"),
        ]);
        assert_eq!(
            run(&on_website),
            (vec![3], json!(1)),
            "other groups still apply"
        );
        let missing = [
            (
                "searchCriteria[filterGroups][0][filters][0][field]",
                "email",
            ),
            (
                "searchCriteria[filterGroups][0][filters][0][value]",
                "zz@x.com",
            ),
        ];
        assert_eq!(run(&missing), (vec![], json!(0)));
    }
}

//! Magento's rules for creating and updating a customer, applied to the JSON records before
//! they are stored: the fields a body may carry and their casts, the merge of an update, the
//! website and store scope, and the checks of the save, each in Magento's order with
//! Magento's messages (`commerce-customer-api.md` lists the sources). Pure decisions: they
//! read the customers there are and give the record to store; storing it is the caller's.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::addresses::{place_addresses, prepare_addresses, sync_address_flags};
use super::customers::Customers;
use super::scope::{fix_scope, resolve_scope};
use crate::address;
use crate::email;
use crate::error::ApiError;
use crate::shop::Shop;
use crate::stored::{CUSTOMER_INTS, CUSTOMER_STRINGS, SPECIAL_KEYS, addresses_of, int_of};
use crate::validate::{self, bind_keys, cast_bool, cast_int, cast_string};

/// Keys the server manages; values sent by clients are ignored.
const SERVER_KEYS: &[&str] = &["id", "created_at", "updated_at", "created_in"];
/// Extension attributes of `CustomerInterface` (PaaS and ACCS schemas).
const EXTENSION_KEYS: &[&str] = &[
    "is_subscribed",
    "company_attributes",
    "assistance_allowed",
    "last_login_at",
];

/// `POST /V1/customers` (`AccountManagement::createAccount`). `scope` is the store view
/// of the request (`Store` header), used when the customer names neither store nor website.
pub(super) fn create(
    customers: &Customers,
    shop: &Shop,
    body: &Value,
    scope: Option<i64>,
    now: DateTime<Utc>,
) -> Result<Map<String, Value>, ApiError> {
    let input = customer_input(body)?;
    let password = body.get("password").map(cast_string).transpose()?.flatten();
    let email = input.get("email").and_then(Value::as_str);
    if let Some(password) = &password {
        validate::check_password(password, email)?;
    }
    let (website_id, store) = resolve_scope(
        shop,
        int_of(&input, "website_id"),
        int_of(&input, "store_id"),
        scope,
    )?;
    if int_of(&input, "id").is_some()
        && email.is_some_and(|e| customers.holder(&(website_id, e.to_lowercase())).is_some())
    {
        return Err(ApiError::bad("This customer already exists in this store."));
    }

    let mut rec = plain_fields(&input, &["default_billing", "default_shipping"]);
    rec.insert("website_id".into(), json!(website_id));
    rec.insert("store_id".into(), json!(store.id));
    rec.insert("created_in".into(), json!(store.name));
    rec.entry("group_id")
        .or_insert(json!(shop.default_customer_group));
    rec.entry("disable_auto_group_change").or_insert(json!(0));
    let subscribed = subscription(input.get("extension_attributes"))?.unwrap_or(false);
    rec.insert(
        "extension_attributes".into(),
        json!({ "is_subscribed": subscribed }),
    );
    merge_custom_attributes(shop, &mut rec, input.get("custom_attributes"))?;
    validate_customer(customers, shop, &rec, None, now)?;
    let addresses = allowed_addresses(shop, website_id, input.get("addresses"));
    let addresses =
        prepare_addresses(addresses.as_ref(), None, shop, website_id)?.unwrap_or_default();

    let id = customers.next_id();
    rec.insert("id".into(), json!(id));
    let stamp = timestamp(now);
    let created = match input.get("created_at").and_then(Value::as_str) {
        Some(given) => migrated_date(given)?,
        None => stamp.clone(),
    };
    rec.insert("created_at".into(), json!(created));
    rec.insert("updated_at".into(), json!(stamp));
    place_addresses(&mut rec, id, addresses, customers.next_address_id());
    Ok(rec)
}

/// `PUT /V1/customers/{id}` with Magento 2.4's merge plugin: the stored customer with
/// every key present in the request set on it (explicit `null` clears).
pub(super) fn update(
    customers: &Customers,
    shop: &Shop,
    url_id: &str,
    body: &Value,
    now: DateTime<Utc>,
) -> Result<Map<String, Value>, ApiError> {
    let id = parse_id(url_id)?;
    let stored = customers
        .get(id)
        .ok_or_else(|| no_such_customer(id))?
        .record();
    let input = customer_input(body)?;
    let target_id = int_of(&input, "id").unwrap_or(id);
    let target = customers
        .get(target_id)
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
    merge_custom_attributes(shop, &mut rec, input.get("custom_attributes"))?;
    let store_sent = input.get("store_id").is_some_and(|v| !v.is_null());
    fix_scope(shop, &mut rec, store_sent)?;
    rec.entry("group_id")
        .or_insert(json!(shop.default_customer_group));
    validate_customer(customers, shop, &rec, Some(target_id), now)?;

    let own_ids: Vec<i64> = addresses_of(&rec).filter_map(|a| int_of(a, "id")).collect();
    let website = int_of(&rec, "website_id").unwrap_or_default();
    match prepare_addresses(input.get("addresses"), Some(&own_ids), shop, website)? {
        Some(addresses) => {
            place_addresses(&mut rec, target_id, addresses, customers.next_address_id());
        }
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
    Ok(rec)
}

/// Binds one item of an async bulk request as `ServiceInputProcessor::process` binds the
/// service's parameters (`WebapiAsync\Controller\Rest\Asynchronous\InputParamsResolver::
/// resolveBulkItemParams`): the same key and type checks as the synchronous route, before
/// anything is queued.
pub(super) fn bind(body: &Value) -> Result<(), ApiError> {
    customer_input(body)?;
    for key in ["password", "passwordHash", "redirectUrl"] {
        if let Some(value) = body.get(key) {
            cast_string(value)?;
        }
    }
    Ok(())
}

/// `CustomerRepository::save` as the bulk consumer runs it: the `UpdateCustomer` merge
/// plugin is declared in `Customer/etc/webapi_rest/di.xml`, and the consumer runs outside
/// that area with no request to read a route id from, so nothing of the stored customer is
/// merged in (issues #21237 and PR #28332, which added the plugin because such saves lost
/// data). The record is the body: what it leaves out is cleared, except what the repository
/// itself carries over (`CustomerRepository::save`): `created_at`, a `store_id` or
/// `group_id` left out, the subscription, and, when `addresses` is absent (null, not `[]`:
/// `getAddresses() !== null` guards the address save), the addresses and the default
/// billing and shipping ids. Without `customer.id` the save creates a customer, as the
/// repository does with an entity without id, in the request's store view `scope`.
pub(super) fn save(
    customers: &Customers,
    shop: &Shop,
    body: &Value,
    scope: Option<i64>,
    now: DateTime<Utc>,
) -> Result<Map<String, Value>, ApiError> {
    let input = customer_input(body)?;
    let Some(id) = int_of(&input, "id") else {
        return create(customers, shop, body, scope, now);
    };
    let stored = customers
        .get(id)
        .ok_or_else(|| no_such_customer(id))?
        .record();
    let mut rec = plain_fields(&input, &[]);
    for key in ["created_at", "created_in", "store_id", "group_id"] {
        if let (None, Some(v)) = (rec.get(key), stored.get(key)) {
            rec.insert(key.to_owned(), v.clone());
        }
    }
    rec.entry("disable_auto_group_change").or_insert(json!(0));
    let subscribed = subscription(input.get("extension_attributes"))?;
    let kept = stored
        .get("extension_attributes")
        .and_then(|e| e.get("is_subscribed"))
        .and_then(Value::as_bool);
    rec.insert(
        "extension_attributes".into(),
        json!({ "is_subscribed": subscribed.or(kept).unwrap_or(false) }),
    );
    merge_custom_attributes(shop, &mut rec, input.get("custom_attributes"))?;
    let store_sent = input.get("store_id").is_some_and(|v| !v.is_null());
    fix_scope(shop, &mut rec, store_sent)?;
    validate_customer(customers, shop, &rec, Some(id), now)?;

    let own_ids: Vec<i64> = addresses_of(&stored)
        .filter_map(|a| int_of(a, "id"))
        .collect();
    let website = int_of(&rec, "website_id").unwrap_or_default();
    match prepare_addresses(input.get("addresses"), Some(&own_ids), shop, website)? {
        Some(addresses) => place_addresses(&mut rec, id, addresses, customers.next_address_id()),
        None => {
            for key in ["addresses", "default_billing", "default_shipping"] {
                match stored.get(key) {
                    Some(v) => rec.insert(key.to_owned(), v.clone()),
                    None => rec.remove(key),
                };
            }
            sync_address_flags(&mut rec);
        }
    }
    rec.insert("id".into(), json!(id));
    rec.insert("updated_at".into(), json!(timestamp(now)));
    Ok(rec)
}

/// The fields of a bound body that are stored as sent: not null, not managed by the server,
/// without their own merge rules, and not among `skip`.
fn plain_fields(input: &Map<String, Value>, skip: &[&str]) -> Map<String, Value> {
    input
        .iter()
        .filter(|(k, v)| {
            !v.is_null()
                && !SERVER_KEYS.contains(&k.as_str())
                && !SPECIAL_KEYS.contains(&k.as_str())
                && !skip.contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The checks of `ResourceModel\Customer::_beforeSave` and the EAV/name/dob validators, in
/// Magento's order; `own_id` is the customer being saved (excluded from the unique check).
fn validate_customer(
    customers: &Customers,
    shop: &Shop,
    rec: &Map<String, Value>,
    own_id: Option<i64>,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    if !int_of(rec, "group_id").is_some_and(|g| shop.group_exists(g)) {
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
    if let Some(holder) = customers.holder(&(website, email.to_lowercase()))
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
    for attribute in shop.custom_attributes.iter().filter(|a| a.required) {
        let value = custom_value(rec, &attribute.code);
        if value.is_none_or(|v| v.trim().is_empty()) {
            return Err(ApiError::bad(format!(
                "\"{}\" is a required value.",
                attribute.label
            )));
        }
    }
    email::check(email, shop.email_tld_check)?;
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

fn timestamp(now: DateTime<Utc>) -> String {
    now.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The URL id: Magento binds it as an integer; anything else matches no customer.
pub(super) fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::no_such_entity("customerId", json!(raw)))
}

pub(super) fn no_such_customer(id: i64) -> ApiError {
    ApiError::no_such_entity("customerId", json!(id))
}

/// Takes `customer` out of a request body (a body that is no JSON object cannot be decoded
/// into the service's parameters), binds its keys to `CustomerInterface`'s setters
/// (a key without one is a 400 naming it, see `validate::bind_keys`; so is one inside
/// `extension_attributes`) and casts their values.
fn customer_input(body: &Value) -> Result<Map<String, Value>, ApiError> {
    let body = body.as_object().ok_or_else(ApiError::decoding)?;
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
    let fields: Vec<&str> = [CUSTOMER_INTS, CUSTOMER_STRINGS, SPECIAL_KEYS].concat();
    let mut out = Map::new();
    for (key, value) in bind_keys(raw, &fields)? {
        let cast = if CUSTOMER_INTS.contains(&key.as_str()) {
            cast_int(&value)?.map_or(Value::Null, |i| json!(i))
        } else if CUSTOMER_STRINGS.contains(&key.as_str()) {
            cast_string(&value)?.map_or(Value::Null, Value::String)
        } else {
            match value {
                Value::Object(ext) if key == "extension_attributes" => {
                    Value::Object(bind_keys(&ext, EXTENSION_KEYS)?)
                }
                Value::Null => Value::Null,
                Value::Array(_) if key != "extension_attributes" => value,
                other => return Err(ApiError::wrong_type(&other, "array")),
            }
        };
        out.insert(key, cast);
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
/// only the attributes it is given, so the others keep their values. A code the shop does not
/// define is dropped without a word: `AbstractExtensibleObject::setCustomAttributes`
/// (`lib/internal/Magento/Framework/Api/AbstractExtensibleObject.php`) keeps only the codes
/// of `getCustomAttributesCodes()`.
fn merge_custom_attributes(
    shop: &Shop,
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
        if shop.custom_attribute(&code).is_none() {
            continue;
        }
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

/// A custom attribute's value in a record, as text.
fn custom_value(rec: &Map<String, Value>, code: &str) -> Option<String> {
    rec.get("custom_attributes")?
        .as_array()?
        .iter()
        .find(|a| a.get("attribute_code").and_then(Value::as_str) == Some(code))
        .and_then(|a| a.get("value"))
        .and_then(|v| cast_string(v).ok().flatten())
}

/// The addresses of a new customer that `AccountManagement::createAccountWithPasswordHash`
/// saves: one in a country the website does not allow is skipped without a word
/// (`isAddressAllowedForWebsite`; the integration test
/// `CreateAccountTest::testCreateNewCustomerWithPasswordHashWithNotAllowedCountry`), before
/// any of its fields are validated.
fn allowed_addresses(shop: &Shop, website: i64, sent: Option<&Value>) -> Option<Value> {
    match sent {
        Some(Value::Array(list)) => {
            let allowed = shop.allowed_countries(Some(website));
            let kept = list
                .iter()
                .filter(|a| address::country_of(a).is_some_and(|c| allowed.contains(&c)))
                .cloned()
                .collect();
            Some(Value::Array(kept))
        }
        other => other.cloned(),
    }
}

/// A `created_at` sent on create is kept: the attribute's backend sets the time only when the
/// value is empty (`Eav/Model/Entity/Attribute/Backend/Time/Created::beforeSave`). It is a
/// DATETIME column: a date gets midnight, and text that is no date is refused by the
/// database, a 500 in production.
fn migrated_date(given: &str) -> Result<String, ApiError> {
    let given = given.trim();
    let parsed = chrono::NaiveDateTime::parse_from_str(given, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(given, "%Y-%m-%dT%H:%M:%S"))
        .or_else(|_| DateTime::parse_from_rfc3339(given).map(|d| d.naive_utc()))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(given, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
        });
    parsed
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .map_err(|_| ApiError::internal())
}

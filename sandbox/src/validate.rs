//! Magento's validation rules for customers and addresses, as pure functions: value casts,
//! email and name syntax, password strength, date of birth and the address validators.

use chrono::NaiveDate;
use serde_json::{Map, Value, json};

use super::error::ApiError;

/// Countries the sandbox shop allows on every website.
const ALLOWED_COUNTRIES: &[&str] = &[
    "US", "CA", "GB", "DE", "FR", "SE", "NL", "ES", "IT", "JP", "AU", "BR", "MX", "PL", "DK", "NO",
    "FI", "AT", "CH", "BE", "IE", "PT",
];
/// Countries whose addresses need a region (Magento's `general/region/state_required`).
const REGION_REQUIRED: &[&str] = &["US", "CA"];
/// Countries where the postcode is optional (`general/country/optional_zip_countries`).
const OPTIONAL_POSTCODE: &[&str] = &["IE"];

/// Minimum password length (`customer/password/minimum_password_length`).
const MIN_PASSWORD: usize = 8;
/// Maximum password length Magento accepts.
const MAX_PASSWORD: usize = 256;
/// Character classes needed (`customer/password/required_character_classes_number`).
const PASSWORD_CLASSES: usize = 3;

/// Casts a JSON value to an integer as Magento's service input processor does: numbers and
/// numeric strings pass, `null` stays absent, anything else is a type error.
pub(crate) fn cast_int(v: &Value) -> Result<Option<i64>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| ApiError::wrong_type(v, "int")),
        Value::String(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| ApiError::wrong_type(v, "int")),
        Value::Bool(b) => Ok(Some(i64::from(*b))),
        _ => Err(ApiError::wrong_type(v, "int")),
    }
}

/// Casts a JSON value to a string: scalars are rendered, containers are type errors.
pub(crate) fn cast_string(v: &Value) -> Result<Option<String>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(if *b { "1" } else { "0" }.to_owned())),
        _ => Err(ApiError::wrong_type(v, "string")),
    }
}

/// Casts a JSON value to a boolean, accepting PHP's usual spellings.
pub(crate) fn cast_bool(v: &Value) -> Result<Option<bool>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::Number(n) => Ok(Some(n.as_f64().is_some_and(|f| f != 0.0))),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "true" => Ok(Some(true)),
            "0" | "false" | "" => Ok(Some(false)),
            _ => Err(ApiError::wrong_type(v, "bool")),
        },
        _ => Err(ApiError::wrong_type(v, "bool")),
    }
}

/// `local@domain.tld`: no spaces, a dot in the domain, a TLD of at least two letters.
pub(crate) fn is_valid_email(email: &str) -> bool {
    if email.chars().any(char::is_whitespace) {
        return false;
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    if local.is_empty() || local.contains('@') {
        return false;
    }
    let Some((host, tld)) = domain.rsplit_once('.') else {
        return false;
    };
    !host.is_empty()
        && !host.starts_with('.')
        && !host.contains("..")
        && tld.chars().count() >= 2
        && tld.chars().all(char::is_alphabetic)
}

/// Magento's `Validator\Name` pattern: letters, combining marks, digits, whitespace and
/// `, - _ . ' ’ ` &`, 1 to 255 characters.
pub(crate) fn is_valid_name(name: &str) -> bool {
    let len = name.chars().count();
    (1..=255).contains(&len)
        && name.chars().all(|c| {
            c.is_alphabetic()
                || is_combining_mark(c)
                || c.is_ascii_digit()
                || c.is_whitespace()
                || matches!(c, ',' | '-' | '_' | '.' | '\'' | '’' | '`' | '&')
        })
}

/// The combining-mark blocks (`\p{M}`) that matter for names; `char::is_alphabetic` already
/// covers the spacing marks of Indic scripts.
fn is_combining_mark(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'
        | '\u{0483}'..='\u{0489}'
        | '\u{0591}'..='\u{05BD}'
        | '\u{064B}'..='\u{065F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{3099}'..='\u{309A}'
        | '\u{FE20}'..='\u{FE2F}')
}

/// Parses a date of birth; Magento also accepts a datetime and keeps the date part.
pub(crate) fn parse_dob(dob: &str) -> Result<NaiveDate, ApiError> {
    let date_part = dob.get(..10).unwrap_or(dob);
    NaiveDate::parse_from_str(date_part, "%Y-%m-%d").map_err(|_| {
        ApiError::bad("\"%1\" does not fit the entered date format.")
            .with_params(json!(["Date of Birth"]))
    })
}

/// `AccountManagement::checkPasswordStrength` plus the "not the email" rule, in Magento's order.
pub(crate) fn check_password(password: &str, email: Option<&str>) -> Result<(), ApiError> {
    let len = password.chars().count();
    if len > MAX_PASSWORD {
        return Err(
            ApiError::bad("Please enter a password with at most %1 characters.")
                .with_params(json!([MAX_PASSWORD])),
        );
    }
    if len < MIN_PASSWORD {
        return Err(ApiError::bad(
            "The password needs at least %1 characters. Create a new password and try again.",
        )
        .with_params(json!([MIN_PASSWORD])));
    }
    if password.trim().chars().count() != len {
        return Err(ApiError::bad(
            "The password can't begin or end with a space. Verify the password and try again.",
        ));
    }
    let classes = [
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(char::is_uppercase),
        password.chars().any(char::is_lowercase),
        password
            .chars()
            .any(|c| !c.is_ascii_digit() && !c.is_uppercase() && !c.is_lowercase()),
    ]
    .iter()
    .filter(|&&present| present)
    .count();
    if classes < PASSWORD_CLASSES {
        return Err(ApiError::bad(
            "Minimum of different classes of characters in password is %1. Classes of characters: Lower Case, Upper Case, Digits, Special Characters.",
        )
        .with_params(json!([PASSWORD_CLASSES])));
    }
    if email.is_some_and(|e| e.eq_ignore_ascii_case(password)) {
        return Err(ApiError::bad(
            "The password can't be the same as the email address. Create a new password and try again.",
        ));
    }
    Ok(())
}

/// Address keys Magento's `AddressInterface` knows; any other key has no setter, which
/// Magento answers with a 500.
const ADDRESS_KEYS: &[&str] = &[
    "id",
    "customer_id",
    "region",
    "region_id",
    "country_id",
    "street",
    "company",
    "telephone",
    "fax",
    "postcode",
    "city",
    "firstname",
    "lastname",
    "middlename",
    "prefix",
    "suffix",
    "vat_id",
    "default_shipping",
    "default_billing",
    "custom_attributes",
    "extension_attributes",
];
const ADDRESS_STRINGS: &[&str] = &[
    "country_id",
    "company",
    "telephone",
    "fax",
    "postcode",
    "city",
    "firstname",
    "lastname",
    "middlename",
    "prefix",
    "suffix",
    "vat_id",
];

/// One address from a request, cast and validated.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AddressInput {
    /// The id sent, if any.
    pub(crate) id: Option<i64>,
    /// The address fields in response shape, without `id`, `customer_id` and default flags.
    pub(crate) fields: Map<String, Value>,
    /// `default_billing` as sent (`None` = not sent).
    pub(crate) default_billing: Option<bool>,
    /// `default_shipping` as sent.
    pub(crate) default_shipping: Option<bool>,
}

/// Casts and validates one address (`Address\Validator\General` and `Country`), collecting
/// every problem so that several come back as one aggregate error.
pub(crate) fn address(raw: &Value) -> Result<AddressInput, ApiError> {
    let Value::Object(raw) = raw else {
        return Err(ApiError::wrong_type(
            raw,
            "\\Magento\\Customer\\Api\\Data\\AddressInterface",
        ));
    };
    if raw.keys().any(|k| !ADDRESS_KEYS.contains(&k.as_str())) {
        return Err(ApiError::internal());
    }
    let mut fields = Map::new();
    for key in ADDRESS_STRINGS {
        if let Some(v) = raw.get(*key)
            && let Some(s) = cast_string(v)?
        {
            fields.insert((*key).to_owned(), Value::String(s));
        }
    }
    let street: Vec<String> = match raw.get("street") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(lines)) => lines
            .iter()
            .map(|l| cast_string(l).map(Option::unwrap_or_default))
            .collect::<Result<_, _>>()?,
        Some(other) => cast_string(other)?.into_iter().collect(),
    };
    let (region, region_id) = region(raw)?;

    let filled = |k: &str| {
        fields
            .get(k)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.trim().is_empty())
    };
    let mut errors = Vec::new();
    for (key, field) in [("firstname", "firstname"), ("lastname", "lastname")] {
        if !filled(key) {
            errors.push(ApiError::required(field));
        }
    }
    if street.first().is_none_or(|s| s.trim().is_empty()) {
        errors.push(ApiError::required("street"));
    }
    for key in ["city", "telephone"] {
        if !filled(key) {
            errors.push(ApiError::required(key));
        }
    }
    let country = fields
        .get("country_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let optional_postcode = country
        .as_deref()
        .is_some_and(|c| OPTIONAL_POSTCODE.contains(&c));
    if !filled("postcode") && !optional_postcode {
        errors.push(ApiError::required("postcode"));
    }
    match country.as_deref().filter(|c| !c.trim().is_empty()) {
        None => errors.push(ApiError::required("countryId")),
        Some(c) if !ALLOWED_COUNTRIES.contains(&c) => errors.push(
            ApiError::bad("Invalid value of \"%value\" provided for the %fieldName field.")
                .with_params(json!({ "fieldName": "countryId", "value": c })),
        ),
        Some(c) => {
            let has_region = region_id > 0
                || ["region", "region_code"].iter().any(|k| {
                    region
                        .get(*k)
                        .and_then(Value::as_str)
                        .is_some_and(|s| !s.trim().is_empty())
                });
            if REGION_REQUIRED.contains(&c) && !has_region {
                errors.push(ApiError::required("regionId"));
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::aggregate(errors));
    }

    fields.insert("street".to_owned(), json!(street));
    fields.insert("region".to_owned(), Value::Object(region));
    if region_id > 0 {
        fields.insert("region_id".to_owned(), json!(region_id));
    }
    if let Some(Value::Array(attrs)) = raw.get("custom_attributes")
        && !attrs.is_empty()
    {
        fields.insert("custom_attributes".to_owned(), Value::Array(attrs.clone()));
    }
    Ok(AddressInput {
        id: raw.get("id").map(cast_int).transpose()?.flatten(),
        fields,
        default_billing: raw
            .get("default_billing")
            .map(cast_bool)
            .transpose()?
            .flatten(),
        default_shipping: raw
            .get("default_shipping")
            .map(cast_bool)
            .transpose()?
            .flatten(),
    })
}

/// The region object in response shape (`region_code`, `region`, `region_id`, nulls and 0 for
/// what is unknown) and the effective region id.
fn region(raw: &Map<String, Value>) -> Result<(Map<String, Value>, i64), ApiError> {
    let mut code = None;
    let mut name = None;
    let mut id = raw.get("region_id").map(cast_int).transpose()?.flatten();
    match raw.get("region") {
        None | Some(Value::Null) => {}
        Some(Value::Object(r)) => {
            code = r.get("region_code").map(cast_string).transpose()?.flatten();
            name = r.get("region").map(cast_string).transpose()?.flatten();
            if let Some(rid) = r.get("region_id").map(cast_int).transpose()?.flatten() {
                id = id.or(Some(rid));
            }
        }
        Some(other) => {
            return Err(ApiError::wrong_type(
                other,
                "\\Magento\\Customer\\Api\\Data\\RegionInterface",
            ));
        }
    }
    let id = id.unwrap_or(0);
    let mut region = Map::new();
    region.insert(
        "region_code".to_owned(),
        code.map_or(Value::Null, Value::String),
    );
    region.insert("region".to_owned(), name.map_or(Value::Null, Value::String));
    region.insert("region_id".to_owned(), json!(id));
    Ok((region, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(is_valid_email("a@b.co"));
        assert!(is_valid_email("Ann.Lee+x@mail.example.com"));
        for bad in [
            "a@b", "a@b.c", "a b@c.de", "@b.de", "a@.de", "a@b.d3", "plain",
        ] {
            assert!(!is_valid_email(bad), "{bad} should be invalid");
        }
    }

    #[test]
    fn names() {
        assert!(is_valid_name("Åsa-Britt O'Neil Jr."));
        assert!(is_valid_name("Zoë"));
        assert!(is_valid_name("e\u{0301}"));
        assert!(is_valid_name(&"é".repeat(255)));
        assert!(!is_valid_name(&"a".repeat(256)));
        assert!(!is_valid_name(""));
        for bad in ["Ann$", "Ann (x)", "☺", "Bob😀"] {
            assert!(!is_valid_name(bad), "{bad} should be invalid");
        }
    }

    #[test]
    fn password_rules_in_magento_order() {
        let msg = |pw: &str| check_password(pw, Some("a@b.co")).err().map(|e| e.message);
        assert!(msg("Abcdef12").is_none());
        assert_eq!(
            check_password("short", None)
                .err()
                .and_then(|e| e.parameters),
            Some(json!([8]))
        );
        assert!(msg(" Abcdef12").is_some_and(|m| m.contains("begin or end")));
        assert!(msg("abcdefgh").is_some_and(|m| m.starts_with("Minimum of different classes")));
        assert!(msg(&"Ab1".repeat(90)).is_some_and(|m| m.contains("at most")));
        assert!(check_password("A@b.Co1x", Some("a@b.co1X")).is_err());
    }

    #[test]
    fn address_errors_single_and_aggregate() {
        let ok = json!({"firstname":"A","lastname":"B","street":["1 Main"],"city":"LA",
            "telephone":"1","postcode":"9","country_id":"US","region":{"region_code":"CA"}});
        let parsed = address(&ok).expect("valid address");
        assert_eq!(parsed.fields["region"]["region_code"], "CA");
        assert_eq!(parsed.fields["region"]["region_id"], 0);

        let mut no_country = ok.clone();
        no_country["country_id"] = Value::Null;
        let err = address(&no_country).expect_err("country missing");
        assert_eq!(err.parameters, Some(json!({"fieldName":"countryId"})));

        let err = address(&json!({"country_id":"XX","firstname":"A"})).expect_err("many errors");
        assert_eq!(err.message, "One or more input exceptions have occurred.");
        assert!(err.errors.len() >= 5);

        let mut no_region = ok;
        no_region["region"] = Value::Null;
        let err = address(&no_region).expect_err("US needs a region");
        assert_eq!(err.parameters, Some(json!({"fieldName":"regionId"})));
    }
}

//! One customer address as Magento binds and validates it against the shop: the fields of
//! `AddressInterface`, the required ones (`Address\Validator\General`), the country allowed on
//! the customer's website and the region from the country's list (`Address\Validator\Country`,
//! `app/code/Magento/Customer/Model/Address/Validator/Country.php`).

use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::shop::{Country, Shop};
use crate::validate::{bind_keys, cast_bool, cast_int, cast_string};

/// String fields of `AddressInterface`.
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
/// The other fields of `AddressInterface`.
const ADDRESS_OTHERS: &[&str] = &[
    "id",
    "customer_id",
    "region",
    "region_id",
    "street",
    "default_shipping",
    "default_billing",
    "custom_attributes",
    "extension_attributes",
];
/// Fields of `RegionInterface`.
const REGION_KEYS: &[&str] = &["region_code", "region", "region_id", "extension_attributes"];

/// Every field of `AddressInterface`.
fn address_keys() -> Vec<&'static str> {
    [ADDRESS_STRINGS, ADDRESS_OTHERS].concat()
}

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

/// The country an address names, as `AccountManagement::isAddressAllowedForWebsite` reads it
/// to skip the addresses of countries the website does not allow.
pub(crate) fn country_of(raw: &Value) -> Option<String> {
    let raw = raw.as_object()?;
    let bound = bind_keys(raw, &address_keys()).ok()?;
    cast_string(bound.get("country_id")?).ok().flatten()
}

/// Casts and validates one address of a customer of `website`, collecting every problem of
/// the required fields so that several come back as one aggregate error, as
/// `Address\CompositeValidator` merges them; the country and region are checked only when
/// the country is given and allowed, as `Validator\Country::validate` does.
pub(crate) fn address(raw: &Value, shop: &Shop, website: i64) -> Result<AddressInput, ApiError> {
    let Value::Object(raw) = raw else {
        return Err(ApiError::wrong_type(
            raw,
            "\\Magento\\Customer\\Api\\Data\\AddressInterface",
        ));
    };
    let raw = bind_keys(raw, &address_keys())?;
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
    let sent = SentRegion::from(&raw)?;

    let filled = |k: &str| {
        fields
            .get(k)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.trim().is_empty())
    };
    let mut errors = Vec::new();
    for key in ["firstname", "lastname"] {
        if !filled(key) {
            errors.push(ApiError::required(key));
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
    let country_id = fields
        .get("country_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .filter(|c| !c.trim().is_empty());
    let country = country_id.as_deref().and_then(|c| shop.country(c));
    if !filled("postcode") && !country.is_some_and(|c| c.postcode_optional) {
        errors.push(ApiError::required("postcode"));
    }
    let mut region = sent.unresolved();
    match (country_id.as_deref(), country) {
        (None, _) => errors.push(ApiError::required("countryId")),
        (Some(c), Some(country))
            if shop.allowed_countries(Some(website)).iter().any(|a| a == c) =>
        {
            match sent.resolve(country) {
                Ok(resolved) => region = resolved,
                Err(e) => errors.push(e),
            }
        }
        (Some(c), _) => errors.push(
            ApiError::bad("Invalid value of \"%value\" provided for the %fieldName field.")
                .with_params(json!({ "fieldName": "countryId", "value": c })),
        ),
    }
    if !errors.is_empty() {
        return Err(ApiError::aggregate(errors));
    }

    fields.insert("street".to_owned(), json!(street));
    fields.insert("region_id".to_owned(), json!(region.id));
    fields.insert(
        "region".to_owned(),
        json!({"region_code": region.code, "region": region.name, "region_id": region.id}),
    );
    if let Some(Value::Array(attrs)) = raw.get("custom_attributes")
        && !attrs.is_empty()
    {
        fields.insert("custom_attributes".to_owned(), Value::Array(attrs.clone()));
    }
    let flag = |k: &str| raw.get(k).map(cast_bool).transpose().map(Option::flatten);
    Ok(AddressInput {
        id: raw.get("id").map(cast_int).transpose()?.flatten(),
        fields,
        default_billing: flag("default_billing")?,
        default_shipping: flag("default_shipping")?,
    })
}

/// The region as a request gives it: the top-level `region_id` and the `region` object.
struct SentRegion {
    id: Option<i64>,
    code: Option<String>,
    name: Option<String>,
}

/// The region an address is saved with; Magento always answers with all three (`region_id`
/// 0 and nulls when there is none: the payload of magento/magento2#14054).
struct SavedRegion {
    id: i64,
    code: Option<String>,
    name: Option<String>,
}

impl SentRegion {
    fn from(raw: &Map<String, Value>) -> Result<Self, ApiError> {
        let text = |v: Option<&Value>| -> Result<Option<String>, ApiError> {
            Ok(v.map(cast_string)
                .transpose()?
                .flatten()
                .filter(|s| !s.trim().is_empty()))
        };
        let mut sent = SentRegion {
            id: raw.get("region_id").map(cast_int).transpose()?.flatten(),
            code: None,
            name: None,
        };
        match raw.get("region") {
            None | Some(Value::Null) => {}
            Some(Value::Object(r)) => {
                let r = bind_keys(r, REGION_KEYS)?;
                sent.code = text(r.get("region_code"))?;
                sent.name = text(r.get("region"))?;
                let id = r.get("region_id").map(cast_int).transpose()?.flatten();
                sent.id = sent.id.filter(|&i| i != 0).or(id);
            }
            Some(other) => {
                return Err(ApiError::wrong_type(
                    other,
                    "\\Magento\\Customer\\Api\\Data\\RegionInterface",
                ));
            }
        }
        sent.id = sent.id.filter(|&i| i != 0);
        Ok(sent)
    }

    /// The region saved for a country without a region list: the text as given, which
    /// `AbstractAddress::getRegionCode` also gives as the code.
    fn unresolved(&self) -> SavedRegion {
        SavedRegion {
            id: self.id.unwrap_or(0),
            code: self.name.clone().filter(|_| self.id.is_none()),
            name: self.name.clone(),
        }
    }

    /// `Validator\Country::validateRegion` for a country of the shop: a region id must be one
    /// of the country's (400 `Invalid value of "%value"` with the id, as the unit test
    /// `Customer/Test/Unit/Model/ResourceModel/AddressRepositoryTest::testInvalidRegionId`
    /// expects); a code or a name is
    /// looked up in the list (`AbstractAddress::getRegionId` loads the region by code); a
    /// country whose regions are required needs one (`"regionId" is required`).
    fn resolve(&self, country: &Country) -> Result<SavedRegion, ApiError> {
        if country.regions.is_empty() {
            return Ok(self.unresolved());
        }
        let found = match self.id {
            Some(id) => Some(country.region(id).ok_or_else(|| {
                ApiError::bad("Invalid value of \"%value\" provided for the %fieldName field.")
                    .with_params(json!({ "fieldName": "regionId", "value": id.to_string() }))
            })?),
            None => [&self.code, &self.name]
                .into_iter()
                .flatten()
                .find_map(|text| country.region_named(text)),
        };
        match found {
            Some(r) => Ok(SavedRegion {
                id: r.id,
                code: Some(r.code.clone()),
                name: Some(r.name.clone()),
            }),
            None if country.region_required => Err(ApiError::required("regionId")),
            None => Ok(self.unresolved()),
        }
    }
}

#[cfg(test)]
mod tests;

//! `GET /V1/customers/search`: parsing Magento's bracketed `searchCriteria[...]` query keys
//! (camelCase or snake_case) and running filters, sort orders and paging over customers.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::stored::Stored;

/// Largest page size Magento's input limiter allows.
const MAX_PAGE_SIZE: u64 = 300;

/// Parsed search criteria.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SearchCriteria {
    /// Filters inside a group are ORed, groups are ANDed.
    filter_groups: Vec<Vec<Filter>>,
    /// (field, descending).
    sort_orders: Vec<(String, bool)>,
    page_size: Option<u64>,
    current_page: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Filter {
    field: String,
    value: String,
    condition: String,
}

/// Condition types the sandbox understands.
const CONDITIONS: &[&str] = &[
    "eq", "neq", "like", "nlike", "in", "nin", "gt", "gteq", "lt", "lteq", "from", "to", "null",
    "notnull", "finset",
];

impl SearchCriteria {
    /// Builds the criteria from decoded query pairs. Fails like Magento when there is no
    /// `searchCriteria` at all, a number does not parse, a condition is unknown, or the page is
    /// larger than 300.
    pub(crate) fn from_query<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ApiError> {
        let mut seen = false;
        let mut groups: BTreeMap<u64, BTreeMap<u64, Filter>> = BTreeMap::new();
        let mut sorts: BTreeMap<u64, (String, bool)> = BTreeMap::new();
        let mut criteria = Self::default();
        for (key, value) in pairs {
            let Some(path) = key_path(key) else { continue };
            seen = true;
            let path: Vec<&str> = path.iter().map(|s| snake(s)).collect();
            match path.as_slice() {
                ["filter_groups", g, "filters", f, leaf] => {
                    let filter = groups
                        .entry(index(g)?)
                        .or_default()
                        .entry(index(f)?)
                        .or_default();
                    match *leaf {
                        "field" => filter.field = value.to_owned(),
                        "value" => filter.value = value.to_owned(),
                        "condition_type" => filter.condition = value.to_ascii_lowercase(),
                        _ => {}
                    }
                }
                ["sort_orders", i, leaf] => {
                    let sort = sorts.entry(index(i)?).or_default();
                    match *leaf {
                        "field" => sort.0 = value.to_owned(),
                        "direction" => sort.1 = value.eq_ignore_ascii_case("desc"),
                        _ => {}
                    }
                }
                ["page_size"] => criteria.page_size = Some(number(value)?),
                ["current_page"] => criteria.current_page = Some(number(value)?),
                _ => {}
            }
        }
        if !seen {
            return Err(ApiError::required("searchCriteria"));
        }
        if criteria.page_size.is_some_and(|p| p > MAX_PAGE_SIZE) {
            return Err(ApiError::bad("Maximum SearchCriteria pageSize is %max")
                .with_params(json!({ "max": MAX_PAGE_SIZE })));
        }
        for group in groups.into_values() {
            let mut filters = Vec::new();
            for mut filter in group.into_values().filter(|f| !f.field.is_empty()) {
                if filter.condition.is_empty() {
                    filter.condition = "eq".to_owned();
                }
                if !CONDITIONS.contains(&filter.condition.as_str()) {
                    return Err(ApiError::bad(
                        "Invalid value of \"%value\" provided for the %fieldName field.",
                    )
                    .with_params(
                        json!({ "fieldName": "condition_type", "value": filter.condition }),
                    ));
                }
                filters.push(filter);
            }
            if !filters.is_empty() {
                criteria.filter_groups.push(filters);
            }
        }
        criteria.sort_orders = sorts.into_values().filter(|s| !s.0.is_empty()).collect();
        Ok(criteria)
    }

    /// The fields the filters name, in order.
    pub(crate) fn filter_fields(&self) -> impl Iterator<Item = &str> {
        self.filter_groups
            .iter()
            .flatten()
            .map(|f| f.field.as_str())
    }

    /// The email a filter group asks for with `eq` and nothing else: every hit has it.
    pub(crate) fn email_eq(&self) -> Option<&str> {
        self.filter_groups
            .iter()
            .find_map(|group| match group.as_slice() {
                [f] if f.field == "email" && f.condition == "eq" => Some(f.value.as_str()),
                _ => None,
            })
    }

    /// Runs the search over `customers` in id order; the answer is the full response body. A
    /// customer is parsed only when a filter or a sort order on another field than the id
    /// needs its values, and for the page returned: paging through a million customers by id
    /// (as `custsync pull` does) must neither read nor gather them all for every page.
    pub(crate) fn run<'a, I>(&self, customers: I) -> Value
    where
        I: DoubleEndedIterator<Item = &'a Stored> + Clone,
    {
        let by_id = |(field, _): &(String, bool)| field == "id" || field == "entity_id";
        let (page, total): (Vec<&Stored>, usize) =
            if self.filter_groups.is_empty() && self.sort_orders.iter().all(by_id) {
                // All customers (a map's values) say how many they are; a selection is counted.
                let total = match customers.size_hint() {
                    (low, Some(high)) if low == high => low,
                    _ => customers.clone().count(),
                };
                let (skip, take) = self.window(total);
                let descending = self.sort_orders.first().is_some_and(|(_, desc)| *desc);
                let ordered: Box<dyn Iterator<Item = &Stored>> = if descending {
                    Box::new(customers.rev())
                } else {
                    Box::new(customers)
                };
                (ordered.skip(skip).take(take).collect(), total)
            } else {
                let hits = self.sorted_hits(customers);
                let (skip, take) = self.window(hits.len());
                (
                    hits.iter().skip(skip).take(take).copied().collect(),
                    hits.len(),
                )
            };
        let items: Vec<Value> = page
            .into_iter()
            .map(|stored| Value::Object(stored.record()))
            .collect();
        json!({
            "items": items,
            "search_criteria": self.echo(),
            "total_count": total,
        })
    }

    /// The customers that pass the filters, in the requested order.
    fn sorted_hits<'a>(&self, customers: impl Iterator<Item = &'a Stored>) -> Vec<&'a Stored> {
        // Each hit with the values of the sort fields.
        let mut hits: Vec<(&Stored, Vec<Option<Value>>)> = customers
            .filter_map(|stored| {
                let c = stored.record();
                let keep = self
                    .filter_groups
                    .iter()
                    .all(|group| group.iter().any(|f| f.matches(&c)));
                let keys = || {
                    self.sort_orders
                        .iter()
                        .map(|(field, _)| field_value(&c, field).map(Cow::into_owned))
                        .collect()
                };
                keep.then(|| (stored, keys()))
            })
            .collect();
        // Stable sort on top of id order: ties keep the database's natural (id) order.
        hits.sort_by(|(_, a), (_, b)| {
            for ((_, desc), (x, y)) in self.sort_orders.iter().zip(a.iter().zip(b)) {
                let ord = compare(x.as_ref(), y.as_ref());
                let ord = if *desc { ord.reverse() } else { ord };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            Ordering::Equal
        });
        hits.into_iter().map(|(stored, _)| stored).collect()
    }

    /// The hits to skip and to take for the requested page of `total` hits.
    fn window(&self, total: usize) -> (usize, usize) {
        let Some(size) = self.page_size.filter(|&p| p > 0) else {
            return (0, total);
        };
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        let pages = total.div_ceil(size).max(1);
        // Magento's collection clamps the page, so a page past the end is the last one.
        let current = usize::try_from(self.current_page.unwrap_or(1))
            .unwrap_or(usize::MAX)
            .clamp(1, pages);
        ((current - 1) * size, size)
    }

    /// The criteria as Magento echoes them back.
    fn echo(&self) -> Value {
        let groups: Vec<Value> = self
            .filter_groups
            .iter()
            .map(|g| {
                let filters: Vec<Value> = g
                    .iter()
                    .map(|f| json!({"field": f.field, "value": f.value, "condition_type": f.condition}))
                    .collect();
                json!({ "filters": filters })
            })
            .collect();
        let mut echo = Map::new();
        echo.insert("filter_groups".into(), Value::Array(groups));
        if !self.sort_orders.is_empty() {
            let sorts = self
                .sort_orders
                .iter()
                .map(|(field, desc)| json!({"field": field, "direction": if *desc { "DESC" } else { "ASC" }}))
                .collect();
            echo.insert("sort_orders".into(), Value::Array(sorts));
        }
        if let Some(size) = self.page_size {
            echo.insert("page_size".into(), json!(size));
        }
        if let Some(page) = self.current_page {
            echo.insert("current_page".into(), json!(page));
        }
        Value::Object(echo)
    }
}

impl Filter {
    fn matches(&self, customer: &Map<String, Value>) -> bool {
        let stored = field_value(customer, &self.field);
        let stored = stored.as_deref();
        let probe = || Value::String(self.value.clone());
        let list = || {
            self.value
                .split(',')
                .map(|v| Value::String(v.trim().to_owned()))
        };
        match self.condition.as_str() {
            "null" => stored.is_none(),
            "notnull" => stored.is_some(),
            "like" => stored.is_some_and(|s| like(&self.value, &text(s))),
            "nlike" => stored.is_some_and(|s| !like(&self.value, &text(s))),
            "in" => stored.is_some_and(|s| list().any(|v| compare(Some(s), Some(&v)).is_eq())),
            "nin" => stored.is_some_and(|s| list().all(|v| compare(Some(s), Some(&v)).is_ne())),
            "finset" => stored.is_some_and(|s| {
                text(s)
                    .split(',')
                    .any(|p| p.eq_ignore_ascii_case(&self.value))
            }),
            condition => {
                // SQL semantics: a comparison with NULL is never true.
                let Some(stored) = stored else { return false };
                let ord = compare(Some(stored), Some(&probe()));
                match condition {
                    "neq" => ord.is_ne(),
                    "gt" => ord.is_gt(),
                    "gteq" | "from" => ord.is_ge(),
                    "lt" => ord.is_lt(),
                    "lteq" | "to" => ord.is_le(),
                    _ => ord.is_eq(),
                }
            }
        }
    }
}

/// The scalar value of a field: a top-level one (`entity_id` is the database name of `id`),
/// a custom attribute by its code, the full `name`, or a field of the default billing address
/// (`billing_city`, `company`, ...), the columns `CustomerRepository::getList` joins in.
fn field_value<'a>(customer: &'a Map<String, Value>, field: &str) -> Option<Cow<'a, Value>> {
    let scalar = |v: &Value| !v.is_null() && !v.is_array() && !v.is_object();
    let field = if field == "entity_id" { "id" } else { field };
    if let Some(v) = customer.get(field) {
        return scalar(v).then_some(Cow::Borrowed(v));
    }
    if field == "name" {
        let parts: Vec<&str> = ["prefix", "firstname", "middlename", "lastname", "suffix"]
            .iter()
            .filter_map(|k| customer.get(*k).and_then(Value::as_str))
            .filter(|s| !s.is_empty())
            .collect();
        return (!parts.is_empty()).then(|| Cow::Owned(Value::String(parts.join(" "))));
    }
    let billing = |key: &str| {
        let id: i64 = customer.get("default_billing")?.as_str()?.parse().ok()?;
        let address = customer
            .get("addresses")?
            .as_array()?
            .iter()
            .find(|a| a.get("id").and_then(Value::as_i64) == Some(id))?;
        let v = match key {
            "region" => address.get("region")?.get("region")?,
            key => address.get(key)?,
        };
        scalar(v).then_some(Cow::Borrowed(v))
    };
    if let Some(key) = field.strip_prefix("billing_") {
        return billing(key);
    }
    if field == "company" {
        return billing("company");
    }
    customer
        .get("custom_attributes")?
        .as_array()?
        .iter()
        .find(|a| a.get("attribute_code").and_then(Value::as_str) == Some(field))
        .and_then(|a| a.get("value"))
        .filter(|v| scalar(v))
        .map(Cow::Borrowed)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Numbers compare numerically, everything else case-insensitively (MySQL's `_ci`
/// collation); NULL sorts first.
fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => {
            let (ta, tb) = (text(a), text(b));
            match (ta.trim().parse::<f64>(), tb.trim().parse::<f64>()) {
                (Ok(x), Ok(y)) if a.is_number() || b.is_number() => x.total_cmp(&y),
                _ => ta.to_lowercase().cmp(&tb.to_lowercase()),
            }
        }
    }
}

/// SQL `LIKE`, case-insensitive: `%` any run, `_` one character.
fn like(pattern: &str, subject: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let s: Vec<char> = subject.to_lowercase().chars().collect();
    // Classic wildcard matching with backtracking to the last `%`.
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '%')
}

/// `searchCriteria[a][b]` -> `["a", "b"]`; `searchCriteria` alone -> `[]`; other keys -> None.
fn key_path(key: &str) -> Option<Vec<&str>> {
    let rest = key.strip_prefix("searchCriteria")?;
    let mut path = Vec::new();
    let mut rest = rest;
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let end = inner.find(']')?;
        path.push(&inner[..end]);
        rest = &inner[end + 1..];
    }
    Some(path)
}

fn snake(segment: &str) -> &str {
    match segment {
        "filterGroups" => "filter_groups",
        "conditionType" => "condition_type",
        "pageSize" => "page_size",
        "currentPage" => "current_page",
        "sortOrders" => "sort_orders",
        other => other,
    }
}

fn index(segment: &str) -> Result<u64, ApiError> {
    segment
        .parse()
        .map_err(|_| ApiError::wrong_type(&json!(segment), "int"))
}

fn number(value: &str) -> Result<u64, ApiError> {
    value
        .trim()
        .parse()
        .map_err(|_| ApiError::wrong_type(&json!(value), "int"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards() {
        assert!(like("%@example.com", "Ann@Example.COM"));
        assert!(like("a_n%", "ann lee"));
        assert!(!like("a_n", "ann lee"));
        assert!(like("%", ""));
        assert!(!like("b%", "ab"));
    }

    #[test]
    fn criteria_parse_both_spellings_and_limits() {
        let c = SearchCriteria::from_query([
            (
                "searchCriteria[filter_groups][0][filters][0][field]",
                "email",
            ),
            (
                "searchCriteria[filterGroups][0][filters][0][value]",
                "x@y.z",
            ),
            ("searchCriteria[pageSize]", "10"),
            ("searchCriteria[current_page]", "2"),
        ])
        .expect("valid criteria");
        assert_eq!(c.filter_groups.len(), 1);
        assert_eq!(c.filter_groups[0][0].condition, "eq");
        assert_eq!((c.page_size, c.current_page), (Some(10), Some(2)));

        let err = SearchCriteria::from_query([("other", "1")]).expect_err("no criteria");
        assert_eq!(err.parameters, Some(json!({"fieldName": "searchCriteria"})));
        let err =
            SearchCriteria::from_query([("searchCriteria[pageSize]", "301")]).expect_err("too big");
        assert_eq!(err.parameters, Some(json!({"max": 300})));
    }
}

//! Tests of searches over the stored customers: filters, paging, and e-mail look-ups through
//! the index.
#![cfg(test)]

use super::tests::{at, customer, shop};
use super::*;

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
        store.create(shop(), &body, None, at(1)).expect("created");
    }
    let run = |pairs: &[(&str, &str)]| {
        let criteria = SearchCriteria::from_query(pairs.iter().copied()).expect("criteria");
        store.search(shop(), &criteria).expect("known fields")
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
        store.create(shop(), &body, None, at(1)).expect("created");
    }
    let run = |pairs: &[(&str, &str)]| {
        let criteria = SearchCriteria::from_query(pairs.iter().copied()).expect("criteria");
        let r = store.search(shop(), &criteria).expect("known fields");
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

//! The async bulk API over real HTTP: both route forms, the 202 and status shapes, binding
//! and the item limit, the consumer's statuses and pace, bulk saves without merge, and the
//! bulk faults.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::tests::{client, json_of, token};
use crate::{Faults, RunningSandbox, SandboxConfig, start};

async fn sandbox(faults: Faults, consumer_rate: u32) -> RunningSandbox {
    let listen: SocketAddr = ([127, 0, 0, 1], 0).into();
    let config = SandboxConfig {
        faults,
        consumer_rate,
        ..SandboxConfig::default()
    };
    start(config, listen).await.expect("sandbox starts")
}

/// A client with a token, and the sandbox's two bases: SaaS (`/sandbox`) and PaaS
/// (`/rest/default`).
struct Shop {
    sb: RunningSandbox,
    http: reqwest::Client,
    token: String,
}

impl Shop {
    async fn new(faults: Faults, consumer_rate: u32) -> Self {
        let sb = sandbox(faults, consumer_rate).await;
        let http = client();
        let token = token(&http, &sb).await;
        Shop { sb, http, token }
    }

    fn saas(&self) -> String {
        self.sb.endpoint()
    }

    fn paas(&self, store: &str) -> String {
        format!("http://{}/rest/{store}", self.sb.addr())
    }

    async fn send(
        &self,
        method: reqwest::Method,
        url: String,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        json_of(request.send().await.expect("sandbox answers")).await
    }

    async fn post_bulk(&self, url: String, items: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, url, Some(items)).await
    }

    async fn get(&self, url: String) -> (u16, Value) {
        self.send(reqwest::Method::GET, url, None).await
    }

    /// Polls the detailed status until no operation is open (status 4).
    async fn finished(&self, uuid: &str) -> Value {
        let url = format!("{}/V1/bulk/{uuid}/detailed-status", self.saas());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, body) = self.get(url.clone()).await;
            assert_eq!(status, 200, "{body}");
            let open = body["operations_list"]
                .as_array()
                .expect("operations_list")
                .iter()
                .any(|op| op["status"] == 4);
            if !open {
                return body;
            }
            assert!(Instant::now() < deadline, "bulk {uuid} still open: {body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn customer(email: &str) -> Value {
    json!({"customer": {"email": email, "firstname": "Ann", "lastname": "Lee"}})
}

fn uuid_of(answer: &Value) -> String {
    answer["bulk_uuid"].as_str().expect("bulk_uuid").to_owned()
}

#[tokio::test]
async fn both_forms_accept_with_202_and_the_consumer_creates() {
    let shop = Shop::new(Faults::default(), 0).await;
    let items = json!([customer("a@example.com"), customer("b@example.com")]);
    let (status, saas) = shop
        .post_bulk(format!("{}/V1/async/bulk/customers", shop.saas()), &items)
        .await;
    assert_eq!(status, 202, "{saas}");
    assert_eq!(saas["errors"], false);
    let request_items = saas["request_items"].as_array().expect("request_items");
    assert_eq!(request_items.len(), 2);
    assert_eq!(request_items[1]["id"], 1);
    assert_eq!(request_items[1]["status"], "accepted");
    assert_eq!(
        request_items[1]["data_hash"].as_str().map(str::len),
        Some(64)
    );
    assert_eq!(uuid_of(&saas).len(), 36);

    let items = json!([customer("c@example.com")]);
    let (status, paas) = shop
        .post_bulk(
            format!("{}/async/bulk/V1/customers", shop.paas("default")),
            &items,
        )
        .await;
    assert_eq!(status, 202, "{paas}");

    let done = shop.finished(&uuid_of(&saas)).await;
    assert_eq!(done["operation_count"], 2);
    assert_eq!(done["bulk_id"], uuid_of(&saas).as_str());
    let op = &done["operations_list"][0];
    assert_eq!(op["status"], 1, "{op}");
    assert_eq!(
        op["topic_name"],
        "async.magento.customer.api.accountmanagementinterface.createaccount.post"
    );
    assert_eq!(op["bulk_uuid"], uuid_of(&saas).as_str());
    let created: Value =
        serde_json::from_str(op["result_serialized_data"].as_str().expect("result")).expect("JSON");
    assert_eq!(created["email"], "a@example.com");
    assert!(created["id"].as_i64().is_some(), "{created}");

    // The PaaS status route, in the global scope.
    shop.finished(&uuid_of(&paas)).await;
    let url = format!("{}/V1/bulk/{}/status", shop.paas("all"), uuid_of(&paas));
    let (status, short) = shop.get(url).await;
    assert_eq!(status, 200, "{short}");
    assert_eq!(short["operations_list"][0]["status"], 1);
    assert!(
        short["operations_list"][0]
            .get("result_serialized_data")
            .is_none()
    );
    assert_eq!(shop.sb.customers().await.expect("customers").len(), 3);
}

#[tokio::test]
async fn routes_are_admitted_like_the_synchronous_ones() {
    let shop = Shop::new(Faults::default(), 0).await;
    let url = format!("{}/V1/async/bulk/customers", shop.saas());
    let response = shop
        .http
        .post(&url)
        .json(&json!([]))
        .send()
        .await
        .expect("answer");
    let (status, body) = json_of(response).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["parameters"]["resources"], "Magento_Customer::manage");

    let status_url = format!("{}/V1/bulk/nope/detailed-status", shop.saas());
    let (status, _) = json_of(shop.http.get(&status_url).send().await.expect("answer")).await;
    assert_eq!(status, 401);
    let (status, body) = shop.get(status_url).await;
    assert_eq!(status, 404);
    assert_eq!(body["message"], "Bulk uuid %bulkUuid not exist");
    assert_eq!(body["parameters"]["bulkUuid"], "nope");
    let count = format!("{}/V1/bulk/nope/operation-status/1", shop.saas());
    assert_eq!(shop.get(count).await, (200, json!(0)));

    // An unknown store code in a PaaS path, and the SaaS order of segments under /rest/.
    let items = json!([customer("a@example.com")]);
    let (status, body) = shop
        .post_bulk(
            format!("{}/async/bulk/V1/customers", shop.paas("nowhere")),
            &items,
        )
        .await;
    assert_eq!(
        (status, body["message"].clone()),
        (404, json!("Request does not match any route."))
    );
    let (status, _) = shop
        .post_bulk(
            format!("{}/V1/async/bulk/customers", shop.paas("default")),
            &items,
        )
        .await;
    assert_eq!(status, 404);
    // GET is no bulk route.
    let (status, _) = shop
        .get(format!("{}/V1/async/bulk/customers", shop.saas()))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_bad_item_fails_the_whole_request_and_nothing_is_queued() {
    let shop = Shop::new(Faults::default(), 0).await;
    let url = format!("{}/V1/async/bulk/customers", shop.saas());
    let items = json!([customer("a@example.com"), {"customer": "not a customer"}]);
    let (status, body) = shop.post_bulk(url.clone(), &items).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["parameters"]["type"],
        "\\Magento\\Customer\\Api\\Data\\CustomerInterface"
    );
    let items = json!([customer("a@example.com"), {"customer": {"email": "b@example.com", "nickname": "x"}}]);
    let (status, _) = shop.post_bulk(url.clone(), &items).await;
    assert_eq!(status, 400);
    let (status, body) = shop.send(reqwest::Method::POST, url.clone(), None).await;
    assert_eq!(
        (status, body["message"].clone()),
        (400, json!("Decoding error."))
    );

    // A later bulk is the first the consumer works: nothing of the refused ones was queued.
    let (_, accepted) = shop
        .post_bulk(url, &json!([customer("c@example.com")]))
        .await;
    shop.finished(&uuid_of(&accepted)).await;
    let customers = shop.sb.customers().await.expect("customers");
    assert_eq!(customers.len(), 1);
    assert_eq!(customers[0]["email"], "c@example.com");
}

#[tokio::test]
async fn more_than_5000_items_is_magentos_400() {
    let shop = Shop::new(Faults::default(), 0).await;
    let items = Value::Array(vec![json!({}); 5001]);
    let (status, body) = shop
        .post_bulk(format!("{}/V1/async/bulk/customers", shop.saas()), &items)
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["message"], "Maximum items of type \"%type\" is %max");
    assert_eq!(body["parameters"]["max"], 5000);
}

#[tokio::test]
async fn failed_operations_are_status_3_with_the_synchronous_message() {
    let shop = Shop::new(Faults::default(), 0).await;
    let url = format!("{}/V1/async/bulk/customers", shop.saas());
    let items = json!([
        customer("a@example.com"),
        customer("A@example.com"),
        {"customer": {"email": "b@example.com", "firstname": "Ann", "lastname": "Lee"}, "password": "short"},
    ]);
    let (_, accepted) = shop.post_bulk(url, &items).await;
    let uuid = uuid_of(&accepted);
    let done = shop.finished(&uuid).await;
    let ops = done["operations_list"].as_array().expect("operations");
    assert_eq!(ops[0]["status"], 1);
    assert!(ops[0].get("serialized_data").is_none(), "{}", ops[0]);
    assert_eq!(ops[1]["status"], 3);
    assert_eq!(
        ops[1]["result_message"],
        "A customer with the same email address already exists in an associated website."
    );
    assert_eq!(ops[1]["error_code"], 0);
    assert!(
        ops[1]["serialized_data"]
            .as_str()
            .is_some_and(|d| d.contains("meta_information"))
    );
    assert_eq!(
        ops[2]["result_message"],
        "The password needs at least 8 characters. Create a new password and try again."
    );
    let count = format!("{}/V1/bulk/{uuid}/operation-status/3", shop.saas());
    assert_eq!(shop.get(count).await, (200, json!(2)));
}

#[tokio::test]
async fn the_consumer_keeps_its_rate_and_operations_stay_open_until_then() {
    let shop = Shop::new(Faults::default(), 20).await;
    let items = Value::Array(
        (0..10)
            .map(|i| customer(&format!("c{i}@example.com")))
            .collect(),
    );
    let started = Instant::now();
    let (_, accepted) = shop
        .post_bulk(format!("{}/V1/async/bulk/customers", shop.saas()), &items)
        .await;
    let uuid = uuid_of(&accepted);
    let open = format!("{}/V1/bulk/{uuid}/operation-status/4", shop.saas());
    let (_, count) = shop.get(open).await;
    assert!(
        count.as_u64().is_some_and(|n| n >= 5),
        "open right after: {count}"
    );
    shop.finished(&uuid).await;
    // Ten operations at 20/s: the last is due 450 ms after the first.
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_bulk_save_has_no_merge_but_keeps_absent_addresses() {
    let shop = Shop::new(Faults::default(), 0).await;
    let address = json!({"firstname": "Ann", "lastname": "Lee", "street": ["1 Main St"],
        "city": "Austin", "postcode": "78701", "country_id": "US", "region_id": 57,
        "telephone": "555", "default_billing": true});
    let body = json!({"customer": {"email": "a@example.com", "firstname": "Ann",
        "lastname": "Lee", "middlename": "Q", "dob": "1990-05-17", "addresses": [address]}});
    let url = format!("{}/V1/customers", shop.saas());
    let (status, created) = shop.send(reqwest::Method::POST, url, Some(&body)).await;
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_i64().expect("id");

    let url = format!("{}/async/bulk/V1/customers/byCustomerId", shop.paas("all"));
    let items = json!([
        {"customer": {"id": id, "email": "a@example.com", "firstname": "Ann", "lastname": "Lee-Smith", "website_id": 1}},
        {"customer": {"id": id, "email": "a@example.com", "firstname": "Ann", "lastname": "Lee"}},
        {"customer": {"email": "a@example.com", "firstname": "Ann", "lastname": "Lee", "website_id": 1}},
        {"customer": {"id": 999, "email": "z@example.com", "firstname": "Ann", "lastname": "Lee", "website_id": 1}},
    ]);
    let (status, accepted) = shop.send(reqwest::Method::PUT, url, Some(&items)).await;
    assert_eq!(status, 202, "{accepted}");
    let done = shop.finished(&uuid_of(&accepted)).await;
    let ops = done["operations_list"].as_array().expect("operations");
    assert_eq!(ops[0]["status"], 1, "{}", ops[0]);
    assert_eq!(
        ops[0]["topic_name"],
        "async.magento.customer.api.customerrepositoryinterface.save.put"
    );
    let (status, saved) = shop.get(format!("{}/V1/customers/{id}", shop.saas())).await;
    assert_eq!(status, 200);
    assert_eq!(saved["lastname"], "Lee-Smith");
    assert!(saved.get("middlename").is_none(), "cleared: {saved}");
    assert!(saved.get("dob").is_none(), "cleared: {saved}");
    assert_eq!(saved["addresses"], created["addresses"], "kept");
    assert_eq!(saved["default_billing"], created["default_billing"]);
    assert_eq!(saved["created_at"], created["created_at"]);

    assert_eq!(ops[1]["status"], 3);
    assert_eq!(
        ops[1]["result_message"],
        "\"Associate to Website\" is a required value."
    );
    assert_eq!(
        ops[2]["result_message"],
        "A customer with the same email address already exists in an associated website."
    );
    assert_eq!(
        ops[3]["result_message"],
        "No such entity with customerId = 999"
    );
}

#[tokio::test]
async fn injected_retriable_failures_are_status_2_and_not_applied() {
    let faults = Faults {
        p_bulk_retriable: 1.0,
        ..Faults::default()
    };
    let shop = Shop::new(faults, 0).await;
    let (_, accepted) = shop
        .post_bulk(
            format!("{}/V1/async/bulk/customers", shop.saas()),
            &json!([customer("a@example.com")]),
        )
        .await;
    let done = shop.finished(&uuid_of(&accepted)).await;
    let op = &done["operations_list"][0];
    assert_eq!(op["status"], 2, "{op}");
    assert!(
        op["result_message"]
            .as_str()
            .is_some_and(|m| m.contains("Deadlock"))
    );
    assert!(shop.sb.customers().await.expect("customers").is_empty());
}

#[tokio::test]
async fn a_lost_answer_still_queues_the_bulk() {
    let faults = Faults {
        p_bulk_answer_lost: 1.0,
        ..Faults::default()
    };
    let shop = Shop::new(faults, 0).await;
    let url = format!("{}/V1/async/bulk/customers", shop.saas());
    for (i, email) in ["a@example.com", "b@example.com", "c@example.com"]
        .iter()
        .enumerate()
    {
        let sent = shop
            .http
            .post(&url)
            .bearer_auth(&shop.token)
            .json(&json!([customer(email)]))
            .send()
            .await;
        match sent {
            Ok(response) => assert_eq!(response.status(), 500, "answer {i}"),
            Err(e) => assert!(!e.is_timeout(), "{e}"),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while shop.sb.customers().await.expect("customers").len() < 3 {
        assert!(
            Instant::now() < deadline,
            "the lost bulks were not processed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn rendered_messages_fill_named_and_positional_parameters() {
    let named = ApiError::new(404, "No such entity with %fieldName = %fieldValue")
        .with_params(json!({"fieldName": "customerId", "fieldValue": 7}));
    assert_eq!(named.rendered(), "No such entity with customerId = 7");
    let positional = ApiError::bad("At least %1 of %2").with_params(json!([8, "x"]));
    assert_eq!(positional.rendered(), "At least 8 of x");
    assert_eq!(ApiError::bad("Plain.").rendered(), "Plain.");
}

#[tokio::test]
async fn a_paas_store_code_scopes_creates_and_the_synchronous_routes() {
    let shop = Shop::new(Faults::default(), 0).await;
    let url = format!("{}/async/bulk/V1/customers", shop.paas("second"));
    let (_, accepted) = shop
        .post_bulk(url, &json!([customer("a@example.com")]))
        .await;
    let done = shop.finished(&uuid_of(&accepted)).await;
    let created: Value = serde_json::from_str(
        done["operations_list"][0]["result_serialized_data"]
            .as_str()
            .expect("result"),
    )
    .expect("JSON");
    assert_eq!(
        (created["website_id"].clone(), created["store_id"].clone()),
        (json!(2), json!(2))
    );

    // The synchronous routes under the same base, query string kept.
    let search = format!(
        "{}/V1/customers/search?searchCriteria[pageSize]=10",
        shop.paas("all")
    );
    let (status, found) = shop.get(search).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["total_count"], 1);
    let (status, _) = shop
        .get(format!(
            "{}/V1/customers/{}",
            shop.paas("default"),
            created["id"]
        ))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bulk_work_is_journaled_and_shutdown_waits_for_the_consumer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = || SandboxConfig {
        data_dir: Some(dir.path().join("sb")),
        consumer_rate: 5,
        ..SandboxConfig::default()
    };
    let listen: SocketAddr = ([127, 0, 0, 1], 0).into();
    let sb = start(config(), listen).await.expect("sandbox starts");
    let http = client();
    let token = token(&http, &sb).await;
    let items = Value::Array(
        (0..20)
            .map(|i| customer(&format!("c{i}@example.com")))
            .collect(),
    );
    let response = http
        .post(format!("{}/V1/async/bulk/customers", sb.endpoint()))
        .bearer_auth(&token)
        .json(&items)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 202);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Stopping with operations still open: the consumer stops with the server and lets go of
    // the data directory, and what it applied is journaled.
    sb.shutdown().await;
    let again = start(config(), listen)
        .await
        .expect("the data directory is free again");
    let kept = again.customers().await.expect("customers").len();
    assert!(
        (1..20).contains(&kept),
        "{kept} customers after the restart"
    );
    again.shutdown().await;
}

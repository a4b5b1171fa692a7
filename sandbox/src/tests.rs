//! End-to-end tests of the sandbox over real HTTP: the token flow, Magento's error shapes,
//! the connection-level faults and keep-alive.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Faults, RunningSandbox, SandboxConfig, start};

/// One form field of an IMS token request.
type Field<'a> = (&'a str, &'a str);

const SCOPES: &str = "openid,AdobeID,email,profile,additional_info.roles,commerce.accs";

async fn sandbox(faults: Faults) -> RunningSandbox {
    let listen: SocketAddr = ([127, 0, 0, 1], 0).into();
    start(
        SandboxConfig {
            faults,
            log_requests: true,
            ..SandboxConfig::default()
        },
        listen,
    )
    .await
    .expect("sandbox starts")
}

pub(crate) fn client() -> reqwest::Client {
    // reqwest is built without a default TLS provider; plain http does not use it, but the
    // builder wants one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().expect("client builds")
}

async fn token_request(
    client: &reqwest::Client,
    sb: &RunningSandbox,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    client
        .post(sb.ims_url())
        .form(fields)
        .send()
        .await
        .expect("IMS answers")
}

pub(crate) async fn token(client: &reqwest::Client, sb: &RunningSandbox) -> String {
    let fields = [
        ("grant_type", "client_credentials"),
        ("client_id", "sandbox"),
        ("client_secret", "sandbox"),
        ("scope", SCOPES),
    ];
    let body: Value = token_request(client, sb, &fields)
        .await
        .json()
        .await
        .expect("token JSON");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

pub(crate) async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

/// Sends `request`; the status and the JSON body of the answer.
async fn answer_of(request: reqwest::RequestBuilder) -> (u16, Value) {
    json_of(request.send().await.expect("answer")).await
}

fn new_customer(email: &str) -> Value {
    json!({"customer": {"email": email, "firstname": "Ann", "lastname": "Lee"}})
}

#[tokio::test]
async fn token_flow_and_bearer_checks() {
    let sb = sandbox(Faults::default()).await;
    let c = client();

    let cases: [(&[Field], u16, &str); 4] = [
        (
            &[
                ("grant_type", "password"),
                ("client_id", "sandbox"),
                ("client_secret", "sandbox"),
                ("scope", SCOPES),
            ],
            400,
            "unsupported_grant_type",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "nobody"),
                ("client_secret", "sandbox"),
                ("scope", SCOPES),
            ],
            400,
            "invalid_client",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "sandbox"),
                ("client_secret", "wrong"),
                ("scope", SCOPES),
            ],
            401,
            "invalid_client",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "sandbox"),
                ("client_secret", "sandbox"),
                ("scope", "openid"),
            ],
            400,
            "invalid_scope",
        ),
    ];
    for (fields, status, error) in cases {
        let response = token_request(&c, &sb, fields).await;
        assert!(response.headers().contains_key("x-debug-id"));
        let (got, body) = json_of(response).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(error)),
            "fields {fields:?}"
        );
    }

    let (status, body) = json_of(
        token_request(
            &c,
            &sb,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "sandbox"),
                ("client_secret", "sandbox"),
                ("scope", SCOPES),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["token_type"].as_str(), body["expires_in"].as_u64()),
        (Some("bearer"), Some(86_399))
    );
    let issued = body["access_token"].as_str().expect("token");
    assert!(issued.starts_with("eyJ") && issued.len() == 43);

    // Fields as query parameters work too.
    let query = format!(
        "{}?grant_type=client_credentials&client_id=sandbox&client_secret=sandbox&scope=commerce.accs",
        sb.ims_url()
    );
    assert_eq!(c.post(query).send().await.expect("answer").status(), 200);

    let url = format!("{}/V1/customers/1", sb.endpoint());
    let (status, body) = answer_of(c.get(&url)).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"message": "The consumer isn't authorized to access %resources.",
        "parameters": {"resources": "Magento_Customer::customer"}})
    );
    let (status, _) = answer_of(c.get(&url).bearer_auth("eyJforged")).await;
    assert_eq!(status, 401);
    let (status, body) = answer_of(c.get(&url).bearer_auth(issued)).await;
    assert_eq!(status, 404);
    assert_eq!(
        body["parameters"],
        json!({"fieldName": "customerId", "fieldValue": 1})
    );
    assert_eq!(sb.stats().tokens_issued, 2);

    // An expired token is refused.
    let short = sandbox(Faults {
        token_ttl: Some(Duration::ZERO),
        ..Faults::default()
    })
    .await;
    let expired = token(&c, &short).await;
    let url = format!("{}/V1/customers/1", short.endpoint());
    let (status, body) = answer_of(c.delete(url).bearer_auth(expired)).await;
    assert_eq!(
        (status, &body["parameters"]["resources"]),
        (401, &json!("Magento_Customer::delete"))
    );
    short.shutdown().await;
    sb.shutdown().await;
}

#[tokio::test]
async fn magento_error_shapes_and_success_answers() {
    let sb = sandbox(Faults::default()).await;
    let c = client();
    let t = token(&c, &sb).await;
    let customers = format!("{}/V1/customers", sb.endpoint());

    let route_miss = json!({"message": "Request does not match any route."});
    for url in [
        format!("http://{}/nope", sb.addr()),
        format!("{}/V1/orders", sb.endpoint()),
    ] {
        assert_eq!(
            answer_of(c.get(url).bearer_auth(&t)).await,
            (404, route_miss.clone())
        );
    }
    let patch = answer_of(c.patch(format!("{customers}/1")).bearer_auth(&t)).await;
    assert_eq!(patch, (404, route_miss.clone()));
    let bad_store = answer_of(
        c.get(format!("{customers}/1"))
            .bearer_auth(&t)
            .header("Store", "nowhere"),
    )
    .await;
    assert_eq!(bad_store, (404, route_miss));

    // Decoding comes after the ACL check.
    let garbage = || {
        c.post(&customers)
            .header("content-type", "application/json")
            .body("{not json")
    };
    assert_eq!(answer_of(garbage()).await.0, 401);
    assert_eq!(
        answer_of(garbage().bearer_auth(&t)).await,
        (400, json!({"message": "Decoding error."}))
    );

    let (status, created) = answer_of(
        c.post(&customers)
            .bearer_auth(&t)
            .header("Store", "second")
            .header("x-api-key", "whatever")
            .json(&new_customer("ann@x.com")),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (created["id"].clone(), created["website_id"].clone()),
        (json!(1), json!(2))
    );
    let id_url = format!("{customers}/1");

    let (status, body) = answer_of(
        c.put(&id_url)
            .bearer_auth(&t)
            .json(&json!({"customer": {"lastname": "Doe"}})),
    )
    .await;
    assert_eq!(
        (
            status,
            body["lastname"].as_str(),
            body["firstname"].as_str()
        ),
        (200, Some("Doe"), Some("Ann"))
    );

    let (status, body) = answer_of(
        c.post(&customers)
            .bearer_auth(&t)
            .json(&json!({"customer": {"email": "b@x.com",
        "firstname": "B", "lastname": "C", "addresses": [{"country_id": "US"}]}})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "One or more input exceptions have occurred."
    );
    assert!(body["errors"].as_array().is_some_and(|e| e.len() > 1));
    assert!(body.get("parameters").is_none());

    let search = format!("{}/V1/customers/search", sb.endpoint());
    let (status, body) = answer_of(c.get(&search).bearer_auth(&t)).await;
    assert_eq!(
        (status, body["parameters"].clone()),
        (400, json!({"fieldName": "searchCriteria"}))
    );
    let (status, body) = answer_of(c.get(&search).bearer_auth(&t).query(&[
        (
            "searchCriteria[filterGroups][0][filters][0][field]",
            "email",
        ),
        (
            "searchCriteria[filterGroups][0][filters][0][value]",
            "ANN@x.com",
        ),
        ("searchCriteria[pageSize]", "50"),
    ]))
    .await;
    assert_eq!(
        (
            status,
            body["total_count"].clone(),
            body["items"][0]["id"].clone()
        ),
        (200, json!(1), json!(1))
    );

    assert_eq!(
        answer_of(c.delete(&id_url).bearer_auth(&t)).await,
        (200, json!(true))
    );
    assert_eq!(answer_of(c.delete(&id_url).bearer_auth(&t)).await.0, 404);
    assert!(sb.customers().await.expect("customers").is_empty());
    sb.shutdown().await;
}

#[tokio::test]
async fn write_then_drop_closes_connection_after_storing() {
    let sb = sandbox(Faults {
        p_write_then_drop: 1.0,
        ..Faults::default()
    })
    .await;
    let c = client();
    let t = token(&c, &sb).await;
    let result = c
        .post(format!("{}/V1/customers", sb.endpoint()))
        .bearer_auth(&t)
        .json(&new_customer("ann@x.com"))
        .send()
        .await;
    let error = result.expect_err("the connection is dropped without an answer");
    assert!(!error.is_status() && !error.is_timeout(), "{error:?}");
    let stored = sb.customers().await.expect("customers");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["email"], "ann@x.com");
    let last = sb.stats().requests.last().cloned().expect("recorded");
    assert_eq!(
        (last.method.as_str(), last.path.as_str(), last.status),
        ("POST", "/sandbox/V1/customers", 0)
    );
    // Reads are never dropped.
    let response = c
        .get(format!("{}/V1/customers/1", sb.endpoint()))
        .bearer_auth(&t)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    sb.shutdown().await;
}

#[tokio::test]
async fn write_then_500_and_throttling_faults() {
    let sb = sandbox(Faults {
        p_write_then_500: 1.0,
        p_429: 0.0,
        ..Faults::default()
    })
    .await;
    let c = client();
    let t = token(&c, &sb).await;
    let (status, body) = answer_of(
        c.post(format!("{}/V1/customers", sb.endpoint()))
            .bearer_auth(&t)
            .json(&new_customer("a@x.com")),
    )
    .await;
    assert_eq!(status, 500);
    assert!(body["message"].as_str().is_some_and(|m| m.starts_with(
        "Internal Error. Details are available in Magento log file. Report ID: webapi-"
    )));
    assert_eq!(
        sb.customers().await.expect("customers").len(),
        1,
        "the write happened anyway"
    );
    sb.shutdown().await;

    let sb = sandbox(Faults {
        p_429: 1.0,
        retry_after: Duration::from_secs(7),
        ..Faults::default()
    })
    .await;
    let t = token(&c, &sb).await;
    let response = c
        .get(format!("{}/V1/customers/1", sb.endpoint()))
        .bearer_auth(&t)
        .send()
        .await
        .expect("answer");
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("7")
    );
    assert_eq!(
        json_of(response).await,
        (429, json!({"message": "Too Many Requests"}))
    );
    sb.shutdown().await;

    let sb = sandbox(Faults {
        rate_limit: Some(2),
        ..Faults::default()
    })
    .await;
    let t = token(&c, &sb).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = c
            .get(format!("{}/V1/customers/1", sb.endpoint()))
            .bearer_auth(&t)
            .send()
            .await
            .expect("answer");
        statuses.push(r.status().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|&&s| s == 429).count(),
        2,
        "{statuses:?}"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn latency_delays_each_request_without_serialising_them() {
    let latency = Duration::from_millis(60);
    let sb = sandbox(Faults {
        latency,
        ..Faults::default()
    })
    .await;
    let c = client();
    let t = token(&c, &sb).await;
    let started = std::time::Instant::now();
    let requests = (0..10).map(|i| {
        let request = c
            .post(format!("{}/V1/customers", sb.endpoint()))
            .bearer_auth(&t)
            .json(&new_customer(&format!("l{i}@x.com")));
        async move {
            let sent = std::time::Instant::now();
            let response = request.send().await.expect("answer");
            assert_eq!(response.status(), 200);
            sent.elapsed()
        }
    });
    let each = futures::future::join_all(requests).await;
    assert!(each.iter().all(|d| *d >= latency), "{each:?}");
    // Ten requests one after the other would take 600 ms.
    assert!(started.elapsed() < latency * 5, "{:?}", started.elapsed());
    sb.shutdown().await;
}

#[tokio::test]
async fn keep_alive_reuses_one_connection() {
    let sb = sandbox(Faults::default()).await;
    let c = client();
    let t = token(&c, &sb).await;
    for i in 0..5 {
        let response = c
            .post(format!("{}/V1/customers", sb.endpoint()))
            .bearer_auth(&t)
            .json(&new_customer(&format!("c{i}@x.com")))
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status(), 200);
    }
    let stats = sb.stats();
    assert_eq!(stats.connections, 1);
    assert_eq!(stats.requests.len(), 6);
    assert!(stats.requests.iter().all(|r| r.status == 200));
    let ids: Vec<i64> = sb
        .customers()
        .await
        .expect("customers")
        .iter()
        .filter_map(|c| c["id"].as_i64())
        .collect();
    assert_eq!(ids, vec![1, 2, 3, 4, 5]);
    sb.shutdown().await;
}

#[tokio::test]
async fn persisted_customers_survive_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = || SandboxConfig {
        data_dir: Some(dir.path().join("sb")),
        ..SandboxConfig::default()
    };
    let listen: SocketAddr = ([127, 0, 0, 1], 0).into();
    let c = client();
    let sb = start(config(), listen).await.expect("starts");
    let t = token(&c, &sb).await;
    let response = c
        .post(format!("{}/V1/customers", sb.endpoint()))
        .bearer_auth(&t)
        .json(&new_customer("a@x.com"))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    let before = sb.customers().await.expect("customers");
    sb.shutdown().await;

    let sb = start(config(), listen).await.expect("restarts");
    assert_eq!(sb.customers().await.expect("customers"), before);
    // Tokens die with the process.
    let response = c
        .get(format!("{}/V1/customers/1", sb.endpoint()))
        .bearer_auth(&t)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 401);
    sb.shutdown().await;
}

mod shop;

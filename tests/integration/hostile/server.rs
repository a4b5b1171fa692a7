//! The misbehaving server: plain HTTP/1.1 on tokio, one request per connection, so that it can
//! do what a well-behaved server library would not (redirect anywhere, echo credentials, send
//! without end) and count what it did.
//!
//! The first path segment of the endpoint (or IMS URL) picks the misbehaviour: `r301`..`r308`
//! redirect to `/evil/...`, `echo` and `echo-text` answer 400 with the request's credentials
//! and body in them, `huge-ok` and `huge-error` send 100 MB, `big-page` answers a search with a
//! page over 1 MiB; `slow-down` and `slow-down-date` answer 429 with a `Retry-After` of a day
//! (in seconds, or as a date); `id5`, `id0`, `other-email`, `other-website` and `put-other-id`
//! answer writes with a customer that is not the one sent (every create id 5, id 0, another
//! e-mail or website, a PUT with the next id); under `ims/`, `good` issues [`TOKEN`], `echo`,
//! `echo-text`, `redirect` and `huge` misbehave. Whatever reaches `/evil/` answers as a
//! careless client would like. The reads that describe the shop (and its customer count) are
//! answered plainly in every scenario, as a shop with one website would: the misbehaviour is
//! the customer routes'.

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What the hostile server accepts as the client secret, and what must never be printed.
pub const SECRET: &str = "Hostile-Client-Secret-4242";
/// The token its IMS issues.
pub const TOKEN: &str = "Issued-Bearer-Token-271828";
/// Credentials in every `Location` the server sends (and, in the tests, in the endpoint).
pub const URL_PASSWORD: &str = "Url-Pass-In-Endpoint-99";
/// The size of a huge answer.
pub const HUGE: u64 = 100 * 1024 * 1024;
/// Customers in a big search page, and the size of each.
pub const PAGE_ITEMS: usize = 300;
const PAGE_ITEM_BYTES: usize = 5000;

#[derive(Default)]
pub struct Counters {
    /// Requests that reached the redirect target.
    pub evil: AtomicU64,
    /// Requests to a customer route (IMS excluded).
    pub customers: AtomicU64,
    /// Bytes of huge answers the socket took.
    pub huge_bytes: AtomicU64,
    /// Ids given to created customers.
    pub ids: AtomicU64,
}

pub struct Server {
    pub addr: SocketAddr,
    pub counters: Arc<Counters>,
}

struct Request {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

enum Reply {
    Json(StatusCode, Value),
    /// 429 with this `Retry-After`.
    SlowDown(String),
    Text(StatusCode, String),
    Redirect(StatusCode, String),
    Huge(StatusCode),
}

impl Server {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let counters = Arc::new(Counters::default());
        let shared = counters.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counters = shared.clone();
                // A client that hangs up mid-answer is what the huge answers are for.
                tokio::spawn(async move { drop(connection(stream, addr, &counters).await) });
            }
        });
        Server { addr, counters }
    }
}

async fn connection(stream: TcpStream, addr: SocketAddr, counters: &Counters) -> io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        if line == "\r\n" {
            break;
        }
        head.push(line.trim_end().to_owned());
    }
    let mut words = head.first().map(|l| l.split(' ')).into_iter().flatten();
    let method = words.next().unwrap_or_default().to_owned();
    let target = words.next().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (path, query) = (path.to_owned(), query.to_owned());
    let headers: Vec<(String, String)> = head
        .iter()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await?;
    let request = Request {
        method,
        path,
        query,
        headers,
        body,
    };
    let reply = route(&request, addr, counters);
    send(reader.into_inner(), reply, counters).await
}

fn route(r: &Request, addr: SocketAddr, counters: &Counters) -> Reply {
    let path = r.path.trim_start_matches('/');
    let (scenario, rest) = path.split_once('/').unwrap_or((path, ""));
    // Every credential the request carried, as sent and bare, and the body.
    let auth: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k == "authorization")
        .map(|(_, v)| v.as_str())
        .collect();
    let bare: Vec<&str> = auth
        .iter()
        .filter_map(|a| a.split_once(' ').map(|(_, v)| v))
        .collect();
    let echo = format!(
        "authorization={auth:?} credentials={bare:?} body={}",
        String::from_utf8_lossy(&r.body)
    );
    let evil = |rest: &str| format!("http://evil:{URL_PASSWORD}@{addr}/evil/{rest}");
    if scenario == "evil" {
        counters.evil.fetch_add(1, Ordering::Relaxed);
        // What a careless client would take as success: a token, or a created customer.
        return Reply::Json(
            StatusCode::OK,
            json!({"access_token": "evil-token", "expires_in": 3600, "id": 777,
                   "email": "a@example.com", "website_id": 1}),
        );
    }
    if scenario == "ims" {
        return match rest {
            "good" => Reply::Json(
                StatusCode::OK,
                json!({"access_token": TOKEN, "expires_in": 3600}),
            ),
            "echo" => Reply::Json(
                StatusCode::BAD_REQUEST,
                json!({"error": "invalid_request", "error_description": format!("cannot use {echo}")}),
            ),
            "echo-text" => Reply::Text(StatusCode::UNAUTHORIZED, echo),
            "redirect" => Reply::Redirect(StatusCode::TEMPORARY_REDIRECT, evil("ims")),
            "huge" => Reply::Huge(StatusCode::OK),
            _ => Reply::Text(StatusCode::NOT_FOUND, String::new()),
        };
    }
    if let Some(answer) = shop_read(r, rest) {
        return Reply::Json(StatusCode::OK, answer);
    }
    counters.customers.fetch_add(1, Ordering::Relaxed);
    if let Some(status) = scenario
        .strip_prefix('r')
        .and_then(|code| StatusCode::from_bytes(code.as_bytes()).ok())
    {
        return Reply::Redirect(status, evil(rest));
    }
    match scenario {
        "echo" => Reply::Json(
            StatusCode::BAD_REQUEST,
            json!({"message": "Could not save: %1", "parameters": [echo]}),
        ),
        "echo-text" => Reply::Text(
            StatusCode::BAD_REQUEST,
            format!("{} {} {echo}", r.method, r.path),
        ),
        "slow-down" => Reply::SlowDown("86400".into()),
        "slow-down-date" => Reply::SlowDown(httpdate::fmt_http_date(
            std::time::SystemTime::now() + std::time::Duration::from_secs(365 * 86_400),
        )),
        "id5" | "id0" | "other-email" | "other-website" | "put-other-id" => {
            Reply::Json(StatusCode::OK, wrong_customer(scenario, r, counters))
        }
        "huge-error" => Reply::Huge(StatusCode::INTERNAL_SERVER_ERROR),
        "huge-ok" => Reply::Huge(StatusCode::OK),
        "big-page" => {
            let items: Vec<Value> = (0..PAGE_ITEMS)
                .map(|i| {
                    json!({"id": i + 1, "email": format!("p{i}@example.com"), "website_id": 1,
                           "note": "n".repeat(PAGE_ITEM_BYTES)})
                })
                .collect();
            Reply::Json(
                StatusCode::OK,
                json!({"items": items, "total_count": PAGE_ITEMS}),
            )
        }
        _ => Reply::Text(StatusCode::NOT_FOUND, String::new()),
    }
}

/// The answer of a plain shop with one website to the reads of its model, and to a search page
/// of one customer (the count a first run reads).
fn shop_read(r: &Request, rest: &str) -> Option<Value> {
    if r.method != "GET" {
        return None;
    }
    Some(match rest {
        "V1/store/websites" => json!([{"id": 1, "code": "base", "name": "Main Website",
            "default_group_id": 1}]),
        "V1/store/storeViews" => json!([{"id": 1, "code": "default", "name": "Default Store View",
            "website_id": 1, "store_group_id": 1, "is_active": 1}]),
        "V1/customerGroups/search" => json!({"items": [{"id": 1, "code": "General",
            "tax_class_id": 3}], "search_criteria": {}, "total_count": 1}),
        "V1/directory/countries" => json!([{"id": "SE", "two_letter_abbreviation": "SE",
            "three_letter_abbreviation": "SWE", "full_name_locale": "Sweden",
            "full_name_english": "Sweden"}]),
        "V1/attributeMetadata/customer/custom" => json!([]),
        "V1/customers/search" if r.query.contains("searchCriteria%5BpageSize%5D=1&") => {
            json!({"items": [], "search_criteria": {}, "total_count": 0})
        }
        _ => return None,
    })
}

/// The customer a write sent, as a shop that gets it wrong would answer it.
fn wrong_customer(scenario: &str, r: &Request, counters: &Counters) -> Value {
    let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
    let mut customer = body.get("customer").cloned().unwrap_or_else(|| json!({}));
    let put_to = r
        .path
        .rsplit('/')
        .next()
        .and_then(|id| id.parse::<u64>().ok());
    let next = 100 + counters.ids.fetch_add(1, Ordering::Relaxed);
    customer["id"] = match (scenario, put_to) {
        ("id5", _) => json!(5),
        ("id0", _) => json!(0),
        ("put-other-id", Some(id)) => json!(id + 1),
        (_, Some(id)) => json!(id),
        (_, None) => json!(next),
    };
    match scenario {
        "other-email" => customer["email"] = json!("someone-else@example.com"),
        "other-website" => customer["website_id"] = json!(7),
        _ => {}
    }
    customer
}

async fn send(mut stream: TcpStream, reply: Reply, counters: &Counters) -> io::Result<()> {
    let (status, headers, body) = match reply {
        Reply::Json(s, v) => (
            s,
            "Content-Type: application/json\r\n".into(),
            v.to_string(),
        ),
        Reply::Text(s, t) => (s, "Content-Type: text/plain\r\n".into(), t),
        Reply::Redirect(s, to) => (s, format!("Location: {to}\r\n"), String::new()),
        Reply::SlowDown(after) => (
            StatusCode::TOO_MANY_REQUESTS,
            format!("Content-Type: application/json\r\nRetry-After: {after}\r\n"),
            json!({"message": "Too many requests"}).to_string(),
        ),
        Reply::Huge(s) => return huge(stream, s, counters).await,
    };
    let mut head = format!("HTTP/1.1 {} {}\r\n", status.as_u16(), reason(status));
    let _ = write!(
        head,
        "{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// 100 MB that start like a Magento error whose message never ends, counted as the socket
/// takes them; a client that stops reading makes the write fail, which ends it.
async fn huge(mut stream: TcpStream, status: StatusCode, counters: &Counters) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {HUGE}\r\nConnection: close\r\n\r\n{{\"message\":\"",
        status.as_u16(),
        reason(status)
    );
    stream.write_all(head.as_bytes()).await?;
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 12;
    while sent < HUGE {
        let n = chunk
            .len()
            .min(usize::try_from(HUGE - sent).unwrap_or(usize::MAX));
        stream.write_all(&chunk[..n]).await?;
        sent += n as u64;
        counters.huge_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
    Ok(())
}

fn reason(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Whatever")
}

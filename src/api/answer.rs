//! Reading an answer within bounds, and what it says: the message of an error, where a
//! redirect points, when to come back.
//!
//! A server decides how much it sends, so nothing here takes its word for it: a body is read
//! to [`MAX_BODY`] and no further, and a message kept from it is [`MAX_MESSAGE`] at most,
//! with every secret removed first ([`crate::redact`]): messages travel on into the report,
//! the log and the final error line.

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue, LOCATION, RETRY_AFTER};
use serde_json::Value;

use crate::redact;

/// Most of a body read: one customer, a token, an error are a few KiB.
pub const MAX_BODY: usize = 1024 * 1024;
/// Most of a search page read: up to 300 customers (the SaaS page limit), each with its
/// addresses and attributes, may exceed [`MAX_BODY`] and still be an honest answer.
pub const MAX_PAGE_BODY: usize = 8 * 1024 * 1024;
/// Most of a server's message kept (bytes, before the ellipsis).
pub const MAX_MESSAGE: usize = 1024;
/// A message rendered from placeholders stops growing here: parameters may be repeated, and
/// only its start is kept anyway.
const RENDER_LIMIT: usize = 64 * 1024;
/// Named parameters looked at: Magento's messages have a handful, and each placeholder is
/// matched against every name.
const MAX_PARAMS: usize = 64;

/// A body read up to a cap.
pub struct Body {
    pub bytes: Vec<u8>,
    /// The answer went on past the cap; `bytes` holds its start only.
    pub too_large: bool,
}

impl Body {
    /// What a body over the cap is called in messages.
    pub fn too_large_note(cap: usize) -> String {
        format!(
            "answer too large: over {} KiB, not read further",
            cap / 1024
        )
    }
}

/// Reads at most `cap` bytes of the body and stops there; the rest is never read (dropping
/// the response closes the connection).
pub async fn read(mut response: reqwest::Response, cap: usize) -> Result<Body, reqwest::Error> {
    let expected = response.content_length().unwrap_or(0);
    let mut bytes = Vec::with_capacity(usize::try_from(expected).unwrap_or(cap).min(cap));
    while let Some(chunk) = response.chunk().await? {
        let room = cap - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            return Ok(Body {
                bytes,
                too_large: true,
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Body {
        bytes,
        too_large: false,
    })
}

/// Where a redirect points, fit to show.
pub fn location(headers: &HeaderMap) -> String {
    match headers.get(LOCATION).map(|l| l.to_str()) {
        Some(Ok(l)) => redact::clipped(l, MAX_MESSAGE, &[]),
        Some(Err(_)) => "an unreadable Location".into(),
        None => "no Location".into(),
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers
        .get(RETRY_AFTER)
        .map(HeaderValue::to_str)?
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The API's own message with its `%1` / `%name` placeholders filled from `parameters`; for
/// bodies that are not Magento's (a gateway page), the status and the start of the body.
/// Without secrets, and at most [`MAX_MESSAGE`] long.
pub fn error_message(status: StatusCode, body: &[u8]) -> String {
    message(
        status,
        &Body {
            bytes: body.to_vec(),
            too_large: false,
        },
        &[],
    )
}

/// [`error_message`] of a body read with [`read`], also without the secrets in `hidden` (what
/// this request sent that the server may echo).
pub fn message(status: StatusCode, body: &Body, hidden: &[&str]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(&body.bytes).ok();
    let api_message = parsed
        .as_ref()
        .and_then(|v| v.get("message"))
        .and_then(Value::as_str);
    let text = match api_message {
        Some(m) => {
            let rendered = render(m, parsed.as_ref().and_then(|v| v.get("parameters")));
            redact::clipped(&rendered, MAX_MESSAGE, hidden)
        }
        None => match start(body, hidden) {
            start if start.is_empty() => status.to_string(),
            start => format!("{status}: {start}"),
        },
    };
    noted(text, body)
}

/// The start of a body as text, fit to keep: without secrets (nor `hidden`), and at most
/// [`MAX_MESSAGE`] long.
pub fn start(body: &Body, hidden: &[&str]) -> String {
    let start = &body.bytes[..body.bytes.len().min(RENDER_LIMIT)];
    redact::clipped(String::from_utf8_lossy(start).trim(), MAX_MESSAGE, hidden)
}

/// `text` with a note that the body was too large to read, when it was.
pub fn noted(text: String, body: &Body) -> String {
    if body.too_large {
        format!("{text} ({})", Body::too_large_note(body.bytes.len()))
    } else {
        text
    }
}

/// Fills placeholders in one pass (a value that looks like a placeholder stays as it is),
/// the longest that matches first: `%10` before `%1`, `%fieldName` before `%field`.
fn render(message: &str, params: Option<&Value>) -> String {
    let show = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut out = String::new();
    let mut rest = message;
    while let Some(at) = rest.find('%') {
        if out.len() > RENDER_LIMIT {
            return out;
        }
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (value, used) = placeholder(after, params).map_or((None, 0), |(v, n)| (Some(v), n));
        match value {
            Some(v) => out.push_str(&show(v)),
            None => out.push('%'),
        }
        rest = &after[used..];
    }
    out.push_str(rest);
    out
}

/// The parameter a placeholder (the text after `%`) names, and the length of its name.
fn placeholder<'a>(after: &str, params: Option<&'a Value>) -> Option<(&'a Value, usize)> {
    match params? {
        Value::Array(list) => {
            let digits = after.bytes().take_while(u8::is_ascii_digit).count().min(4);
            (1..=digits).rev().find_map(|n| {
                let i: usize = after[..n].parse().ok()?;
                Some((list.get(i.checked_sub(1)?)?, n))
            })
        }
        Value::Object(map) => map
            .iter()
            .take(MAX_PARAMS)
            .filter(|(name, _)| !name.is_empty() && after.starts_with(name.as_str()))
            .max_by_key(|(name, _)| name.len())
            .map(|(name, v)| (v, name.len())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_get_their_parameters() {
        let cases: [(&[u8], &str); 6] = [
            (
                br#"{"message":"No such entity with %fieldName = %fieldValue","parameters":{"fieldName":"customerId","fieldValue":99}}"#,
                "No such entity with customerId = 99",
            ),
            (
                br#"{"message":"The password needs at least %1 characters.","parameters":[8]}"#,
                "The password needs at least 8 characters.",
            ),
            (
                br#"{"message":"%1 %10 %2 %3%","parameters":["a","b","c","d","e","f","g","h","i","j"]}"#,
                "a j b c%",
            ),
            (
                br#"{"message":"%1 of %2","parameters":["%2","x"]}"#,
                "%2 of x",
            ),
            (b"<html>bad gateway</html>", "502 Bad Gateway: <html>bad gateway</html>"),
            (b"", "502 Bad Gateway"),
        ];
        for (body, want) in cases {
            assert_eq!(error_message(StatusCode::BAD_GATEWAY, body), want);
        }
    }

    #[test]
    fn messages_are_capped_however_they_are_built() {
        let huge_param = format!(
            r#"{{"message":"{}","parameters":["{}"]}}"#,
            "%1".repeat(10_000),
            "y".repeat(100_000)
        );
        let plain = "z".repeat(MAX_BODY);
        for body in [huge_param.as_bytes(), plain.as_bytes()] {
            let m = error_message(StatusCode::BAD_REQUEST, body);
            // The server's words are capped; the status before them is ours.
            let words = m.trim_start_matches("400 Bad Request: ");
            assert!(
                words.len() <= MAX_MESSAGE + 3 && m.ends_with('…'),
                "{}",
                m.len()
            );
        }
        let cut = Body {
            bytes: br#"{"message":"never end"#.to_vec(),
            too_large: true,
        };
        let m = message(StatusCode::INTERNAL_SERVER_ERROR, &cut, &[]);
        assert!(
            m.contains("never end") && m.contains("answer too large"),
            "{m}"
        );
    }

    #[test]
    fn messages_hide_what_the_server_echoes() {
        let body = br#"{"message":"Cannot save %1","parameters":["{\"password\":\"Echoed-Pw-123\",\"x\":\"Hidden-By-Caller\"}"]}"#;
        let body = Body {
            bytes: body.to_vec(),
            too_large: false,
        };
        let m = message(StatusCode::BAD_REQUEST, &body, &["Hidden-By-Caller"]);
        assert_eq!(
            m,
            r#"Cannot save {"password":"[redacted]","x":"[redacted]"}"#
        );
    }

    #[test]
    fn locations_are_shown_without_credentials() {
        let mut h = HeaderMap::new();
        assert_eq!(location(&h), "no Location");
        h.insert(
            LOCATION,
            HeaderValue::from_static("https://u:pw@evil.example/V1?token=abc"),
        );
        assert_eq!(location(&h), "https://evil.example/V1?token=[redacted]");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&later).expect("header"));
        let d = retry_after(&h).expect("date");
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
    }
}

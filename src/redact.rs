//! Keeping secrets out of text: every message built from what a server said, every URL shown.
//!
//! [`text`] removes from any text:
//! - the secrets this process knows (see below), in the forms a server echoes them: as sent,
//!   JSON-escaped and form-encoded;
//! - the value of any `key=value`, `key: value` or `"key": "value"` whose key names a secret
//!   (ends in `password`, `passwd`, `secret` or `token`: `client_secret`, `access_token`, ...);
//! - the credentials of an `Authorization: Bearer ...` echoed back;
//! - the `user:pass@` part of any URL.
//!
//! [`url`] does the same for a URL that is shown (the `target:` line, error messages).
//!
//! The secrets it knows are [`register`]ed where they enter the process: the IMS client secret
//! and a ready `CUSTSYNC_ACCESS_TOKEN` when the client is built, the password in an endpoint URL
//! (and the `Basic` credentials made of it), and every token IMS issues when it arrives. A
//! customer's password lives for one request, so it is not registered: the caller passes it to
//! [`text_with`] instead.
//!
//! Why one registry for the process rather than a value handed around: a server's words become
//! error values that travel through the executor, the report, the summary, the log and the
//! final error line, and any of them may be where a secret first shows. A registry that holds
//! only what this process was given or issued, and is asked by whoever builds a message, keeps
//! those modules free of auth details; it only grows, but for tokens: the last
//! [`KEPT_TOKENS`] issued are kept, as an older one expired long ago (tokens are renewed before
//! they expire) and a long run with short-lived tokens must not make every message slower.
//! Strings shorter than [`MIN_SECRET`] are not looked for: they would match ordinary words (the
//! sandbox's public secret is `sandbox`), and a secret that short is no secret (Commerce refuses
//! such passwords; their `"password": ...` echoes are still caught by the key).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::{PoisonError, RwLock};

use secrecy::{ExposeSecret, SecretString};

/// What stands in for a removed secret.
pub const MARK: &str = "[redacted]";
/// Shorter strings are not registered (see the module doc).
pub const MIN_SECRET: usize = 8;
/// Issued tokens remembered (see the module doc).
pub const KEPT_TOKENS: usize = 64;
/// Keys whose values are secret end in one of these (compared without case).
const SECRET_KEYS: [&str; 4] = ["password", "passwd", "secret", "token"];
/// Credentials after `Bearer ` shorter than this are taken for words, not tokens.
const MIN_BEARER: usize = 16;

/// Each secret in every form it is looked for in (see [`forms`]), made once when registered.
struct Registry {
    lasting: Vec<Vec<SecretString>>,
    tokens: VecDeque<Vec<SecretString>>,
}

static REGISTRY: RwLock<Registry> = RwLock::new(Registry {
    lasting: Vec::new(),
    tokens: VecDeque::new(),
});

/// Remembers a secret for the rest of the process: a client secret, a ready token, a password.
pub fn register(secret: &str) {
    if secret.len() < MIN_SECRET {
        return;
    }
    let mut r = REGISTRY.write().unwrap_or_else(PoisonError::into_inner);
    if !r.lasting.iter().any(|f| f[0].expose_secret() == secret) {
        r.lasting.push(secret_forms(secret));
    }
}

/// Remembers a token IMS issued; only the latest [`KEPT_TOKENS`] are kept.
pub fn register_token(token: &str) {
    if token.len() < MIN_SECRET {
        return;
    }
    let mut r = REGISTRY.write().unwrap_or_else(PoisonError::into_inner);
    if r.tokens.len() == KEPT_TOKENS {
        r.tokens.pop_front();
    }
    r.tokens.push_back(secret_forms(token));
}

/// Registers the password in `url`'s `user:pass@`, as written, decoded, and inside the `Basic`
/// credentials an HTTP client makes of it.
pub fn register_url_credentials(url: &str) {
    let Some((user, pass)) = userinfo(url).and_then(|u| u.split_once(':')) else {
        return;
    };
    register(pass);
    let (user, pass) = (percent_decode(user), percent_decode(pass));
    register(&pass);
    register(&base64(format!("{user}:{pass}").as_bytes()));
}

/// `text` without any secret this process knows of or can recognise (see the module doc).
pub fn text(text: &str) -> String {
    text_with(text, &[])
}

/// [`text`], also without the secrets in `also` (a customer's password sent in this request).
pub fn text_with(text: &str, also: &[&str]) -> String {
    let also: Vec<String> = also.iter().flat_map(|s| forms(s)).collect();
    let mut out = Cow::Borrowed(text);
    {
        let r = REGISTRY.read().unwrap_or_else(PoisonError::into_inner);
        for secret in needles(&r, &also) {
            if out.contains(secret) {
                out = Cow::Owned(out.replace(secret, MARK));
            }
        }
    }
    let out = strip_userinfo(&out);
    let out = redact_bearer(&out);
    redact_values(&out)
}

/// The start of `text` (a server's words) fit to keep: redacted, then cut to at most `max` bytes
/// at a character boundary, with an ellipsis when something was cut. Only the first
/// `max * 16` bytes are looked at, which bounds the work whatever a server sends; a secret cut
/// in half at that window's end is dropped with the window's tail, never shown.
pub fn clipped(text: &str, max: usize, also: &[&str]) -> String {
    let window = max.saturating_mul(16);
    let cut = text.len() > window;
    let head = &text[..floor_boundary(text, window)];
    let mut out = text_with(head, also);
    if cut {
        let also: Vec<String> = also.iter().flat_map(|s| forms(s)).collect();
        let r = REGISTRY.read().unwrap_or_else(PoisonError::into_inner);
        let longest = needles(&r, &also).first().map_or(0, |s| s.len());
        let margin = longest.max(max);
        out.truncate(floor_boundary(&out, out.len().saturating_sub(margin)));
    }
    if cut || out.len() > max {
        out.truncate(floor_boundary(&out, max));
        out.push('…');
    }
    out
}

/// The largest char boundary of `s` at or below `at`.
fn floor_boundary(s: &str, at: usize) -> usize {
    if at >= s.len() {
        return s.len();
    }
    (0..=at).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}

/// A URL fit to show: without `user:pass@`, secret query values or known secrets.
pub fn url(url: &str) -> String {
    text(url)
}

/// Every form of every known secret, longest first, so that a secret containing another is
/// removed whole.
fn needles<'a>(r: &'a Registry, also: &'a [String]) -> Vec<&'a str> {
    let mut all: Vec<&str> = r
        .lasting
        .iter()
        .chain(&r.tokens)
        .flatten()
        .map(ExposeSecret::expose_secret)
        .chain(also.iter().map(String::as_str))
        .collect();
    all.sort_by_key(|s| std::cmp::Reverse(s.len()));
    all.dedup();
    all
}

/// The forms a server echoes a secret in: as sent, JSON-escaped, form-encoded.
fn forms(secret: &str) -> Vec<String> {
    if secret.len() < MIN_SECRET {
        return Vec::new();
    }
    let quoted = serde_json::to_string(secret).unwrap_or_default();
    let json = quoted
        .strip_prefix('"')
        .and_then(|j| j.strip_suffix('"'))
        .unwrap_or_default()
        .to_owned();
    let form = form_encoded(secret);
    let mut all = vec![secret.to_owned(), json, form];
    all.dedup();
    all.retain(|f| !f.is_empty());
    all
}

/// `application/x-www-form-urlencoded`, as an HTTP client encodes a form value.
fn form_encoded(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

fn secret_forms(secret: &str) -> Vec<SecretString> {
    forms(secret).into_iter().map(SecretString::from).collect()
}

/// The `user:pass` of a URL's authority, if any.
fn userinfo(url: &str) -> Option<&str> {
    let start = url.find("://")? + 3;
    let end = authority_end(url, start);
    url[start..end].rfind('@').map(|at| &url[start..start + at])
}

fn authority_end(s: &str, start: usize) -> usize {
    s[start..]
        .find(|c: char| {
            matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>' | '\\') || c.is_whitespace()
        })
        .map_or(s.len(), |i| start + i)
}

/// Every URL in `s` without its `user:pass@`.
fn strip_userinfo(s: &str) -> Cow<'_, str> {
    if !s.contains("://") {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let start = i + 3;
        let end = authority_end(rest, start);
        let authority = &rest[start..end];
        out.push_str(&rest[..start]);
        out.push_str(
            authority
                .rfind('@')
                .map_or(authority, |at| &authority[at + 1..]),
        );
        rest = &rest[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// `Bearer <credentials>` with the credentials removed.
fn redact_bearer(s: &str) -> Cow<'_, str> {
    const SCHEME: &str = "bearer";
    let b = s.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while let Some(found) = find_ignore_case(&b[i..], SCHEME.as_bytes()) {
        let start = i + found;
        i = start + SCHEME.len();
        if start > 0 && b[start - 1].is_ascii_alphanumeric() {
            continue;
        }
        let value_start = i + b[i..].iter().take_while(|&&c| c == b' ').count();
        if value_start == i {
            continue;
        }
        let len = b[value_start..]
            .iter()
            .take_while(|&&c| c.is_ascii_alphanumeric() || b"-._~+/=".contains(&c))
            .count();
        if len < MIN_BEARER {
            continue;
        }
        out.push_str(&s[copied..value_start]);
        out.push_str(MARK);
        copied = value_start + len;
        i = copied;
    }
    if copied == 0 {
        return Cow::Borrowed(s);
    }
    out.push_str(&s[copied..]);
    Cow::Owned(out)
}

fn find_ignore_case(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

fn names_secret(key: &str) -> bool {
    let key = key.as_bytes();
    SECRET_KEYS.iter().any(|k| {
        key.len() >= k.len() && key[key.len() - k.len()..].eq_ignore_ascii_case(k.as_bytes())
    })
}

/// Values of keys that name a secret, in forms, query strings, JSON (escaped or not) and
/// `key: value` text, replaced by [`MARK`].
fn redact_values(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let (mut copied, mut i) = (0, 0);
    while i < b.len() {
        if !is_key_byte(b[i]) || (i > 0 && is_key_byte(b[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_key_byte(b[i]) {
            i += 1;
        }
        if !names_secret(&s[start..i]) {
            continue;
        }
        if let Some((from, to)) = value_after(b, i) {
            out.push_str(&s[copied..from]);
            out.push_str(MARK);
            copied = to;
            i = to;
        }
    }
    out.push_str(&s[copied..]);
    out
}

/// The byte range of the value after a key ending at `i`, if a separator follows: closing
/// quotes or brackets, then `=` or `:`, then the value, quoted (the quotes stay) or up to the
/// next delimiter. Objects and arrays are left to the keys inside them.
fn value_after(b: &[u8], mut i: usize) -> Option<(usize, usize)> {
    let skip = |i: &mut usize, set: &[u8]| {
        while *i < b.len() && set.contains(&b[*i]) {
            *i += 1;
        }
    };
    skip(&mut i, b"\"'\\]");
    skip(&mut i, b" \t");
    if !matches!(b.get(i), Some(b'=' | b':')) {
        return None;
    }
    i += 1;
    skip(&mut i, b" \t");
    let escaped = b.get(i) == Some(&b'\\') && matches!(b.get(i + 1), Some(b'"' | b'\''));
    let open = if escaped { i + 1 } else { i };
    let (from, to) = match b.get(open) {
        None | Some(b'{' | b'[') => return None,
        Some(&q @ (b'"' | b'\'')) => {
            let from = open + 1;
            let mut to = from;
            while to < b.len() {
                let closes = b[to] == q
                    && if escaped {
                        b[to - 1] == b'\\'
                    } else {
                        b[to - 1] != b'\\'
                    };
                if closes {
                    break;
                }
                to += 1;
            }
            // The escaped form's closing backslash belongs to the quote, not the value.
            let to = if escaped && to < b.len() { to - 1 } else { to };
            (from, to)
        }
        Some(_) => {
            let len = b[i..]
                .iter()
                .take_while(|&&c| !c.is_ascii_whitespace() && !b"&,;\"'<>()[]{}\\".contains(&c))
                .count();
            (i, i + len)
        }
    };
    (to > from).then_some((from, to))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(byte) if b[i] == b'%' => {
                out.push(byte);
                i += 3;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 with padding, as in `Authorization: Basic`.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                char::from(ABC[(n >> (18 - 6 * i) & 63) as usize])
            } else {
                '='
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_of_secret_keys_are_removed() {
        let cases = [
            // Forms and query strings.
            (
                "grant_type=client_credentials&client_id=abc&client_secret=p8e-XYZ&scope=a,b",
                "grant_type=client_credentials&client_id=abc&client_secret=[redacted]&scope=a,b",
            ),
            (
                "GET /x?access_token=abc123&page=2",
                "GET /x?access_token=[redacted]&page=2",
            ),
            (
                "customer[password]=Hunter2",
                "customer[password]=[redacted]",
            ),
            // JSON, plain and escaped inside a string.
            (
                r#"{"password":"Pa\"ss","email":"a@b.c"}"#,
                r#"{"password":"[redacted]","email":"a@b.c"}"#,
            ),
            (r#"{"Token" : "t0k"}"#, r#"{"Token" : "[redacted]"}"#),
            (
                r#"{"m":"got {\"password\":\"abc\",\"x\":1}"}"#,
                r#"{"m":"got {\"password\":\"[redacted]\",\"x\":1}"}"#,
            ),
            (
                r#"{"refresh_token":12345}"#,
                r#"{"refresh_token":[redacted]}"#,
            ),
            ("id_token: eyJabc rest", "id_token: [redacted] rest"),
            // An unterminated value (a cut body) is removed to the end.
            (r#"{"password":"abcdef"#, r#"{"password":"[redacted]"#),
            // Not values: words, empty values, structures, other keys.
            (
                "The password needs at least 8 characters.",
                "The password needs at least 8 characters.",
            ),
            (
                "invalid client_secret parameter",
                "invalid client_secret parameter",
            ),
            (
                r#"{"password":"","token_type":"bearer"}"#,
                r#"{"password":"","token_type":"bearer"}"#,
            ),
            (r#"{"secret":{"a":1}}"#, r#"{"secret":{"a":1}}"#),
            ("tokens=5&passwords_sent=2", "tokens=5&passwords_sent=2"),
        ];
        for (input, want) in cases {
            assert_eq!(text(input), want, "{input}");
        }
    }

    #[test]
    fn urls_lose_their_credentials() {
        let cases = [
            (
                "https://user:pw@shop.example/rest",
                "https://shop.example/rest",
            ),
            ("http://user@127.0.0.1:8080", "http://127.0.0.1:8080"),
            (
                "https://a:b@c@shop.example/x?y=z@w",
                "https://shop.example/x?y=z@w",
            ),
            (
                "https://shop.example/rest/a@b.c",
                "https://shop.example/rest/a@b.c",
            ),
            (
                "no answer from http://u:p@h/V1 then https://x:y@i/",
                "no answer from http://h/V1 then https://i/",
            ),
            ("see \"http://u:p@h\" or a@b.c", "see \"http://h\" or a@b.c"),
            (
                "https://shop.example/x?token=abc",
                "https://shop.example/x?token=[redacted]",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(url(input), want, "{input}");
        }
    }

    #[test]
    fn bearer_credentials_are_removed() {
        let cases = [
            (
                "Authorization: Bearer eyJhbGciOi.JIUzI1NiJ9-x_y",
                "Authorization: Bearer [redacted]",
            ),
            (
                "[\"bearer  abcdefghijklmnopqrstu\"]",
                "[\"bearer  [redacted]\"]",
            ),
            ("the bearer token expired", "the bearer token expired"),
            ("token_type bearer", "token_type bearer"),
        ];
        for (input, want) in cases {
            assert_eq!(text(input), want, "{input}");
        }
    }

    #[test]
    fn registered_secrets_are_removed_in_every_form() {
        register("Reg1stered secret/+&\"x");
        register_token("Issued-Token-For-Redact-Test");
        register("short");
        let cases = [
            ("echo: Reg1stered secret/+&\"x!", "echo: [redacted]!"),
            (
                r#"{"echo":"Reg1stered secret/+&\"x"}"#,
                r#"{"echo":"[redacted]"}"#,
            ),
            ("f=Reg1stered+secret%2F%2B%26%22x&g=1", "f=[redacted]&g=1"),
            ("raw Issued-Token-For-Redact-Test.", "raw [redacted]."),
            ("short stays", "short stays"),
        ];
        for (input, want) in cases {
            assert_eq!(text(input), want, "{input}");
        }
        assert_eq!(
            text_with("pw was Once-Only-Pa55", &["Once-Only-Pa55"]),
            "pw was [redacted]"
        );
        assert_eq!(text("pw was Once-Only-Pa55"), "pw was Once-Only-Pa55");
        assert_eq!(
            text_with("a word", &["a"]),
            "a word",
            "too short to look for"
        );
    }

    #[test]
    fn url_credentials_are_registered_with_their_basic_form() {
        register_url_credentials("https://admin:Url%21Pass-Redact@shop.example/rest");
        let basic = base64(b"admin:Url!Pass-Redact");
        assert_eq!(
            text(&format!(
                "Basic {basic} / Url!Pass-Redact / Url%21Pass-Redact"
            )),
            "Basic [redacted] / [redacted] / [redacted]"
        );
    }

    #[test]
    fn only_the_latest_tokens_are_kept() {
        let token = |i| format!("Rotating-Token-{i:04}");
        for i in 0..KEPT_TOKENS + 3 {
            register_token(&token(i));
        }
        // Other tests may register tokens at the same time, so only the newest is certain.
        assert_eq!(text(&token(KEPT_TOKENS + 2)), MARK);
        assert_eq!(text(&token(0)), token(0));
    }

    #[test]
    fn clipping_keeps_the_start_whole_characters_and_no_cut_secret() {
        assert_eq!(clipped("short", 10, &[]), "short");
        assert_eq!(clipped("ééééé", 5, &[]), "éé…");
        assert_eq!(
            clipped("password=abcdef and more", 16, &[]),
            "password=[redact…"
        );
        // A secret cut in half at the window's end is not shown, even when the redaction
        // before it brings it near the start.
        let secret = format!("Secret-Cut-{}", "y".repeat(189));
        let text = secret.repeat(3);
        let out = clipped(&text, 24, &[&secret]);
        assert!(!out.contains("Secret-Cut"), "{out}");
        let long = "x".repeat(100_000);
        let out = clipped(&long, 1024, &[]);
        assert_eq!(
            (out.len(), out.ends_with('…')),
            (1024 + '…'.len_utf8(), true)
        );
    }

    #[test]
    fn base64_form_and_percent_coding() {
        assert_eq!(form_encoded("a b/+&é*-._~"), "a+b%2F%2B%26%C3%A9*-._%7E");
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"M"), "TQ==");
        assert_eq!(percent_decode("a%20b%zz%4"), "a b%zz%4");
    }
}

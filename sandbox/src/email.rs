//! The customer e-mail check, as Magento's EAV rule `input_validation = email` runs it
//! (`app/code/Magento/Eav/Model/Attribute/Data/AbstractData.php`, `_validateInputRule`):
//! `Laminas\Validator\EmailAddress` with its hostname validator (DNS names only, no MX
//! lookup), its failures mapped to Magento's messages and joined with newlines as
//! `Magento\Framework\Validator\Exception` joins them.
//!
//! Laminas' steps (laminas-validator `src/EmailAddress.php` and `src/Hostname.php`):
//! 1. `..` anywhere, or no `local@host` split: "not a valid email address", nothing else;
//! 2. a local part over 64 bytes or a host over 255: "uses too many characters";
//! 3. the host: labels of letters, digits and dashes, and a top-level domain from IANA's list
//!    (`data/tlds.txt`, the list Laminas ships); a failure adds "not a valid hostname" and
//!    the hostname validator's own messages;
//! 4. the local part: RFC 5322 dot-atom (UTF-8 letters allowed, RFC 6532) or a quoted string.
//!
//! The top-level domain check is the shop's `email_tld_check`: Magento 2.1 checked it (issue
//! magento/magento2#5640 shows the three messages of a refused `.video` address), while
//! `lib/internal/Magento/Framework/Validator/EmailAddress.php` turns it off from 2.2 on; a
//! shop model says which one it mirrors.

use std::collections::HashSet;
use std::sync::OnceLock;

use serde_json::json;

use crate::error::ApiError;

/// IANA's top-level domains as Laminas lists them.
const TLDS: &str = include_str!("../data/tlds.txt");

const INVALID_FORMAT: &str = "\"Email\" is not a valid email address.";
const LENGTH_EXCEEDED: &str = "\"Email\" uses too many characters.";
const INVALID_HOSTNAME: &str = "\"Email\" is not a valid hostname.";

/// Characters of an RFC 5322 atom besides letters and digits.
const ATEXT: &str = "!#$%&'*+-/=?^_`{|}~";

fn tlds() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        TLDS.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
}

/// Checks an e-mail address; the error is Magento's 400 with every message of the check.
pub(crate) fn check(email: &str, tld_check: bool) -> Result<(), ApiError> {
    let messages = problems(email, tld_check);
    match messages.len() {
        0 => Ok(()),
        1 => Err(ApiError::bad(messages[0].clone())),
        _ => {
            let mut error = ApiError::bad(messages.join("\n"));
            error.errors = messages
                .into_iter()
                .map(|m| ApiError::bad(m).with_params(json!([])))
                .collect();
            Err(error)
        }
    }
}

/// Magento's messages for an e-mail address, in Laminas' order, without repeats; empty when
/// the address is valid.
fn problems(email: &str, tld_check: bool) -> Vec<String> {
    let split = email
        .rsplit_once('@')
        .filter(|(local, host)| !local.is_empty() && !host.is_empty() && !email.contains('\n'));
    let Some((local, host)) = split.filter(|_| !email.contains("..")) else {
        return vec![INVALID_FORMAT.to_owned()];
    };
    let mut messages = Vec::new();
    if local.len() > 64 || host.len() > 255 {
        messages.push(LENGTH_EXCEEDED.to_owned());
    }
    let host_messages = hostname(host, tld_check);
    if !host_messages.is_empty() {
        messages.push(INVALID_HOSTNAME.to_owned());
        messages.extend(host_messages);
    }
    if !local_part_valid(local) {
        messages.push(INVALID_FORMAT.to_owned());
    }
    let mut seen = HashSet::new();
    messages.retain(|m| seen.insert(m.clone()));
    messages
}

/// `Laminas\Validator\Hostname::isValid` for DNS names (local names and IP addresses not
/// allowed), with the messages `AbstractData` sets; empty when the host is valid.
fn hostname(host: &str, tld_check: bool) -> Vec<String> {
    let mut messages = Vec::new();
    if host.parse::<std::net::Ipv4Addr>().is_ok()
        || host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok())
    {
        messages.push(format!(
            "'{host}' looks like an IP address, which is not an acceptable format."
        ));
        return messages;
    }
    let labels: Vec<&str> = host.split('.').collect();
    let length = host.chars().count();
    if labels.len() > 1 && (4..=254).contains(&length) {
        match dns_name(host, &labels, tld_check) {
            None => return messages,
            Some(message) => messages.push(message),
        }
    } else {
        messages.push("The input does not match the expected structure for a DNS hostname".into());
    }
    // The last chance, a local network name, which an e-mail address may not use.
    let local_name =
        host.strip_suffix('.').unwrap_or(host).split('.').all(|l| {
            (1..=63).contains(&l.len()) && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    messages.push(if local_name {
        format!("'{host}' looks like a local network name, which is not an acceptable format.")
    } else {
        format!("'{host}' does not look like a valid local network name.")
    });
    messages
}

/// The DNS name checks: `None` when the host passes, else the first failure's message.
fn dns_name(host: &str, labels: &[&str], tld_check: bool) -> Option<String> {
    let last = labels.last().copied().unwrap_or_default();
    let tld_len = last.chars().count();
    if !(2..=63).contains(&tld_len) {
        return Some(format!(
            "'{host}' looks like a DNS hostname but cannot extract TLD part."
        ));
    }
    let mut checked = labels.len();
    if tld_check {
        if !tlds().contains(last.to_lowercase().as_str()) {
            return Some(format!(
                "'{host}' looks like a DNS hostname but we cannot match the TLD against known list."
            ));
        }
        checked -= 1;
    }
    for (i, label) in labels[..checked].iter().enumerate() {
        let dash_misplaced = label.starts_with('-')
            || label.ends_with('-')
            || (label.as_bytes().get(2..4) == Some(b"--") && !label.starts_with("xn"));
        if dash_misplaced {
            return Some(format!(
                "'{host}' looks like a DNS hostname but contains a dash in an invalid position."
            ));
        }
        // Labels before the one ahead of the TLD may hold an underscore (Laminas' sub-domain
        // rule); non-ASCII letters stand for the IDN labels PHP converts to punycode first.
        let subdomain = i + 2 < labels.len();
        let fits = (1..=63).contains(&label.len())
            && label.chars().all(|c| {
                c.is_ascii_alphanumeric()
                    || c == '-'
                    || (subdomain && c == '_')
                    || (!c.is_ascii() && c.is_alphanumeric())
            });
        if !fits {
            return Some(format!(
                "'{host}' looks like a DNS hostname but we cannot match it against the hostname schema for TLD '{last}'."
            ));
        }
    }
    None
}

/// `EmailAddress::validateLocalPart`: dot-atom (with UTF-8 letters) or quoted string.
fn local_part_valid(local: &str) -> bool {
    let atom = |part: &str| {
        !part.is_empty()
            && part.chars().all(|c| {
                c.is_ascii_alphanumeric()
                    || ATEXT.contains(c)
                    || ('\u{80}'..='\u{FFFF}').contains(&c)
            })
    };
    let dot_atom = local.split('.').all(atom);
    let quoted = local.len() >= 2
        && local.starts_with('"')
        && local.ends_with('"')
        && quoted_content(&local[1..local.len() - 1]);
    dot_atom || quoted
}

/// Quoted-string content: printable ASCII but `"` and `\`, or a `\` before printable ASCII.
fn quoted_content(inner: &str) -> bool {
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        let ok = match c {
            '\\' => chars.next().is_some_and(|n| (' '..='~').contains(&n)),
            '"' => false,
            c => (' '..='~').contains(&c),
        };
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The e-mail rule's answers: Laminas' checks, Magento's messages (`AbstractData`).
    #[test]
    fn laminas_email_checks_with_magentos_messages() {
        for good in [
            "a@b.co",
            "Ann.Lee+x@mail.example.com",
            "o'brien@example.ie",
            "åsa@example.se",
            "\"a b\"@example.com",
            "x@sub_domain.example.com",
        ] {
            assert_eq!(problems(good, true), Vec::<String>::new(), "{good}");
        }
        let one = |email: &str| problems(email, true).join(" | ");
        // `..` and a missing split end the check at once.
        assert_eq!(one("ann..lee@example.com"), INVALID_FORMAT);
        assert_eq!(one("plain"), INVALID_FORMAT);
        assert_eq!(one("a b@example.com"), INVALID_FORMAT);
        // A local part over 64 characters (RFC 5321) is a length error.
        assert_eq!(
            one(&format!("{}@example.com", "a".repeat(65))),
            LENGTH_EXCEEDED
        );
        assert_eq!(
            problems(&format!("{}@example.com", "a".repeat(64)), true).len(),
            0
        );
        // An unknown top-level domain: Magento 2.1's three lines (magento/magento2#5640).
        assert_eq!(
            problems("ann@gmail.con", true),
            [
                INVALID_HOSTNAME,
                "'gmail.con' looks like a DNS hostname but we cannot match the TLD against known list.",
                "'gmail.con' looks like a local network name, which is not an acceptable format.",
            ]
        );
        assert!(problems("ann@gmail.con", false).is_empty(), "check off");
        assert_eq!(
            problems("a@b", true),
            [
                INVALID_HOSTNAME,
                "The input does not match the expected structure for a DNS hostname",
                "'b' looks like a local network name, which is not an acceptable format.",
            ]
        );
        assert!(one("a@-x.com").contains("dash in an invalid position"));
        assert!(one("a@1.2.3.4").contains("looks like an IP address"));
    }

    #[test]
    fn several_messages_are_one_answer_with_errors() {
        let e = check("ann@gmail.con", true).expect_err("unknown TLD");
        assert_eq!((e.status, e.errors.len()), (400, 3));
        assert!(
            e.message
                .starts_with("\"Email\" is not a valid hostname.\n'gmail.con'")
        );
        let e = check("ann..lee@x.com", true).expect_err("dots");
        assert_eq!((e.message.as_str(), e.errors.len()), (INVALID_FORMAT, 0));
        assert!(tlds().contains("com") && tlds().contains("рф") && !tlds().contains("con"));
    }
}

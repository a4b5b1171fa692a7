//! Errors of the sandbox: [`SandboxError`] for starting it, and [`ApiError`] for the
//! Magento-shaped error answers its routes give.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::{Value, json};

/// Why the sandbox could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// The listen address could not be bound (in use, or not a local address).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The data directory could not be created or read.
    #[error("cannot use sandbox data directory {}: {source}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// Another sandbox (standalone, or embedded in a sync) uses the same data directory.
    #[error("the sandbox data in {} is in use by another custsync process (lock file {})", path.parent().map(|p| p.display().to_string()).unwrap_or_default(), path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The journal could not be read, rewritten or opened for appending.
    #[error("cannot use sandbox journal {}: {source}", path.display())]
    Journal {
        /// The journal file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The shop file could not be read or describes no usable shop.
    #[error(transparent)]
    Shop(#[from] crate::shop::ShopError),
    /// A journal line other than the last one is not a valid record, so replaying would lose
    /// data silently; the file needs a look by a human.
    #[error("sandbox journal {} is corrupt at line {line}; move it away to start empty", path.display())]
    JournalCorrupt {
        /// The journal file.
        path: PathBuf,
        /// 1-based line number of the bad record.
        line: usize,
    },
}

/// An error answer in Magento's REST shape: `{"message", "parameters"?, "errors"?}` with the
/// message left as its raw template.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{status} {message}")]
pub(crate) struct ApiError {
    /// HTTP status.
    pub(crate) status: u16,
    /// Message template with `%placeholders` left in.
    pub(crate) message: String,
    /// Object for named placeholders, list for positional ones; `None` when there are none.
    pub(crate) parameters: Option<Value>,
    /// The individual errors of an aggregate ("One or more input exceptions have occurred.").
    pub(crate) errors: Vec<ApiError>,
}

impl ApiError {
    pub(crate) fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            parameters: None,
            errors: Vec::new(),
        }
    }

    /// A 400, the status of every `LocalizedException` that is not "no such entity".
    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    pub(crate) fn with_params(mut self, parameters: Value) -> Self {
        self.parameters = Some(parameters);
        self
    }

    pub(crate) fn required(field: &str) -> Self {
        Self::bad("\"%fieldName\" is required. Enter and try again.")
            .with_params(json!({ "fieldName": field }))
    }

    pub(crate) fn no_such_entity(field: &str, value: Value) -> Self {
        Self::new(404, "No such entity with %fieldName = %fieldValue")
            .with_params(json!({ "fieldName": field, "fieldValue": value }))
    }

    pub(crate) fn route_miss() -> Self {
        Self::new(404, "Request does not match any route.")
    }

    pub(crate) fn decoding() -> Self {
        Self::bad("Decoding error.")
    }

    /// What Magento's service input processor says when a value cannot be cast to the
    /// declared type.
    pub(crate) fn wrong_type(value: &Value, expected: &str) -> Self {
        let shown = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Self::bad("The \"%value\" value's type is invalid. The \"%type\" type was expected. Verify and try again.")
            .with_params(json!({ "value": shown, "type": expected }))
    }

    /// Magento's production answer to anything that is not a `LocalizedException`; the real
    /// reason only goes to its log, so the client sees a report id and nothing else.
    pub(crate) fn internal() -> Self {
        let report: String = (0..13)
            .map(|_| char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0'))
            .collect();
        Self::new(
            500,
            format!(
                "Internal Error. Details are available in Magento log file. Report ID: webapi-{report}"
            ),
        )
    }

    /// Several input errors folded into one answer, as Magento's aggregate exception does.
    pub(crate) fn aggregate(mut errors: Vec<ApiError>) -> Self {
        if errors.len() == 1 {
            return errors.remove(0);
        }
        Self {
            status: 400,
            message: "One or more input exceptions have occurred.".to_owned(),
            parameters: None,
            errors,
        }
    }

    /// The message with its placeholders filled in, as `LocalizedException::getMessage`
    /// gives it (named `%name` from an object of parameters, positional `%1` from a list):
    /// the text a bulk operation's `result_message` carries.
    pub(crate) fn rendered(&self) -> String {
        let shown = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let mut out = self.message.clone();
        match &self.parameters {
            Some(Value::Object(named)) => {
                // Longest names first, so `%fieldName` is not taken for `%field`.
                let mut names: Vec<&String> = named.keys().collect();
                names.sort_by_key(|k| std::cmp::Reverse(k.len()));
                for name in names {
                    out = out.replace(&format!("%{name}"), &shown(&named[name.as_str()]));
                }
            }
            Some(Value::Array(list)) => {
                for (i, v) in list.iter().enumerate().rev() {
                    out = out.replace(&format!("%{}", i + 1), &shown(v));
                }
            }
            _ => {}
        }
        out
    }

    /// The JSON body of this error.
    pub(crate) fn body(&self) -> Value {
        let mut body = serde_json::Map::new();
        body.insert("message".to_owned(), Value::String(self.message.clone()));
        if let Some(params) = self.parameters.as_ref().filter(|p| !is_empty(p)) {
            body.insert("parameters".to_owned(), params.clone());
        }
        if !self.errors.is_empty() {
            let items = self
                .errors
                .iter()
                .map(|e| {
                    json!({
                        "message": e.message,
                        "parameters": e.parameters.clone().unwrap_or_else(|| json!([])),
                    })
                })
                .collect();
            body.insert("errors".to_owned(), Value::Array(items));
        }
        Value::Object(body)
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Null => true,
        _ => false,
    }
}

//! What the shop's bulk answers say, and what each operation's status means for its row.
//! Pure: the answers come in as JSON, the decisions go out.
//!
//! The `202` to a submission names the bulk (`bulk_uuid`) and, per item, whether it was
//! queued (`request_items[].status`: `accepted`, else `rejected` with `error_message`). The
//! detailed status lists the operations (`operations_list`), each with the index of its item
//! (`id`), its `status` (1 complete, 2 failed but retriable, 3 failed, 4 open, 5 rejected), the
//! shop's `result_message`, and, once complete, `result_serialized_data`: the saved customer
//! as a JSON string.

use serde_json::Value;

use crate::api::ALREADY_EXISTS;

/// The `202` answer to a submission.
#[derive(Debug, PartialEq, Eq)]
pub struct Accepted {
    pub uuid: String,
    /// The items the shop did not queue: index and its message.
    pub rejected: Vec<(usize, String)>,
}

/// Reads a submission's answer; `Err` says what is wrong with it.
pub fn accepted(answer: &Value) -> Result<Accepted, String> {
    let uuid = answer
        .get("bulk_uuid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty() && u.len() <= 128 && !u.contains(['/', '?', '#']))
        .ok_or("the answer names no bulk_uuid")?;
    let mut rejected = Vec::new();
    for item in answer
        .get("request_items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if item.get("status").and_then(Value::as_str) == Some("rejected") {
            let id = item
                .get("id")
                .and_then(Value::as_u64)
                .ok_or("a rejected item of the answer has no id")?;
            let message = item
                .get("error_message")
                .and_then(Value::as_str)
                .unwrap_or("rejected by the shop")
                .to_owned();
            rejected.push((usize::try_from(id).unwrap_or(usize::MAX), message));
        }
    }
    Ok(Accepted {
        uuid: uuid.to_owned(),
        rejected,
    })
}

/// One operation of a bulk's status.
#[derive(Clone, Debug, PartialEq)]
pub struct Operation {
    /// The index of its item in the bulk.
    pub index: usize,
    pub status: u64,
    pub message: String,
    /// `result_serialized_data`, when there is one.
    pub result: Option<String>,
}

/// The operations of a detailed status; `Err` says what is wrong with the answer.
pub fn operations(answer: &Value) -> Result<Vec<Operation>, String> {
    let list = answer
        .get("operations_list")
        .and_then(Value::as_array)
        .ok_or("the status has no operations_list")?;
    list.iter()
        .map(|op| {
            let index = op
                .get("id")
                .and_then(Value::as_u64)
                .ok_or("an operation without an id")?;
            let status = op
                .get("status")
                .and_then(Value::as_u64)
                .ok_or("an operation without a status")?;
            let text = |name| op.get(name).and_then(Value::as_str).map(str::to_owned);
            Ok(Operation {
                index: usize::try_from(index).unwrap_or(usize::MAX),
                status,
                message: text("result_message").unwrap_or_default(),
                result: text("result_serialized_data").filter(|r| !r.is_empty()),
            })
        })
        .collect()
}

/// What an operation's status means for its row.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Complete: the saved customer, to check and record.
    Saved(Value),
    /// Complete, but its result is not a customer: nothing can be recorded.
    Unreadable(String),
    /// Failed but retriable: send the row again in a later bulk.
    Retry(String),
    /// A create of an e-mail the website already has, or one done without a readable
    /// result: adopt that customer.
    Adopt,
    /// Failed for good (or rejected): the row fails with the shop's message.
    Failed(String),
    /// Not worked yet.
    Open,
}

/// The verdict on `op`, an operation of a create bulk when `create`.
pub fn verdict(op: &Operation, create: bool) -> Verdict {
    let message = || {
        if op.message.is_empty() {
            format!(
                "the shop's queue failed the operation (status {})",
                op.status
            )
        } else {
            op.message.clone()
        }
    };
    match op.status {
        1 => match op.result.as_deref().map(serde_json::from_str::<Value>) {
            Some(Ok(saved @ Value::Object(_))) => Verdict::Saved(saved),
            // The create is done, so its customer is there to be found by its key.
            _ if create => Verdict::Adopt,
            Some(Ok(_)) | Some(Err(_)) => {
                Verdict::Unreadable("the operation's result is not a customer".into())
            }
            None => Verdict::Unreadable("the operation completed without a result".into()),
        },
        2 => Verdict::Retry(message()),
        3 if create && op.message == ALREADY_EXISTS => Verdict::Adopt,
        3 | 5 => Verdict::Failed(message()),
        4 => Verdict::Open,
        other => Verdict::Failed(format!("the shop's queue gave the unknown status {other}")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_submission_names_its_bulk_and_the_items_it_refused() {
        let ok = json!({"bulk_uuid": "799a59c0-1", "request_items": [
            {"id": 0, "data_hash": "3d", "status": "accepted"},
            {"id": 1, "status": "rejected", "error_message": "bad item"}], "errors": true});
        assert_eq!(
            accepted(&ok),
            Ok(Accepted {
                uuid: "799a59c0-1".into(),
                rejected: vec![(1, "bad item".into())]
            })
        );
        for bad in [
            json!({}),
            json!({"bulk_uuid": ""}),
            json!({"bulk_uuid": "../x"}),
            json!({"bulk_uuid": "u", "request_items": [{"status": "rejected"}]}),
        ] {
            assert!(accepted(&bad).is_err(), "{bad}");
        }
    }

    fn op(status: u64, message: &str, result: Option<&str>) -> Operation {
        Operation {
            index: 0,
            status,
            message: message.into(),
            result: result.map(str::to_owned),
        }
    }

    #[test]
    fn each_status_decides_its_row() {
        let saved = r#"{"id": 5, "email": "a@x.io"}"#;
        let cases = [
            (
                op(1, "", Some(saved)),
                true,
                Verdict::Saved(json!({"id": 5, "email": "a@x.io"})),
            ),
            (op(1, "", Some("[1]")), true, Verdict::Adopt),
            (
                op(1, "", Some("[1]")),
                false,
                Verdict::Unreadable("the operation's result is not a customer".into()),
            ),
            (
                op(1, "", Some("{")),
                false,
                Verdict::Unreadable("the operation's result is not a customer".into()),
            ),
            (op(1, "", None), true, Verdict::Adopt),
            (
                op(1, "", None),
                false,
                Verdict::Unreadable("the operation completed without a result".into()),
            ),
            (
                op(2, "deadlock", None),
                true,
                Verdict::Retry("deadlock".into()),
            ),
            (op(3, ALREADY_EXISTS, None), true, Verdict::Adopt),
            (
                op(3, ALREADY_EXISTS, None),
                false,
                Verdict::Failed(ALREADY_EXISTS.into()),
            ),
            (
                op(3, "bad dob", None),
                true,
                Verdict::Failed("bad dob".into()),
            ),
            (op(4, "", None), true, Verdict::Open),
            (
                op(5, "rejected", None),
                false,
                Verdict::Failed("rejected".into()),
            ),
            (
                op(5, "", None),
                false,
                Verdict::Failed("the shop's queue failed the operation (status 5)".into()),
            ),
            (
                op(9, "", None),
                false,
                Verdict::Failed("the shop's queue gave the unknown status 9".into()),
            ),
        ];
        for (op, create, want) in cases {
            assert_eq!(verdict(&op, create), want, "{op:?}");
        }
    }

    #[test]
    fn operations_are_read_with_their_item_index() {
        let status = json!({"bulk_id": "u", "operations_list": [
            {"id": 1, "status": 4, "result_message": null, "result_serialized_data": null},
            {"id": 0, "status": 1, "result_message": "", "result_serialized_data": "{\"id\":3}"}]});
        let ops = operations(&status).expect("ops");
        assert_eq!(ops[0], op_at(1, 4, "", None));
        assert_eq!(ops[1], op_at(0, 1, "", Some("{\"id\":3}")));
        assert!(operations(&json!({"operations_list": [{"status": 1}]})).is_err());
        assert!(operations(&json!({})).is_err());
    }

    fn op_at(index: usize, status: u64, message: &str, result: Option<&str>) -> Operation {
        Operation {
            index,
            ..op(status, message, result)
        }
    }
}

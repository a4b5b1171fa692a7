//! What the executor knows of a write in doubt: whether any try of it may have reached the
//! shop (so that its doubt mark must stay). (The report says why an update is sent again with
//! [`Doubt::message`](crate::state::Doubt::message).)

use std::sync::atomic::{AtomicU32, Ordering};

use crate::api::ApiError;

/// The tries of one write, as far as they may have changed the shop: a try counts from the
/// moment it starts until its answer proves it was refused (so a try cut off by an interrupt
/// stays counted).
#[derive(Default)]
pub(super) struct Tries(AtomicU32);

impl Tries {
    /// Runs one try of a write, counting it as above.
    pub(super) async fn watch<T>(
        &self,
        call: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        let result = call.await;
        if let Err(e) = &result
            && refused_outright(e)
        {
            self.0.fetch_sub(1, Ordering::Relaxed);
        }
        result
    }

    /// Whether no try may have changed the shop.
    pub(super) fn none_applied(&self) -> bool {
        self.0.load(Ordering::Relaxed) == 0
    }
}

/// Whether `e` proves that the request changed nothing: the API answered it with a 4xx (429
/// and 408 included: the request was not processed), or it never left (no token).
fn refused_outright(e: &ApiError) -> bool {
    match e {
        ApiError::Status { status, .. } => (400..500).contains(status),
        ApiError::Unauthorized { .. } | ApiError::Auth(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn status(status: u16) -> ApiError {
        ApiError::Status {
            status,
            message: format!("status {status}"),
            retry_after: None,
        }
    }

    #[test]
    fn only_an_answer_that_refused_the_request_proves_nothing_was_written() {
        let transport = ApiError::Transport {
            url: "http://shop".into(),
            detail: "reset".into(),
        };
        let interrupted = ApiError::Interrupted {
            detail: "interrupted".into(),
        };
        let unexpected = ApiError::Unexpected {
            url: "http://shop".into(),
            detail: "not JSON".into(),
        };
        let cases = [
            (status(400), true),
            (status(404), true),
            (status(408), true),
            (status(429), true),
            (status(500), false),
            (status(503), false),
            (transport, false),
            (interrupted, false),
            (unexpected, false),
        ];
        for (e, want) in cases {
            assert_eq!(refused_outright(&e), want, "{e}");
        }
    }

    #[tokio::test]
    async fn a_try_counts_until_its_answer_refuses_it() {
        let tries = Tries::default();
        assert!(tries.none_applied());
        let _ = tries.watch(async { Err::<(), _>(status(429)) }).await;
        let _ = tries.watch(async { Err::<(), _>(status(400)) }).await;
        assert!(tries.none_applied(), "refused twice");
        let _ = tries.watch(async { Err::<(), _>(status(500)) }).await;
        assert!(!tries.none_applied(), "a 500 may come after the write");

        let tries = Tries::default();
        let cut_off = tokio::time::timeout(
            Duration::from_millis(1),
            tries.watch(std::future::pending::<Result<(), ApiError>>()),
        )
        .await;
        assert!(cut_off.is_err());
        assert!(!tries.none_applied(), "a try cut off may have been written");
    }
}

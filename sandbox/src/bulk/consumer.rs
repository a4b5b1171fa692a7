//! The queue consumer: a tokio task that applies open operations oldest first, at most
//! `rate` a second, each with exactly the rules of the synchronous route (the customer
//! store's `create`, or its `save` without merge for bulk updates), as Magento's
//! `async.operations.all` consumer does (`MassConsumer` → `OperationProcessor::process`).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Kind, Outcome};
use crate::routes::{AppState, customers};

/// What the injected retriable failure says: the database error `OperationProcessor`
/// marks retriable (`DeadlockException`, with its message), and its driver code.
const DEADLOCK: &str = "SQLSTATE[40001]: Serialization failure: 1213 Deadlock found when trying to get lock; try restarting transaction";
const DEADLOCK_CODE: i64 = 1213;

/// Works the queue until the sandbox stops (its stop sender is dropped), leaving what is
/// still open unprocessed: the sandbox's state, data directory lock included, goes with this
/// task, so it must not outlive the server.
pub(crate) async fn run(state: Arc<AppState>, mut stop: watch::Receiver<()>) {
    loop {
        // Registered before looking, so a submission between the look and the wait wakes it.
        let queued = state.bulks.queued.notified();
        match drain(&state, &mut stop).await {
            Drained::Stopped => return,
            Drained::Worked => {}
            Drained::Idle => {
                tokio::select! {
                    () = queued => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

/// How a pass over the queue ended.
enum Drained {
    /// The queue was empty from the start.
    Idle,
    /// It applied operations until the queue was empty.
    Worked,
    /// The sandbox is stopping.
    Stopped,
}

/// Applies operations while there are any, pacing them at the configured rate counted from
/// the first: the n-th is applied no earlier than n/rate seconds after it.
async fn drain(state: &AppState, stop: &mut watch::Receiver<()>) -> Drained {
    let start = Instant::now();
    let mut done: u32 = 0;
    loop {
        let due = (state.bulks.rate > 0 && done > 0).then(|| {
            start + Duration::from_secs_f64(f64::from(done) / f64::from(state.bulks.rate))
        });
        // Only when it is not yet due: the timer ticks by the millisecond, so at more than a
        // thousand a second several operations fall due per tick and are applied together.
        if let Some(due) = due.filter(|&due| due > Instant::now()) {
            tokio::select! {
                () = tokio::time::sleep_until(due) => {}
                _ = stop.changed() => return Drained::Stopped,
            }
        }
        if stop.has_changed().is_err() {
            return Drained::Stopped;
        }
        let Some((uuid, index, kind, scope, item)) = state.bulks.next() else {
            break;
        };
        let outcome = if state.faults.bulk_operation_retriable() {
            Outcome::Retriable(DEADLOCK, DEADLOCK_CODE)
        } else {
            apply(state, kind, scope, &item).await
        };
        state.bulks.finish(&uuid, index, outcome);
        done = done.saturating_add(1);
    }
    if done > 0 {
        Drained::Worked
    } else {
        Drained::Idle
    }
}

/// One operation against the customer store, as its synchronous route would do it.
async fn apply(
    state: &AppState,
    kind: Kind,
    scope: Option<i64>,
    item: &serde_json::Value,
) -> Outcome {
    let result = match customers(state).await {
        Ok(mut store) => match kind {
            Kind::Create => store.create(&state.shop, item, scope, Utc::now()),
            Kind::Save => store.save(&state.shop, item, scope, Utc::now()),
        },
        Err(e) => Err(e),
    };
    match result {
        Ok(answer) => Outcome::Done(answer),
        Err(error) => Outcome::Failed(error),
    }
}

//! Each request's time budget, derived from the invocation's deadline, so a
//! request answers before Lambda cuts it off and keeps time to clean up what
//! it started (revoking a consent it could not record).
//!
//! The budget is task-local: the runtime glue sets it once per request and
//! the Finexer client, waits and retries read it. Code that runs without one
//! (unit tests, tools) has no deadline beyond its own timeouts.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::error::{Error, Result};

/// Kept after the handler's answer for the runtime to send it.
const ANSWER_MARGIN: Duration = Duration::from_millis(500);
/// Kept after ordinary work for cleanup calls.
pub const CLEANUP_RESERVE: Duration = Duration::from_secs(4);
/// The invocation timeout assumed when the runtime gives no deadline (the
/// local stack): the template's function timeout.
pub const DEFAULT_INVOCATION: Duration = Duration::from_secs(28);

#[derive(Debug, Clone, Copy)]
struct Budget {
    /// Ordinary work (Finexer calls, waits) must end by then.
    work: Instant,
    /// The handler must have answered by then.
    answer: Instant,
}

tokio::task_local! {
    static BUDGET: Budget;
}

/// Runs a request's handler with the budget of an invocation that must end
/// at `invocation_end`.
pub async fn within<F: Future>(invocation_end: Instant, handler: F) -> F::Output {
    let now = Instant::now();
    let answer = invocation_end
        .checked_sub(ANSWER_MARGIN)
        .unwrap_or(now)
        .max(now);
    let work = answer.checked_sub(CLEANUP_RESERVE).unwrap_or(now).max(now);
    BUDGET.scope(Budget { work, answer }, handler).await
}

/// Runs cleanup with the time the budget kept for it.
pub async fn cleanup<F: Future>(work: F) -> F::Output {
    match BUDGET.try_with(|budget| *budget) {
        Ok(budget) => {
            let extended = Budget {
                work: budget.answer,
                ..budget
            };
            BUDGET.scope(extended, work).await
        }
        Err(_) => work.await,
    }
}

/// Time left for ordinary work; None without a budget.
pub fn remaining() -> Option<Duration> {
    BUDGET
        .try_with(|budget| budget.work.saturating_duration_since(Instant::now()))
        .ok()
}

/// The handler's result, or [`Error::OutOfTime`] when it would answer after
/// the budget allows. Whatever the handler had recorded stays recorded.
pub async fn guard<T>(handler: impl Future<Output = Result<T>>) -> Result<T> {
    match BUDGET.try_with(|budget| budget.answer) {
        Ok(answer) => tokio::time::timeout_at(answer, handler)
            .await
            .unwrap_or(Err(Error::OutOfTime)),
        Err(_) => handler.await,
    }
}

/// When an invocation with `deadline_ms` (Unix milliseconds, as the Lambda
/// runtime gives it) must end, as an instant of this process's clock.
pub fn invocation_end(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    match deadline_ms.checked_sub(now_ms) {
        // A deadline of 0 or in the past: the runtime gave none we can use.
        Some(left) if deadline_ms > 0 => Instant::now() + Duration::from_millis(left),
        _ => Instant::now() + DEFAULT_INVOCATION,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn work_keeps_the_cleanup_reserve_and_cleanup_gets_it() {
        let end = Instant::now() + Duration::from_secs(10);
        within(end, async {
            let work = remaining().unwrap();
            assert_eq!(
                work,
                Duration::from_secs(10) - ANSWER_MARGIN - CLEANUP_RESERVE
            );
            let during_cleanup = cleanup(async { remaining().unwrap() }).await;
            assert_eq!(during_cleanup, Duration::from_secs(10) - ANSWER_MARGIN);
        })
        .await;
        assert_eq!(remaining(), None, "no budget outside a request");
    }

    #[tokio::test(start_paused = true)]
    async fn a_handler_that_runs_past_the_budget_answers_out_of_time() {
        let end = Instant::now() + Duration::from_secs(2);
        let result: Result<()> = within(
            end,
            guard(async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(())
            }),
        )
        .await;
        assert!(matches!(result, Err(Error::OutOfTime)), "{result:?}");
    }

    #[test]
    fn a_missing_deadline_falls_back_to_the_function_timeout() {
        let end = invocation_end(0);
        let left = end.saturating_duration_since(Instant::now());
        assert!(left > DEFAULT_INVOCATION - Duration::from_secs(1));
    }
}

//! The client's deadline (`grpc-timeout`), visible to the store while a request runs.
//!
//! The handler runs the request's work inside [`within`]; the Redis store asks [`check`] before
//! it sends a command, and before each resend, so a request whose client has given up is never
//! sent to Redis (its work would be wasted, and under a flood it would delay the requests whose
//! clients still wait). The deadline is task-local, so the store's trait does not change and a
//! call without a deadline (an embedding caller, a shim) behaves as before.

use std::future::Future;

use tokio::time::Instant;

use crate::error::CartError;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `work` with `deadline` as the current request's deadline (`None`: no deadline).
pub async fn within<F: Future>(deadline: Option<Instant>, work: F) -> F::Output {
    match deadline {
        Some(deadline) => DEADLINE.scope(deadline, work).await,
        None => work.await,
    }
}

/// The current request's deadline, if it has one.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|deadline| *deadline).ok()
}

/// `DeadlineExceeded` once the current request's deadline has passed.
pub fn check() -> Result<(), CartError> {
    match current() {
        Some(deadline) if Instant::now() >= deadline => Err(CartError::DeadlineExceeded),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_deadline_holds_inside_its_scope_only() {
        assert!(current().is_none());
        assert!(check().is_ok());
        let deadline = Instant::now() + Duration::from_millis(100);
        within(Some(deadline), async {
            assert_eq!(current(), Some(deadline));
            assert!(check().is_ok());
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(matches!(check(), Err(CartError::DeadlineExceeded)));
        })
        .await;
        assert!(current().is_none());
        within(None, async { assert!(check().is_ok()) }).await;
    }
}

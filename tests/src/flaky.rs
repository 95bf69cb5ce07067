//! A store double that fails the first N calls with a throttling error, or lets entity commits
//! land and then reports them failed (a crash, or a response lost, right after the write), to
//! prove that a batch retried after a partial failure ends with nothing lost and nothing
//! counted twice. Built on [`crate::hooked`]: it says only what it changes.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use pipeline_core::Error;

use crate::hooked::{Hooked, Hooks, Op};

/// A store whose calls [`Flaky`] may fail.
pub type FlakyStore<S> = Hooked<S, Flaky>;

/// Every call after `pass_first` successful ones fails with `StoreThrottled` until
/// `fail_next` failures have been injected; the next `lose_commits` entity commits land and
/// are then reported failed.
pub struct Flaky {
    calls: AtomicUsize,
    pass_first: usize,
    fail_next: usize,
    lose_commits: AtomicUsize,
}

impl<S> Hooked<S, Flaky> {
    /// Lets `pass_first` calls through, then fails `fail_next` calls, then passes everything.
    pub fn new(inner: S, pass_first: usize, fail_next: usize) -> Self {
        Hooked {
            inner,
            hooks: Flaky {
                calls: AtomicUsize::new(0),
                pass_first,
                fail_next,
                lose_commits: AtomicUsize::new(0),
            },
        }
    }

    /// The next `n` entity commits are applied, then reported as failed (retryably).
    pub fn lose_commits(&self, n: usize) {
        self.hooks.lose_commits.store(n, Ordering::SeqCst);
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// How many failures were injected so far.
    pub fn injected(&self) -> usize {
        let h = &self.hooks;
        h.calls
            .load(Ordering::SeqCst)
            .saturating_sub(h.pass_first)
            .min(h.fail_next)
    }
}

/// The calls that can be failed: those that read or write (not flushing, nor inspection).
fn gated(op: Op) -> bool {
    matches!(
        op,
        Op::GetEvents
            | Op::WriteEvents
            | Op::GetEntities
            | Op::CommitEntity
            | Op::PutQuarantine
            | Op::ReplaceQuarantine
            | Op::QuarantineOf
    )
}

#[async_trait]
impl Hooks for Flaky {
    fn before(&self, op: Op) -> Result<(), Error> {
        if !gated(op) {
            return Ok(());
        }
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n >= self.pass_first && n < self.pass_first + self.fail_next {
            return Err(Error::StoreThrottled {
                message: format!("injected throttle on {op:?} (call {n})"),
                source: None,
            });
        }
        Ok(())
    }

    async fn after(&self, op: Op, succeeded: bool) -> Result<(), Error> {
        if op != Op::CommitEntity || !succeeded {
            return Ok(());
        }
        let lose = self
            .lose_commits
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if lose {
            return Err(Error::StoreUnavailable {
                message: "injected: an entity commit landed, its answer was lost".into(),
                source: None,
            });
        }
        Ok(())
    }

    // A store without a batched commit: every commit is its own call, failed or lost alone.
    fn one_commit_at_a_time(&self) -> bool {
        true
    }
}

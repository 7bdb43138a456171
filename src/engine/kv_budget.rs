//! Bounded KV-cache memory: the most bytes of KV cache the generations on one handle may
//! hold at once. A generation reserves its worst case before its prefill — (prompt +
//! `max_new_tokens`, at most the context length) × the bytes one position takes in every
//! layer — and gives it back when it ends. One that cannot fit beside the others waits for
//! room up to the handle's wait limit, then fails with [`Error::KvMemory`]; one whose worst
//! case exceeds the whole budget fails at once. Nothing is allocated before the reservation
//! succeeds, so a full budget never becomes an allocation failure inside ONNX Runtime.
//!
//! What it counts: each generation's cache once. A step's `present` outputs exist beside its
//! `past` inputs while it runs (one position more), and a change in the batch's membership
//! copies the rows it moves once: for that moment the caches of the rows involved exist
//! twice. The prompt's transient activations (attention over a prefill chunk) are not KV
//! cache and are bounded by the chunk size instead.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Default for [`super::EngineOptions::kv_wait`]: how long a generation waits for room.
pub const DEFAULT_KV_WAIT: Duration = Duration::from_secs(30);

/// The KV-cache budget of one engine.
pub(crate) struct KvBudget {
    /// Most bytes; `None`: no limit.
    limit: Option<usize>,
    /// Longest a reservation waits for room.
    wait: Duration,
    used: Mutex<usize>,
    freed: Condvar,
}

/// Bytes held for one generation; dropping it gives them back.
pub(crate) struct KvReservation<'b> {
    budget: &'b KvBudget,
    bytes: usize,
}

impl KvBudget {
    /// A budget of `limit` bytes (`None`: unlimited); a reservation waits at most `wait`.
    pub(crate) fn new(limit: Option<usize>, wait: Duration) -> Self {
        Self {
            limit,
            wait,
            used: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, usize> {
        self.used.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The limit, if any.
    pub(crate) fn limit(&self) -> Option<usize> {
        self.limit
    }

    /// Bytes reserved now.
    pub(crate) fn used(&self) -> usize {
        *self.lock()
    }

    /// Reserves `bytes` (`what` describes them in errors): at once when they fit, else after
    /// waiting for other generations to end, at most the budget's wait limit.
    pub(crate) fn reserve(&self, bytes: usize, what: &str) -> Result<KvReservation<'_>> {
        let Some(limit) = self.limit else {
            return Ok(KvReservation {
                budget: self,
                bytes: 0,
            });
        };
        if bytes > limit {
            return Err(Error::KvMemory(format!(
                "{what} needs {bytes} bytes of KV cache, more than the handle's whole budget of {limit} bytes (the max_kv_cache_bytes load option); lower max_new_tokens or shorten the prompt"
            )));
        }
        let deadline = Instant::now() + self.wait;
        let mut used = self.lock();
        loop {
            if *used + bytes <= limit {
                *used += bytes;
                return Ok(KvReservation {
                    budget: self,
                    bytes,
                });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::KvMemory(format!(
                    "{what} needs {bytes} bytes of KV cache; {used} of the handle's {limit} bytes (max_kv_cache_bytes) stayed reserved by other generations for {} ms (kv_wait_ms)",
                    self.wait.as_millis(),
                    used = *used
                )));
            }
            used = self
                .freed
                .wait_timeout(used, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
impl KvReservation<'_> {
    /// Bytes held (0 without a limit).
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for KvReservation<'_> {
    fn drop(&mut self) {
        if self.bytes > 0 {
            let mut used = self.budget.lock();
            *used = used.saturating_sub(self.bytes);
            drop(used);
            self.budget.freed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn reservations_fit_until_the_limit_and_come_back_when_dropped() {
        let budget = KvBudget::new(Some(100), Duration::ZERO);
        let a = budget.reserve(60, "a").unwrap();
        let b = budget.reserve(40, "b").unwrap();
        assert_eq!(budget.used(), 100);
        let full = budget.reserve(1, "c").err().unwrap();
        assert!(matches!(full, Error::KvMemory(_)), "{full}");
        assert!(full.to_string().contains("kv_wait_ms"), "{full}");
        drop(a);
        assert_eq!(budget.used(), 40);
        assert_eq!(budget.reserve(60, "d").unwrap().bytes(), 60);
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn more_than_the_whole_budget_fails_at_once() {
        let budget = KvBudget::new(Some(100), Duration::from_secs(60));
        let started = Instant::now();
        let e = budget.reserve(101, "a 101-byte generation").err().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "it did not wait"
        );
        assert!(e.to_string().contains("whole budget"), "{e}");
    }

    #[test]
    fn a_waiting_reservation_gets_the_room_another_one_frees() {
        let budget = Arc::new(KvBudget::new(Some(100), Duration::from_secs(10)));
        let held = budget.reserve(80, "first").unwrap();
        let waiter = {
            let budget = Arc::clone(&budget);
            std::thread::spawn(move || budget.reserve(50, "second").map(|r| r.bytes()).ok())
        };
        std::thread::sleep(Duration::from_millis(50));
        drop(held);
        assert_eq!(waiter.join().unwrap(), Some(50));
    }

    #[test]
    fn no_limit_reserves_nothing() {
        let budget = KvBudget::new(None, Duration::ZERO);
        let r = budget.reserve(usize::MAX, "anything").unwrap();
        assert_eq!((r.bytes(), budget.used(), budget.limit()), (0, 0, None));
    }
}

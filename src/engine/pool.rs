//! The sessions of one model, lent first come, first served: a step borrows a session for
//! its `session.run` and waits in line when none is free. The line is what lets a chunked
//! prefill share a single session with the decode steps of running generations: a prefill
//! that returns its session between chunks queues behind the decode step already waiting.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};

struct State<T> {
    free: Vec<T>,
    next_ticket: u64,
    /// Tickets of the borrowers waiting, oldest first.
    waiting: VecDeque<u64>,
}

/// A fixed set of `T` lent in arrival order.
pub(super) struct Pool<T> {
    state: Mutex<State<T>>,
    returned: Condvar,
}

/// A borrowed item; dropping it gives it back.
pub(super) struct Borrowed<'p, T> {
    pool: &'p Pool<T>,
    item: Option<T>,
}

impl<T> Pool<T> {
    /// A pool lending `items`.
    pub(super) fn new(items: Vec<T>) -> Self {
        Self {
            state: Mutex::new(State {
                free: items,
                next_ticket: 0,
                waiting: VecDeque::new(),
            }),
            returned: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a free item; borrowers get one in the order they asked.
    pub(super) fn acquire(&self) -> Borrowed<'_, T> {
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.waiting.push_back(ticket);
        loop {
            if state.waiting.front() == Some(&ticket) && !state.free.is_empty() {
                state.waiting.pop_front();
                let item = state.free.pop();
                drop(state);
                // The next in line may find another free item.
                self.returned.notify_all();
                return Borrowed { pool: self, item };
            }
            state = self.returned.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl<T> Borrowed<'_, T> {
    /// The borrowed item.
    pub(super) fn get(&mut self) -> Option<&mut T> {
        self.item.as_mut()
    }
}

impl<T> Drop for Borrowed<'_, T> {
    fn drop(&mut self) {
        if let Some(item) = self.item.take() {
            self.pool.lock().free.push(item);
            self.pool.returned.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{mpsc, Arc};
    use std::time::Duration;

    #[test]
    fn borrowers_are_served_in_the_order_they_asked() {
        let pool = Arc::new(Pool::new(vec![()]));
        let held = pool.acquire();
        let (tx, rx) = mpsc::channel();
        let mut threads = Vec::new();
        for i in 0..4 {
            let (pool, tx) = (Arc::clone(&pool), tx.clone());
            threads.push(std::thread::spawn(move || {
                let _session = pool.acquire();
                tx.send(i).unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }));
            // Let thread i take its place in line before the next one asks.
            std::thread::sleep(Duration::from_millis(30));
        }
        drop(held);
        for t in threads {
            t.join().unwrap();
        }
        let order: Vec<i32> = rx.try_iter().collect();
        assert_eq!(order, [0, 1, 2, 3]);
    }

    #[test]
    fn a_returning_borrower_queues_behind_one_already_waiting() {
        // The chunked-prefill case: A gives its session back and asks again at once, while B
        // has been waiting: B goes first.
        let pool = Arc::new(Pool::new(vec![()]));
        let a = pool.acquire();
        let (tx, rx) = mpsc::channel();
        let b = {
            let (pool, tx) = (Arc::clone(&pool), tx.clone());
            std::thread::spawn(move || {
                let _session = pool.acquire();
                tx.send("b").unwrap();
            })
        };
        std::thread::sleep(Duration::from_millis(30));
        drop(a);
        let again = pool.acquire();
        tx.send("a again").unwrap();
        drop(again);
        b.join().unwrap();
        let order: Vec<&str> = rx.try_iter().collect();
        assert_eq!(order, ["b", "a again"]);
    }

    #[test]
    fn several_items_serve_several_borrowers_at_once() {
        let pool = Pool::new(vec![1, 2]);
        let mut x = pool.acquire();
        let mut y = pool.acquire();
        let mut got = [*x.get().unwrap(), *y.get().unwrap()];
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
    }
}

//! A shutdown signal that many tasks wait on. Built on `Notify` because
//! `tokio::sync::watch` wakes waiters in an order that breaks the simulation's
//! determinism.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    triggered: AtomicBool,
    notify: Notify,
    /// Tasks that hold a [`TaskGuard`]: connections still finishing a request.
    tasks: AtomicUsize,
    tasks_done: Notify,
}

/// Counts one running task until it is dropped.
pub struct TaskGuard {
    inner: Arc<Inner>,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.inner.tasks.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.inner.tasks_done.notify_waiters();
        }
    }
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Starts the shutdown; every current and future [`Shutdown::wait`] returns.
    pub fn trigger(&self) {
        self.inner.triggered.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::SeqCst)
    }

    /// Returns once the shutdown is triggered.
    pub async fn wait(&self) {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_triggered() {
                return;
            }
            notified.await;
        }
    }

    /// Registers a running task; shutdown waits for it in [`Shutdown::wait_for_tasks`].
    pub fn task(&self) -> TaskGuard {
        self.inner.tasks.fetch_add(1, Ordering::SeqCst);
        TaskGuard {
            inner: self.inner.clone(),
        }
    }

    /// Returns once every registered task has ended.
    pub async fn wait_for_tasks(&self) {
        loop {
            let done = self.inner.tasks_done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if self.inner.tasks.load(Ordering::SeqCst) == 0 {
                return;
            }
            done.await;
        }
    }
}

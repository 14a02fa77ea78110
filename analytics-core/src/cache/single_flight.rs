//! Single flight: concurrent requests for the same key share one computation.
//!
//! The computation runs in its own tokio task, so it finishes (and fills the cache) even when
//! every caller that asked for it is cancelled; its map entry is removed by a drop guard, so a
//! panicking computation cannot leave a poisoned flight behind. The task is spawned after the map
//! is unlocked (a runtime shutting down drops new tasks inside `spawn`, running the guard there).
//! Without a tokio runtime the work runs inline, unshared.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use tokio::sync::oneshot;

use crate::error::{Error, Result};

type Flight<V> = Shared<BoxFuture<'static, Result<V>>>;

pub(crate) struct SingleFlight<K, V> {
    flights: Arc<Mutex<HashMap<K, Flight<V>>>>,
}

impl<K, V> Default for SingleFlight<K, V> {
    fn default() -> Self {
        Self {
            flights: Arc::default(),
        }
    }
}

impl<K, V> std::fmt::Debug for SingleFlight<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleFlight").finish_non_exhaustive()
    }
}

impl<K, V> SingleFlight<K, V>
where
    K: Clone + Eq + Hash + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Runs `work` unless a flight for `key` is under way, in which case joins it.
    pub(crate) async fn run<F>(&self, key: K, work: F) -> Result<V>
    where
        F: Future<Output = Result<V>> + Send + 'static,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return work.await;
        };
        let (flight, start) = {
            let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
            match flights.get(&key) {
                Some(flight) => (flight.clone(), None),
                None => {
                    let (result, outcome) = oneshot::channel();
                    let flight = async move {
                        outcome.await.unwrap_or_else(|_| {
                            Err(Error::Internal("the computation panicked or was cancelled".into()))
                        })
                    }
                    .boxed()
                    .shared();
                    flights.insert(key.clone(), flight.clone());
                    (flight, Some(result))
                }
            }
        };
        // Spawned with the map unlocked: a runtime that is shutting down drops a new task at once,
        // inside `spawn`, and the task's guard then locks the map (under the lock, that deadlocked).
        if let Some(result) = start {
            let guard = RemoveOnDrop {
                flights: self.flights.clone(),
                key: Some(key),
            };
            runtime.spawn(async move {
                // Dropped last: the result is delivered before the flight leaves the map.
                let _guard = guard;
                let _ = result.send(work.await);
            });
        }
        flight.await
    }

    #[cfg(test)]
    fn in_flight(&self) -> usize {
        self.flights.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

struct RemoveOnDrop<K: Eq + Hash, V> {
    flights: Arc<Mutex<HashMap<K, Flight<V>>>>,
    key: Option<K>,
}

impl<K: Eq + Hash, V> Drop for RemoveOnDrop<K, V> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.flights.lock().unwrap_or_else(PoisonError::into_inner).remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_runtime_shutting_down_cannot_deadlock_a_flight() {
        // A closed runtime drops a new task inside `spawn`, running its guard there; spawning
        // under the map's lock deadlocked on exactly this (seen when a test's runtime shut down
        // with a background refresh starting). A current-thread runtime is closed as soon as it
        // is shut down (a multi-thread one closes asynchronously), so this is deterministic.
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let handle = runtime.handle().clone();
        runtime.shutdown_background();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _entered = handle.enter();
            let flights: SingleFlight<&'static str, u32> = SingleFlight::default();
            let result = flights.run("k", async { Ok(1) }).now_or_never();
            let _ = done.send((result.map(|r| r.is_err()), flights.in_flight()));
        });
        let (failed, left) = finished
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the flight returned instead of deadlocking");
        assert_eq!(failed, Some(true), "the dropped computation is an error, at once");
        assert_eq!(left, 0, "and leaves no flight behind");
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_run() {
        let flights: Arc<SingleFlight<&'static str, u32>> = Arc::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let (release, gate) = oneshot::channel::<()>();
        let first = {
            let (flights, runs) = (flights.clone(), runs.clone());
            tokio::spawn(async move {
                flights
                    .run("k", async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        gate.await.ok();
                        Ok(7)
                    })
                    .await
            })
        };
        while flights.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
        let runs2 = runs.clone();
        let second = flights.run("k", async move {
            runs2.fetch_add(1, Ordering::SeqCst);
            Ok(8)
        });
        release.send(()).unwrap();
        assert_eq!(second.await.unwrap(), 7);
        assert_eq!(first.await.unwrap().unwrap(), 7);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(flights.in_flight(), 0);
    }

    #[tokio::test]
    async fn survives_a_cancelled_caller() {
        let flights: Arc<SingleFlight<&'static str, u32>> = Arc::default();
        let (release, gate) = oneshot::channel::<()>();
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let caller = {
            let flights = flights.clone();
            tokio::spawn(async move {
                flights
                    .run("k", async move {
                        gate.await.ok();
                        done_tx.send(()).ok();
                        Ok(1)
                    })
                    .await
            })
        };
        while flights.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
        caller.abort();
        assert!(caller.await.unwrap_err().is_cancelled());
        release.send(()).unwrap();
        done_rx
            .await
            .expect("the computation ran to completion after its caller was cancelled");
        while flights.in_flight() != 0 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_panicking_computation_is_an_error_and_is_forgotten() {
        let flights: SingleFlight<&'static str, u32> = SingleFlight::default();
        let err = flights.run("k", async { panic!("boom") }).await.unwrap_err();
        assert!(matches!(err, Error::Internal(_)));
        assert_eq!(flights.in_flight(), 0);
        assert_eq!(flights.run("k", async { Ok(2) }).await.unwrap(), 2);
    }
}

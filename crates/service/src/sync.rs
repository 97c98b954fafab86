//! Locking a `std::sync::Mutex` that a panicked holder poisoned: the services keep only plain
//! data behind their mutexes (maps, counters, handles), which stays usable, so they go on.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking the data over from a poisoned lock.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

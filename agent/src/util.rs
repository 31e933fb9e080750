//! Small helpers shared by the agent's modules.

use std::sync::{Mutex, MutexGuard};

/// Lock `m`, taking the value even if a panicking thread poisoned it: every
/// agent mutex guards plain data that stays consistent between statements, so
/// a panic elsewhere must not take the whole agent down with it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

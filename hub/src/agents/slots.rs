//! The stream slots of one agent, shared so that one role cannot exhaust them
//! for another: every request to the agent (a channel or a one-shot on the
//! control channel) holds one of [`MAX_STREAMS_PER_AGENT`] slots, and a
//! request made with a viewer token also holds one of
//! [`VIEWER_STREAMS_PER_AGENT`] viewer slots. Viewers following logs across a
//! fleet therefore leave the rest to operators and admins, whose `stop` or
//! `deploy` never answers `busy` because of them.
//!
//! Slots are only ever tried, never waited for, so the order in which the
//! two are taken cannot deadlock; the viewer slot is taken first so that a
//! full viewer share never touches the common pool. A [`Slot`] releases both
//! when dropped, on every path.

use std::sync::Arc;

use nextdeploy_shared::limits::MAX_STREAMS_PER_AGENT;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::limits::VIEWER_STREAMS_PER_AGENT;
use crate::store::Role;

/// The stream slots of one agent connection.
pub struct Slots {
    /// Every request holds one.
    all: Arc<Semaphore>,
    /// Requests made with viewer tokens also hold one.
    viewers: Arc<Semaphore>,
}

/// One request's hold on an agent: released when dropped.
#[derive(Debug)]
pub struct Slot {
    _viewer: Option<OwnedSemaphorePermit>,
    _all: OwnedSemaphorePermit,
}

/// Why no slot was free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// Every slot of the agent is taken.
    Agent,
    /// The viewers' share is taken (operators and admins still have the rest).
    ViewerShare,
}

impl Default for Slots {
    fn default() -> Self {
        Slots {
            all: Arc::new(Semaphore::new(MAX_STREAMS_PER_AGENT)),
            viewers: Arc::new(Semaphore::new(VIEWER_STREAMS_PER_AGENT)),
        }
    }
}

impl Slots {
    /// A slot for a request made with a token of `role`, or which budget is full.
    pub fn take(&self, role: Role) -> Result<Slot, Full> {
        let viewer = match role {
            Role::Viewer => Some(
                self.viewers
                    .clone()
                    .try_acquire_owned()
                    .map_err(|_| Full::ViewerShare)?,
            ),
            Role::Operator | Role::Admin => None,
        };
        // On failure `viewer` is dropped here, giving its slot back.
        let all = self
            .all
            .clone()
            .try_acquire_owned()
            .map_err(|_| Full::Agent)?;
        Ok(Slot {
            _viewer: viewer,
            _all: all,
        })
    }

    /// Slots free for operators and admins (tests and metrics).
    pub fn free(&self) -> usize {
        self.all.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewers_hold_at_most_their_share_and_others_get_the_rest() {
        let slots = Slots::default();
        let viewers: Vec<Slot> = (0..VIEWER_STREAMS_PER_AGENT)
            .map(|_| slots.take(Role::Viewer).unwrap())
            .collect();
        assert_eq!(slots.take(Role::Viewer).unwrap_err(), Full::ViewerShare);
        // A refused viewer took nothing from the common pool.
        assert_eq!(
            slots.free(),
            MAX_STREAMS_PER_AGENT - VIEWER_STREAMS_PER_AGENT
        );
        let rest = MAX_STREAMS_PER_AGENT - VIEWER_STREAMS_PER_AGENT;
        let mut ops: Vec<Slot> = (0..rest - 1)
            .map(|_| slots.take(Role::Operator).unwrap())
            .collect();
        ops.push(slots.take(Role::Admin).unwrap());
        assert_eq!(slots.take(Role::Admin).unwrap_err(), Full::Agent);
        // Every slot is released on drop, viewer share included.
        drop(viewers);
        drop(ops);
        assert_eq!(slots.free(), MAX_STREAMS_PER_AGENT);
        assert_eq!(slots.viewers.available_permits(), VIEWER_STREAMS_PER_AGENT);
    }

    #[test]
    fn a_viewer_refused_by_a_full_pool_gives_its_share_back() {
        let slots = Slots::default();
        let ops: Vec<Slot> = (0..MAX_STREAMS_PER_AGENT)
            .map(|_| slots.take(Role::Operator).unwrap())
            .collect();
        assert_eq!(slots.take(Role::Viewer).unwrap_err(), Full::Agent);
        assert_eq!(slots.viewers.available_permits(), VIEWER_STREAMS_PER_AGENT);
        drop(ops);
        assert!(slots.take(Role::Viewer).is_ok());
    }
}

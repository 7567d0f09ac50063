//! The funnel: every event, from whichever source, passes through
//! [`record`] on its way to the metrics, the stores and the request scope.
//!
//! - [`event`]: the event types.
//! - [`table`]: the statement table (text → entry, with a per-thread cache;
//!   fingerprint → entry; summary → metric handles).
//! - [`sink`]: the per-pool sink the events of one pool go to.
//! - [`scope`]: the request scope ([`RequestDbStats`](crate::RequestDbStats))
//!   that the layer opens and every statement adds to.
//! - [`tracked`]: operations timed by name.
//! - [`span`]: the `tracing` spans of statements, transactions and failed
//!   checkouts.
//!
//! The funnel never sees a pool or an HTTP type: sources keep their own
//! bookkeeping and hand over plain events.

pub(crate) mod event;
pub(crate) mod handles;
mod record;
pub(crate) mod scope;
pub(crate) mod sink;
pub(crate) mod span;
pub(crate) mod table;
pub(crate) mod tracked;

pub(crate) use event::{Event, Outcome, PoolCounters, Rows, StatementEnd, TxOutcome};
pub(crate) use record::record;

/// A deadlock's other side, as the source that saw the failure names it
/// (the pool's connections, routes and call sites), handed to the funnel
/// on the same thread just before the statement's event: the event itself
/// stays as small as the statement hot path wants it.
pub(crate) mod deadlock_peers {
    use std::cell::RefCell;

    thread_local! {
        static PEERS: RefCell<Option<String>> = const { RefCell::new(None) };
    }

    pub(crate) fn set(peers: String) {
        PEERS.with(|p| *p.borrow_mut() = Some(peers));
    }

    pub(crate) fn take() -> Option<String> {
        PEERS.with(|p| p.borrow_mut().take())
    }
}
pub(crate) use scope::current_route_id;
pub(crate) use sink::{AlertListener, Sink};
pub(crate) use table::QueryEntry;

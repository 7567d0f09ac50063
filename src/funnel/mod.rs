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

pub(crate) use scope::checkout_began;
pub(crate) use sink::{AlertListener, Sink};
pub(crate) use table::{QueryEntry, QueryTable};

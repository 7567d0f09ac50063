//! [`MonitoredStream`]: a statement whose rows come as a stream, timed
//! until the stream ends.

use std::any::Any;
use std::fmt;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_core::Stream;
use pin_project_lite::pin_project;
use tokio_postgres::{Error, RowStream, SimpleQueryMessage};

use super::flight::InFlight;
use crate::funnel::{Outcome, Rows};

/// What a [`MonitoredStream`] counts as rows.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Counting {
    /// Every item is a row.
    Items,
    /// Only `SimpleQueryMessage::Row` items are rows.
    SimpleRows,
    /// Items are not rows (copy data): the row count is unknown.
    Nothing,
}

pin_project! {
    /// A stream of rows (or messages, or copy data) whose statement is timed
    /// until the stream ends.
    ///
    /// Dropped before its end (the first row read, the rest not wanted),
    /// the statement is recorded as finished with the rows read so far and
    /// counted as ended early
    /// ([`STREAMS_ENDED_EARLY`](crate::names::STREAMS_ENDED_EARLY)), as
    /// tokio-postgres reads and drops the rest of the answer. The
    /// connection goes back to the pool once the server has finished
    /// (within [`abandoned_grace`](crate::MonitorConfig::abandoned_grace));
    /// a statement still running then is cancelled and its connection
    /// retired.
    pub struct MonitoredStream<S> {
        #[pin]
        pub(crate) inner: S,
        pub(crate) flight: Option<InFlight<'static>>,
        pub(crate) rows: u64,
        pub(crate) counting: Counting,
    }

    impl<S> PinnedDrop for MonitoredStream<S> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(mut flight) = this.flight.take() {
                flight.ended_early(rows_of(*this.counting, *this.rows));
            }
        }
    }
}

/// The rows a stream's statement reports, having counted `rows`.
fn rows_of(counting: Counting, rows: u64) -> Rows {
    match counting {
        Counting::Nothing => Rows::Unknown,
        _ => Rows::Returned(rows),
    }
}

impl<S> fmt::Debug for MonitoredStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredStream")
            .field("rows", &self.rows)
            .field("finished", &self.flight.is_none())
            .finish()
    }
}

impl MonitoredStream<RowStream> {
    /// The number of rows affected, once the stream has ended
    /// (see `RowStream::rows_affected`).
    pub fn rows_affected(&self) -> Option<u64> {
        self.inner.rows_affected()
    }
}

impl<S, T> Stream for MonitoredStream<S>
where
    S: Stream<Item = Result<T, Error>>,
    T: 'static,
{
    type Item = Result<T, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let item = ready!(this.inner.poll_next(cx));
        match &item {
            Some(Ok(value)) => {
                let (row, first) = match this.counting {
                    Counting::Items => (1, *this.rows == 0),
                    Counting::SimpleRows => {
                        let message = (value as &dyn Any).downcast_ref::<SimpleQueryMessage>();
                        let row = matches!(message, Some(SimpleQueryMessage::Row(_)));
                        (u64::from(row), row && *this.rows == 0)
                    }
                    // Copy data: its first piece is the first "row".
                    Counting::Nothing => (0, true),
                };
                *this.rows += row;
                if first {
                    if let Some(flight) = this.flight.as_mut() {
                        flight.first_item();
                    }
                }
            }
            Some(Err(e)) => {
                if let Some(mut flight) = this.flight.take() {
                    flight.finish(Outcome::Failed(e));
                }
            }
            None => {
                if let Some(mut flight) = this.flight.take() {
                    flight.finish(Outcome::Ok(rows_of(*this.counting, *this.rows)));
                }
            }
        }
        Poll::Ready(item)
    }
}

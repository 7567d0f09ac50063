//! [`MonitoredStatement`] and [`ToMonitoredStatement`]: what the client
//! methods take as a statement.

use std::fmt;
use std::sync::Arc;

use tokio_postgres::types::Type;
use tokio_postgres::Statement;

use crate::funnel::QueryEntry;
use crate::sql::Operation;

mod sealed {
    pub trait Sealed {}
}

/// A statement given to a [`MonitoredClient`](super::MonitoredClient) method: SQL text (`&str`,
/// `String`) or a [`MonitoredStatement`].
///
/// Sealed: it is implemented for exactly those types. A bare
/// `tokio_postgres::Statement` cannot tell its SQL back, so prepare through
/// [`MonitoredClient::prepare`](super::MonitoredClient::prepare) instead.
pub trait ToMonitoredStatement: sealed::Sealed + Sync {
    #[doc(hidden)]
    fn __sql(&self) -> &str;
    #[doc(hidden)]
    fn __prepared(&self) -> Option<&MonitoredStatement>;
}

impl sealed::Sealed for str {}
impl ToMonitoredStatement for str {
    fn __sql(&self) -> &str {
        self
    }
    fn __prepared(&self) -> Option<&MonitoredStatement> {
        None
    }
}

impl sealed::Sealed for String {}
impl ToMonitoredStatement for String {
    fn __sql(&self) -> &str {
        self
    }
    fn __prepared(&self) -> Option<&MonitoredStatement> {
        None
    }
}

impl sealed::Sealed for MonitoredStatement {}
impl ToMonitoredStatement for MonitoredStatement {
    fn __sql(&self) -> &str {
        &self.sql
    }
    fn __prepared(&self) -> Option<&MonitoredStatement> {
        Some(self)
    }
}

/// A prepared statement that remembers its SQL text and fingerprint
/// (`tokio_postgres::Statement` cannot give them back).
///
/// Cheap to clone. Running it skips the statement-text lookup entirely.
#[derive(Clone)]
pub struct MonitoredStatement {
    pub(crate) statement: Statement,
    pub(crate) sql: Arc<str>,
    pub(crate) entry: Arc<QueryEntry>,
}

impl fmt::Debug for MonitoredStatement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The normalized text only: the raw text may hold literals.
        f.debug_struct("MonitoredStatement")
            .field("normalized", &self.entry.normalized)
            .field("fingerprint", &format_args!("{:016x}", self.entry.fingerprint))
            .finish()
    }
}

impl MonitoredStatement {
    /// The underlying prepared statement.
    pub fn statement(&self) -> &Statement {
        &self.statement
    }

    /// The SQL text it was prepared from, as written (it may contain
    /// literals: do not log it; see [`normalized`](Self::normalized)).
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The normalized text, with literals replaced by `?`.
    pub fn normalized(&self) -> &str {
        &self.entry.normalized
    }

    /// The statement's fingerprint (see [`crate::sql::fingerprint`]).
    pub fn fingerprint(&self) -> u64 {
        self.entry.fingerprint
    }

    /// The operation of the statement.
    pub fn operation(&self) -> Operation {
        self.entry.operation
    }

    /// The main table of the statement, if any.
    pub fn table(&self) -> Option<&str> {
        self.entry.table.as_deref()
    }

    /// The types of the statement's parameters.
    pub fn params(&self) -> &[Type] {
        self.statement.params()
    }

    /// The columns the statement returns.
    pub fn columns(&self) -> &[tokio_postgres::Column] {
        self.statement.columns()
    }
}

//! [`GenericClient`]: one trait for data-access code that takes a monitored
//! client, a monitored transaction, or tokio-postgres's own.

use std::future::Future;

use futures_core::Stream;
use tokio_postgres::types::{BorrowToSql, ToSql};
use tokio_postgres::{Client, Error, Row, RowStream, SimpleQueryMessage, Transaction};

use super::client::MonitoredClient;
use super::statement::ToMonitoredStatement;
use super::stream::MonitoredStream;
use super::transaction::MonitoredTransaction;

mod sealed {
    pub trait Sealed {}
}

/// The statement methods that [`MonitoredClient`], [`MonitoredTransaction`],
/// `tokio_postgres::Client` and `tokio_postgres::Transaction` share, so
/// that one data-access function serves all four (tokio-postgres's own
/// `GenericClient` is sealed to its types).
///
/// Statements are SQL text or a [`MonitoredStatement`](crate::MonitoredStatement)
/// (any [`ToMonitoredStatement`]); on a raw client a `MonitoredStatement`
/// runs as its underlying `tokio_postgres::Statement`, which, as in
/// tokio-postgres, must have been prepared on that same connection.
/// Statements through the monitored types are recorded; through the raw
/// ones they are not.
///
/// Sealed: implemented for exactly those four types.
///
/// # Example
///
/// ```no_run
/// use db_monitor::GenericClient;
/// use db_monitor::tokio_postgres::Error;
///
/// async fn user_name(db: &impl GenericClient, id: i64) -> Result<Option<String>, Error> {
///     let row = db.query_opt("SELECT name FROM users WHERE id = $1", &[&id]).await?;
///     Ok(row.map(|r| r.get(0)))
/// }
///
/// # async fn run(pool: db_monitor::MonitoredPool<db_monitor::tokio_postgres::NoTls>,
/// #              raw: db_monitor::tokio_postgres::Client) -> Result<(), Box<dyn std::error::Error>> {
/// let mut conn = pool.get().await?;
/// user_name(&*conn, 7).await?;                 // recorded
/// let tx = conn.transaction().await?;
/// user_name(&tx, 7).await?;                    // recorded, inside the transaction
/// tx.commit().await?;
/// user_name(&raw, 7).await?;                   // a plain tokio-postgres client
/// # Ok(()) }
/// ```
pub trait GenericClient: sealed::Sealed + Sync {
    /// The stream [`query_raw`](Self::query_raw) returns.
    type RowStream: Stream<Item = Result<Row, Error>> + Send + 'static;

    /// Runs a statement and returns its rows.
    fn query<'a, T>(
        &'a self,
        statement: &'a T,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send + 'a
    where
        T: ?Sized + ToMonitoredStatement;

    /// Runs a statement that returns exactly one row.
    fn query_one<'a, T>(
        &'a self,
        statement: &'a T,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, Error>> + Send + 'a
    where
        T: ?Sized + ToMonitoredStatement;

    /// Runs a statement that returns zero or one row.
    fn query_opt<'a, T>(
        &'a self,
        statement: &'a T,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send + 'a
    where
        T: ?Sized + ToMonitoredStatement;

    /// Runs a statement and streams its rows.
    fn query_raw<'a, T, P, I>(
        &'a self,
        statement: &'a T,
        params: I,
    ) -> impl Future<Output = Result<Self::RowStream, Error>> + Send
    where
        T: ?Sized + ToMonitoredStatement,
        P: BorrowToSql + Send,
        I: IntoIterator<Item = P> + Send,
        I::IntoIter: ExactSizeIterator + Send;

    /// Runs a statement and returns the number of rows it affected.
    fn execute<'a, T>(
        &'a self,
        statement: &'a T,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'a
    where
        T: ?Sized + ToMonitoredStatement;

    /// Runs `;`-separated statements with the simple query protocol.
    fn batch_execute<'a>(&'a self, query: &'a str) -> impl Future<Output = Result<(), Error>> + Send + 'a;

    /// Runs statements with the simple query protocol and returns its
    /// messages.
    fn simple_query<'a>(
        &'a self,
        query: &'a str,
    ) -> impl Future<Output = Result<Vec<SimpleQueryMessage>, Error>> + Send + 'a;
}

/// The monitored types: their own methods, recorded.
macro_rules! monitored {
    ($ty:ty) => {
        impl sealed::Sealed for $ty {}

        impl GenericClient for $ty {
            type RowStream = MonitoredStream<RowStream>;

            fn query<'a, T>(
                &'a self,
                statement: &'a T,
                params: &'a [&'a (dyn ToSql + Sync)],
            ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send + 'a
            where
                T: ?Sized + ToMonitoredStatement,
            {
                <$ty>::query(self, statement, params)
            }

            fn query_one<'a, T>(
                &'a self,
                statement: &'a T,
                params: &'a [&'a (dyn ToSql + Sync)],
            ) -> impl Future<Output = Result<Row, Error>> + Send + 'a
            where
                T: ?Sized + ToMonitoredStatement,
            {
                <$ty>::query_one(self, statement, params)
            }

            fn query_opt<'a, T>(
                &'a self,
                statement: &'a T,
                params: &'a [&'a (dyn ToSql + Sync)],
            ) -> impl Future<Output = Result<Option<Row>, Error>> + Send + 'a
            where
                T: ?Sized + ToMonitoredStatement,
            {
                <$ty>::query_opt(self, statement, params)
            }

            fn query_raw<'a, T, P, I>(
                &'a self,
                statement: &'a T,
                params: I,
            ) -> impl Future<Output = Result<Self::RowStream, Error>> + Send
            where
                T: ?Sized + ToMonitoredStatement,
                P: BorrowToSql + Send,
                I: IntoIterator<Item = P> + Send,
                I::IntoIter: ExactSizeIterator + Send,
            {
                <$ty>::query_raw(self, statement, params)
            }

            fn execute<'a, T>(
                &'a self,
                statement: &'a T,
                params: &'a [&'a (dyn ToSql + Sync)],
            ) -> impl Future<Output = Result<u64, Error>> + Send + 'a
            where
                T: ?Sized + ToMonitoredStatement,
            {
                <$ty>::execute(self, statement, params)
            }

            fn batch_execute<'a>(&'a self, query: &'a str) -> impl Future<Output = Result<(), Error>> + Send + 'a {
                <$ty>::batch_execute(self, query)
            }

            fn simple_query<'a>(
                &'a self,
                query: &'a str,
            ) -> impl Future<Output = Result<Vec<SimpleQueryMessage>, Error>> + Send + 'a {
                <$ty>::simple_query(self, query)
            }
        }
    };
}

monitored!(MonitoredClient);
monitored!(MonitoredTransaction<'_>);

/// `$method` of a tokio-postgres type with the statement as it takes it:
/// a prepared statement's own `Statement`, or the text.
macro_rules! by_statement {
    ($ty:ty, $method:ident, $client:expr, $statement:expr, $params:expr) => {
        async move {
            match $statement.__prepared() {
                Some(p) => <$ty>::$method($client, &p.statement, $params).await,
                None => <$ty>::$method($client, $statement.__sql(), $params).await,
            }
        }
    };
}

/// tokio-postgres's types: a prepared statement runs as itself, text as
/// text; nothing is recorded.
macro_rules! raw {
    ($ty:ty) => {
        impl sealed::Sealed for $ty {}

        impl GenericClient for $ty {
            type RowStream = RowStream;

            fn query<'a, T>(
                &'a self,
                statement: &'a T,
                params: &'a [&'a (dyn ToSql + Sync)],
            ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send + 'a
            where
                T: ?Sized + ToMonitoredStatement,
            {
                by_statement!($ty, query, self, statement, params)
            }

            fn query_one<'a, T>(
                &'a self,
                statement: &'a T,
                params: &'a [&'a (dyn ToSql + Sync)],
            ) -> impl Future<Output = Result<Row, Error>> + Send + 'a
            where
                T: ?Sized + ToMonitoredStatement,
            {
                by_statement!($ty, query_one, self, statement, params)
            }

            fn query_opt<'a, T>(
                &'a self,
                statement: &'a T,
                params: &'a [&'a (dyn ToSql + Sync)],
            ) -> impl Future<Output = Result<Option<Row>, Error>> + Send + 'a
            where
                T: ?Sized + ToMonitoredStatement,
            {
                by_statement!($ty, query_opt, self, statement, params)
            }

            fn query_raw<'a, T, P, I>(
                &'a self,
                statement: &'a T,
                params: I,
            ) -> impl Future<Output = Result<Self::RowStream, Error>> + Send
            where
                T: ?Sized + ToMonitoredStatement,
                P: BorrowToSql + Send,
                I: IntoIterator<Item = P> + Send,
                I::IntoIter: ExactSizeIterator + Send,
            {
                by_statement!($ty, query_raw, self, statement, params)
            }

            fn execute<'a, T>(
                &'a self,
                statement: &'a T,
                params: &'a [&'a (dyn ToSql + Sync)],
            ) -> impl Future<Output = Result<u64, Error>> + Send + 'a
            where
                T: ?Sized + ToMonitoredStatement,
            {
                by_statement!($ty, execute, self, statement, params)
            }

            fn batch_execute<'a>(&'a self, query: &'a str) -> impl Future<Output = Result<(), Error>> + Send + 'a {
                <$ty>::batch_execute(self, query)
            }

            fn simple_query<'a>(
                &'a self,
                query: &'a str,
            ) -> impl Future<Output = Result<Vec<SimpleQueryMessage>, Error>> + Send + 'a {
                <$ty>::simple_query(self, query)
            }
        }
    };
}

raw!(Client);
raw!(Transaction<'_>);

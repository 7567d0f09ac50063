//! Failure classes: [`ErrorKind`] from a `tokio_postgres::Error`, a pool
//! checkout error, or any error chain.
//!
//! # Example
//!
//! ```
//! use db_monitor::ErrorKind;
//!
//! assert_eq!(ErrorKind::from_sqlstate("40P01"), ErrorKind::Deadlock);
//! assert_eq!(ErrorKind::from_sqlstate("23505"), ErrorKind::ConstraintViolation);
//! assert_eq!(ErrorKind::Deadlock.as_str(), "deadlock");
//! ```

use std::any::Any;
use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;

use std::sync::Arc;
use std::time::Duration;

/// What went wrong, as a closed set with stable names.
///
/// [`as_str`](ErrorKind::as_str) is the value of the `error_type` metric
/// label. The SQLSTATE code itself, when there is one, is kept separately
/// (the `db_response_status_code` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `40P01`: the server broke a deadlock by failing this transaction.
    Deadlock,
    /// `40001`: a serializable or repeatable-read transaction must be retried.
    SerializationFailure,
    /// `57014`: cancelled by `statement_timeout` or a cancel request.
    StatementTimeout,
    /// `55P03`: `lock_timeout` expired, or `NOWAIT` found the row locked.
    LockTimeout,
    /// `25P03`: `idle_in_transaction_session_timeout` ended the session.
    IdleInTransactionTimeout,
    /// `53300`: the server's `max_connections` (or a role's limit) is reached.
    TooManyConnections,
    /// `57P01`/`57P02`/`57P03`: the server is shutting down, crashed or starting.
    AdminShutdown,
    /// Class `08`, a closed connection, or a failed connect.
    ConnectionFailure,
    /// The pool had no free connection within its timeout while full.
    PoolExhausted,
    /// The pool could not open a connection within its timeout (database
    /// down, refused, unreachable or rejecting the login).
    ConnectTimeout,
    /// Class `23`: unique, foreign-key, not-null or check violation.
    ConstraintViolation,
    /// Class `42`: syntax error or access rule violation.
    SyntaxOrAccess,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 13] = [
        ErrorKind::Deadlock,
        ErrorKind::SerializationFailure,
        ErrorKind::StatementTimeout,
        ErrorKind::LockTimeout,
        ErrorKind::IdleInTransactionTimeout,
        ErrorKind::TooManyConnections,
        ErrorKind::AdminShutdown,
        ErrorKind::ConnectionFailure,
        ErrorKind::PoolExhausted,
        ErrorKind::ConnectTimeout,
        ErrorKind::ConstraintViolation,
        ErrorKind::SyntaxOrAccess,
        ErrorKind::Other,
    ];

    /// The stable snake_case name used as the `error_type` label and the
    /// spans' `error.type`. OpenTelemetry's convention prefers the SQLSTATE
    /// there and allows a documented value of the instrumentation's own:
    /// these names are few and stable, so rules can name them, and the
    /// SQLSTATE is beside them as `db_response_status_code`. `other` plays
    /// the convention's `_OTHER`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Deadlock => "deadlock",
            ErrorKind::SerializationFailure => "serialization_failure",
            ErrorKind::StatementTimeout => "statement_timeout",
            ErrorKind::LockTimeout => "lock_timeout",
            ErrorKind::IdleInTransactionTimeout => "idle_in_transaction_timeout",
            ErrorKind::TooManyConnections => "too_many_connections",
            ErrorKind::AdminShutdown => "admin_shutdown",
            ErrorKind::ConnectionFailure => "connection_failure",
            ErrorKind::PoolExhausted => "pool_exhausted",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::ConstraintViolation => "constraint_violation",
            ErrorKind::SyntaxOrAccess => "syntax_or_access",
            ErrorKind::Other => "other",
        }
    }

    /// Whether a statement failing with this kind means its connection is
    /// gone (the server ended the session or the transport failed).
    pub const fn ends_connection(self) -> bool {
        matches!(
            self,
            ErrorKind::AdminShutdown | ErrorKind::ConnectionFailure | ErrorKind::IdleInTransactionTimeout
        )
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }

    /// Classifies a five-character SQLSTATE code.
    pub fn from_sqlstate(code: &str) -> ErrorKind {
        match code {
            "40P01" => ErrorKind::Deadlock,
            "40001" => ErrorKind::SerializationFailure,
            "57014" => ErrorKind::StatementTimeout,
            "55P03" => ErrorKind::LockTimeout,
            "25P03" => ErrorKind::IdleInTransactionTimeout,
            "53300" => ErrorKind::TooManyConnections,
            "57P01" | "57P02" | "57P03" => ErrorKind::AdminShutdown,
            _ if code.starts_with("08") => ErrorKind::ConnectionFailure,
            _ if code.starts_with("23") => ErrorKind::ConstraintViolation,
            _ if code.starts_with("42") => ErrorKind::SyntaxOrAccess,
            _ => ErrorKind::Other,
        }
    }

    /// Classifies an error returned by a statement.
    ///
    /// A server error is classified by its SQLSTATE; a closed connection or
    /// an I/O error is [`ConnectionFailure`](ErrorKind::ConnectionFailure);
    /// client-side errors (parameter or row conversion, wrong row count) are
    /// [`Other`](ErrorKind::Other).
    pub fn of(error: &tokio_postgres::Error) -> ErrorKind {
        if let Some(code) = error.code() {
            return ErrorKind::from_sqlstate(code.code());
        }
        if error.is_closed() || has_io_source(error) {
            return ErrorKind::ConnectionFailure;
        }
        ErrorKind::Other
    }

    /// Classifies an error from opening a connection: like [`of`](ErrorKind::of),
    /// except that an error without a more specific class is a
    /// [`ConnectionFailure`](ErrorKind::ConnectionFailure) (authentication,
    /// TLS, refused, connect timeout).
    pub fn of_connect(error: &tokio_postgres::Error) -> ErrorKind {
        match ErrorKind::of(error) {
            ErrorKind::Other => ErrorKind::ConnectionFailure,
            kind => kind,
        }
    }

    /// Classifies any error by walking its `source()` chain for a
    /// [`GetError`], a `tokio_postgres::Error` or an `std::io::Error`.
    ///
    /// This is what [`DbMonitor::track`](crate::DbMonitor::track) uses, so an
    /// application error that wraps a database error (`#[from]`) is
    /// classified by the database error.
    pub fn of_error(error: &(dyn StdError + 'static)) -> ErrorKind {
        let mut next = Some(error);
        while let Some(e) = next {
            if let Some(get) = e.downcast_ref::<GetError>() {
                return get.kind();
            }
            if let Some(pg) = e.downcast_ref::<tokio_postgres::Error>() {
                return ErrorKind::of(pg);
            }
            if e.is::<std::io::Error>() {
                return ErrorKind::ConnectionFailure;
            }
            next = e.source();
        }
        ErrorKind::Other
    }

    /// Classifies a value of any type that may be or carry a database error:
    /// a `tokio_postgres::Error`, a [`GetError`], an `std::io::Error`, or a
    /// `Box<dyn Error (+ Send + Sync)>` (walked with
    /// [`of_error`](ErrorKind::of_error)). Anything else is
    /// [`Other`](ErrorKind::Other).
    pub fn of_any(error: &dyn Any) -> ErrorKind {
        if let Some(e) = error.downcast_ref::<tokio_postgres::Error>() {
            ErrorKind::of(e)
        } else if let Some(e) = error.downcast_ref::<GetError>() {
            e.kind()
        } else if error.is::<std::io::Error>() {
            ErrorKind::ConnectionFailure
        } else if let Some(e) = error.downcast_ref::<Box<dyn StdError + Send + Sync>>() {
            ErrorKind::of_error(e.as_ref())
        } else if let Some(e) = error.downcast_ref::<Box<dyn StdError + Send>>() {
            ErrorKind::of_error(e.as_ref())
        } else if let Some(e) = error.downcast_ref::<Box<dyn StdError>>() {
            ErrorKind::of_error(e.as_ref())
        } else {
            ErrorKind::Other
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message of PostgreSQL's own with every value it may carry replaced by
/// `?`: each quoted run (from its opening quote to the last quote of the
/// same kind in the message, so a value that itself holds quotes cannot
/// shift the pairing), each number (`0xe9`, `42`, `2024-01-31`; digits
/// inside a word such as `int4` or `UTF8` stay) and each run of non-ASCII
/// text. A quoted run that is exactly one of `names` (the schema, table,
/// column, type or constraint the server names in its own fields, never a
/// value) is kept:
///
/// - `invalid input syntax for type integer: "abc"` → `…: "?"`;
/// - `duplicate key value violates unique constraint "users_email_key"`
///   is kept whole when the server names that constraint;
/// - `relation "users" does not exist` → `relation "?" does not exist`
///   (the server names no relation there; the statement shows it).
pub(crate) fn mask_message<'a>(message: &'a str, names: &[&str]) -> Cow<'a, str> {
    let bytes = message.as_bytes();
    if !bytes
        .iter()
        .any(|&b| b == b'"' || b == b'\'' || b.is_ascii_digit() || !b.is_ascii())
    {
        return Cow::Borrowed(message);
    }
    let mut out = String::with_capacity(message.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'"' || b == b'\'' {
            let quote = b as char;
            let body = &message[i + 1..];
            let named = names.iter().find(|name| {
                !name.is_empty() && body.strip_prefix(**name).is_some_and(|after| after.starts_with(quote))
            });
            out.push(quote);
            match named {
                Some(name) => {
                    out.push_str(name);
                    out.push(quote);
                    i += name.len() + 2;
                }
                None => {
                    out.push('?');
                    match body.rfind(quote) {
                        Some(end) => {
                            out.push(quote);
                            i += end + 2;
                        }
                        None => i = bytes.len(),
                    }
                }
            }
        } else if b.is_ascii_digit() && !(i > 0 && is_word_byte(bytes[i - 1])) {
            i += 1;
            while i < bytes.len()
                && (is_word_byte(bytes[i])
                    || (matches!(bytes[i], b'.' | b':' | b'-' | b'+')
                        && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)))
            {
                i += 1;
            }
            out.push('?');
        } else if !b.is_ascii() {
            let start = i;
            while i < bytes.len() && !bytes[i].is_ascii() {
                i += 1;
            }
            // Another language's quotes (`»users«`, `「…」`): everything up
            // to the last of them goes, as for ASCII quotes.
            if message[start..i].contains(is_quote_mark) {
                if let Some(last) = message[i..].rfind(is_quote_mark) {
                    i += last;
                    while i < bytes.len() && !bytes[i].is_ascii() {
                        i += 1;
                    }
                }
            }
            out.push('?');
        } else {
            out.push(b as char);
            i += 1;
        }
    }
    Cow::Owned(out)
}

/// A quotation mark of a language other than English.
fn is_quote_mark(c: char) -> bool {
    matches!(
        c,
        '\u{ab}' | '\u{bb}' | '\u{2018}'..='\u{201f}' | '\u{2039}' | '\u{203a}' | '\u{300c}'..='\u{300f}' | '\u{ff02}'
    )
}

/// A byte that continues a word: a number starting right after one is part
/// of a name (`int4`, `$1`), not a value.
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$'
}

/// A SQLSTATE (five upper-case letters or digits), kept inline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SqlStateCode([u8; 5]);

impl SqlStateCode {
    /// The label for codes past a cap; no SQLSTATE is lower case.
    pub(crate) const OTHER: SqlStateCode = SqlStateCode(*b"other");

    /// `code` as a SQLSTATE, if it is one.
    pub(crate) fn new(code: &str) -> Option<Self> {
        let bytes: [u8; 5] = code.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            .then_some(SqlStateCode(bytes))
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("?????")
    }
}

fn has_io_source(error: &tokio_postgres::Error) -> bool {
    let mut next = error.source();
    while let Some(e) = next {
        if e.is::<std::io::Error>() {
            return true;
        }
        next = e.source();
    }
    false
}

impl serde::Serialize for ErrorKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// No connection within the pool's timeout.
#[derive(Debug)]
pub struct GetError {
    pub(crate) kind: ErrorKind,
    pub(crate) pool: Arc<str>,
    pub(crate) waited: Duration,
    pub(crate) in_use: u32,
    pub(crate) max_size: u32,
    pub(crate) source: Option<ConnectError>,
    pub(crate) failed_fast: bool,
}

impl GetError {
    /// [`ErrorKind::PoolExhausted`] or [`ErrorKind::ConnectTimeout`] (a
    /// checkout that [failed fast](Self::failed_fast) included: its
    /// [`source`](std::error::Error::source) is the connect error).
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether the checkout gave up without waiting its timeout, because
    /// the database was out of reach: a bb8 pool known down (see
    /// [`MonitorConfig::fail_fast`](crate::MonitorConfig::fail_fast)), or
    /// the connect that a deadpool checkout made failing.
    pub fn failed_fast(&self) -> bool {
        self.failed_fast
    }

    /// How long the checkout waited.
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no connection from pool {:?} after {:.1?}: ",
            &*self.pool, self.waited
        )?;
        if self.failed_fast {
            f.write_str("database out of reach, not waiting")?;
            return match &self.source {
                Some(e) => write!(f, " (last connect: {e})"),
                None => Ok(()),
            };
        }
        match self.kind {
            ErrorKind::PoolExhausted => write!(
                f,
                "pool exhausted ({} of {} connections in use)",
                self.in_use, self.max_size
            ),
            _ => match &self.source {
                Some(e) => write!(f, "could not connect ({e})"),
                None => f.write_str("could not connect in time"),
            },
        }
    }
}

impl std::error::Error for GetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// A handler's one database error: a checkout's ([`GetError`]) or a
/// statement's (`tokio_postgres::Error`), both converted by `?`.
///
/// With the `axum` feature it is an `IntoResponse`: the status its
/// [`kind`](Self::kind) calls for ([`status`](Self::status)) and a JSON body
/// naming the class only, `{"error":"deadlock"}`. No message, SQLSTATE
/// detail or parameter is in the answer; the monitor has recorded the
/// failure already.
///
/// ```
/// use db_monitor::{DbError, MonitoredClient};
///
/// async fn count(conn: &MonitoredClient) -> Result<i64, DbError> {
///     Ok(conn.query_one("SELECT count(*) FROM orders", &[]).await?.get(0))
/// }
/// ```
#[derive(Debug)]
pub struct DbError {
    kind: ErrorKind,
    source: DbErrorSource,
}

#[derive(Debug)]
enum DbErrorSource {
    Checkout(GetError),
    Statement(tokio_postgres::Error),
}

impl DbError {
    /// The failure's class.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The HTTP status an answer to this failure carries: 409 to retry
    /// (deadlock, serialization failure) or for a conflicting write
    /// (constraint violation), 503 while the database cannot serve (no
    /// connection in time, too many connections, a connection lost or shut
    /// down), 504 for a statement or lock timeout, 500 otherwise.
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self.kind {
            ErrorKind::Deadlock | ErrorKind::SerializationFailure | ErrorKind::ConstraintViolation => {
                StatusCode::CONFLICT
            }
            ErrorKind::PoolExhausted
            | ErrorKind::ConnectTimeout
            | ErrorKind::TooManyConnections
            | ErrorKind::ConnectionFailure
            | ErrorKind::AdminShutdown => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::StatementTimeout | ErrorKind::LockTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::IdleInTransactionTimeout | ErrorKind::SyntaxOrAccess | ErrorKind::Other => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The checkout's error, when the checkout failed.
    pub fn as_checkout(&self) -> Option<&GetError> {
        match &self.source {
            DbErrorSource::Checkout(e) => Some(e),
            DbErrorSource::Statement(_) => None,
        }
    }

    /// The statement's error, when a statement failed.
    pub fn as_statement(&self) -> Option<&tokio_postgres::Error> {
        match &self.source {
            DbErrorSource::Statement(e) => Some(e),
            DbErrorSource::Checkout(_) => None,
        }
    }
}

impl From<GetError> for DbError {
    fn from(e: GetError) -> Self {
        DbError {
            kind: e.kind(),
            source: DbErrorSource::Checkout(e),
        }
    }
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        DbError {
            kind: ErrorKind::of(&e),
            source: DbErrorSource::Statement(e),
        }
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            DbErrorSource::Checkout(e) => e.fmt(f),
            DbErrorSource::Statement(e) => write!(f, "{} ({})", e, self.kind.as_str()),
        }
    }
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.source {
            DbErrorSource::Checkout(e) => Some(e),
            DbErrorSource::Statement(e) => Some(e),
        }
    }
}

/// The last connect failure behind a [`GetError`], as text (bb8 keeps no
/// error for a timeout; the monitor remembers the last one it saw).
#[derive(Debug, Clone)]
pub(crate) struct ConnectError(pub(crate) String);

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConnectError {}

/// What an error store keeps as a statement error's message: the server's
/// message as [`server_message`] shows it, or the client's description
/// (without the cause of a conversion error, see [`error_chain`]).
pub(crate) fn error_message(error: &tokio_postgres::Error, application_text: bool) -> Cow<'_, str> {
    match error.as_db_error() {
        Some(db) => server_message(db, application_text),
        None => Cow::Owned(error_chain(error, application_text)),
    }
}

/// What may be shown of a server message. The rule keeps text only where
/// its shape is known:
///
/// - a message of PostgreSQL's own, in English, is kept with its values
///   masked ([`mask_message`]);
/// - a message the application wrote (PL/pgSQL's `RAISE` and `ASSERT`,
///   whatever SQLSTATE `RAISE … USING ERRCODE` chose, and class P0) keeps
///   no text, since it substitutes values unquoted (`RAISE EXCEPTION 'user
///   % over quota', email`), unless `application_text` is set
///   ([`MonitorConfig::expose_application_messages`](crate::MonitorConfig::expose_application_messages)),
///   and then it is masked by the same rule;
/// - a message in another language (a server whose `lc_messages` is not
///   English, seen from a severity that is not PostgreSQL's own word for
///   it) keeps no text: its quotes (`»users«`) are not the ones the mask
///   reads.
///
/// The SQLSTATE and severity, kept beside the message, say what kind of
/// failure it was in every case.
pub(crate) fn server_message(db: &tokio_postgres::error::DbError, application_text: bool) -> Cow<'_, str> {
    if application_raised(db) {
        if !application_text {
            return Cow::Borrowed("(raised by the application; its text is not kept)");
        }
    } else if localized(db) {
        return Cow::Borrowed("(in the server's language, whose quoting the monitor cannot read; not kept)");
    }
    // Only integrity violations (class 23) have the server name its objects
    // in fields, and their messages carry names and no value: elsewhere a
    // quoted run that happens to equal a name is still masked.
    let names = if db.code().code().starts_with("23") {
        [db.schema(), db.table(), db.column(), db.datatype(), db.constraint()].map(|n| n.unwrap_or(""))
    } else {
        [""; 5]
    };
    mask_message(db.message(), &names)
}

/// The severity of a server message, in PostgreSQL's own (English) word
/// when the server sent it (`ERROR`, `NOTICE`), whatever its language.
pub(crate) fn severity(db: &tokio_postgres::error::DbError) -> &str {
    use tokio_postgres::error::Severity;
    match db.parsed_severity() {
        Some(Severity::Panic) => "PANIC",
        Some(Severity::Fatal) => "FATAL",
        Some(Severity::Error) => "ERROR",
        Some(Severity::Warning) => "WARNING",
        Some(Severity::Notice) => "NOTICE",
        Some(Severity::Debug) => "DEBUG",
        Some(Severity::Info) => "INFO",
        Some(Severity::Log) => "LOG",
        None => db.severity(),
    }
}

/// Whether the server wrote the message in another language than English:
/// its localized severity differs from the English one it also sends.
fn localized(db: &tokio_postgres::error::DbError) -> bool {
    db.parsed_severity().is_some() && severity(db) != db.severity()
}

/// Whether the application wrote the message: raised or asserted in
/// PL/pgSQL (by the routine that raised it, whatever the SQLSTATE, which
/// `RAISE … USING ERRCODE` chooses), or of class P0.
fn application_raised(db: &tokio_postgres::error::DbError) -> bool {
    matches!(db.routine(), Some("exec_stmt_raise" | "exec_stmt_assert")) || db.code().code().starts_with("P0")
}

/// An error and its sources, joined with `": "`, safe to log:
///
/// - a server error is shown as its severity, its message as
///   [`server_message`] shows it, and its SQLSTATE, never with its `DETAIL`
///   or `HINT` (which can carry row values, and which `DbError`'s `Display`
///   includes);
/// - a client-side conversion error (a parameter that could not be encoded,
///   a column that could not be decoded: `ToSql`, `FromSql`, serde's
///   messages quote the value they met) is shown by what failed
///   (`error deserializing column 0`), never by its cause's text.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static), application_text: bool) -> String {
    let mut text = String::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let (part, stop) = describe(e, application_text);
        if !text.ends_with(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        if stop {
            break;
        }
        next = e.source();
    }
    text
}

/// One link of an error chain, and whether the chain must stop there.
fn describe(e: &(dyn std::error::Error + 'static), application_text: bool) -> (String, bool) {
    if let Some(db) = e.downcast_ref::<tokio_postgres::error::DbError>() {
        let text = format!(
            "{}: {} ({})",
            severity(db),
            server_message(db, application_text),
            db.code().code()
        );
        return (text, false);
    }
    if let Some(pg) = e.downcast_ref::<tokio_postgres::Error>() {
        if is_conversion(pg) {
            // The driver's own text names what failed and never holds its
            // cause, which comes only through `source()`.
            return (format!("{pg} (its cause is not shown: it can quote the value)"), true);
        }
    }
    (e.to_string(), false)
}

/// Whether a driver error is a client-side conversion error: its cause is
/// neither a server error, an I/O error nor another driver error.
fn is_conversion(error: &tokio_postgres::Error) -> bool {
    error.source().is_some_and(|cause| {
        !(cause.is::<tokio_postgres::error::DbError>()
            || cause.is::<std::io::Error>()
            || cause.is::<tokio_postgres::Error>())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_the_documented_kinds() {
        let cases = [
            ("40P01", ErrorKind::Deadlock),
            ("40001", ErrorKind::SerializationFailure),
            ("57014", ErrorKind::StatementTimeout),
            ("55P03", ErrorKind::LockTimeout),
            ("25P03", ErrorKind::IdleInTransactionTimeout),
            ("53300", ErrorKind::TooManyConnections),
            ("57P01", ErrorKind::AdminShutdown),
            ("57P02", ErrorKind::AdminShutdown),
            ("57P03", ErrorKind::AdminShutdown),
            ("08006", ErrorKind::ConnectionFailure),
            ("08P01", ErrorKind::ConnectionFailure),
            ("23505", ErrorKind::ConstraintViolation),
            ("23503", ErrorKind::ConstraintViolation),
            ("42601", ErrorKind::SyntaxOrAccess),
            ("42P01", ErrorKind::SyntaxOrAccess),
            ("22P02", ErrorKind::Other),
            ("P0001", ErrorKind::Other),
            ("", ErrorKind::Other),
        ];
        for (code, kind) in cases {
            assert_eq!(ErrorKind::from_sqlstate(code), kind, "{code}");
        }
    }

    #[test]
    fn names_are_unique_and_indices_follow_all() {
        let mut names: Vec<_> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorKind::ALL.len());
        for (i, kind) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i);
        }
    }

    #[test]
    fn every_value_is_masked_and_named_objects_kept() {
        let constraint = ["public", "users", "email", "", "users_email_key"];
        let cases: [(&str, &[&str], &str); 14] = [
            (
                "invalid input syntax for type integer: \"abc\"",
                &[],
                "invalid input syntax for type integer: \"?\"",
            ),
            (
                "syntax error at or near \"'secret'\"",
                &[],
                "syntax error at or near \"?\"",
            ),
            // A value holding quotes cannot shift the pairing.
            (
                "malformed array literal: \"[\"a@x.com\",\"b@y.com\"]\"",
                &[],
                "malformed array literal: \"?\"",
            ),
            // Unquoted numbers, hex bytes included, go.
            (
                "invalid byte sequence for encoding \"UTF8\": 0xe9 0x20",
                &[],
                "invalid byte sequence for encoding \"?\": ? ?",
            ),
            (
                "value too long for type character varying(10)",
                &[],
                "value too long for type character varying(?)",
            ),
            (
                "could not determine data type of parameter $1",
                &[],
                "could not determine data type of parameter $1",
            ),
            // No word lets the value after it through.
            (
                "password authentication failed for user \"alice@x.com\"",
                &[],
                "password authentication failed for user \"?\"",
            ),
            (
                "relation \"users\" does not exist",
                &[],
                "relation \"?\" does not exist",
            ),
            (
                "duplicate key value violates unique constraint \"users_email_key\"",
                &constraint,
                "duplicate key value violates unique constraint \"users_email_key\"",
            ),
            (
                "null value in column \"email\" of relation \"users\" violates not-null constraint",
                &constraint,
                "null value in column \"email\" of relation \"users\" violates not-null constraint",
            ),
            ("value 'x' is out of range", &[], "value '?' is out of range"),
            ("unterminated \"quote", &[], "unterminated \"?"),
            ("no values at all", &[], "no values at all"),
            // Non-ASCII text goes, whatever quotes it uses.
            (
                "Relation \u{bb}caf\u{e9}\u{ab} existiert nicht",
                &[],
                "Relation ? existiert nicht",
            ),
        ];
        for (message, names, masked) in cases {
            assert_eq!(mask_message(message, names), masked, "{message}");
        }
    }

    /// Primary messages of PostgreSQL 15 that carry values: `%s` is quoted
    /// by the server, `%d` and `%x` are printed bare.
    const TEMPLATES: &[&str] = &[
        "invalid input syntax for type integer: \"%s\"",
        "invalid input syntax for type json",
        "malformed array literal: \"%s\"",
        "malformed record literal: \"%s\"",
        "invalid byte sequence for encoding \"UTF8\": %x %x",
        "value \"%s\" is out of range for type integer",
        "date/time field value out of range: \"%s\"",
        "invalid input value for enum mood: \"%s\"",
        "password authentication failed for user \"%s\"",
        "role \"%s\" does not exist",
        "database \"%s\" does not exist",
        "invalid value for parameter \"TimeZone\": \"%s\"",
        "value too long for type character varying(%d)",
        "syntax error at or near \"%s\"",
        "unterminated quoted string at or near \"%s\"",
        "column \"%s\" of relation \"%s\" does not exist",
        "time zone \"%s\" not recognized",
        "invalid hexadecimal digit: \"%s\"",
        "array size exceeds the maximum allowed (%d)",
        "requested character too large for encoding: %d",
        "could not open file \"%s\": No such file or directory",
        "invalid regular expression: parentheses () not balanced",
        "cursor \"%s\" does not exist",
        "prepared statement \"%s\" does not exist",
        "savepoint \"%s\" does not exist",
        "Relation \u{bb}%s\u{ab} existiert nicht",
        "\u{300c}%s\u{300d} \u{306f}\u{5b58}\u{5728}\u{3057}\u{307e}\u{305b}\u{3093}",
    ];

    proptest::proptest! {
        #[test]
        fn masking_never_panics(s in ".*", name in "[a-z_\"]{0,6}") {
            let _ = mask_message(&s, &[&name]);
        }

        /// Whatever the value holds (quotes of both kinds, backslashes,
        /// non-ASCII text, digits), no planted marker survives the mask.
        #[test]
        fn no_planted_value_survives_the_mask(
            template in proptest::sample::select(TEMPLATES),
            before in r#"[a-z "'\\$,\[\]{}\u{e9}\u{4e2d}0-9]{0,8}"#,
            after in r#"[a-z "'\\$,\[\]{}\u{e9}\u{4e2d}0-9]{0,8}"#,
            number in 10_000u32..u32::MAX,
            byte in 0x80u8..,
        ) {
            let value = format!("{before}zqxjmarker{after}");
            let message = template
                .replace("%s", &value)
                .replace("%d", &number.to_string())
                .replace("%x", &format!("0x{byte:02x}"));
            let masked = mask_message(&message, &[]);
            proptest::prop_assert!(!masked.contains("zqxjmarker"), "{message:?} -> {masked:?}");
            proptest::prop_assert!(!masked.contains(&number.to_string()), "{message:?} -> {masked:?}");
            proptest::prop_assert!(!masked.contains(&format!("0x{byte:02x}")), "{message:?} -> {masked:?}");
        }
    }

    #[test]
    fn io_errors_in_a_chain_are_connection_failures() {
        #[derive(Debug)]
        struct Wrapper(std::io::Error);
        impl fmt::Display for Wrapper {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("wrapped")
            }
        }
        impl StdError for Wrapper {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let e = Wrapper(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(ErrorKind::of_error(&e), ErrorKind::ConnectionFailure);
        let plain = std::fmt::Error;
        assert_eq!(ErrorKind::of_error(&plain), ErrorKind::Other);
    }
}

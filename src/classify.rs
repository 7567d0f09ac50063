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

    /// The stable snake_case name used as the `error_type` label.
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

/// Words after which PostgreSQL quotes an identifier, which is kept: a
/// quoted segment after any other word (`…for type integer: "abc"`,
/// `…at or near "'secret'"`) may be input and is masked.
const IDENTIFIER_WORDS: &[&str] = &[
    "relation",
    "table",
    "column",
    "constraint",
    "index",
    "schema",
    "function",
    "procedure",
    "type",
    "database",
    "role",
    "user",
    "sequence",
    "view",
    "trigger",
    "operator",
    "extension",
    "cursor",
    "statement",
    "savepoint",
    "channel",
    "tablespace",
    "collation",
    "domain",
    "publication",
    "subscription",
    "server",
    "policy",
    "rule",
];

/// A server message with every quoted value replaced by `?`, keeping quoted
/// identifiers (`relation "users" does not exist` stays as it is;
/// `invalid input syntax for type integer: "abc"` becomes `…: "?"`).
pub(crate) fn mask_message(message: &str) -> std::borrow::Cow<'_, str> {
    if !message.contains(['"', '\'']) {
        return std::borrow::Cow::Borrowed(message);
    }
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find(['"', '\'']) {
        let quote = rest.as_bytes()[open] as char;
        let (before, after) = rest.split_at(open);
        out.push_str(before);
        let body = &after[1..];
        // A doubled quote inside stays inside; an unterminated quote runs to the end.
        let mut end = None;
        let mut i = 0;
        let bytes = body.as_bytes();
        while i < bytes.len() {
            if bytes[i] == quote as u8 {
                if bytes.get(i + 1) == Some(&(quote as u8)) {
                    i += 2;
                    continue;
                }
                end = Some(i);
                break;
            }
            i += 1;
        }
        let previous_word = before
            .trim_end()
            .rsplit(|c: char| !c.is_alphanumeric() && c != '_')
            .next()
            .unwrap_or("");
        let keep = quote == '"' && IDENTIFIER_WORDS.iter().any(|w| w.eq_ignore_ascii_case(previous_word));
        match end {
            Some(end) => {
                out.push(quote);
                out.push_str(if keep { &body[..end] } else { "?" });
                out.push(quote);
                rest = &body[end + 1..];
            }
            None => {
                out.push(quote);
                out.push_str(if keep { body } else { "?" });
                rest = "";
            }
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
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
}

impl GetError {
    /// [`ErrorKind::PoolExhausted`] or [`ErrorKind::ConnectTimeout`].
    pub fn kind(&self) -> ErrorKind {
        self.kind
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
/// message with quoted values masked, or the client's description (without
/// the cause of a conversion error, see [`error_chain`]).
pub(crate) fn error_message(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => server_message(db).into_owned(),
        None => error_chain(error),
    }
}

/// What may be shown of a server message: PostgreSQL's own text with its
/// quoted values masked, and none of the text that the application wrote
/// itself (PL/pgSQL's `RAISE` and `ASSERT`, which substitute values
/// unquoted: `RAISE NOTICE 'processing %', email`), whose SQLSTATE and
/// severity say what there is to say.
pub(crate) fn server_message(db: &tokio_postgres::error::DbError) -> Cow<'_, str> {
    if application_raised(db) {
        Cow::Borrowed("(raised by the application; its text is not kept)")
    } else {
        mask_message(db.message())
    }
}

/// Whether the application wrote the message: raised or asserted in
/// PL/pgSQL (by the routine that raised it, whatever the SQLSTATE, which
/// `RAISE … USING ERRCODE` chooses), or of class P0.
fn application_raised(db: &tokio_postgres::error::DbError) -> bool {
    matches!(db.routine(), Some("exec_stmt_raise" | "exec_stmt_assert")) || db.code().code().starts_with("P0")
}

/// An error and its sources, joined with `": "`, safe to log:
///
/// - a server error is shown as its severity, its message with quoted
///   values masked, and its SQLSTATE, never with its `DETAIL` or `HINT`
///   (which can carry row values, and which `DbError`'s `Display` includes);
/// - a client-side conversion error (a parameter that could not be encoded,
///   a column that could not be decoded: `ToSql`, `FromSql`, serde's
///   messages quote the value they met) is shown by what failed
///   (`error deserializing column 0`), never by its cause's text.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let (part, stop) = describe(e);
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
fn describe(e: &(dyn std::error::Error + 'static)) -> (String, bool) {
    if let Some(db) = e.downcast_ref::<tokio_postgres::error::DbError>() {
        let text = format!("{}: {} ({})", db.severity(), server_message(db), db.code().code());
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
    fn quoted_values_are_masked_and_identifiers_kept() {
        let cases = [
            (
                "invalid input syntax for type integer: \"abc\"",
                "invalid input syntax for type integer: \"?\"",
            ),
            ("syntax error at or near \"'secret'\"", "syntax error at or near \"?\""),
            ("relation \"users\" does not exist", "relation \"users\" does not exist"),
            (
                "column \"e\" of relation \"t\" does not exist",
                "column \"e\" of relation \"t\" does not exist",
            ),
            (
                "duplicate key value violates unique constraint \"users_email_key\"",
                "duplicate key value violates unique constraint \"users_email_key\"",
            ),
            (
                "invalid input value for enum mood: \"sad\"\"dy\"",
                "invalid input value for enum mood: \"?\"",
            ),
            ("value 'x' is out of range", "value '?' is out of range"),
            ("unterminated \"quote", "unterminated \"?"),
            ("no quotes at all", "no quotes at all"),
            ("\u{e9}t\u{e9} \"caf\u{e9}\" \u{fc}ber", "\u{e9}t\u{e9} \"?\" \u{fc}ber"),
        ];
        for (message, masked) in cases {
            assert_eq!(mask_message(message), masked, "{message}");
        }
    }

    proptest::proptest! {
        #[test]
        fn masking_never_panics(s in ".*") {
            let _ = mask_message(&s);
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

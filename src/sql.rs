//! A small hand-written SQL lexer: normalization, fingerprints, operation and
//! main table.
//!
//! Statements are grouped by their *normalized* form: literals and
//! parameters become `?`, lists of them collapse to `(...)`, comments and
//! whitespace disappear and unquoted words are compared case-insensitively.
//! `SELECT * FROM users WHERE id = 42` and `select *  from USERS where id=$1`
//! therefore share one [`fingerprint`], and the text shown for both is
//! `SELECT * FROM users WHERE id = ?`, which never contains a value.
//!
//! The lexer understands PostgreSQL's quoting rules (standard, escape
//! `E'…'`, bit/hex `B'…'`/`X'…'`, Unicode `U&'…'` and dollar-quoted
//! `$tag$…$tag$` strings, quoted identifiers, nested `/* */` comments) so that
//! a semicolon or keyword inside a string never confuses it. It never panics
//! and never allocates to compute a fingerprint; only [`analyze`] allocates,
//! once per distinct statement text (the pool caches the result).
//!
//! # Example
//!
//! ```
//! use db_monitor::sql::{analyze, fingerprint, Operation};
//!
//! let a = analyze("SELECT name FROM public.users WHERE id = 42 AND kind IN (1, 2, 3)");
//! assert_eq!(a.normalized, "SELECT name FROM public.users WHERE id = ? AND kind IN (...)");
//! assert_eq!(a.summary, "SELECT public.users");
//!
//! let b = analyze("select name from users where id = $1 and kind in ($2, $3) -- a comment");
//! assert_eq!(b.text, "select name from users where id = $1 and kind in ($2, $3)");
//! assert_eq!(a.operation, Operation::Select);
//! assert_eq!(a.table.as_deref(), Some("public.users"));
//! assert_eq!(a.fingerprint, fingerprint("select name from public.users where id=$1 and kind in ($2)"));
//! ```

use std::fmt;

mod summary;

pub use summary::MAX_SUMMARY_LEN;

/// The longest normalized text kept for one statement, in bytes.
///
/// Longer statements are cut at a character boundary and end with `…`; the
/// fingerprint still covers the whole statement.
pub const MAX_NORMALIZED_LEN: usize = 2048;

/// Longest table name kept (PostgreSQL's identifier limit is 63 bytes; a
/// schema-qualified name gets twice that plus the dot).
const MAX_TABLE_LEN: usize = 127;

/// The kind of a SQL statement, as the value of `db.operation.name` in spans and the `operation` of reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Operation {
    /// `SELECT`, `TABLE`, `VALUES`, or a `WITH` query ending in a `SELECT`.
    Select,
    /// `INSERT`.
    Insert,
    /// `UPDATE`.
    Update,
    /// `DELETE`.
    Delete,
    /// `MERGE`.
    Merge,
    /// `COPY`.
    Copy,
    /// `BEGIN` / `START TRANSACTION`.
    Begin,
    /// `COMMIT` / `END`.
    Commit,
    /// `ROLLBACK` / `ABORT` (also `ROLLBACK TO SAVEPOINT`).
    Rollback,
    /// `SAVEPOINT` / `RELEASE`.
    Savepoint,
    /// `SET` / `RESET`.
    Set,
    /// `SHOW`.
    Show,
    /// `CALL`.
    Call,
    /// `EXPLAIN`.
    Explain,
    /// `CREATE …`.
    Create,
    /// `ALTER …`.
    Alter,
    /// `DROP …`.
    Drop,
    /// `TRUNCATE`.
    Truncate,
    /// `GRANT` / `REVOKE`.
    Grant,
    /// `LOCK`.
    Lock,
    /// `VACUUM` / `ANALYZE` / `REINDEX` / `CLUSTER`.
    Maintenance,
    /// `LISTEN` / `NOTIFY` / `UNLISTEN`.
    Notify,
    /// Anything else, including empty text.
    Other,
}

impl Operation {
    /// The stable upper-case name used as a metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Operation::Select => "SELECT",
            Operation::Insert => "INSERT",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Merge => "MERGE",
            Operation::Copy => "COPY",
            Operation::Begin => "BEGIN",
            Operation::Commit => "COMMIT",
            Operation::Rollback => "ROLLBACK",
            Operation::Savepoint => "SAVEPOINT",
            Operation::Set => "SET",
            Operation::Show => "SHOW",
            Operation::Call => "CALL",
            Operation::Explain => "EXPLAIN",
            Operation::Create => "CREATE",
            Operation::Alter => "ALTER",
            Operation::Drop => "DROP",
            Operation::Truncate => "TRUNCATE",
            Operation::Grant => "GRANT",
            Operation::Lock => "LOCK",
            Operation::Maintenance => "MAINTENANCE",
            Operation::Notify => "NOTIFY",
            Operation::Other => "OTHER",
        }
    }

    /// Whether this is schema or privilege change (DDL).
    pub const fn is_ddl(self) -> bool {
        matches!(
            self,
            Operation::Create | Operation::Alter | Operation::Drop | Operation::Truncate | Operation::Grant
        )
    }

    /// Whether this is transaction control (`BEGIN`, `COMMIT`, `ROLLBACK`, savepoints).
    pub const fn is_transaction_control(self) -> bool {
        matches!(
            self,
            Operation::Begin | Operation::Commit | Operation::Rollback | Operation::Savepoint
        )
    }

    fn from_keyword(word: &str) -> Option<Operation> {
        const TABLE: &[(&str, Operation)] = &[
            ("select", Operation::Select),
            ("table", Operation::Select),
            ("values", Operation::Select),
            ("insert", Operation::Insert),
            ("update", Operation::Update),
            ("delete", Operation::Delete),
            ("merge", Operation::Merge),
            ("copy", Operation::Copy),
            ("begin", Operation::Begin),
            ("start", Operation::Begin),
            ("commit", Operation::Commit),
            ("end", Operation::Commit),
            ("rollback", Operation::Rollback),
            ("abort", Operation::Rollback),
            ("savepoint", Operation::Savepoint),
            ("release", Operation::Savepoint),
            ("set", Operation::Set),
            ("reset", Operation::Set),
            ("show", Operation::Show),
            ("call", Operation::Call),
            ("explain", Operation::Explain),
            ("create", Operation::Create),
            ("alter", Operation::Alter),
            ("drop", Operation::Drop),
            ("truncate", Operation::Truncate),
            ("grant", Operation::Grant),
            ("revoke", Operation::Grant),
            ("lock", Operation::Lock),
            ("vacuum", Operation::Maintenance),
            ("analyze", Operation::Maintenance),
            ("analyse", Operation::Maintenance),
            ("reindex", Operation::Maintenance),
            ("cluster", Operation::Maintenance),
            ("listen", Operation::Notify),
            ("unlisten", Operation::Notify),
            ("notify", Operation::Notify),
        ];
        TABLE
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(word))
            .map(|&(_, op)| op)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the lexer learned about one statement text.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Analysis {
    /// Stable 64-bit hash of the normalized token stream (FNV-1a), equal for
    /// texts that differ only in literals, parameters, comments, whitespace
    /// or the case of unquoted words. Stable across processes and versions
    /// of the same normalization rules.
    pub fingerprint: u64,
    /// The normalized text: literals and parameters as `?`, lists as `(...)`.
    pub normalized: String,
    /// The text as OpenTelemetry's `db.query.text` has it: literals as `?`
    /// (never a value), parameters as written (`$1`), lists as written.
    pub text: String,
    /// The operation of the main statement.
    pub operation: Operation,
    /// The main table of the main statement, if there is one
    /// (lower-cased unless quoted, schema-qualified as written).
    pub table: Option<String>,
    /// Number of statements in the text (`;`-separated, empty ones ignored).
    pub statements: usize,
    /// The operations and the tables they name, in the order written and
    /// as written (`INSERT shipping_details SELECT orders`): the
    /// `db.query.summary` of OpenTelemetry's conventions, at most
    /// [`MAX_SUMMARY_LEN`] characters; `OTHER` when no operation is known.
    pub summary: String,
}

/// Analyzes one statement text: normalized form, fingerprint, operation and
/// main table.
///
/// For multi-statement text (`BEGIN; UPDATE …; COMMIT`) the *main* statement
/// is the first one that is not transaction control or `SET`; the operation
/// and table are taken from it.
pub fn analyze(sql: &str) -> Analysis {
    let mut out = Normalized {
        text: String::with_capacity(sql.len().min(MAX_NORMALIZED_LEN)),
        last: Class::Open,
        truncated: false,
    };
    let mut hash = Fnv::new();
    normalize(sql, &mut (&mut out, &mut hash));
    let (operation, table, statements) = main_statement(sql);
    Analysis {
        fingerprint: hash.finish(),
        normalized: out.text,
        text: query_text(sql),
        operation,
        table,
        statements,
        summary: summary::summarize(sql),
    }
}

/// The fingerprint of a statement text, without allocating.
///
/// Equal to [`analyze`]`(sql).fingerprint`.
pub fn fingerprint(sql: &str) -> u64 {
    let mut hash = Fnv::new();
    normalize(sql, &mut hash);
    hash.finish()
}

// ---------------------------------------------------------------------------
// Lexer

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    /// An unquoted word: keyword or identifier.
    Word,
    /// A quoted identifier (`"…"` or `U&"…"`), text includes the quotes.
    QuotedIdent,
    /// A string, number, bit string or dollar-quoted literal.
    Literal,
    /// A positional parameter `$n`.
    Param,
    /// `(` or `[`.
    Open,
    /// `)` or `]`.
    Close,
    Comma,
    Semicolon,
    Dot,
    /// Any operator or other punctuation.
    Op,
}

#[derive(Clone)]
struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    /// Whether the previous token could end an operand, so that a following
    /// `-`/`+` is binary; otherwise a sign before a number belongs to it.
    prev_value: bool,
}

/// Byte classes, looked up once per byte.
const WORD_START: u8 = 1;
const WORD_CHAR: u8 = 2;
const OP_CHAR: u8 = 4;

const CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            table[b] |= WORD_START | WORD_CHAR;
        }
        if c.is_ascii_digit() || c == b'$' {
            table[b] |= WORD_CHAR;
        }
        b += 1;
    }
    let ops = b"+-*/<>=~!@#%^&|`?";
    let mut i = 0;
    while i < ops.len() {
        table[ops[i] as usize] |= OP_CHAR;
        i += 1;
    }
    table
};

#[inline]
fn is_word_start(b: u8) -> bool {
    CLASSES[b as usize] & WORD_START != 0
}

#[inline]
fn is_word_char(b: u8) -> bool {
    CLASSES[b as usize] & WORD_CHAR != 0
}

#[inline]
fn is_op_char(b: u8) -> bool {
    CLASSES[b as usize] & OP_CHAR != 0
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Lexer {
            src,
            pos: 0,
            prev_value: false,
        }
    }

    fn bytes(&self) -> &'a [u8] {
        self.src.as_bytes()
    }

    fn at(&self, i: usize) -> u8 {
        self.bytes().get(i).copied().unwrap_or(0)
    }

    /// Skips whitespace and comments.
    fn skip_trivia(&mut self) {
        let b = self.bytes();
        loop {
            while self.pos < b.len() && b[self.pos].is_ascii_whitespace() {
                self.pos += 1;
            }
            if self.at(self.pos) == b'-' && self.at(self.pos + 1) == b'-' {
                while self.pos < b.len() && b[self.pos] != b'\n' {
                    self.pos += 1;
                }
            } else if self.at(self.pos) == b'/' && self.at(self.pos + 1) == b'*' {
                self.pos += 2;
                let mut depth = 1usize;
                while self.pos < b.len() && depth > 0 {
                    if b[self.pos] == b'/' && self.at(self.pos + 1) == b'*' {
                        depth += 1;
                        self.pos += 2;
                    } else if b[self.pos] == b'*' && self.at(self.pos + 1) == b'/' {
                        depth -= 1;
                        self.pos += 2;
                    } else {
                        self.pos += 1;
                    }
                }
                self.pos = self.pos.min(b.len());
            } else {
                return;
            }
        }
    }

    /// Consumes a standard string (`'…'`, `N'…'`) starting at its opening
    /// quote. Whether a backslash escapes the quote after it depends on the
    /// server's `standard_conforming_strings`, which the text does not say:
    /// where the two readings part (an odd run of backslashes before a
    /// quote, `'O\'Brien'`), the rest of the text is taken as the literal,
    /// so that under either setting no part of a value is read as SQL.
    fn standard_string(&mut self) {
        let b = self.bytes();
        let mut i = self.pos + 1;
        while i < b.len() {
            match b[i] {
                b'\\' => {
                    let run = b[i..].iter().take_while(|&&c| c == b'\\').count();
                    if run % 2 == 1 && b.get(i + run) == Some(&b'\'') {
                        self.pos = b.len();
                        return;
                    }
                    i += run;
                }
                b'\'' if b.get(i + 1) == Some(&b'\'') => i += 2,
                b'\'' => {
                    self.pos = i + 1;
                    return;
                }
                _ => i += 1,
            }
        }
        self.pos = b.len();
    }

    /// Consumes a quoted run starting at the opening quote `q`; a doubled
    /// quote stays inside, and with `backslash` a backslash escapes the next
    /// byte. Unterminated runs end at the end of the text.
    fn quoted(&mut self, q: u8, backslash: bool) {
        let b = self.bytes();
        self.pos += 1;
        while self.pos < b.len() {
            let c = b[self.pos];
            if backslash && c == b'\\' {
                self.pos += 2;
            } else if c == q {
                if self.at(self.pos + 1) == q {
                    self.pos += 2;
                } else {
                    self.pos += 1;
                    return;
                }
            } else {
                self.pos += 1;
            }
        }
        self.pos = b.len();
    }

    /// At a `$` that is not a parameter: a dollar-quoted string if a valid
    /// tag follows, returning whether one was consumed.
    fn dollar_quoted(&mut self) -> bool {
        let b = self.bytes();
        let start = self.pos;
        let mut i = start + 1;
        // PostgreSQL's tags: a letter, `_` or any non-ASCII byte, then
        // those or digits (`dolq_start`, `dolq_cont` in its scan.l).
        if i < b.len() && b[i] != b'$' {
            if !is_word_start(b[i]) {
                return false;
            }
            while i < b.len() && is_word_char(b[i]) && b[i] != b'$' {
                i += 1;
            }
        }
        if self.at(i) != b'$' {
            return false;
        }
        let tag = &b[start..=i];
        let body = i + 1;
        let end = b[body..]
            .windows(tag.len())
            .position(|w| w == tag)
            .map_or(b.len(), |p| body + p + tag.len());
        self.pos = end;
        true
    }

    fn number(&mut self) {
        let b = self.bytes();
        if self.at(self.pos) == b'0' && matches!(self.at(self.pos + 1), b'x' | b'X' | b'o' | b'O' | b'b' | b'B') {
            self.pos += 2;
            while self.pos < b.len() && (b[self.pos].is_ascii_hexdigit() || b[self.pos] == b'_') {
                self.pos += 1;
            }
            return;
        }
        let digits = |l: &mut Self| {
            while l.pos < b.len() && (b[l.pos].is_ascii_digit() || b[l.pos] == b'_') {
                l.pos += 1;
            }
        };
        digits(self);
        if self.at(self.pos) == b'.' && self.at(self.pos + 1) != b'.' {
            self.pos += 1;
            digits(self);
        }
        if matches!(self.at(self.pos), b'e' | b'E') {
            let sign = usize::from(matches!(self.at(self.pos + 1), b'+' | b'-'));
            if self.at(self.pos + 1 + sign).is_ascii_digit() {
                self.pos += 1 + sign;
                digits(self);
            }
        }
    }

    /// The next token and its text, or `None` at the end.
    fn next_token(&mut self) -> Option<(Tok, &'a str)> {
        self.skip_trivia();
        let b = self.bytes();
        if self.pos >= b.len() {
            return None;
        }
        let start = self.pos;
        let c = b[start];
        let next = self.at(start + 1);
        let tok = match c {
            b'\'' => {
                self.standard_string();
                Tok::Literal
            }
            b'"' => {
                self.quoted(b'"', false);
                Tok::QuotedIdent
            }
            b'e' | b'E' if next == b'\'' => {
                self.pos += 1;
                self.quoted(b'\'', true);
                Tok::Literal
            }
            b'n' | b'N' if next == b'\'' => {
                self.pos += 1;
                self.standard_string();
                Tok::Literal
            }
            b'b' | b'B' | b'x' | b'X' if next == b'\'' => {
                self.pos += 1;
                self.quoted(b'\'', false);
                Tok::Literal
            }
            b'u' | b'U' if next == b'&' && matches!(self.at(start + 2), b'\'' | b'"') => {
                self.pos += 2;
                let q = b[self.pos];
                self.quoted(q, false);
                if q == b'\'' {
                    Tok::Literal
                } else {
                    Tok::QuotedIdent
                }
            }
            b'$' if next.is_ascii_digit() => {
                self.pos += 1;
                while self.pos < b.len() && b[self.pos].is_ascii_digit() {
                    self.pos += 1;
                }
                Tok::Param
            }
            b'$' if self.dollar_quoted() => Tok::Literal,
            b'0'..=b'9' => {
                self.number();
                Tok::Literal
            }
            b'.' if next.is_ascii_digit() => {
                self.number();
                Tok::Literal
            }
            b'-' | b'+'
                if !self.prev_value
                    && (next.is_ascii_digit() || (next == b'.' && self.at(start + 2).is_ascii_digit())) =>
            {
                self.pos += 1;
                self.number();
                Tok::Literal
            }
            _ if is_word_start(c) => {
                self.pos += b[start..]
                    .iter()
                    .position(|&x| !is_word_char(x))
                    .unwrap_or(b.len() - start);
                Tok::Word
            }
            b'(' | b'[' => {
                self.pos += 1;
                Tok::Open
            }
            b')' | b']' => {
                self.pos += 1;
                Tok::Close
            }
            b',' => {
                self.pos += 1;
                Tok::Comma
            }
            b';' => {
                self.pos += 1;
                Tok::Semicolon
            }
            b'.' => {
                self.pos += 1;
                Tok::Dot
            }
            b':' => {
                self.pos += if next == b':' { 2 } else { 1 };
                Tok::Op
            }
            _ if is_op_char(c) => {
                self.pos += 1;
                while self.pos < b.len()
                    && is_op_char(b[self.pos])
                    && !(b[self.pos] == b'-' && self.at(self.pos + 1) == b'-')
                    && !(b[self.pos] == b'/' && self.at(self.pos + 1) == b'*')
                {
                    self.pos += 1;
                }
                Tok::Op
            }
            _ => {
                // Any other ASCII byte (bytes >= 0x80 start words), one at a time.
                self.pos += 1;
                Tok::Op
            }
        };
        self.prev_value = matches!(
            tok,
            Tok::Word | Tok::QuotedIdent | Tok::Literal | Tok::Param | Tok::Close
        );
        Some((tok, &self.src[start..self.pos]))
    }
}

// ---------------------------------------------------------------------------
// Normalization

/// The class of a normalized token, for spacing and hashing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Word,
    Ident,
    Value,
    List,
    Open,
    Close,
    Comma,
    Semicolon,
    Dot,
    Op,
}

trait Sink {
    fn emit(&mut self, class: Class, text: &str);
}

impl<A: Sink, B: Sink> Sink for (&mut A, &mut B) {
    fn emit(&mut self, class: Class, text: &str) {
        self.0.emit(class, text);
        self.1.emit(class, text);
    }
}

/// 64-bit FNV-1a over the normalized token stream.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn byte(&mut self, b: u8) {
        self.0 ^= u64::from(b);
        self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl Sink for Fnv {
    fn emit(&mut self, class: Class, text: &str) {
        self.byte(class as u8 + 1);
        match class {
            Class::Value => {}
            Class::Word => text.bytes().for_each(|b| self.byte(b.to_ascii_lowercase())),
            _ => text.bytes().for_each(|b| self.byte(b)),
        }
    }
}

struct Normalized {
    text: String,
    last: Class,
    truncated: bool,
}

/// Words after which a `(` is written with a space (`IN (...)`), unlike a
/// function call (`count(*)`).
const SPACED_BEFORE_PAREN: &[&str] = &[
    "in",
    "values",
    "and",
    "or",
    "not",
    "on",
    "as",
    "from",
    "join",
    "where",
    "exists",
    "any",
    "all",
    "using",
    "into",
    "select",
    "over",
    "filter",
    "within",
    "between",
    "then",
    "else",
    "when",
    "returning",
    "set",
    "by",
    "with",
    "is",
    "like",
    "union",
    "except",
    "intersect",
];

impl Sink for Normalized {
    fn emit(&mut self, class: Class, text: &str) {
        if self.truncated {
            return;
        }
        let space = match (self.last, class) {
            (Class::Open | Class::Dot, _) => false,
            (_, Class::Comma | Class::Close | Class::Semicolon | Class::Dot) => false,
            (Class::Word | Class::Ident, Class::Open | Class::List) => {
                let prev = self.text.rsplit(' ').next().unwrap_or("");
                SPACED_BEFORE_PAREN.iter().any(|w| w.eq_ignore_ascii_case(prev))
            }
            (Class::Op, _) | (_, Class::Op) => !(text == "::" || self.text.ends_with("::")),
            _ => !self.text.is_empty(),
        };
        let rendered = match class {
            Class::Value => "?",
            _ => text,
        };
        let need = rendered.len() + usize::from(space);
        if self.text.len() + need > MAX_NORMALIZED_LEN {
            let room = MAX_NORMALIZED_LEN.saturating_sub(self.text.len() + 4);
            let mut cut = room.min(rendered.len());
            while !rendered.is_char_boundary(cut) {
                cut -= 1;
            }
            if space {
                self.text.push(' ');
            }
            self.text.push_str(&rendered[..cut]);
            self.text.push('…');
            self.truncated = true;
            return;
        }
        if space {
            self.text.push(' ');
        }
        self.text.push_str(rendered);
        self.last = class;
    }
}

/// If the group opened just before `lexer`'s position holds only literals,
/// parameters and commas, returns the lexer positioned after its closing
/// bracket.
fn value_list_end<'a>(lexer: &Lexer<'a>) -> Option<Lexer<'a>> {
    let mut probe = lexer.clone();
    let mut values = 0usize;
    loop {
        match probe.next_token()? {
            (Tok::Literal | Tok::Param, _) => values += 1,
            (Tok::Comma, _) => {}
            // A typed literal inside a list (`'x'::text`) keeps the list a list.
            (Tok::Op, "::") => {
                probe.next_token().filter(|(t, _)| *t == Tok::Word)?;
            }
            (Tok::Close, _) if values > 0 => return Some(probe),
            _ => return None,
        }
    }
}

/// Words after which a parenthesized list of values is a list (collapsed
/// to `(...)`) rather than the arguments of a function call (kept, `f(?, ?)`).
const LIST_KEYWORDS: &[&str] = &["in", "values", "any", "all", "array"];

fn normalize(sql: &str, sink: &mut impl Sink) {
    let mut lexer = Lexer::new(sql);
    // Whether the last emitted token was a collapsed list, so that
    // `VALUES (...), (...), (...)` collapses to one group.
    let mut after_list = false;
    let mut last_word: Option<&str> = None;
    while let Some((tok, text)) = lexer.next_token() {
        if tok == Tok::Open {
            let list_context = text == "["
                || after_list
                || last_word.is_some_and(|w| LIST_KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(w)));
            if let Some(end) = value_list_end(&lexer).filter(|_| list_context) {
                lexer = end;
                if !after_list {
                    sink.emit(Class::List, if text == "[" { "[...]" } else { "(...)" });
                }
                after_list = true;
                last_word = None;
                continue;
            }
        }
        if tok == Tok::Comma && after_list {
            // Swallow the comma only if another value list follows (VALUES rows).
            let mut probe = lexer.clone();
            if matches!(probe.next_token(), Some((Tok::Open, "("))) && value_list_end(&probe).is_some() {
                continue;
            }
        }
        sink.emit(class_of(tok), text);
        last_word = (tok == Tok::Word).then_some(text);
        after_list = false;
    }
}

fn class_of(tok: Tok) -> Class {
    match tok {
        Tok::Word => Class::Word,
        Tok::QuotedIdent => Class::Ident,
        Tok::Literal | Tok::Param => Class::Value,
        Tok::Open => Class::Open,
        Tok::Close => Class::Close,
        Tok::Comma => Class::Comma,
        Tok::Semicolon => Class::Semicolon,
        Tok::Dot => Class::Dot,
        Tok::Op => Class::Op,
    }
}

/// The text `db.query.text` shows: literals as `?`, parameters as written
/// (`$1`), lists kept as they are, words in their own case; comments and
/// runs of whitespace dropped as in the normalized text.
fn query_text(sql: &str) -> String {
    let mut out = Normalized {
        text: String::with_capacity(sql.len().min(MAX_NORMALIZED_LEN)),
        last: Class::Open,
        truncated: false,
    };
    let mut lexer = Lexer::new(sql);
    while let Some((tok, text)) = lexer.next_token() {
        // A parameter is spaced as a word and shown as written.
        let class = if tok == Tok::Param { Class::Word } else { class_of(tok) };
        out.emit(class, text);
    }
    out.text
}

/// The text to explain for a generic plan: `text` as
/// [`Analysis::text`] has it (literals as `?`), each `?` made a parameter
/// numbered after the text's own (`$n`). `None` when the text holds a
/// literal, more than one statement or a `?` that cannot be a replaced
/// literal (a `jsonb` operator), or was cut: the result holds no value.
pub(crate) fn generic_text(text: &str) -> Option<String> {
    if text.ends_with('…') {
        return None;
    }
    let mut highest = 0u32;
    let mut lexer = Lexer::new(text);
    while let Some((tok, t)) = lexer.next_token() {
        match tok {
            Tok::Literal | Tok::Semicolon => return None,
            Tok::Param => highest = highest.max(t.get(1..)?.parse().ok()?),
            Tok::Op if t.contains('?') && t != "?" => return None,
            _ => {}
        }
    }
    let mut out = Normalized {
        text: String::with_capacity(text.len() + 16),
        last: Class::Open,
        truncated: false,
    };
    let mut lexer = Lexer::new(text);
    while let Some((tok, t)) = lexer.next_token() {
        if tok == Tok::Op && t == "?" {
            highest = highest.checked_add(1)?;
            out.emit(Class::Word, &format!("${highest}"));
        } else {
            let class = if tok == Tok::Param { Class::Word } else { class_of(tok) };
            out.emit(class, t);
        }
    }
    (!out.truncated && highest <= 65_535).then_some(out.text)
}

// ---------------------------------------------------------------------------
// Operation and main table

/// One statement's operation and table, found by a small state machine over
/// the tokens at parenthesis depth 0.
struct StatementScan {
    operation: Option<Operation>,
    /// Inside `WITH`: the operation is the first DML keyword at depth 0.
    in_with: bool,
    /// Waiting for the table name after this keyword.
    want_table: bool,
    /// For DDL: waiting for `TABLE`/`INDEX … ON` before the name.
    want_object: bool,
    table: Option<String>,
    /// The name being read may continue with `.name`.
    table_open: bool,
    /// A dot followed the name just read.
    after_dot: bool,
    /// The name being read came after `FROM` (so `name(` is a function).
    after_from: bool,
}

impl StatementScan {
    fn new() -> Self {
        StatementScan {
            operation: None,
            in_with: false,
            want_table: false,
            want_object: false,
            table: None,
            table_open: false,
            after_dot: false,
            after_from: false,
        }
    }

    fn name_part(tok: Tok, text: &str) -> Option<String> {
        match tok {
            Tok::Word => Some(text.to_ascii_lowercase()),
            Tok::QuotedIdent => {
                let inner = text.strip_prefix("U&").unwrap_or(text);
                let inner = inner.strip_prefix('"').unwrap_or(inner);
                let inner = inner.strip_suffix('"').unwrap_or(inner);
                Some(inner.replace("\"\"", "\""))
            }
            _ => None,
        }
    }

    fn push_table(&mut self, part: String) {
        let table = self.table.get_or_insert_with(String::new);
        if !table.is_empty() {
            table.push('.');
        }
        table.push_str(&part);
        if table.len() > MAX_TABLE_LEN {
            let mut cut = MAX_TABLE_LEN;
            while !table.is_char_boundary(cut) {
                cut -= 1;
            }
            table.truncate(cut);
        }
    }

    /// Feeds one token at depth 0.
    fn token(&mut self, tok: Tok, text: &str) {
        const SKIP: &[&str] = &[
            "only",
            "if",
            "not",
            "exists",
            "table",
            "lateral",
            "unlogged",
            "temporary",
            "temp",
            "concurrently",
        ];
        if self.table_open {
            match tok {
                Tok::Dot => {
                    self.after_dot = true;
                    return;
                }
                _ if self.after_dot => {
                    self.after_dot = false;
                    if let Some(part) = Self::name_part(tok, text) {
                        self.push_table(part);
                        return;
                    }
                    self.table_open = false;
                }
                _ => self.table_open = false,
            }
        }
        let word = if tok == Tok::Word { text } else { "" };
        match self.operation {
            None => {
                if tok != Tok::Word {
                    return;
                }
                if word.eq_ignore_ascii_case("with") {
                    self.in_with = true;
                    self.operation = Some(Operation::Select);
                    return;
                }
                let op = Operation::from_keyword(word).unwrap_or(Operation::Other);
                self.operation = Some(op);
                match op {
                    Operation::Update | Operation::Copy | Operation::Truncate | Operation::Lock => {
                        self.want_table = true
                    }
                    Operation::Select if word.eq_ignore_ascii_case("table") => self.want_table = true,
                    Operation::Create | Operation::Alter | Operation::Drop => self.want_object = true,
                    _ => {}
                }
            }
            Some(op) => {
                if self.in_with {
                    if let Some(main) = Operation::from_keyword(word).filter(|o| {
                        matches!(
                            o,
                            Operation::Select
                                | Operation::Insert
                                | Operation::Update
                                | Operation::Delete
                                | Operation::Merge
                        )
                    }) {
                        self.in_with = false;
                        self.operation = Some(main);
                        self.want_table = main == Operation::Update;
                    }
                    return;
                }
                if self.want_object {
                    if word.eq_ignore_ascii_case("table") || word.eq_ignore_ascii_case("on") {
                        self.want_object = false;
                        self.want_table = true;
                    }
                    return;
                }
                if self.want_table {
                    if SKIP.iter().any(|s| s.eq_ignore_ascii_case(word)) {
                        return;
                    }
                    self.want_table = false;
                    if let Some(part) = Self::name_part(tok, text) {
                        self.push_table(part);
                        self.table_open = true;
                    }
                    return;
                }
                if self.table.is_none() {
                    let trigger = match op {
                        Operation::Select | Operation::Delete => word.eq_ignore_ascii_case("from"),
                        Operation::Insert | Operation::Merge => word.eq_ignore_ascii_case("into"),
                        _ => false,
                    };
                    if trigger {
                        self.want_table = true;
                        self.after_from = word.eq_ignore_ascii_case("from");
                    }
                }
            }
        }
    }
}

/// Scans the statements of `sql`: operation and table of the main one, and
/// the number of statements.
fn main_statement(sql: &str) -> (Operation, Option<String>, usize) {
    let mut lexer = Lexer::new(sql);
    let mut depth = 0usize;
    let mut scan = StatementScan::new();
    let mut first: Option<(Operation, Option<String>)> = None;
    let mut main: Option<(Operation, Option<String>)> = None;
    let mut count = 0usize;
    let finish = |scan: &mut StatementScan, first: &mut Option<_>, main: &mut Option<_>, count: &mut usize| {
        let Some(op) = scan.operation else { return };
        *count += 1;
        let table = scan.table.take();
        if first.is_none() {
            *first = Some((op, table.clone()));
        }
        if main.is_none() && !op.is_transaction_control() && op != Operation::Set {
            *main = Some((op, table));
        }
        *scan = StatementScan::new();
    };
    while let Some((tok, text)) = lexer.next_token() {
        match tok {
            Tok::Open => {
                // `INSERT INTO t (a, b)` ends a name; `FROM (subquery) s` has
                // none, and neither has `FROM generate_series(1, 3) g`.
                if depth == 0 {
                    if scan.table_open && scan.after_from && !scan.after_dot {
                        scan.table = None;
                    }
                    scan.table_open = false;
                    scan.want_table = false;
                }
                depth += 1;
            }
            Tok::Close => depth = depth.saturating_sub(1),
            Tok::Semicolon if depth == 0 => finish(&mut scan, &mut first, &mut main, &mut count),
            _ if depth == 0 => scan.token(tok, text),
            _ => {}
        }
    }
    finish(&mut scan, &mut first, &mut main, &mut count);
    let (op, table) = main.or(first).unwrap_or((Operation::Other, None));
    (op, table, count)
}

impl serde::Serialize for Operation {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One [sqlcommenter](https://google.github.io/sqlcommenter/spec/)
/// key-value pair: `route='GET%20%2Fusers%2F%7Bid%7D'`. Every byte of the
/// value but letters, digits and `-_.~` is percent-encoded, so the comment
/// it goes into can neither end early nor hold a quote.
pub(crate) fn comment_pair(key: &str, value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(key.len() + value.len() * 3 + 3);
    out.push_str(key);
    out.push_str("='");
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out.push('\'');
    out
}

/// `sql` with a comment of `pairs` (sorted by key, as sqlcommenter
/// wants them) appended after its text and before a final `;`:
/// `SELECT 1 /*route='GET%20%2F',traceparent='00-…-01'*/`. None when the
/// text has a comment of its own (sqlcommenter leaves those alone; a `--`
/// inside a string counts too, which only leaves such a statement
/// untagged).
pub(crate) fn tagged(sql: &str, pairs: &[&str]) -> Option<String> {
    if sql.contains("/*") || sql.contains("--") {
        return None;
    }
    let body = sql.trim_end().trim_end_matches(';').trim_end();
    let mut out = String::with_capacity(body.len() + 8 + pairs.iter().map(|p| p.len() + 1).sum::<usize>());
    out.push_str(body);
    out.push_str(" /*");
    for (i, pair) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(pair);
    }
    out.push_str("*/");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(sql: &str) -> String {
        analyze(sql).normalized
    }

    #[test]
    fn literals_and_parameters_become_placeholders() {
        assert_eq!(
            norm("SELECT * FROM t WHERE a = 1 AND b = 'x' AND c = $3"),
            "SELECT * FROM t WHERE a = ? AND b = ? AND c = ?"
        );
        assert_eq!(norm("select 1.5e10, -2, .5, 0x1F, 1_000"), "select ?, ?, ?, ?, ?");
        assert_eq!(norm("SELECT a - 1 FROM t"), "SELECT a - ? FROM t");
        assert_eq!(
            norm("SELECT E'it\\'s', B'101', X'1F', U&'d\\0061t'"),
            "SELECT ?, ?, ?, ?"
        );
        assert_eq!(norm("SELECT $$a;b$$, $fn$ x $y$ $fn$"), "SELECT ?, ?");
        assert_eq!(norm("SELECT 'it''s' || 'a'"), "SELECT ? || ?");
    }

    #[test]
    fn a_backslash_before_a_quote_masks_the_rest_under_either_setting() {
        // With standard_conforming_strings off, \' escapes the quote: the
        // value is `O'Brien`, and `Brien` must not read as SQL.
        let text = "SELECT * FROM t WHERE name = 'O\\'Brien' AND ssn = '123-45-6789'";
        let n = norm(text);
        assert_eq!(n, "SELECT * FROM t WHERE name = ?");
        assert!(!n.contains("Brien") && !n.contains("123"));
        assert_eq!(
            norm("SELECT * FROM t WHERE name = N'O\\'Brien' AND x = 1"),
            "SELECT * FROM t WHERE name = ?"
        );
        // An even run of backslashes ends the string under both settings.
        assert_eq!(norm("SELECT 'a\\\\' AND b = 'c'"), "SELECT ? AND b = ?");
        // Backslashes elsewhere change nothing.
        assert_eq!(
            norm("SELECT * FROM t WHERE p LIKE 'a\\_b' AND id = 1"),
            "SELECT * FROM t WHERE p LIKE ? AND id = ?"
        );
        assert_eq!(norm("SELECT 'it''s', 2"), "SELECT ?, ?");
    }

    #[test]
    fn lists_collapse_to_one_group() {
        assert_eq!(
            norm("SELECT * FROM t WHERE id IN (1, 2, 3)"),
            "SELECT * FROM t WHERE id IN (...)"
        );
        assert_eq!(
            fingerprint("SELECT * FROM t WHERE id IN ($1,$2)"),
            fingerprint("select * from t where id in (7)")
        );
        assert_eq!(
            norm("INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), ($1, $2)"),
            "INSERT INTO t(a, b) VALUES (...)"
        );
        assert_eq!(norm("SELECT ARRAY[1,2,3]"), "SELECT ARRAY[...]");
        assert_eq!(
            norm("SELECT * FROM t WHERE id = ANY($1)"),
            "SELECT * FROM t WHERE id = ANY (...)"
        );
        assert_eq!(norm("SELECT count(*) FROM t"), "SELECT count(*) FROM t");
        assert_eq!(
            norm("SELECT substr('abc', 1, 2), pg_sleep(0.5)"),
            "SELECT substr(?, ?, ?), pg_sleep(?)"
        );
        assert_eq!(
            norm("SELECT * FROM t WHERE (a, b) = (1, 2)"),
            "SELECT * FROM t WHERE (a, b) = (?, ?)"
        );
    }

    #[test]
    fn the_query_text_keeps_parameters_and_masks_literals() {
        let a = analyze("UPDATE  t SET a = $1, b = 'secret' /* why */ WHERE id IN (1, 2) AND c = $2::int");
        assert_eq!(a.text, "UPDATE t SET a = $1, b = ? WHERE id IN (?, ?) AND c = $2::int");
        assert!(!analyze("SELECT E'sec\\'ret', $$x$$").text.contains("sec"));
    }

    #[test]
    fn comments_and_whitespace_vanish() {
        assert_eq!(
            fingerprint("SELECT /* a /* nested */ comment */ a\n  FROM t -- trailing\n WHERE x = 1"),
            fingerprint("select a from T where x = 2")
        );
        assert_eq!(norm("SELECT a -- no 'quote here\nFROM t"), "SELECT a FROM t");
    }

    #[test]
    fn quoted_identifiers_keep_case_and_semicolons_in_strings_do_not_split() {
        assert_ne!(
            fingerprint("SELECT \"Name\" FROM t"),
            fingerprint("SELECT \"name\" FROM t")
        );
        assert_eq!(fingerprint("SELECT Name FROM t"), fingerprint("SELECT name FROM t"));
        let a = analyze("SELECT ';' FROM \"My;Table\"");
        assert_eq!(a.statements, 1);
        assert_eq!(a.table.as_deref(), Some("My;Table"));
    }

    #[test]
    fn operations_and_tables_are_found() {
        let cases: &[(&str, Operation, Option<&str>)] = &[
            (
                "SELECT a FROM public.users u JOIN orders o ON true",
                Operation::Select,
                Some("public.users"),
            ),
            ("select 1", Operation::Select, None),
            (
                "INSERT INTO orders (id) VALUES ($1) RETURNING id",
                Operation::Insert,
                Some("orders"),
            ),
            (
                "UPDATE ONLY accounts SET balance = balance - 1 WHERE id = 2",
                Operation::Update,
                Some("accounts"),
            ),
            (
                "DELETE FROM sessions WHERE expires < now()",
                Operation::Delete,
                Some("sessions"),
            ),
            (
                "WITH x AS (SELECT * FROM a) UPDATE b SET c = 1 FROM x",
                Operation::Update,
                Some("b"),
            ),
            (
                "WITH x AS (SELECT * FROM a) SELECT * FROM x",
                Operation::Select,
                Some("x"),
            ),
            (
                "WITH x AS (DELETE FROM a RETURNING *) INSERT INTO b SELECT * FROM x",
                Operation::Insert,
                Some("b"),
            ),
            ("SELECT * FROM (SELECT * FROM t) s", Operation::Select, None),
            ("SELECT g FROM generate_series(1, 3) g", Operation::Select, None),
            ("SELECT * FROM pg_catalog.unnest($1) u", Operation::Select, None),
            ("DELETE FROM ONLY jobs WHERE id = 1", Operation::Delete, Some("jobs")),
            (
                "INSERT INTO public.t (a) VALUES (1)",
                Operation::Insert,
                Some("public.t"),
            ),
            ("COPY t (a, b) FROM STDIN", Operation::Copy, Some("t")),
            (
                "CREATE TABLE IF NOT EXISTS \"Items\" (id int)",
                Operation::Create,
                Some("Items"),
            ),
            (
                "CREATE UNIQUE INDEX CONCURRENTLY i ON items (id)",
                Operation::Create,
                Some("items"),
            ),
            ("DROP TABLE IF EXISTS items", Operation::Drop, Some("items")),
            ("ALTER TABLE items ADD COLUMN x int", Operation::Alter, Some("items")),
            ("TRUNCATE TABLE items", Operation::Truncate, Some("items")),
            ("COPY items FROM STDIN", Operation::Copy, Some("items")),
            (
                "LOCK TABLE items IN ACCESS EXCLUSIVE MODE",
                Operation::Lock,
                Some("items"),
            ),
            ("BEGIN ISOLATION LEVEL SERIALIZABLE", Operation::Begin, None),
            ("START TRANSACTION", Operation::Begin, None),
            ("COMMIT", Operation::Commit, None),
            ("ROLLBACK TO SAVEPOINT sp", Operation::Rollback, None),
            ("SET statement_timeout = '5s'", Operation::Set, None),
            ("TABLE items", Operation::Select, Some("items")),
            ("", Operation::Other, None),
            ("frobnicate the database", Operation::Other, None),
        ];
        for (sql, op, table) in cases {
            let a = analyze(sql);
            assert_eq!((a.operation, a.table.as_deref()), (*op, *table), "{sql}");
        }
    }

    #[test]
    fn multi_statement_text_reports_its_main_statement() {
        let a = analyze("BEGIN; UPDATE accounts SET n = 1 WHERE id = 1; COMMIT;");
        assert_eq!(a.statements, 3);
        assert_eq!(a.operation, Operation::Update);
        assert_eq!(a.table.as_deref(), Some("accounts"));
        assert_eq!(a.normalized, "BEGIN; UPDATE accounts SET n = ? WHERE id = ?; COMMIT;");
        let b = analyze("BEGIN; COMMIT");
        assert_eq!((b.operation, b.statements), (Operation::Begin, 2));
    }

    #[test]
    fn long_statements_are_cut_but_fully_fingerprinted() {
        let long = format!(
            "SELECT {} FROM t",
            (0..2000).map(|i| format!("c{i}")).collect::<Vec<_>>().join(", ")
        );
        let a = analyze(&long);
        assert!(a.normalized.len() <= MAX_NORMALIZED_LEN + '…'.len_utf8());
        assert!(a.normalized.ends_with('…'));
        assert_ne!(a.fingerprint, fingerprint(&long.replace("c1999", "c2000")));
    }

    #[test]
    fn fingerprint_equals_analysis_fingerprint() {
        for sql in [
            "SELECT 1",
            "insert into t values (1), (2)",
            "BEGIN; SELECT $$x$$; COMMIT",
            "'unterminated",
            "$tag$ open",
        ] {
            assert_eq!(fingerprint(sql), analyze(sql).fingerprint, "{sql}");
        }
    }

    #[test]
    fn unterminated_constructs_do_not_panic() {
        for sql in [
            "'abc",
            "E'abc\\",
            "\"abc",
            "/* abc",
            "$a$ abc",
            "$",
            "$1$",
            "U&",
            "u&'",
            "0x",
            "1e",
            "-",
            ".",
            "::",
            "\u{1F600}'\u{e9}",
        ] {
            let _ = analyze(sql);
        }
    }

    proptest::proptest! {
        /// A plain string written for `standard_conforming_strings = off`
        /// (backslash-escaped quotes and backslashes) leaks nothing either.
        #[test]
        fn no_body_escaped_for_the_old_setting_reaches_the_normalized_text(
            before in r#"[a-z '\\\u{e9}]{0,6}"#,
            after in r#"[a-z '\\\u{e9}]{0,6}"#,
            tail in "( AND x = 1| OR y = 'z'|)",
        ) {
            let body = format!("{before}zqxjmarker{after}");
            let escaped = body.replace('\\', "\\\\").replace('\'', "\\'");
            let sql = format!("SELECT * FROM t WHERE a = '{escaped}'{tail}");
            let a = analyze(&sql);
            proptest::prop_assert!(!a.normalized.contains("zqxjmarker"), "{sql:?} -> {:?}", a.normalized);
            proptest::prop_assert!(!a.summary.contains("zqxjmarker"), "{sql:?} -> {:?}", a.summary);
            proptest::prop_assert!(!a.text.contains("zqxjmarker"), "{sql:?} -> {:?}", a.text);
            for word in body.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()) {
                proptest::prop_assert!(!a.normalized.contains(word) || "SELECTFROMtWHEREaANDxORyz".contains(word),
                    "{word:?} of {sql:?} -> {:?}", a.normalized);
            }
        }

        #[test]
        fn never_panics_on_arbitrary_text(s in ".*") {
            let a = analyze(&s);
            proptest::prop_assert_eq!(a.fingerprint, fingerprint(&s));
            proptest::prop_assert!(a.summary.chars().count() <= MAX_SUMMARY_LEN);
            proptest::prop_assert!(a.normalized.len() <= MAX_NORMALIZED_LEN + 4);
        }

        #[test]
        fn never_panics_on_sql_like_text(s in r#"([ '"$();,.:\-+*/eEuU&xX0-9a-z_\\]|--|/\*|\*/|\$\$|\$a\$|\n){0,64}"#) {
            let a = analyze(&s);
            proptest::prop_assert_eq!(a.fingerprint, fingerprint(&s));
            proptest::prop_assert!(a.summary.chars().count() <= MAX_SUMMARY_LEN);
        }

        #[test]
        fn dollar_quoted_bodies_never_reach_the_normalized_text(
            tag in r"([A-Za-z_\u{80}-\u{10FFFF}][A-Za-z0-9_\u{80}-\u{10FFFF}]{0,5})?",
            before in "[a-z ]{0,8}",
            after in "[a-z ]{0,8}",
        ) {
            let sql = format!("SELECT ${tag}${before}zqxjmarker{after}${tag}$ FROM t");
            let a = analyze(&sql);
            proptest::prop_assert!(!a.normalized.contains("zqxjmarker"), "{sql:?} -> {:?}", a.normalized);
            proptest::prop_assert!(!a.summary.contains("zqxjmarker"), "{sql:?} -> {:?}", a.summary);
            proptest::prop_assert!(!a.text.contains("zqxjmarker"), "{sql:?} -> {:?}", a.text);
        }

        /// Every quoting form PostgreSQL accepts for a constant, with a
        /// body that holds quotes, backslashes, dollars and non-ASCII
        /// text, in several places of a statement: no marker gets through.
        #[test]
        fn no_quoted_body_reaches_the_normalized_text(
            form in 0usize..11,
            place in 0usize..4,
            before in r#"[a-z '"\\$\u{e9}\u{4e2d}]{0,6}"#,
            after in r#"[a-z '"\\$\u{e9}\u{4e2d}]{0,6}"#,
        ) {
            let body = format!("{before}zqxjmarker{after}");
            let doubled = body.replace('\'', "''");
            let escaped = body.replace('\\', "\\\\").replace('\'', "\\'");
            let literal = match form {
                0 => format!("'{doubled}'"),
                // Backslash escapes: each backslash and quote escaped.
                1 => format!("E'{escaped}'"),
                2 => format!("e'{escaped}'"),
                3 => format!("U&'{doubled}'"),
                4 => format!("U&'{doubled}' UESCAPE '!'"),
                5 => format!("N'{doubled}'"),
                6 => format!("$${}$$", body.replace('$', "")),
                7 => format!("$q_1$${}$q_1$", body.replace('$', "")),
                8 => format!("X'{doubled}'"),
                9 => format!("b'{doubled}'"),
                // A constant continued on the next line.
                _ => format!("'x'\n'{doubled}'"),
            };
            let sql = match place {
                0 => format!("SELECT {literal}"),
                1 => format!("SELECT * FROM t WHERE a = {literal}::text AND b = 1"),
                2 => format!("INSERT INTO t (a, b) VALUES ({literal}, {literal}) RETURNING id"),
                _ => format!("UPDATE t SET a = text {literal} WHERE id IN (1, 2)"),
            };
            let a = analyze(&sql);
            proptest::prop_assert!(!format!("{a:?}").contains("zqxjmarker"), "{sql:?} -> {:?}", a.normalized);
        }

        #[test]
        fn literal_values_never_reach_the_normalized_text(n in 100_000u32..999_999, word in "[a-z]{12}") {
            let sql = format!("SELECT * FROM t WHERE a = {n} AND b = '{word}' AND c IN ({n}, {n})");
            let a = analyze(&sql);
            let n_text = n.to_string();
            proptest::prop_assert!(!a.normalized.contains(&n_text));
            proptest::prop_assert!(!a.normalized.contains(&word));
        }
    }

    #[test]
    fn a_generic_text_has_a_parameter_for_each_literal_and_no_value() {
        let cases = [
            (
                "SELECT * FROM orders WHERE customer = 42 AND note = 'zqxjmark' LIMIT 10",
                Some("SELECT * FROM orders WHERE customer = $1 AND note = $2 LIMIT $3"),
            ),
            (
                "UPDATE t SET v = $1 WHERE id IN (1, 2) AND x='a'::text",
                Some("UPDATE t SET v = $1 WHERE id IN ($2, $3) AND x = $4::text"),
            ),
            (
                "SELECT \"a?b\" FROM t WHERE id = $2",
                Some("SELECT \"a?b\" FROM t WHERE id = $2"),
            ),
            ("SELECT 1; SELECT 2", None),
            ("SELECT doc ?| array['a'] FROM t", None),
            ("SELECT doc ? 'k' FROM t", None),
        ];
        for (sql, want) in cases {
            let got = generic_text(&analyze(sql).text);
            // The jsonb `?` is not told from a literal: its text is
            // rewritten, and will not parse (so it is never explained).
            if sql.contains("doc ? 'k'") {
                assert!(got.as_deref().is_some_and(|g| !g.contains('\'')), "{got:?}");
                continue;
            }
            assert_eq!(got.as_deref(), want, "{sql}");
            if let Some(g) = got {
                assert!(!g.contains("zqxjmark") && !g.contains('\''), "{g}");
                assert_eq!(analyze(&g).text, g, "no literal left in {g}");
            }
        }
        assert_eq!(generic_text("SELECT 'x'"), None);
    }

    #[test]
    fn postgresql_18_s_squashed_lists_have_the_client_s_fingerprint() {
        // pg_stat_statements 1.12 (PostgreSQL 18) writes a list of
        // constants as its first element and a comment.
        let server = fingerprint("SELECT * FROM t WHERE id IN ($1 /*, ... */)");
        assert_eq!(server, fingerprint("SELECT * FROM t WHERE id IN (1, 2, 3)"));
        assert_eq!(server, fingerprint("select * from t where id in ($1, $2)"));
    }

    #[test]
    fn a_route_comment_is_encoded_so_that_it_cannot_end_early_and_tags_once() {
        assert_eq!(
            super::comment_pair("route", "GET /users/{id}"),
            "route='GET%20%2Fusers%2F%7Bid%7D'"
        );
        let hostile = super::comment_pair("route", "x'*/; DROP TABLE t; --");
        let tagged = super::tagged("SELECT 1", &[&hostile]).unwrap();
        assert_eq!(tagged.matches("*/").count(), 1, "{tagged}");
        assert_eq!(tagged.matches('\'').count(), 2, "{tagged}");
        let c = ["route='a'", "traceparent='00-1-2-01'"];
        assert_eq!(
            super::tagged("SELECT 1 ;\n", &c[..1]).as_deref(),
            Some("SELECT 1 /*route='a'*/")
        );
        assert_eq!(
            super::tagged("SELECT 1", &c).as_deref(),
            Some("SELECT 1 /*route='a',traceparent='00-1-2-01'*/")
        );
        assert_eq!(super::tagged("SELECT 1 /* mine */", &c), None);
        assert_eq!(super::tagged("SELECT 1 -- mine", &c), None);
        // The fingerprint ignores comments: a tagged statement is the same
        // statement.
        let tagged = super::tagged("SELECT * FROM t WHERE id = $1", &c).unwrap();
        assert_eq!(
            super::fingerprint(&tagged),
            super::fingerprint("SELECT * FROM t WHERE id = $1")
        );
    }
}

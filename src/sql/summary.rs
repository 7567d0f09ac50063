//! `db.query.summary`: the operations of a statement text and the tables
//! they name, in the order written, as OpenTelemetry's database
//! conventions generate it (`SELECT users`, `INSERT shipping_details SELECT
//! orders`, `SELECT SELECT orders customers` for a query over a subquery).
//!
//! Only keywords and names are taken: literals and parameters never are.
//! Words keep the case they were written in; a quoted name keeps its
//! quotes. The summary is at most [`MAX_SUMMARY_LEN`] characters, cut
//! between parts, never inside one.

use super::{Lexer, Tok};

/// The longest summary, in characters (the convention's bound).
pub const MAX_SUMMARY_LEN: usize = 255;

/// What a statement text with no operation this knows is summarized as.
pub(super) const UNKNOWN: &str = "OTHER";

/// Verbs that begin an operation wherever they stand: a subquery, the
/// `SELECT` of an `INSERT … SELECT`, the body of a `WITH` query.
const ANYWHERE: &[&str] = &["select", "insert", "update", "delete", "merge"];

/// Commands that begin a statement (besides [`ANYWHERE`] and [`DDL`]).
const COMMANDS: &[&str] = &[
    "table",
    "values",
    "copy",
    "begin",
    "start",
    "commit",
    "end",
    "rollback",
    "abort",
    "savepoint",
    "release",
    "set",
    "reset",
    "show",
    "call",
    "explain",
    "truncate",
    "grant",
    "revoke",
    "lock",
    "vacuum",
    "analyze",
    "analyse",
    "reindex",
    "cluster",
    "listen",
    "unlisten",
    "notify",
    "do",
    "prepare",
    "execute",
    "deallocate",
    "discard",
    "declare",
    "fetch",
    "move",
    "close",
    "checkpoint",
    "load",
    "refresh",
    "comment",
    "security",
    "import",
];

/// Commands whose next name is their target.
const TARGETED: &[&str] = &[
    "update", "table", "copy", "truncate", "lock", "vacuum", "analyze", "analyse", "cluster", "reindex", "call",
    "refresh",
];

/// Commands that say what kind of object follows (`CREATE TABLE t`).
const DDL: &[&str] = &["create", "alter", "drop"];

/// The kinds of object a DDL command names, kept in its operation.
const OBJECT_KINDS: &[&str] = &[
    "table",
    "index",
    "view",
    "sequence",
    "schema",
    "function",
    "procedure",
    "trigger",
    "type",
    "extension",
    "database",
    "role",
    "user",
    "domain",
    "policy",
    "publication",
    "subscription",
    "aggregate",
    "collation",
    "server",
    "statistics",
    "tablespace",
    "rule",
    "operator",
    "cast",
];

/// Words between a DDL command and its kind (`CREATE OR REPLACE VIEW`,
/// `CREATE UNIQUE INDEX`, `CREATE MATERIALIZED VIEW`).
const DDL_MODIFIERS: &[&str] = &[
    "or",
    "replace",
    "temp",
    "temporary",
    "unlogged",
    "unique",
    "materialized",
    "global",
    "local",
    "recursive",
    "foreign",
    "constraint",
    "event",
];

/// Words between a verb and its target that are no target.
const BEFORE_TARGET: &[&str] = &[
    "only",
    "if",
    "not",
    "exists",
    "lateral",
    "table",
    "concurrently",
    "verbose",
    "full",
    "freeze",
    "analyze",
    "analyse",
    "index",
    "schema",
    "database",
    "system",
    "materialized",
    "view",
];

/// Words no target can be: a clause that follows where a name was wanted.
const NO_TARGET: &[&str] = &[
    "set",
    "select",
    "values",
    "default",
    "where",
    "from",
    "using",
    "on",
    "as",
    "to",
    "with",
    "returning",
];

/// Words after which a verb is a clause, not an operation (`ON DELETE
/// CASCADE`, `FOR UPDATE`, `DO UPDATE SET`, `THEN INSERT`, `BEFORE INSERT
/// OR UPDATE`).
const NOT_AFTER: &[&str] = &["on", "for", "do", "then", "before", "after", "instead", "or", "of"];

/// Words that end a `FROM` list, so that a comma after them wants no table.
const END_FROM: &[&str] = &[
    "where",
    "group",
    "order",
    "limit",
    "offset",
    "having",
    "window",
    "union",
    "intersect",
    "except",
    "fetch",
    "for",
    "returning",
    "set",
    "on",
    "values",
];

fn is(word: &str, list: &[&str]) -> bool {
    list.iter().any(|w| w.eq_ignore_ascii_case(word))
}

/// The summary of `sql`.
pub(super) fn summarize(sql: &str) -> String {
    let mut lexer = Lexer::new(sql);
    let mut scan = Scan {
        at_start: true,
        ..Scan::default()
    };
    while let Some((tok, text)) = lexer.next_token() {
        scan.token(tok, text);
    }
    scan.commit();
    if scan.out.is_empty() {
        scan.out.push_str(UNKNOWN);
    }
    scan.out
}

/// What the next name means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Want {
    #[default]
    Nothing,
    /// A table: after `FROM`, `JOIN`, `INTO`, `UPDATE`, a comma in a
    /// `FROM` list. `call` is whether `name(` still names it (`INTO t
    /// (a, b)`, `CALL p(1)`), or makes it a function (`FROM f(1)`).
    Target { call: bool },
    /// The kind of object after `CREATE`, `ALTER` or `DROP`.
    Kind,
}

#[derive(Default)]
struct Scan<'a> {
    out: String,
    /// A part did not fit: nothing more is added.
    full: bool,
    /// The next word begins a statement (at the start, after `;` or `(`).
    at_start: bool,
    depth: usize,
    want: Want,
    /// A table name being read (it may go on with `.name`), whether a dot
    /// followed it, and whether `(` after it keeps it.
    name: Option<String>,
    after_dot: bool,
    keep_on_call: bool,
    /// The depth of a `FROM` list, where a comma wants another table.
    from_list: Option<usize>,
    /// The last operation, and the depth it was written at.
    op: Option<(&'a str, usize)>,
    /// A DDL command waiting for its kind.
    ddl: Option<&'a str>,
    /// The word before this token, if it was one.
    prev_word: Option<&'a str>,
}

impl<'a> Scan<'a> {
    fn push(&mut self, part: &str) {
        if self.full || part.is_empty() {
            return;
        }
        let used = self.out.chars().count();
        let extra = part.chars().count() + usize::from(used > 0);
        if used + extra > MAX_SUMMARY_LEN {
            self.full = true;
            return;
        }
        if used > 0 {
            self.out.push(' ');
        }
        self.out.push_str(part);
    }

    /// Adds the table name being read, if any.
    fn commit(&mut self) {
        if let Some(name) = self.name.take() {
            self.push(&name);
        }
        self.after_dot = false;
    }

    fn token(&mut self, tok: Tok, text: &'a str) {
        if self.name.is_some() && self.continue_name(tok, text) {
            return;
        }
        let word = (tok == Tok::Word).then_some(text);
        match tok {
            Tok::Open => {
                self.depth += 1;
                self.at_start = true;
                self.want = Want::Nothing;
            }
            Tok::Close => {
                self.depth = self.depth.saturating_sub(1);
                if self.from_list.is_some_and(|d| d > self.depth) {
                    self.from_list = None;
                }
                self.at_start = false;
            }
            Tok::Semicolon => {
                self.at_start = true;
                self.want = Want::Nothing;
                self.from_list = None;
                self.flush_ddl();
                self.depth = 0;
            }
            Tok::Comma if self.from_list == Some(self.depth) => self.want = Want::Target { call: false },
            Tok::Word => self.word(text),
            Tok::QuotedIdent if matches!(self.want, Want::Target { .. }) => self.start_name(text),
            _ => {
                if self.want == Want::Kind {
                    self.flush_ddl();
                }
                self.at_start = false;
            }
        }
        self.prev_word = word;
    }

    /// Feeds a token to the table name being read; false when the name
    /// has ended (it is added, or dropped as a function) and the token is
    /// still to be read.
    fn continue_name(&mut self, tok: Tok, text: &str) -> bool {
        match tok {
            Tok::Dot if !self.after_dot => {
                self.after_dot = true;
                true
            }
            Tok::Word | Tok::QuotedIdent if self.after_dot => {
                if let Some(name) = &mut self.name {
                    name.push('.');
                    name.push_str(text);
                }
                self.after_dot = false;
                true
            }
            Tok::Open if !self.keep_on_call => {
                // `FROM generate_series(1, 3)`: a function, no table.
                self.name = None;
                self.after_dot = false;
                false
            }
            _ => {
                self.commit();
                false
            }
        }
    }

    fn start_name(&mut self, text: &str) {
        let Want::Target { call } = self.want else { return };
        self.want = Want::Nothing;
        self.name = Some(text.to_owned());
        self.keep_on_call = call;
        self.at_start = false;
    }

    fn flush_ddl(&mut self) {
        if let Some(command) = self.ddl.take() {
            self.push(command);
        }
        if self.want == Want::Kind {
            self.want = Want::Nothing;
        }
    }

    fn word(&mut self, word: &'a str) {
        match self.want {
            Want::Kind => return self.kind(word),
            Want::Target { .. } if is(word, BEFORE_TARGET) => return,
            Want::Target { .. } if is(word, NO_TARGET) => self.want = Want::Nothing,
            Want::Target { .. } => return self.start_name(word),
            Want::Nothing => {}
        }
        let verb_here = !self.prev_word.is_some_and(|p| is(p, NOT_AFTER));
        if verb_here && (is(word, ANYWHERE) || (self.at_start && (is(word, COMMANDS) || is(word, DDL)))) {
            self.at_start = false;
            return self.operation(word);
        }
        self.at_start = false;
        self.clause(word);
    }

    fn operation(&mut self, verb: &'a str) {
        self.op = Some((verb, self.depth));
        self.from_list = None;
        if is(verb, DDL) {
            self.ddl = Some(verb);
            self.want = Want::Kind;
            return;
        }
        self.push(verb);
        if is(verb, TARGETED) {
            // `COPY t (a, b)`, `CALL p(1)`, `ANALYZE t (a)`: the name stays.
            self.want = Want::Target { call: true };
        }
    }

    /// A word after `CREATE`, `ALTER` or `DROP`: a modifier, the kind of
    /// object (which joins the operation), or the end of the command.
    fn kind(&mut self, word: &str) {
        if is(word, DDL_MODIFIERS) {
            return;
        }
        let Some(command) = self.ddl.take() else { return };
        if is(word, OBJECT_KINDS) {
            self.push(&format!("{command} {word}"));
            self.want = Want::Target { call: true };
        } else {
            self.push(command);
            self.want = Want::Nothing;
        }
    }

    /// A word that is no operation: a clause that may want a table.
    fn clause(&mut self, word: &str) {
        let Some((verb, depth)) = self.op else { return };
        if depth != self.depth {
            // `EXTRACT(YEAR FROM ts)`: a clause of a function, not of the
            // operation.
            return;
        }
        let lower = |w: &str| w.to_ascii_lowercase();
        let verb = lower(verb);
        match lower(word).as_str() {
            "from" if matches!(verb.as_str(), "select" | "delete" | "update") => {
                self.want = Want::Target { call: false };
                self.from_list = Some(self.depth);
            }
            "join" => self.want = Want::Target { call: false },
            "into" if matches!(verb.as_str(), "insert" | "merge" | "select") => self.want = Want::Target { call: true },
            "using" if matches!(verb.as_str(), "delete" | "merge") => self.want = Want::Target { call: false },
            w if is(w, END_FROM) => self.from_list = None,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(sql: &str, summary: &str) {
        assert_eq!(summarize(sql), summary, "{sql}");
    }

    #[test]
    fn one_operation_and_its_table() {
        check("SELECT * FROM wuser_table WHERE username = $1", "SELECT wuser_table");
        check("select c3po, r2d2 from covid19 where n1h1=1234", "select covid19");
        check(
            "UPDATE ONLY accounts SET balance = balance - 1 WHERE id = 7",
            "UPDATE accounts",
        );
        check("DELETE FROM sessions WHERE expires < now()", "DELETE sessions");
        check("INSERT INTO events (kind, at) VALUES ('a', now())", "INSERT events");
        check("SELECT 1", "SELECT");
        check("SELECT now(), EXTRACT(YEAR FROM ts) FROM logs", "SELECT logs");
    }

    #[test]
    fn several_operations_in_the_order_written() {
        check(
            "INSERT INTO shipping_details (order_id, address) SELECT order_id, address FROM orders WHERE order_id = 1",
            "INSERT shipping_details SELECT orders",
        );
        check(
            "SELECT order_date FROM (SELECT * FROM orders o JOIN customers c ON o.customer_id = c.customer_id)",
            "SELECT SELECT orders customers",
        );
        check(
            "WITH cursor AS (SELECT id FROM stories WHERE id > $1) SELECT * FROM cursor",
            "SELECT stories SELECT cursor",
        );
        check(
            "SELECT * FROM a WHERE id IN (SELECT a_id FROM b) UNION SELECT * FROM c",
            "SELECT a SELECT b SELECT c",
        );
        check("BEGIN; UPDATE t SET x = 1; COMMIT", "BEGIN UPDATE t COMMIT");
    }

    #[test]
    fn tables_of_a_list_a_join_and_a_schema() {
        check(
            "SELECT * FROM songs, artists WHERE songs.artist_id = artists.id",
            "SELECT songs artists",
        );
        check(
            "SELECT * FROM Orders o CROSS JOIN OrderDetails od",
            "SELECT Orders OrderDetails",
        );
        check("SELECT * FROM Orders o, OrderDetails od", "SELECT Orders OrderDetails");
        check(
            "SELECT a FROM dbo.Table JOIN dbo.AnotherTable ON x",
            "SELECT dbo.Table dbo.AnotherTable",
        );
        check(
            r#"SELECT * FROM "song list", "Artists""#,
            r#"SELECT "song list" "Artists""#,
        );
        check(
            "SELECT * FROM a LEFT JOIN b USING (id), LATERAL (SELECT * FROM c) x, generate_series(1, 3) g",
            "SELECT a b SELECT c",
        );
        check("DELETE FROM t USING u WHERE t.id = u.id", "DELETE t u");
        check("UPDATE t SET a = u.a FROM u WHERE t.id = u.id", "UPDATE t u");
    }

    #[test]
    fn case_is_kept() {
        check(
            "SELEcT order_date FROM (sELECT * FROM orders o JOIN customers c ON o.customer_id = c.customer_id)",
            "SELEcT sELECT orders customers",
        );
        check("SELEcT order_date FROM ORders", "SELEcT ORders");
    }

    #[test]
    fn ddl_keeps_the_kind_of_object() {
        check("CREATE  TABLE MyTable (ID int PRIMARY KEY)", "CREATE TABLE MyTable");
        check("ALTER  TABLE MyTable ADD Name varchar(255)", "ALTER TABLE MyTable");
        check("DROP TABLE IF EXISTS MyTable", "DROP TABLE MyTable");
        check("CREATE UNIQUE INDEX CONCURRENTLY idx ON t (a)", "CREATE INDEX idx");
        check(
            "CREATE TABLE a (id int REFERENCES b (id) ON DELETE CASCADE ON UPDATE SET NULL)",
            "CREATE TABLE a",
        );
        check("CREATE TABLE copy AS SELECT * FROM t", "CREATE TABLE copy SELECT t");
        check("DROP OWNED BY app", "DROP");
    }

    #[test]
    fn other_commands() {
        check("TRUNCATE TABLE t", "TRUNCATE t");
        check("COPY t (a, b) FROM STDIN", "COPY t");
        check("COPY (SELECT * FROM t) TO STDOUT", "COPY SELECT t");
        check("CALL refresh_totals($1)", "CALL refresh_totals");
        check("SET search_path = app, public", "SET");
        check("EXPLAIN ANALYZE SELECT * FROM t", "EXPLAIN SELECT t");
        check("VACUUM ANALYZE t", "VACUUM t");
        check("SELECT * FROM t FOR UPDATE OF t SKIP LOCKED", "SELECT t");
        check(
            "INSERT INTO t (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET n = t.n + 1",
            "INSERT t",
        );
        check(
            "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = s.a",
            "MERGE t s",
        );
    }

    #[test]
    fn no_value_is_taken() {
        for sql in [
            "SELECT 'secret' FROM t WHERE a = 42",
            "SELECT $$secret$$",
            "SELECT * FROM t WHERE name = E'sec\\'ret'",
        ] {
            let s = summarize(sql);
            assert!(
                !s.contains("secret") && !s.contains("42") && !s.contains("ret"),
                "{sql}: {s}"
            );
        }
    }

    #[test]
    fn unknown_or_empty_text_is_other() {
        check("", "OTHER");
        check("  -- nothing\n", "OTHER");
        check("frobnicate the widgets", "OTHER");
    }

    #[test]
    fn long_summaries_are_cut_between_parts() {
        let tables: Vec<String> = (0..100).map(|i| format!("table_number_{i}")).collect();
        let sql = format!("SELECT * FROM {}", tables.join(", "));
        let s = summarize(&sql);
        assert!(s.chars().count() <= MAX_SUMMARY_LEN, "{}", s.len());
        assert!(s.starts_with("SELECT table_number_0 table_number_1"));
        let last = s.rsplit(' ').next().unwrap();
        assert!(tables.iter().any(|t| t == last), "cut inside a name: {last}");
    }
}

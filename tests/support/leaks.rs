//! What the privacy tests plant and where they look for it: column and
//! parameter types whose conversion errors quote the value (as serde's
//! do), and every log line of the process.

use bytes::BytesMut;
use db_monitor::tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};

/// A column type whose decoding error quotes the value, as serde's do.
#[derive(Debug)]
pub struct Quoting;

impl<'a> FromSql<'a> for Quoting {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Err(format!("invalid type: string {:?}", String::from_utf8_lossy(raw)).into())
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TEXT
    }
}

/// A parameter whose encoding error quotes the value.
#[derive(Debug)]
pub struct QuotingParam(pub &'static str);

impl ToSql for QuotingParam {
    fn to_sql(&self, _: &Type, _: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Err(format!("cannot send {:?}", self.0).into())
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TEXT
    }

    to_sql_checked!();
}

/// Every log line of the process, from `log` (tokio-postgres logs through
/// it) and from `tracing` (this crate), for a test to search.
pub fn captured_logs() -> &'static std::sync::Mutex<String> {
    use std::fmt::Write;
    use std::sync::{Mutex, OnceLock};

    static LINES: OnceLock<Mutex<String>> = OnceLock::new();

    struct Log;
    impl log::Log for Log {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            // A line logged by another thread while the store is being
            // made (the logger is installed first) has nowhere to go.
            let Some(lines) = LINES.get() else { return };
            let mut lines = lines.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(lines, "{} {} {}", record.level(), record.target(), record.args());
        }
        fn flush(&self) {}
    }

    struct Trace;
    impl tracing::Subscriber for Trace {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            struct Fields<'a>(&'a mut String);
            impl tracing::field::Visit for Fields<'_> {
                fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                    let _ = write!(self.0, " {}={value:?}", field.name());
                }
            }
            let Some(lines) = LINES.get() else { return };
            let mut lines = lines.lock().unwrap_or_else(|e| e.into_inner());
            let _ = write!(lines, "{} {}", event.metadata().level(), event.metadata().target());
            event.record(&mut Fields(&mut lines));
            lines.push('\n');
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    LINES.get_or_init(|| {
        log::set_boxed_logger(Box::new(Log)).expect("the only logger of this test binary");
        log::set_max_level(log::LevelFilter::Trace);
        tracing::subscriber::set_global_default(Trace).expect("the only subscriber of this test binary");
        Mutex::new(String::new())
    })
}

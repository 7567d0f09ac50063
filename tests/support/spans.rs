//! A `tracing` layer that keeps every span with its fields, parent and
//! whether it closed: what the span tests read.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// One captured span.
#[derive(Clone, Debug, Default)]
pub struct Captured {
    /// Index of this span in the capture.
    pub index: usize,
    /// The callsite's name (`db.statement`, …).
    pub callsite: &'static str,
    pub target: String,
    /// Every field recorded, the last value of each.
    pub fields: BTreeMap<String, String>,
    /// The fields the span had when it was created (what a head sampler
    /// sees).
    pub at_creation: Vec<String>,
    /// The parent's index in the capture.
    pub parent: Option<usize>,
    pub closed: bool,
}

impl Captured {
    /// The span's name as OpenTelemetry sees it: `otel.name`, else the
    /// callsite's.
    pub fn name(&self) -> &str {
        self.fields.get("otel.name").map_or(self.callsite, String::as_str)
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// The spans captured so far.
#[derive(Clone, Default)]
pub struct Spans(Arc<Mutex<Vec<Captured>>>);

impl Spans {
    pub fn all(&self) -> Vec<Captured> {
        self.0.lock().unwrap().clone()
    }

    /// The spans of target `db_monitor`.
    pub fn monitor(&self) -> Vec<Captured> {
        self.all().into_iter().filter(|s| s.target == "db_monitor").collect()
    }

    /// Forgets what was captured.
    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

/// Installs a capture as this thread's default subscriber until the guard
/// is dropped (the tests run on current-thread runtimes).
pub fn capture() -> (Spans, tracing::subscriber::DefaultGuard) {
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(Capture(spans.clone()));
    let guard = tracing::subscriber::set_default(subscriber);
    (spans, guard)
}

/// [`capture`], keeping only spans at `level` or above.
#[allow(dead_code)]
pub fn capture_at(level: tracing::Level) -> (Spans, tracing::subscriber::DefaultGuard) {
    let spans = Spans::default();
    let filter = tracing_subscriber::filter::LevelFilter::from_level(level);
    let subscriber = tracing_subscriber::registry().with(Capture(spans.clone()).with_filter(filter));
    let guard = tracing::subscriber::set_default(subscriber);
    (spans, guard)
}

struct Capture(Spans);

/// Where a span is in the capture (kept in the registry's extensions, as
/// span ids are reused).
struct Slot(usize);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S> Layer<S> for Capture
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let parent = span
            .parent()
            .and_then(|p| p.extensions().get::<Slot>().map(|slot| slot.0));
        let mut captured = Captured {
            callsite: attrs.metadata().name(),
            target: attrs.metadata().target().to_owned(),
            parent,
            ..Captured::default()
        };
        attrs.record(&mut Fields(&mut captured.fields));
        captured.at_creation = captured.fields.keys().cloned().collect();
        let mut all = (self.0).0.lock().unwrap();
        captured.index = all.len();
        span.extensions_mut().insert(Slot(all.len()));
        all.push(captured);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let Some(slot) = span.extensions().get::<Slot>().map(|slot| slot.0) else {
            return;
        };
        if let Some(captured) = (self.0).0.lock().unwrap().get_mut(slot) {
            values.record(&mut Fields(&mut captured.fields));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(slot) = span.extensions().get::<Slot>().map(|slot| slot.0) else {
            return;
        };
        if let Some(captured) = (self.0).0.lock().unwrap().get_mut(slot) {
            captured.closed = true;
        }
    }
}

//! The route label of each request, found once per route: a wrapped
//! service under axum's `Router::layer` serves one route, so its requests
//! carry one `MatchedPath` (and a few methods), and the label (`GET
//! /users/{id}`), its interned id and the `Arc` every store shares are
//! made at its first request and reused; a request costs a method and a
//! string comparison instead of a `format!`, an allocation and a hash.
// Only axum's matched routes are cached.
#![cfg_attr(not(feature = "axum"), allow(dead_code))]

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use crate::stats::routes;

/// Labels kept per wrapped service: one per method of its route is the
/// common case; past these, requests take the slow path.
const SLOTS: usize = 4;

/// One route's label, for one method.
struct Label {
    method: http::Method,
    matched: Box<str>,
    label: Arc<str>,
    /// Its interned id, and [`routes::interned`] when it was obtained.
    id: AtomicU32,
    at: AtomicU64,
}

/// The labels a wrapped service has made (see the module's documentation).
#[derive(Default)]
pub(crate) struct Labels {
    slots: [OnceLock<Label>; SLOTS],
}

impl Labels {
    /// The label and route id of a request of `method` whose axum route is
    /// `matched`: `make` builds the label the first time.
    #[inline]
    pub(crate) fn get(
        &self,
        method: &http::Method,
        matched: &str,
        make: impl FnOnce() -> Option<String>,
    ) -> Option<(Arc<str>, u32)> {
        for slot in &self.slots {
            let Some(known) = slot.get() else { break };
            if known.method == *method && *known.matched == *matched {
                return Some((known.label.clone(), current_id(known)));
            }
        }
        self.add(method, matched, make)
    }

    #[cold]
    fn add(
        &self,
        method: &http::Method,
        matched: &str,
        make: impl FnOnce() -> Option<String>,
    ) -> Option<(Arc<str>, u32)> {
        let label: Arc<str> = Arc::from(make()?);
        let at = routes::interned();
        let id = routes::intern_route(&label);
        for slot in &self.slots {
            let new = Label {
                method: method.clone(),
                matched: matched.into(),
                label: label.clone(),
                id: AtomicU32::new(id),
                at: AtomicU64::new(at),
            };
            // Another request may have taken this slot meanwhile; the
            // next one is tried (two slots for one route are harmless).
            if slot.set(new).is_ok() {
                break;
            }
        }
        Some((label, id))
    }
}

/// The id of `known`, interned again if a lap of new routes has passed
/// since it was obtained (its slot may name another route by now).
#[inline]
fn current_id(known: &Label) -> u32 {
    if routes::id_current(known.at.load(Relaxed)) {
        return known.id.load(Relaxed);
    }
    refresh(known)
}

#[cold]
fn refresh(known: &Label) -> u32 {
    let at = routes::interned();
    let id = routes::intern_route(&known.label);
    known.id.store(id, Relaxed);
    known.at.store(at, Relaxed);
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_is_made_once_per_method_and_route() {
        let labels = Labels::default();
        let made = std::cell::Cell::new(0);
        let get = |method: &http::Method, matched: &str| {
            labels.get(method, matched, || {
                made.set(made.get() + 1);
                Some(format!("{method} {matched}"))
            })
        };
        let (a, id) = get(&http::Method::GET, "/labels-test/{id}").unwrap();
        assert_eq!(&*a, "GET /labels-test/{id}");
        let (b, again) = get(&http::Method::GET, "/labels-test/{id}").unwrap();
        assert!(Arc::ptr_eq(&a, &b) && id == again);
        let (post, _) = get(&http::Method::POST, "/labels-test/{id}").unwrap();
        assert_eq!(&*post, "POST /labels-test/{id}");
        assert_eq!(made.get(), 2);
        assert_eq!(routes::route_name(id).as_deref(), Some("GET /labels-test/{id}"));
    }

    #[test]
    fn past_its_slots_each_request_makes_its_own() {
        let labels = Labels::default();
        for i in 0..SLOTS + 2 {
            let path = format!("/labels-test/many/{i}");
            let (label, _) = labels.get(&http::Method::GET, &path, || Some(path.clone())).unwrap();
            assert_eq!(&*label, path);
        }
        assert!(labels.get(&http::Method::GET, "/x", || None).is_none());
    }
}

//! Route interning: the routes requests ran under, each kept as a number
//! in the recent-statements ring ([`super::RecentRing`]), which stores
//! route ids in its entries' outcome words.
//!
//! A request looks its route up without a lock (the map is lock-free for
//! readers); only a route seen for the first time takes the lock. The
//! table is bounded: past [`SLOTS`] routes, a new route takes the slot of
//! the oldest, whose id then resolves to nothing (a recent entry of it
//! loses its route rather than showing another's), and the evicted route
//! gets a new id when it comes back. So no sequence of routes, raw paths
//! included, can leave later routes without an id.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};

/// Routes kept at once.
const SLOTS: usize = 1024;
/// Bits of an id that hold the slot (plus one: 0 is no route).
const SLOT_BITS: u32 = 11;

/// The interning table.
struct Routes {
    /// Route → id, read without a lock.
    ids: papaya::HashMap<Arc<str>, u32, foldhash::fast::RandomState>,
    /// The slots, written under the lock.
    slots: Mutex<Slots>,
}

struct Slots {
    /// Each slot's route and the generation of its id.
    names: Vec<Option<(Arc<str>, u32)>>,
    /// The slot the next new route takes (the oldest).
    next: usize,
    generation: u32,
}

fn routes() -> &'static Routes {
    static ROUTES: OnceLock<Routes> = OnceLock::new();
    ROUTES.get_or_init(|| Routes {
        ids: papaya::HashMap::builder().hasher(Default::default()).build(),
        slots: Mutex::new(Slots {
            names: vec![None; SLOTS],
            next: 0,
            generation: 0,
        }),
    })
}

/// Routes interned for the first time (or again after eviction), in all.
static INTERNED: AtomicU64 = AtomicU64::new(0);

/// How many routes have been interned anew so far: an id obtained when
/// this read `then` still names its route while fewer than [`SLOTS`] have
/// been since ([`id_current`]), since only a new route evicts one, the
/// oldest.
#[cfg_attr(not(feature = "axum"), allow(dead_code))]
pub(crate) fn interned() -> u64 {
    INTERNED.load(Relaxed)
}

/// Whether an id obtained when [`interned`] read `then` still names its
/// route.
#[inline]
#[cfg_attr(not(feature = "axum"), allow(dead_code))]
pub(crate) fn id_current(then: u64) -> bool {
    interned().wrapping_sub(then) < SLOTS as u64
}

/// The id of `route` (never 0).
pub(crate) fn intern_route(route: &str) -> u32 {
    let routes = routes();
    if let Some(&id) = routes.ids.pin().get(route) {
        return id;
    }
    let mut slots = routes.slots.lock().unwrap_or_else(|e| e.into_inner());
    // Another request may have interned it meanwhile.
    if let Some(&id) = routes.ids.pin().get(route) {
        return id;
    }
    let slot = slots.next;
    slots.next = (slot + 1) % SLOTS;
    INTERNED.fetch_add(1, Relaxed);
    if slot == 0 {
        // A new lap: ids from now on differ from those of the last lap.
        slots.generation = (slots.generation + 1) & (u32::MAX >> SLOT_BITS);
    }
    let generation = slots.generation;
    let id = generation << SLOT_BITS | (slot as u32 + 1);
    let name: Arc<str> = Arc::from(route);
    if let Some((evicted, _)) = slots.names[slot].replace((name.clone(), generation)) {
        routes.ids.pin().remove(&evicted);
    }
    routes.ids.pin().insert(name, id);
    id
}

/// The route of an id from [`intern_route`] (0, or an id whose slot has
/// been taken since: none).
pub(crate) fn route_name(id: u32) -> Option<Arc<str>> {
    let slot = usize::try_from(id & ((1 << SLOT_BITS) - 1)).ok()?.checked_sub(1)?;
    let generation = id >> SLOT_BITS;
    let slots = routes().slots.lock().unwrap_or_else(|e| e.into_inner());
    match slots.names.get(slot)? {
        Some((name, g)) if *g == generation => Some(name.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_number_of_routes_keeps_getting_ids_and_an_evicted_id_names_nothing() {
        let first = intern_route("/interning-test/first");
        assert_ne!(first, 0);
        assert_eq!(intern_route("/interning-test/first"), first, "one id per route");
        assert_eq!(route_name(first).as_deref(), Some("/interning-test/first"));
        // More routes than the table holds, as raw paths would be.
        let mut last = 0;
        for i in 0..SLOTS + 100 {
            last = intern_route(&format!("/interning-test/raw/{i}"));
            assert_ne!(last, 0, "route {i} got no id");
        }
        assert_eq!(
            route_name(last).as_deref(),
            Some(format!("/interning-test/raw/{}", SLOTS + 99).as_str())
        );
        assert_eq!(route_name(first), None, "evicted: it names nothing, not another route");
        let again = intern_route("/interning-test/first");
        assert_ne!(again, first, "back with a new id");
        assert_eq!(route_name(again).as_deref(), Some("/interning-test/first"));
        assert_eq!(route_name(0), None);
    }

    #[test]
    fn an_id_is_current_until_a_lap_of_new_routes() {
        let then = interned();
        assert!(id_current(then));
        for i in 0..SLOTS - 1 {
            intern_route(&format!("/current-test/{i}"));
        }
        // Other tests intern routes too: at least SLOTS - 1 since `then`.
        let now = interned();
        assert!(now.wrapping_sub(then) >= SLOTS as u64 - 1);
        assert_eq!(id_current(then), now.wrapping_sub(then) < SLOTS as u64);
        intern_route("/current-test/one-more");
        assert!(!id_current(then), "a whole lap since: it may name another");
    }
}

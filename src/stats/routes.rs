//! Route interning: the routes requests ran under, each kept as a number
//! in the recent-statements ring ([`super::RecentRing`]), which stores
//! route ids in its entries' outcome words.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Routes seen by the layer, interned so that the recent-statements ring
/// can keep one in a number. Bounded: past the bound, routes get no id.
struct Routes {
    ids: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

const MAX_ROUTES: usize = 1024;

fn routes() -> &'static Mutex<Routes> {
    static ROUTES: OnceLock<Mutex<Routes>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        Mutex::new(Routes {
            ids: HashMap::new(),
            names: Vec::new(),
        })
    })
}

pub(crate) fn intern_route(route: &str) -> u32 {
    let mut routes = routes().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&id) = routes.ids.get(route) {
        return id;
    }
    if routes.names.len() >= MAX_ROUTES {
        return 0;
    }
    let name: Arc<str> = Arc::from(route);
    routes.names.push(name.clone());
    let id = routes.names.len() as u32;
    routes.ids.insert(name, id);
    id
}

/// The route of an id from [`intern_route`] (0: none).
pub(crate) fn route_name(id: u32) -> Option<Arc<str>> {
    let index = usize::try_from(id).ok()?.checked_sub(1)?;
    let routes = routes().lock().unwrap_or_else(|e| e.into_inner());
    routes.names.get(index).cloned()
}

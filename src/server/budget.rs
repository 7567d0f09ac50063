//! The connection budget: `max_connections`, the reserved connections,
//! every client backend by application and client address, and the
//! monitored instances' pool maximums, which each poller advertises in its
//! own `application_name` (`db-monitor [pool max 20]`).

use std::collections::BTreeMap;

use tokio_postgres::{Client, Error};

use crate::config::ServerView;
use crate::stats::{BackendsByApplication, ConnectionBudget, MonitoredInstance};

/// The server's limits (`reserved_connections` is 16's; absent before).
pub(crate) const LIMITS: &str = "SELECT current_setting('max_connections')::int8, \
     current_setting('superuser_reserved_connections')::int8, \
     coalesce(current_setting('reserved_connections', true), '0')::int8, pg_backend_pid()";

/// Every client backend of the server, by application and address; the
/// monitor's pollers each in a row of their own, with their pid.
pub(crate) const BACKENDS: &str = "SELECT coalesce(application_name, ''), \
     CASE WHEN client_addr IS NULL AND client_port = -1 THEN 'local' ELSE coalesce(host(client_addr), '(not shown)') END, \
     count(*)::int8, CASE WHEN application_name ~ ' \\[pool max [0-9]+\\]$' THEN pid END \
     FROM pg_stat_activity WHERE coalesce(backend_type, 'client backend') = 'client backend' GROUP BY 1, 2, 4";

const TAG: &str = " [pool max ";

/// The `application_name` a poller advertises: the configured name (cut
/// to fit PostgreSQL's 63 bytes) and its pool's maximum.
pub(crate) fn advertised(name: &str, pool_max: u32) -> String {
    let tag = format!("{TAG}{pool_max}]");
    let room = 63usize.saturating_sub(tag.len());
    let mut cut = name.len().min(room);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{tag}", &name[..cut])
}

/// The configured name and the pool maximum of an advertised name. A
/// maximum past `u32` (any client may name itself so) is no poller's: the
/// budget's sums cannot overflow.
pub(crate) fn parse(application: &str) -> Option<(&str, i64)> {
    let rest = application.strip_suffix(']')?;
    let at = rest.rfind(TAG)?;
    let max: u32 = rest[at + TAG.len()..].parse().ok()?;
    Some((&rest[..at], i64::from(max)))
}

/// A poller's configured name as the documents show it: when it is this
/// instance's own, or when names are asked for
/// ([`ServerView::application_names`]); any client may name itself like
/// a poller.
fn poller_name(name: &str, view: &ServerView) -> String {
    if view.application_names || name == view.application_name {
        name.chars().take(40).collect()
    } else {
        super::cycle::NOT_SHOWN.to_owned()
    }
}

/// An `application_name` as the documents show it: a poller's with its
/// name shown as [`poller_name`] allows and its maximum; any other only
/// when names are asked for.
pub(crate) fn shown(application: &str, view: &ServerView) -> String {
    match parse(application) {
        Some((name, pool_max)) => format!("{}{TAG}{pool_max}]", poller_name(name, view)),
        None if view.application_names => application.chars().take(64).collect(),
        None => super::cycle::NOT_SHOWN.to_owned(),
    }
}

/// Reads the budget (two queries). Each pool of an instance has a poller
/// of its own, so it counts as an instance.
pub(crate) async fn read(client: &Client, view: &ServerView) -> Result<ConnectionBudget, Error> {
    let limits = client.query_one(LIMITS, &[]).await?;
    let get = |i: usize| limits.try_get::<_, Option<i64>>(i).ok().flatten().unwrap_or(0);
    let (max_connections, superuser, reserved_16) = (get(0), get(1), get(2));
    let own_pid: Option<i32> = limits.try_get(3).ok();
    let mut used = 0;
    let mut instances = Vec::new();
    let mut by_application: BTreeMap<(String, String), i64> = BTreeMap::new();
    for row in client.query(BACKENDS, &[]).await? {
        let application: String = row.try_get::<_, Option<String>>(0).ok().flatten().unwrap_or_default();
        let address: String = row
            .try_get::<_, Option<String>>(1)
            .ok()
            .flatten()
            .unwrap_or_else(|| "(not shown)".to_owned());
        let count: i64 = row.try_get::<_, Option<i64>>(2).ok().flatten().unwrap_or(0);
        used += count;
        let poller: Option<i32> = row.try_get::<_, Option<i32>>(3).ok().flatten();
        if let (Some(pid), Some((name, pool_max))) = (poller, parse(&application)) {
            instances.push(MonitoredInstance {
                poller_pid: pid,
                application_name: poller_name(name, view),
                client_addr: address.clone(),
                pool_max,
                this_instance: Some(pid) == own_pid,
            });
        }
        *by_application.entry((shown(&application, view), address)).or_insert(0) += count;
    }
    let reserved = superuser + reserved_16;
    let available = max_connections - reserved;
    let committed = instances.iter().map(|i| i.pool_max + 1).sum();
    Ok(ConnectionBudget {
        max_connections,
        reserved,
        available,
        used,
        free: available - used,
        min_free: i64::from(view.min_free_connections),
        committed,
        instances,
        by_application: by_application
            .into_iter()
            .map(|((application_name, client_addr), count)| BackendsByApplication {
                application_name,
                client_addr,
                count,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_instances_poller_name_is_shown_unless_names_are_asked_for() {
        let view = ServerView::default();
        assert_eq!(shown("db-monitor [pool max 8]", &view), "db-monitor [pool max 8]");
        assert_eq!(shown("secret-42 [pool max 8]", &view), "(not shown) [pool max 8]");
        assert_eq!(shown("secret-42", &view), "(not shown)");
        let names = view.application_names(true);
        assert_eq!(shown("secret-42 [pool max 8]", &names), "secret-42 [pool max 8]");
        assert_eq!(shown("secret-42", &names), "secret-42");
    }

    #[test]
    fn an_advertised_name_fits_and_reads_back() {
        assert_eq!(advertised("db-monitor", 20), "db-monitor [pool max 20]");
        assert_eq!(parse("db-monitor [pool max 20]"), Some(("db-monitor", 20)));
        let long = "x".repeat(100);
        let name = advertised(&long, 4_000_000_000);
        assert!(name.len() <= 63, "{name}");
        assert_eq!(parse(&name).map(|(_, max)| max), Some(4_000_000_000));
        let multibyte = "é".repeat(40);
        assert!(advertised(&multibyte, 5).len() <= 63);
        for other in [
            "",
            "psql",
            "app [pool max x]",
            "app [pool max 3",
            "[pool max 3]",
            "app [pool max -3]",
            "app [pool max 4294967296]",
            "app [pool max 9223372036854775807]",
        ] {
            assert_eq!(parse(other), None, "{other}");
        }
    }
}

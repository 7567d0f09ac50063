//! The webhook notifier against a real Alertmanager: a real deadlock goes
//! in through the pool and comes back out of Alertmanager's API with its
//! labels; resolving it sends `endsAt`, and Alertmanager lets it go.

mod support;

use std::time::Duration;

use db_monitor::alerts::{AlertType, AlertmanagerNotifier};
use db_monitor::{AlertThresholds, MonitorConfig};
use serde_json::Value;
use support::alertmanager::TempAlertmanager;
use support::{deadlock, eventually, unique};

fn label<'a>(alert: &'a Value, name: &str) -> Option<&'a str> {
    alert["labels"][name].as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_deadlock_reaches_alertmanager_and_its_resolution_ends_it_there() {
    let Some(am) = TempAlertmanager::start() else { return };
    let instance = unique("instance");
    let notifier = AlertmanagerNotifier::builder(am.url())
        .label("instance", instance.clone())
        .generator_url("http://127.0.0.1:8080/health/database/alerts")
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let config =
        MonitorConfig::default().alerts(AlertThresholds::default().evaluation_interval(Duration::from_millis(50)));
    let (monitor, _rec) = support::monitor_with(config, |b| b.notifier(notifier));
    let pool = support::pool(&monitor, "am_deadlock", 4).await;
    let _background = monitor.start(&pool);

    let (update, _) = deadlock(&pool).await;
    let table = update.split_whitespace().nth(1).unwrap().to_owned();
    let mut ours = None;
    let arrived = eventually(Duration::from_secs(20), || {
        ours = am
            .alerts()
            .into_iter()
            .find(|a| label(a, "instance") == Some(instance.as_str()));
        ours.is_some()
    })
    .await;
    assert!(arrived, "the alert never reached Alertmanager: {:?}", am.alerts());
    let received = ours.unwrap();
    let local = pool
        .monitor()
        .alerts()
        .active
        .into_iter()
        .find(|a| a.alert_type == AlertType::Deadlock)
        .unwrap();
    assert_eq!(label(&received, "alertname"), Some("DbDeadlock"));
    assert_eq!(label(&received, "alert_type"), Some("deadlock"));
    assert_eq!(label(&received, "severity"), Some("high"));
    assert_eq!(label(&received, "pool"), Some("am_deadlock"));
    assert_eq!(label(&received, "key"), Some(local.key.as_str()));
    assert_eq!(label(&received, "alert_id"), Some(local.id.as_str()));
    let summary = received["annotations"]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with(&format!(
            "deadlock detected (40P01) on `UPDATE {table} SET v = v + ? WHERE id = ?`"
        )),
        "{summary}"
    );
    assert_eq!(
        received["generatorURL"].as_str(),
        Some("http://127.0.0.1:8080/health/database/alerts")
    );
    assert_eq!(received["status"]["state"].as_str(), Some("active"));
    assert!(received["startsAt"].as_str().is_some_and(|t| t.ends_with('Z')));

    // Resolved by hand: the notifier sends endsAt = now, and Alertmanager
    // (whose resolve_timeout is an hour here) stops listing it as active.
    pool.monitor().resolve_alert(&local.id, "test").unwrap();
    let gone = eventually(Duration::from_secs(20), || {
        am.alerts()
            .iter()
            .all(|a| label(a, "instance") != Some(instance.as_str()))
    })
    .await;
    assert!(gone, "still active in Alertmanager: {:?}", am.alerts());
}

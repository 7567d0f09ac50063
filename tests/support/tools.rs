//! The outside programs some tests need (Alertmanager, promtool,
//! Prometheus), found on `PATH` or installed by `scripts/install-test-tools`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|p| p.exists())
}

/// The first of `names` found on `PATH`, running the install script once
/// if none is. `None` (with a message) when it cannot be had here; under
/// `CI` that is a failure.
pub fn binary(names: &[&str]) -> Option<PathBuf> {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    if let Some(found) = on_path(names) {
        return Some(found);
    }
    INSTALLED.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install-test-tools");
        let status = Command::new(script).status();
        eprintln!("{} missing; {script}: {status:?}", names[0]);
    });
    let found = on_path(names);
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} is required in CI (scripts/install-test-tools installs it)",
            names[0]
        );
        eprintln!(
            "skipped: {} is not installed (run scripts/install-test-tools as root)",
            names[0]
        );
    }
    found
}

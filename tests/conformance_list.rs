//! The migration guide's "What differs" list is the conformance run's
//! exclusion list: every reason `conformance/excluded.txt` gives for a test
//! of tokio-postgres's or deadpool-postgres's own suite not run through the
//! monitor (`scripts/conformance`) is written in `docs/migrating.md`, and
//! every excluded test is one line with a suite, a name and a reason.

#[test]
fn every_reason_for_an_excluded_test_is_in_the_migration_guide() {
    let root = env!("CARGO_MANIFEST_DIR");
    let excluded = std::fs::read_to_string(format!("{root}/conformance/excluded.txt")).unwrap();
    let guide = std::fs::read_to_string(format!("{root}/docs/migrating.md")).unwrap();
    let mut counts = std::collections::BTreeMap::new();
    for line in excluded
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (suite, rest) = line.split_once(' ').unwrap_or_else(|| panic!("no suite: {line}"));
        assert!(
            ["tokio-postgres", "deadpool-postgres"].contains(&suite),
            "an unknown suite: {line}"
        );
        let (test, reason) = rest.split_once(": ").unwrap_or_else(|| panic!("no reason: {line}"));
        assert!(!test.is_empty() && !test.contains(' '), "a test name: {line}");
        assert!(
            guide.contains(reason),
            "the migration guide does not give the reason for {suite} {test}: {reason:?}"
        );
        *counts.entry(suite).or_insert(0) += 1;
    }
    // The guide states how many of each suite are not run.
    for (suite, n) in counts {
        let not_run = if n == 1 {
            "1 is not run".to_owned()
        } else {
            format!("{n} are not run")
        };
        let stated = guide
            .lines()
            .skip_while(|l| !l.contains("What differs"))
            .collect::<Vec<_>>()
            .join(" ");
        let at = stated
            .find(&format!("{suite} "))
            .unwrap_or_else(|| panic!("the guide names no {suite}"));
        assert!(
            stated[at..].split(';').next().unwrap().contains(&not_run),
            "the guide does not say of {suite} that {not_run}"
        );
    }
}

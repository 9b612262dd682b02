//! The alert rules shipped in `deploy/prometheus/`: Prometheus's own `promtool` checks the
//! file and runs its unit tests (each alert quiet on a healthy series, firing with its labels
//! and summary on a bad one), and every optsync metric a rule watches is one the service
//! declares and the README documents, so renaming a metric cannot silently blind an alert.
//! Skipped, loudly, where `promtool` (Debian package prometheus) is not installed; in CI
//! (`CI` set) that is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus")
}

fn promtool(args: &[&str]) -> Option<std::process::Output> {
    match Command::new("promtool")
        .args(args)
        .current_dir(deploy())
        .output()
    {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool is not installed (Debian package prometheus): CI must install it"
            );
            eprintln!("SKIPPED: promtool is not installed (Debian package prometheus)");
            None
        }
        Err(e) => panic!("promtool: {e}"),
    }
}

fn assert_ok(what: &str, out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_checks_the_rules_and_their_unit_tests_pass() {
    let Some(check) = promtool(&["check", "rules", "optsync-alerts.yml"]) else {
        return;
    };
    assert_ok("promtool check rules", &check);
    let found = String::from_utf8_lossy(&check.stdout);
    let rules = std::fs::read_to_string(deploy().join("optsync-alerts.yml")).unwrap();
    let alerts = rules.matches("- alert: ").count();
    assert!(
        found.contains(&format!("SUCCESS: {alerts} rules found")),
        "{found}"
    );
    let tests = std::fs::read_to_string(deploy().join("optsync-alerts.test.yml")).unwrap();
    for name in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        assert!(
            tests.contains(&format!("alertname: {name}\n")),
            "alert {name} has no unit test"
        );
    }
    let test = promtool(&["test", "rules", "optsync-alerts.test.yml"]).unwrap();
    assert_ok("promtool test rules", &test);
}

/// The `optsync_…` names in a text, each once.
fn metric_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (i, _) in text.match_indices("optsync_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

#[test]
fn every_metric_a_rule_watches_is_declared_and_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = std::fs::read_to_string(deploy().join("optsync-alerts.yml")).unwrap();
    let exprs: String = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr: "))
        .collect::<Vec<_>>()
        .join("\n");
    let watched = metric_names(&exprs);
    assert!(watched.len() >= 6, "{watched:?}");
    let readme = std::fs::read_to_string(root.join("../../README.md")).unwrap();
    let sources = ["src/telemetry.rs", "src/exposition.rs"]
        .map(|f| std::fs::read_to_string(root.join(f)).unwrap())
        .concat();
    for name in &watched {
        assert!(
            readme.contains(&format!("| `{name}`")) || readme.contains(&format!("`{name}`,")),
            "README's metrics table does not document {name}"
        );
        assert!(
            sources.contains(&format!("\"{name}\"")),
            "no metric {name} is declared in telemetry.rs or exposition.rs"
        );
    }
}

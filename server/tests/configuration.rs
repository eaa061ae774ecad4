//! The configuration reference (docs/configuration.md) against the
//! configuration struct, so that neither drifts from the other, and
//! `eid-server --print-config`.

use std::collections::BTreeSet;
use std::process::Command;

use eid_server::config::Config;
use serde_json::Value;

/// The reference, read at test time.
fn reference() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/configuration.md"
    ))
    .unwrap()
}

/// The settings every optional section requires when it is given: they have
/// no default, so the reference says "required".
const REQUIRED: &[&str] = &[
    "notifications.smtp.host",
    "notifications.smtp.from",
    "notifications.sms.url",
];

/// Maps keyed by data (service provider ids), not by setting names: listed
/// as one setting, not walked into.
const MAPS: &[&str] = &["floods.provider_per_minute_overrides"];

/// A configuration with every optional section present with only its
/// required settings, so that the defaults of its other settings show.
fn with_every_section() -> Config {
    Config::from_toml_str(
        r#"
[notifications.smtp]
host = "smtp.example"
from = "eID <no-reply@eid.example>"
[notifications.sms]
url = "https://sms.example/send"
"#,
    )
    .unwrap()
}

/// The value at `path` (dotted) in `value`, if every step is an object.
fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| v.get(key))
}

/// How the reference writes a default: as TOML, in backticks.
fn written(value: &Value) -> String {
    match value {
        Value::Null => "none".to_owned(),
        Value::Object(map) if map.is_empty() => "`{}`".to_owned(),
        Value::Object(_) => "(section)".to_owned(),
        Value::String(s) => format!("`{s:?}`"),
        other => format!("`{other}`"),
    }
}

/// Every setting's dotted path with the default the reference must give.
fn settings() -> Vec<(String, String)> {
    // JSON rather than TOML: an absent optional setting is a null there
    // instead of missing, so it is walked too.
    let defaults = serde_json::to_value(Config::default()).unwrap();
    let sections = serde_json::to_value(with_every_section()).unwrap();
    let mut out = Vec::new();
    walk(&defaults, &sections, String::new(), &mut out);
    out
}

fn walk(defaults: &Value, sections: &Value, prefix: String, out: &mut Vec<(String, String)>) {
    let Value::Object(map) = sections else {
        return;
    };
    for (key, value) in map {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let expected = if REQUIRED.contains(&path.as_str()) {
            "required".to_owned()
        } else {
            match at(defaults, &path) {
                Some(default) => written(default),
                // Inside a section that is absent by default: the default
                // the section gets when it is given.
                None => written(value),
            }
        };
        out.push((path.clone(), expected));
        if value.is_object() && !MAPS.contains(&path.as_str()) {
            walk(defaults, value, path, out);
        }
    }
}

/// The reference's rows: key → (default, environment variable).
fn rows(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (
                cells[1].trim_matches('`').to_owned(),
                cells[2].to_owned(),
                cells[4].to_owned(),
            )
        })
        .collect()
}

fn environment_variable(path: &str) -> String {
    format!("EID_SERVER_{}", path.replace('.', "__").to_uppercase())
}

#[test]
fn every_server_setting_is_documented_with_its_default_and_environment_variable() {
    let text = reference();
    let rows = rows(&text);
    let mut missing = Vec::new();
    for (path, default) in settings() {
        match rows.iter().find(|(key, ..)| *key == path) {
            // A section may have a heading of its own instead of a row.
            None if default == "(section)" && text.contains(&format!("`[{path}]`")) => {}
            None => missing.push(format!("{path}: no row")),
            Some((_, documented, variable)) => {
                if *documented != default {
                    missing.push(format!("{path}: default {documented}, is {default}"));
                }
                if !variable.contains(&environment_variable(&path)) {
                    missing.push(format!(
                        "{path}: environment variable {variable}, is {}",
                        environment_variable(&path)
                    ));
                }
            }
        }
    }
    assert!(missing.is_empty(), "docs/configuration.md: {missing:#?}");
}

#[test]
fn the_reference_documents_no_setting_that_does_not_exist() {
    let known: BTreeSet<String> = settings().into_iter().map(|(path, _)| path).collect();
    let stale: Vec<String> = rows(&reference())
        .into_iter()
        .map(|(key, ..)| key)
        .filter(|key| !known.contains(key))
        .collect();
    assert!(stale.is_empty(), "docs/configuration.md: {stale:?}");
}

#[test]
fn print_config_prints_the_effective_configuration_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("server.toml");
    std::fs::write(
        &file,
        r#"
admin_token = "admin-secret-1"
new_device_wait_secs = 60
[notifications.smtp]
host = "smtp.example"
from = "eID <no-reply@eid.example>"
password = "smtp-secret-2"
"#,
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_eid-server"));
    for (name, _) in std::env::vars() {
        if name.starts_with("EID_SERVER_") {
            command.env_remove(name);
        }
    }
    let out = command
        .current_dir(dir.path())
        .arg("--config")
        .arg(&file)
        .arg("--print-config")
        .env("EID_SERVER_FLOODS__PER_IDENTITY_PER_MINUTE", "7")
        .env(
            "EID_SERVER_NOTIFICATIONS__SMS__URL",
            "https://sms.example/?key=url-secret-3",
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout} / {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for secret in ["admin-secret-1", "smtp-secret-2", "url-secret-3"] {
        assert!(!stdout.contains(secret), "{secret} printed: {stdout}");
    }
    let printed: toml::Value = toml::from_str(&stdout).unwrap();
    // The file, the environment and the defaults, merged.
    assert_eq!(printed["new_device_wait_secs"].as_integer(), Some(60));
    assert_eq!(
        printed["floods"]["per_identity_per_minute"].as_integer(),
        Some(7)
    );
    assert_eq!(
        printed["floods"]["fraud_hold_secs"].as_integer(),
        Some(3600)
    );
    assert_eq!(
        printed["notifications"]["smtp"]["host"].as_str(),
        Some("smtp.example")
    );
    assert_eq!(printed["admin_token"].as_str(), Some("<redacted>"));
    assert_eq!(
        printed["notifications"]["smtp"]["password"].as_str(),
        Some("<redacted>")
    );
    // Nothing was started: no data folder appeared.
    assert!(!dir.path().join("data").exists());
}

//! The effective configuration as TOML with its secrets redacted, for
//! `eid-server --print-config`: what the server would run with after the
//! defaults, the file and the `EID_SERVER_*` variables are merged, safe to
//! paste into a support ticket. The settings are described in
//! `docs/configuration.md`.

use crate::config::Config;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "<redacted>";

/// Whether the setting named `key` (its last path segment) holds a secret.
/// By name rather than by list, so that a secret added later (a token, a
/// password, a client secret) is redacted without anyone remembering to.
fn is_secret(path: &[&str]) -> bool {
    let key = path.last().copied().unwrap_or_default();
    key.ends_with("token")
        || key.ends_with("password")
        || key.ends_with("secret")
        // The SMS gateway's URL may carry its key in the query.
        || path == ["notifications", "sms", "url"]
}

fn redact(path: &mut Vec<String>, value: &mut toml::Value) {
    if let toml::Value::Table(table) = value {
        for (key, value) in table.iter_mut() {
            path.push(key.clone());
            let names: Vec<&str> = path.iter().map(String::as_str).collect();
            if is_secret(&names) && !value.is_table() {
                *value = toml::Value::String(REDACTED.to_owned());
            } else {
                redact(path, value);
            }
            path.pop();
        }
    }
}

/// `config` as TOML, every secret replaced by [`REDACTED`]. Settings that are
/// not set (an absent admin token, no SMTP relay) are left out, as TOML has
/// no null.
/// With the development profile, its warning comes first as `#` comment
/// lines, so that the printed text still reads back as the configuration.
pub fn to_redacted_toml(config: &Config) -> Result<String, toml::ser::Error> {
    let mut value = toml::Value::try_from(config)?;
    redact(&mut Vec::new(), &mut value);
    let body = toml::to_string_pretty(&value)?;
    Ok(match config.development_warning() {
        Some(warning) => {
            let comments: String = warning.lines().map(|l| format!("# {l}\n")).collect();
            format!("{comments}\n{body}")
        }
        None => body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_the_rest_kept() {
        let config = Config::from_toml_str(
            r#"
admin_token = "admin-secret-1"
[notifications.smtp]
host = "smtp.example.dk"
from = "eID <no-reply@eid.example.dk>"
password = "hunter2-secret"
[notifications.sms]
url = "https://sms.example.dk/send?key=url-secret"
bearer_token = "bearer-secret"
"#,
        )
        .unwrap();
        let text = to_redacted_toml(&config).unwrap();
        for secret in [
            "admin-secret-1",
            "hunter2-secret",
            "url-secret",
            "bearer-secret",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("smtp.example.dk"), "{text}");
        // What is printed reads back as the same configuration.
        let back: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(back["admin_token"].as_str(), Some(REDACTED));
        assert_eq!(
            back["floods"]["per_identity_per_minute"].as_integer(),
            Some(5)
        );
    }

    #[test]
    fn the_development_warning_heads_the_printed_configuration_as_comments() {
        let config = Config::from_toml_str("profile = \"development\"").unwrap();
        let text = to_redacted_toml(&config).unwrap();
        assert!(text.starts_with("# WARNING: "), "{text}");
        assert!(text.contains("NEVER FOR PEOPLE"), "{text}");
        let back: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(back["profile"].as_str(), Some("development"));
        assert_eq!(back["floods"]["fraud_hold_secs"].as_integer(), Some(60));
        let production = to_redacted_toml(&Config::default()).unwrap();
        assert!(!production.contains("WARNING"), "{production}");
    }
}

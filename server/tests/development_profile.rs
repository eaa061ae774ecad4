//! The development profile (`profile = "development"`, docs/configuration.md)
//! on a real server: it shortens the hold after "this wasn't me", it is
//! refused where the server looks like a deployment, and `eid-server` warns
//! about it on start-up and prints paste-ready `export` lines.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Harness, assert_code};
use eid_protocol::wire::ErrorCode;
use eid_protocol::{Outcome, RequestKind};
use eid_server::config::{Config, DEVELOPMENT_WAIT_SECS, Profile};

const USER: &str = "Grete#1950x";

/// Reports one login request as fraud, then asks again `after_ms` later.
async fn request_after_fraud_report(
    h: &Harness,
    after_ms: u64,
) -> Result<eid_protocol::wire::RequestCreated, eid_api_client::ApiFailure> {
    h.clock.advance_ms(after_ms);
    h.rp.create_request(USER, RequestKind::Login, "Log på Netbank", None)
        .await
}

async fn report_fraud(h: &Harness) {
    let (_, mut phone) = h.person(USER).await;
    let envelope = h.login_request(USER, &phone, "Log på Netbank").await;
    let decision = phone.decide(&envelope, Outcome::ReportFraud, None, false);
    phone.submit(&h.endpoint, &decision).await.unwrap();
}

#[tokio::test]
async fn the_development_profile_holds_a_service_provider_a_minute_after_this_wasnt_me() {
    let h = Harness::start_with(|config| {
        *config = Config {
            listen: config.listen,
            data_dir: config.data_dir.clone(),
            ..Config::defaults_for(Profile::Development)
        };
    })
    .await;
    report_fraud(&h).await;
    assert_code(
        request_after_fraud_report(&h, (DEVELOPMENT_WAIT_SECS - 1) * 1000).await,
        ErrorCode::CoolingDown,
    );
    request_after_fraud_report(&h, 2000)
        .await
        .expect("the hold is over after a minute");
}

#[tokio::test]
async fn without_the_profile_the_hold_after_this_wasnt_me_is_still_an_hour() {
    let h = Harness::start().await;
    report_fraud(&h).await;
    assert_code(
        request_after_fraud_report(&h, (DEVELOPMENT_WAIT_SECS + 1) * 1000).await,
        ErrorCode::CoolingDown,
    );
    assert_code(
        request_after_fraud_report(&h, 3500 * 1000).await,
        ErrorCode::CoolingDown,
    );
    request_after_fraud_report(&h, 100 * 1000)
        .await
        .expect("the hold is over after the hour");
}

#[tokio::test]
async fn start_refuses_the_development_profile_on_a_public_address_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let config = Config {
        listen: "0.0.0.0:0".parse().unwrap(),
        data_dir: data_dir.clone(),
        ..Config::defaults_for(Profile::Development)
    };
    let error = eid_server::start(eid_server::ServerOptions::new(config))
        .await
        .expect_err("refused")
        .to_string();
    assert!(error.contains("loopback"), "{error}");
    assert!(!data_dir.exists(), "nothing created");
}

/// `eid-server` with no `EID_SERVER_*` variable of the test's environment.
fn eid_server(dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_eid-server"));
    for (name, _) in std::env::vars() {
        if name.starts_with("EID_SERVER_") {
            command.env_remove(name);
        }
    }
    command.current_dir(dir).env_remove("EID_LOG");
    command
}

/// Kills the server process when the test ends, passed or not.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn eid_server_warns_of_the_development_profile_and_prints_paste_ready_exports() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
    let mut child = Killed(
        eid_server(dir.path())
            .env("EID_SERVER_PROFILE", "development")
            .env("EID_SERVER_LISTEN", "127.0.0.1:0")
            // Relative, as a tester gives it: the exports must be absolute.
            .env("EID_SERVER_DATA_DIR", "data")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut banner = Vec::new();
    while !banner
        .last()
        .is_some_and(|l: &String| l.starts_with("export EID_ADMIN_TOKEN_FILE="))
    {
        assert!(Instant::now() < deadline, "no banner: {banner:?}");
        match lines.next() {
            Some(line) => banner.push(line.unwrap()),
            None => panic!(
                "eid-server ended: {banner:?} / {}",
                std::fs::read_to_string(dir.path().join("stderr.log")).unwrap()
            ),
        }
    }
    let token_file = dir.path().join("data").join("admin-token");
    assert_eq!(
        banner.last().unwrap(),
        &format!("export EID_ADMIN_TOKEN_FILE={}", token_file.display()),
        "{banner:#?}"
    );
    assert!(token_file.exists());
    let url = banner[0].strip_prefix("eid-server listening on ").unwrap();
    assert!(
        banner.contains(&format!("export EID_SERVER={url}")),
        "{banner:#?}"
    );
    let pin = banner
        .iter()
        .find_map(|l| l.strip_prefix("  TLS SPKI pin:      "))
        .unwrap();
    assert!(
        banner.contains(&format!("export EID_SPKI_PIN={pin}")),
        "{banner:#?}"
    );
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    let warning: Vec<&str> = log.lines().filter(|l| l.starts_with("WARNING:")).collect();
    assert!(warning.len() >= 8, "{log}");
    assert!(
        warning
            .iter()
            .any(|l| l.contains("floods.fraud_hold_secs") && l.contains("60 (production 3600)")),
        "{log}"
    );
    // Its log, written to a file and not a terminal, has no colour codes.
    assert!(log.contains(" INFO eid_server:"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log file: {log:?}"
    );
}

#[test]
fn eid_server_without_the_profile_prints_no_warning() {
    let dir = tempfile::tempdir().unwrap();
    let out = eid_server(dir.path())
        .arg("--print-config")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stdout.contains("WARNING") && !stderr.contains("WARNING"));
    let printed: toml::Value = toml::from_str(&stdout).unwrap();
    assert_eq!(printed["profile"].as_str(), Some("production"));
    assert_eq!(
        printed["floods"]["fraud_hold_secs"].as_integer(),
        Some(3600)
    );
}

#[test]
fn print_config_shows_the_profile_warning_and_explicit_settings_winning() {
    let dir = tempfile::tempdir().unwrap();
    let out = eid_server(dir.path())
        .arg("--print-config")
        .env("EID_SERVER_PROFILE", "development")
        .env("EID_SERVER_SELF_SERVICE_GAP_SECS", "300")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stdout} / {stderr}");
    assert!(stderr.contains("WARNING: DEVELOPMENT PROFILE"), "{stderr}");
    assert!(stdout.starts_with("# WARNING:"), "{stdout}");
    let printed: toml::Value = toml::from_str(&stdout).unwrap();
    assert_eq!(printed["profile"].as_str(), Some("development"));
    assert_eq!(printed["floods"]["fraud_hold_secs"].as_integer(), Some(60));
    assert_eq!(printed["new_device_wait_secs"].as_integer(), Some(60));
    // The environment's explicit value wins over the profile's 60.
    assert_eq!(printed["self_service_gap_secs"].as_integer(), Some(300));
}

#[test]
fn eid_server_refuses_the_development_profile_with_a_public_issuer_or_address() {
    for (name, value, says) in [
        (
            "EID_SERVER_LISTEN",
            "0.0.0.0:8443",
            "listen is 0.0.0.0:8443",
        ),
        (
            "EID_SERVER_OIDC_ISSUER",
            "https://eid.example",
            "oidc_issuer is \"https://eid.example\"",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = eid_server(dir.path())
            .env("EID_SERVER_PROFILE", "development")
            .env(name, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(!out.status.success(), "{name} started: {stderr}");
        assert!(stderr.contains(says), "{name}: {stderr}");
        assert!(!dir.path().join("data").exists(), "{name}: data created");
    }
}

//! `eid demo --web`: the demo bank and its broker start, print one JSON line
//! with what a browser test needs, answer on 127.0.0.1, refuse an answer
//! that belongs to no login the bank started, and stop on Ctrl-C. The
//! browser side of the login is tests/browser/ (Chromium).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};

use serde_json::Value;

use crate::support::{eid_command, eid_json};

/// A running `eid --json demo --web` and the line it printed.
struct WebDemo {
    child: Child,
    ready: Value,
}

impl WebDemo {
    fn start(env: &[(&str, &str)]) -> Self {
        let mut child = eid_command()
            .args(["--json", "demo", "--web"])
            .env("EID_KDF_ITERATIONS", "1000")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("one JSON line expected, got {line:?}: {e}"));
        Self { child, ready }
    }

    /// The bank's address without the trailing slash.
    fn bank(&self) -> String {
        self.ready["bank_url"]
            .as_str()
            .unwrap()
            .trim_end_matches('/')
            .to_owned()
    }

    /// Ctrl-C: the demo stops, cleans up and says so.
    fn interrupt(mut self) -> (i32, String) {
        let status = self.stop();
        let mut rest = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut rest)
            .unwrap();
        (status, rest)
    }

    /// SIGINT, then the exit code (the demo deletes its temporary folder
    /// on the way out, which SIGKILL would leave behind).
    fn stop(&mut self) -> i32 {
        // No unwrap: this also runs in Drop while a failed test unwinds.
        if let Ok(None) = self.child.try_wait()
            && let Some(pid) = i32::try_from(self.child.id())
                .ok()
                .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        }
        self.child.wait().ok().and_then(|s| s.code()).unwrap_or(-1)
    }
}

impl Drop for WebDemo {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A plain HTTP/1.1 request to the bank: status and body.
fn http(method: &str, url: &str) -> (u16, String) {
    let (status, _, body) = http_with(method, url, None);
    (status, body)
}

/// A plain HTTP/1.1 call with an optional `Cookie` header: the status, the
/// raw head and the body.
fn http_with(method: &str, url: &str, cookie: Option<&str>) -> (u16, String, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut stream = TcpStream::connect(host).unwrap();
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{cookie}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_owned(), b.to_owned()))
        .unwrap_or_default();
    (status, head, body)
}

/// The `Location` of a plain HTTP/1.1 POST to the bank, with its status.
fn post_for_location(url: &str) -> (u16, Option<String>) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = TcpStream::connect(host).unwrap();
    write!(
        stream,
        "POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let location = answer
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .map(str::to_owned);
    (status, location)
}

#[test]
fn the_web_demo_prints_what_a_browser_test_needs_and_the_bank_page_answers() {
    let demo = WebDemo::start(&[]);
    let r = &demo.ready.clone();
    assert!(
        r["bank_url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"),
        "{r}"
    );
    assert!(
        r["broker_url"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:"),
        "{r}"
    );
    assert_eq!(r["user_id"], "grete#1950x");
    assert_eq!(r["code_device"]["serial"], "DEMO-CD-0001");
    assert_eq!(r["code_reader"]["serial"], "DEMO-CR-0001");
    // The issuer is the same broker by the name `localhost`: a WebAuthn
    // relying party (the chip) must be a domain.
    let port = r["broker_url"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap();
    assert_eq!(r["issuer"], format!("https://localhost:{port}"));
    assert_eq!(r["client_auth"], "private_key_jwt");
    assert!(r["client_id"].as_str().unwrap().starts_with("eidoc_"));
    assert_eq!(r["request_lifetime_secs"], 300);
    let pin = r["spki_pin"].as_str().unwrap();
    assert_eq!(
        format!("sha256/{}", r["spki_sha256_base64"].as_str().unwrap()),
        pin
    );
    assert_eq!(r["app_env"]["EID_SPKI_PIN"], pin);
    assert_eq!(r["app_env"]["EID_SERVER"], r["broker_url"]);
    assert!(std::path::Path::new(r["certificate_pem"].as_str().unwrap()).exists());
    // Nothing secret in the line: no PIN, no admin token, no key.
    let line = r.to_string();
    assert!(!line.contains(crate::support::PIN), "{line}");
    assert!(
        !line.contains("admin_token") && !line.contains("secret"),
        "{line}"
    );

    let (status, body) = http("GET", &format!("{}/", demo.bank()));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("id=\"login\""), "{body}");
    assert!(body.contains("Log på Netbank"), "{body}");
    assert!(body.contains("id=\"login-high\""), "{body}");

    // The phone is activated and `eid app` finds it with the printed
    // environment alone.
    let env: Vec<(String, String)> = r["app_env"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (code, opened) = eid_json(&["app", "open"], &env);
    assert_eq!(code, 0, "{opened}");
    assert_eq!(opened["accounts"][0]["user_id"], "grete#1950x");
    assert_eq!(opened["accounts"][0]["state"], "active");

    let (code, rest) = demo.interrupt();
    assert_eq!(code, 0);
    assert_eq!(rest.trim(), r#"{"stopped":true}"#);
    // The temporary folder went with it.
    assert!(!std::path::Path::new(r["app_dir"].as_str().unwrap()).exists());
}

#[test]
fn the_bank_refuses_a_callback_that_belongs_to_no_login_it_started() {
    let demo = WebDemo::start(&[]);
    let bank = demo.bank();
    let broker = demo.ready["issuer"].as_str().unwrap().to_owned();
    for query in [
        format!("state=made-up&code=abc&iss={broker}"),
        format!("code=abc&iss={broker}"),
        format!("state=made-up&error=access_denied&iss={broker}"),
    ] {
        let (status, body) = http("GET", &format!("{bank}/callback?{query}"));
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains("id=\"bad-state\""), "{query}: {body}");
        assert!(!body.contains("logget ind"), "{body}");
        assert!(!body.contains("Login afvist"), "{body}");
    }
}

#[test]
fn a_phone_loop_in_json_mode_and_a_bad_server_setting_are_refused_before_anything_starts() {
    let (code, out) = eid_json(&["demo", "--web", "--phone-loop", "on"], &[]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["error"]["kind"], "usage", "{out}");
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--phone-loop on needs text mode")
    );

    let (code, out) = eid_json(&["demo", "--phone-loop", "on"], &[]);
    assert_eq!(code, 2, "{out}");
    assert_eq!(out["error"]["kind"], "usage", "{out}");

    let (code, out) = eid_json(
        &["demo", "--web"],
        &[("EID_SERVER_REQUEST_LIFETIME_SECS", "soon")],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("EID_SERVER_* environment"),
        "{out}"
    );
}

#[test]
fn log_on_pushes_the_request_and_sends_the_browser_to_the_brokers_authorization_endpoint() {
    let demo = WebDemo::start(&[]);
    // The bank calls the broker `localhost` (its issuer), as the browser does.
    let broker = demo.ready["issuer"].as_str().unwrap().to_owned();
    let client_id = demo.ready["client_id"].as_str().unwrap().to_owned();
    let (status, location) = post_for_location(&format!("{}/login", demo.bank()));
    assert_eq!(status, 303, "{location:?}");
    let location = location.unwrap();
    // The broker accepted the pushed request (private_key_jwt, PKCE, state,
    // nonce): only its request_uri and the client travel in the URL.
    let prefix = format!(
        "{broker}/oidc/authorize?client_id={client_id}&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3A"
    );
    assert!(location.starts_with(&prefix), "{location}");
    assert!(
        !location.contains("state") && !location.contains("nonce"),
        "{location}"
    );
}

#[test]
fn a_login_finishes_only_in_the_browser_that_started_it() {
    let demo = WebDemo::start(&[]);
    let bank = demo.bank();
    let issuer = demo.ready["issuer"].as_str().unwrap().to_owned();
    let (status, head, _) = http_with("POST", &format!("{bank}/login"), None);
    assert_eq!(status, 303, "{head}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .expect("the login's cookie")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    let state = pair.strip_prefix("eid_bank_login=").unwrap().to_owned();
    let callback = format!("{bank}/callback?state={state}&code=abc&iss={issuer}");
    // Another browser (an attacker's link to a victim) gets nothing, and
    // the login stays usable for its own browser.
    let (status, _, body) = http_with("GET", &callback, None);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("id=\"bad-state\""), "{body}");
    let (_, _, body) = http_with("GET", &callback, Some("eid_bank_login=someone-else"));
    assert!(body.contains("id=\"bad-state\""), "{body}");
    // Its own browser reaches the code's redemption (which a made-up code
    // fails at the broker).
    let (_, _, body) = http_with("GET", &callback, Some(&pair));
    assert!(!body.contains("id=\"bad-state\""), "{body}");
    assert!(body.contains("id=\"failed\""), "{body}");
}

//! Crash consistency (docs/reliability.md): every fail point of the core and the server
//! is hit in a real process (`eid app ...` over the real core, `eid serve` over
//! the real server library, TLS on 127.0.0.1, one temporary folder each), which
//! kills itself there with SIGKILL (`EID_CRASH_AT`, feature `crash-points`,
//! turned on for these test builds by the dev-dependencies). The next process
//! then runs on the same files and the invariants are checked:
//!
//! - no acknowledged approval is lost, and a signed one lands exactly once;
//! - no request is approved twice (one decision row, the same receipt on resend);
//! - the PIN counter never rolls back;
//! - `PRAGMA integrity_check` is `ok` on the phone's and the server's SQLite files.
//!
//! `EID_CRASH_REPEATS` (default 3) sets how many times each point is crashed.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Instant;

use eid_core::lockout::MAX_FAILURES;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde_json::Value;

use crate::support::{PIN, eid_command};

const WRONG_PIN: &str = "902615";
const USER_ID: &str = "crash#2024x";
const SIGKILL: i32 = 9;

fn repeats() -> usize {
    std::env::var("EID_CRASH_REPEATS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// `eid`, set to kill itself at `crash_at` if given.
fn eid_at(crash_at: Option<&str>) -> Command {
    let mut cmd = eid_command();
    if let Some(point) = crash_at {
        cmd.env("EID_CRASH_AT", point);
    }
    cmd
}

/// One finished `eid` process.
struct Run {
    status: ExitStatus,
    json: Option<Value>,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn ok(self) -> Value {
        let json = self.json.unwrap_or(Value::Null);
        assert!(
            self.status.success() && json.get("error").is_none(),
            "{:?} {json} / {}",
            self.status,
            self.stderr
        );
        json
    }

    #[track_caller]
    fn err(self, kind: &str) -> Value {
        let json = self.json.unwrap_or(Value::Null);
        assert!(!self.status.success(), "expected failure: {json}");
        assert_eq!(json["error"]["kind"], kind, "{json} / {}", self.stderr);
        json["error"].clone()
    }

    #[track_caller]
    fn killed(self, point: &str) {
        assert_eq!(
            self.status.signal(),
            Some(SIGKILL),
            "expected SIGKILL at {point}, got {:?}: {:?} / {}",
            self.status,
            self.json,
            self.stderr
        );
        assert!(
            self.stderr.contains(&format!("crash point {point}")),
            "{}",
            self.stderr
        );
    }
}

/// A real server process (`eid serve`) on a data folder.
struct Server {
    child: Child,
    url: String,
    pin: String,
    token_file: String,
}

impl Server {
    fn start(data_dir: &Path, crash_at: Option<&str>) -> Self {
        let mut child = eid_at(crash_at)
            .args(["--json", "serve", "--data-dir", data_dir.to_str().unwrap()])
            // Its stderr is the test's: warnings and crash points only.
            .env("EID_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("eid serve did not start: {e}: {line:?}"));
        Self {
            child,
            url: ready["listening"].as_str().unwrap().to_owned(),
            pin: ready["spki_pin"].as_str().unwrap().to_owned(),
            token_file: ready["admin_token_file"].as_str().unwrap().to_owned(),
        }
    }

    /// Waits for the server to die at `point` (it must be SIGKILL).
    #[track_caller]
    fn expect_killed(mut self, point: &str) {
        let status = self.child.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(SIGKILL),
            "server: expected SIGKILL at {point}, got {status:?}"
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One server folder, one phone folder, one identity, one provider.
struct World {
    dir: tempfile::TempDir,
    server: Option<Server>,
    identity: String,
    code: String,
    api_key: String,
}

impl World {
    /// A server, an identity with a fresh activation code and a provider; no phone yet.
    fn new(server_crash_at: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("server")).unwrap();
        let server = Server::start(&dir.path().join("server"), server_crash_at);
        let mut w = Self {
            dir,
            server: Some(server),
            identity: String::new(),
            code: String::new(),
            api_key: String::new(),
        };
        let created = w
            .eid(
                &[
                    "admin",
                    "create-identity",
                    "--user-id",
                    USER_ID,
                    "--name",
                    "Grete Jensen",
                ],
                None,
                None,
            )
            .ok();
        w.identity = created["identity_id"].as_str().unwrap().to_owned();
        let code = w
            .eid(
                &["admin", "activation-code", "--identity", &w.identity],
                None,
                None,
            )
            .ok();
        w.code = code["activation_code"].as_str().unwrap().to_owned();
        let sp = w
            .eid(
                &["admin", "register-provider", "--name", "Nordisk Bank A/S"],
                None,
                None,
            )
            .ok();
        w.api_key = sp["api_key"].as_str().unwrap().to_owned();
        w
    }

    /// [`World::new`] plus an activated phone.
    fn with_phone(server_crash_at: Option<&str>) -> Self {
        let w = Self::new(server_crash_at);
        let authenticator = w.activate(None).ok();
        assert_eq!(authenticator["account"]["state"], "active");
        w
    }

    fn server_dir(&self) -> PathBuf {
        self.dir.path().join("server")
    }

    fn app_dir(&self) -> PathBuf {
        self.dir.path().join("phone")
    }

    fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }

    /// Restarts the server on the same folder (after its crash).
    fn restart_server(&mut self) {
        self.server = Some(Server::start(&self.server_dir(), None));
    }

    /// Runs `eid --json <args>` against this world's server and phone.
    fn eid(&self, args: &[&str], stdin: Option<&str>, crash_at: Option<&str>) -> Run {
        let s = self.server();
        let mut child = eid_at(crash_at)
            .arg("--json")
            .args(args)
            .env("EID_SERVER", &s.url)
            .env("EID_SPKI_PIN", &s.pin)
            .env("EID_ADMIN_TOKEN_FILE", &s.token_file)
            .env("EID_API_KEY", &self.api_key)
            .env("EID_APP_DIR", self.app_dir())
            .env("EID_KDF_ITERATIONS", "1000")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            let mut input = child.stdin.take().unwrap();
            if let Some(text) = stdin {
                input.write_all(text.as_bytes()).unwrap();
            }
        }
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        let json = stdout
            .lines()
            .find(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap());
        Run {
            status: out.status,
            json,
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    fn activate(&self, crash_at: Option<&str>) -> Run {
        self.eid(
            &[
                "app",
                "activate",
                "--user-id",
                USER_ID,
                "--code",
                &self.code,
                "--pin-stdin",
            ],
            Some(&format!("{PIN}\n")),
            crash_at,
        )
    }

    fn resume_activation(&self) -> Run {
        self.eid(
            &["app", "resume-activation", "--code", &self.code],
            None,
            None,
        )
    }

    /// A new login request from the provider; returns its ID.
    fn request(&self) -> String {
        let r = self
            .eid(
                &[
                    "rp",
                    "request",
                    "--user-id",
                    USER_ID,
                    "--kind",
                    "login",
                    "--text",
                    "Log på Netbank",
                ],
                None,
                None,
            )
            .ok();
        r["request_id"].as_str().unwrap().to_owned()
    }

    fn approve(&self, request: &str, pin: &str, crash_at: Option<&str>) -> Run {
        self.eid(
            &["app", "approve", "--request", request, "--pin-stdin"],
            Some(&format!("{pin}\n")),
            crash_at,
        )
    }

    /// The status the provider sees (receipt verified by the CLI).
    fn rp_status(&self, request: &str) -> Value {
        self.eid(&["rp", "status", "--request", request], None, None)
            .ok()
    }

    fn retry(&self) -> u64 {
        self.eid(&["app", "retry"], None, None).ok()["resent_decisions"]
            .as_u64()
            .unwrap()
    }

    fn phone_db(&self) -> PathBuf {
        self.app_dir().join("core.sqlite3")
    }

    fn server_db(&self) -> PathBuf {
        self.server_dir().join("eid-server.sqlite3")
    }

    /// `PRAGMA integrity_check` on both databases (whichever exist).
    #[track_caller]
    fn check_integrity(&self) {
        for db in [self.phone_db(), self.server_db()] {
            if db.exists() {
                assert_eq!(integrity(&db), "ok", "{}", db.display());
            }
        }
    }

    /// The server's decision rows for a request: (outcome, receipt JSON).
    fn server_decisions(&self, request: &str) -> Vec<(String, Value)> {
        let c = read_only(&self.server_db());
        let mut st = c
            .prepare("SELECT outcome, receipt FROM decisions WHERE request_id = ?1")
            .unwrap();
        st.query_map([unhex(request)], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .unwrap()
        .map(|r| {
            let (o, j) = r.unwrap();
            (o, serde_json::from_str(&j).unwrap())
        })
        .collect()
    }

    /// The phone's decision rows for a request: (status, receipt JSON if any).
    fn phone_decisions(&self, request: &str) -> Vec<(String, Option<Value>)> {
        let c = read_only(&self.phone_db());
        let mut st = c
            .prepare("SELECT status, receipt_json FROM decisions WHERE request_id = ?1")
            .unwrap();
        st.query_map([request], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })
        .unwrap()
        .map(|r| {
            let (s, j) = r.unwrap();
            (s, j.map(|j| serde_json::from_str(&j).unwrap()))
        })
        .collect()
    }

    /// The server's authenticators of this world's identity.
    fn server_authenticators(&self) -> Vec<Value> {
        self.eid(&["admin", "show", "--identity", &self.identity], None, None)
            .ok()["authenticators"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn phone_authenticators(&self) -> Vec<Value> {
        self.eid(&["app", "accounts"], None, None).ok()["accounts"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn pending_activation_stored(&self) -> bool {
        let c = read_only(&self.phone_db());
        c.query_row("SELECT 1 FROM pending_activation", [], |_| Ok(()))
            .optional()
            .unwrap()
            .is_some()
    }

    /// Approved exactly once, everywhere: the provider sees `approved` with a
    /// verified receipt, the server holds one decision, the phone holds one
    /// with the receipt the server signed, and nothing is left to resend.
    #[track_caller]
    fn assert_approved_once(&self, request: &str) {
        let st = self.rp_status(request);
        assert_eq!(st["status"], "approved", "{st}");
        assert_eq!(st["receipt"]["verified"], true, "{st}");
        let server = self.server_decisions(request);
        assert_eq!(server.len(), 1, "one decision row on the server");
        assert_eq!(server[0].0, "approve");
        let phone = self.phone_decisions(request);
        assert_eq!(phone.len(), 1, "one decision row on the phone");
        assert_eq!(phone[0].0, "receipt_verified");
        assert_eq!(
            phone[0].1.as_ref(),
            Some(&server[0].1),
            "the phone's receipt is the one the server stored"
        );
        assert_eq!(
            st["receipt"]["counter"], server[0].1["receipt"]["counter"],
            "the provider's receipt is the stored one"
        );
        assert_eq!(self.retry(), 0, "nothing left to resend");
    }

    /// The phone's authenticator works end to end after the crash.
    #[track_caller]
    fn assert_authenticator_works(&self) {
        let authenticators = self.phone_authenticators();
        assert_eq!(authenticators.len(), 1, "{authenticators:?}");
        assert_eq!(authenticators[0]["state"], "active");
        let auths = self.server_authenticators();
        assert_eq!(auths.len(), 1, "one authenticator on the server: {auths:?}");
        let server_id = auths[0]["authenticator_id"]
            .as_str()
            .or_else(|| auths[0]["id"].as_str())
            .unwrap();
        assert_eq!(authenticators[0]["authenticator_id"], server_id);
        let request = self.request();
        let approved = self.approve(&request, PIN, None).ok();
        assert_eq!(approved["result"], "approved");
        self.assert_approved_once(&request);
    }
}

fn read_only(path: &Path) -> Connection {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap()
}

fn integrity(path: &Path) -> String {
    read_only(path)
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Runs `scenario` `repeats()` times and prints points × repeats and the time.
fn repeat(point: &str, scenario: impl Fn(usize)) {
    let start = Instant::now();
    let n = repeats();
    for i in 0..n {
        scenario(i);
    }
    eprintln!(
        "crash point {point}: {n} repeat(s), {} ms",
        start.elapsed().as_millis()
    );
}

#[track_caller]
fn wrong_pin_left(run: Run) -> u64 {
    run.err("wrong_pin")["attempts_left"].as_u64().unwrap()
}

// ------------------------------------------------------------------ PIN

#[test]
fn pin_attempt_counted_with_a_wrong_pin_is_never_rolled_back() {
    let point = "core.pin.attempt_counted";
    repeat(point, |_| {
        let w = World::with_phone(None);
        let request = w.request();
        w.approve(&request, WRONG_PIN, Some(point)).killed(point);
        w.check_integrity();
        // The crashed wrong attempt counts: the next wrong one is the second.
        let left = wrong_pin_left(w.approve(&request, WRONG_PIN, None));
        assert_eq!(u64::from(MAX_FAILURES - 2), left);
        assert_eq!(w.rp_status(&request)["status"], "pending");
        let approved = w.approve(&request, PIN, None).ok();
        assert_eq!(approved["result"], "approved");
        w.assert_approved_once(&request);
    });
}

#[test]
fn pin_attempt_counted_with_the_right_pin_counts_as_wrong_never_less() {
    let point = "core.pin.attempt_counted";
    repeat(point, |_| {
        let w = World::with_phone(None);
        let request = w.request();
        // The documented price: a crash between counting and unwrapping keeps
        // the attempt counted even though the PIN was right.
        w.approve(&request, PIN, Some(point)).killed(point);
        w.check_integrity();
        assert_eq!(w.rp_status(&request)["status"], "pending");
        assert!(w.phone_decisions(&request).is_empty(), "nothing was signed");
        let left = wrong_pin_left(w.approve(&request, WRONG_PIN, None));
        assert_eq!(u64::from(MAX_FAILURES - 2), left);
        w.approve(&request, PIN, None).ok();
        w.assert_approved_once(&request);
    });
}

#[test]
fn pin_reset_after_the_right_pin_is_durable() {
    let point = "core.pin.reset";
    repeat(point, |_| {
        let w = World::with_phone(None);
        let request = w.request();
        let left = wrong_pin_left(w.approve(&request, WRONG_PIN, None));
        assert_eq!(u64::from(MAX_FAILURES - 1), left);
        w.approve(&request, PIN, Some(point)).killed(point);
        w.check_integrity();
        assert_eq!(w.rp_status(&request)["status"], "pending");
        assert!(w.phone_decisions(&request).is_empty(), "nothing was signed");
        // The reset was committed: a wrong PIN now is the first again.
        let left = wrong_pin_left(w.approve(&request, WRONG_PIN, None));
        assert_eq!(u64::from(MAX_FAILURES - 1), left);
        w.approve(&request, PIN, None).ok();
        w.assert_approved_once(&request);
    });
}

// ------------------------------------------------------------------ approval (core)

#[test]
fn decision_signed_but_unsent_lands_exactly_once() {
    let point = "core.decision.signed";
    repeat(point, |i| {
        let w = World::with_phone(None);
        let request = w.request();
        w.approve(&request, PIN, Some(point)).killed(point);
        w.check_integrity();
        // Never acknowledged: the provider still waits, the server has nothing.
        assert_eq!(w.rp_status(&request)["status"], "pending");
        assert!(w.server_decisions(&request).is_empty());
        let phone = w.phone_decisions(&request);
        assert_eq!(phone.len(), 1);
        assert_eq!(phone[0].0, "signed");
        if i % 2 == 0 {
            // Resent on its own (as `eid app open` does).
            assert_eq!(w.retry(), 1);
        } else {
            // The person approves again: the stored decision is resent, not a new one.
            let again = w.approve(&request, PIN, None).ok();
            assert_eq!(again["result"], "approved");
        }
        w.assert_approved_once(&request);
    });
}

#[test]
fn decision_answered_but_receipt_unstored_gets_the_same_receipt() {
    let point = "core.decision.answered";
    repeat(point, |_| {
        let w = World::with_phone(None);
        let request = w.request();
        w.approve(&request, PIN, Some(point)).killed(point);
        w.check_integrity();
        // The server committed and the provider may already have logged the
        // person in: that approval must stay.
        let st = w.rp_status(&request);
        assert_eq!(st["status"], "approved");
        let before = w.server_decisions(&request);
        assert_eq!(before.len(), 1);
        let phone = w.phone_decisions(&request);
        assert_eq!(phone.len(), 1);
        assert_eq!(phone[0].0, "signed", "the receipt was not stored");
        assert_eq!(
            w.retry(),
            1,
            "the resend is answered with the stored receipt"
        );
        assert_eq!(
            w.server_decisions(&request),
            before,
            "nothing new on the server"
        );
        w.assert_approved_once(&request);
    });
}

#[test]
fn decision_receipt_stored_needs_nothing_more() {
    let point = "core.decision.receipt_stored";
    repeat(point, |_| {
        let w = World::with_phone(None);
        let request = w.request();
        w.approve(&request, PIN, Some(point)).killed(point);
        w.check_integrity();
        w.assert_approved_once(&request);
        let opened = w.eid(&["app", "open"], None, None).ok();
        assert!(opened["requests"].as_array().unwrap().is_empty());
    });
}

// ------------------------------------------------------------------ activation (core)

#[test]
fn activation_pending_stored_is_resumed_or_restarted() {
    let point = "core.activation.pending_stored";
    repeat(point, |i| {
        let w = World::new(None);
        w.activate(Some(point)).killed(point);
        w.check_integrity();
        assert!(w.pending_activation_stored());
        assert!(w.server_authenticators().is_empty(), "nothing was sent");
        if i % 2 == 0 {
            w.resume_activation().ok();
        } else {
            // Starting over discards the stored keys; the code is still unused.
            w.activate(None).ok();
        }
        assert!(!w.pending_activation_stored());
        w.assert_authenticator_works();
    });
}

#[test]
fn activation_answered_but_unstored_is_resumed_to_the_same_authenticator() {
    let point = "core.activation.answered";
    repeat(point, |_| {
        let w = World::new(None);
        w.activate(Some(point)).killed(point);
        w.check_integrity();
        // The server used the code; the phone kept the keys to resume.
        assert_eq!(w.server_authenticators().len(), 1);
        assert!(w.pending_activation_stored());
        assert!(w.phone_authenticators().is_empty());
        let resumed = w.resume_activation().ok();
        assert_eq!(
            resumed["account"]["authenticator_id"],
            w.server_authenticators()[0]["authenticator_id"]
        );
        w.assert_authenticator_works();
    });
}

#[test]
fn activation_authenticator_stored_is_complete() {
    let point = "core.activation.account_stored";
    repeat(point, |_| {
        let w = World::new(None);
        w.activate(Some(point)).killed(point);
        w.check_integrity();
        assert!(!w.pending_activation_stored());
        // A second activation with the spent code creates nothing.
        w.eid(&["app", "resume-activation", "--code", &w.code], None, None)
            .err("no_pending_activation");
        w.assert_authenticator_works();
    });
}

// ------------------------------------------------------------------ server

#[test]
fn server_decision_committed_but_unanswered_is_kept_and_resent_once() {
    let point = "server.decision.committed";
    repeat(point, |_| {
        let mut w = World::with_phone(Some(point));
        let request = w.request();
        let failed = w.approve(&request, PIN, None);
        assert!(!failed.status.success(), "the server died before answering");
        assert_eq!(failed.status.signal(), None, "the phone did not crash");
        w.server.take().unwrap().expect_killed(point);
        w.check_integrity();
        let phone = w.phone_decisions(&request);
        assert_eq!(phone.len(), 1);
        assert_eq!(phone[0].0, "signed", "no answer reached the phone");
        w.restart_server();
        // The commit survived the crash.
        assert_eq!(w.server_decisions(&request).len(), 1);
        assert_eq!(w.retry(), 1);
        w.assert_approved_once(&request);
    });
}

#[test]
fn server_activation_code_used_but_unanswered_is_resumed() {
    let point = "server.activation.code_used";
    repeat(point, |_| {
        let mut w = World::new(Some(point));
        let failed = w.activate(None);
        assert!(!failed.status.success(), "the server died before answering");
        assert_eq!(failed.status.signal(), None, "the phone did not crash");
        w.server.take().unwrap().expect_killed(point);
        w.check_integrity();
        assert!(w.pending_activation_stored());
        w.restart_server();
        assert_eq!(w.server_authenticators().len(), 1, "the code was used");
        w.resume_activation().ok();
        w.assert_authenticator_works();
    });
}

#[test]
fn resend_killed_mid_batch_lands_each_approval_once() {
    // Two approvals signed offline (crashed before sending), then the resend
    // is killed at its second answer (`@2`): the first receipt is stored, the
    // second decision is committed on the server but not on the phone.
    let point = "core.decision.answered";
    repeat(point, |_| {
        let w = World::with_phone(None);
        let first = w.request();
        let second = w.request();
        for r in [&first, &second] {
            w.approve(r, PIN, Some("core.decision.signed"))
                .killed("core.decision.signed");
        }
        w.check_integrity();
        w.eid(&["app", "retry"], None, Some(&format!("{point}@2")))
            .killed(point);
        w.check_integrity();
        let mut statuses: Vec<String> = [&first, &second]
            .iter()
            .map(|r| {
                assert_eq!(w.rp_status(r)["status"], "approved");
                let phone = w.phone_decisions(r);
                assert_eq!(phone.len(), 1);
                phone[0].0.clone()
            })
            .collect();
        statuses.sort();
        assert_eq!(statuses, ["receipt_verified", "signed"]);
        assert_eq!(w.retry(), 1);
        w.assert_approved_once(&first);
        w.assert_approved_once(&second);
    });
}

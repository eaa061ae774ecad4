//! What another local user can see of `eid`: its files (the server's data
//! folder and the phone's folder are the owner's alone, whatever the caller's
//! umask), its command line (no secret in argv, where `ps` shows it) and what
//! `eid serve` logs.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::PIN;

/// `eid` with the caller's `EID_*` variables removed, run under the common
/// login-shell umask 022 (new files 0644, folders 0755 unless `eid` narrows
/// them). The shell sets it for the child only: the test process keeps its own.
fn eid_command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let clean = crate::support::eid_command();
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(r#"umask 022 && exec "$0" "$@""#)
        .arg(clean.get_program())
        .args(args);
    for (name, value) in clean.get_envs() {
        if value.is_none() {
            cmd.env_remove(name);
        }
    }
    cmd.envs(env.iter().copied());
    cmd
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The one JSON object on stdout.
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("{e}: {:?} / {:?}", self.stdout, self.stderr))
    }

    #[track_caller]
    fn ok(&self) -> Value {
        assert_eq!(self.code, 0, "{} / {}", self.stdout, self.stderr);
        self.json()
    }
}

fn eid(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
    let mut child = eid_command(args, env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// `eid serve` on `<dir>/server`, its stderr in `<dir>/serve.log`. Killed
/// when dropped.
struct Serve {
    child: Child,
    url: String,
    pin: String,
    token_file: PathBuf,
    data_dir: PathBuf,
    log: PathBuf,
}

impl Serve {
    fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        let data_dir = dir.join("server");
        let log = dir.join("serve.log");
        let mut child = eid_command(
            &["--json", "serve", "--data-dir", data_dir.to_str().unwrap()],
            env,
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!(
                "eid serve did not start: {e}: {line:?} / {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        Self {
            child,
            url: ready["listening"].as_str().unwrap().to_owned(),
            pin: ready["spki_pin"].as_str().unwrap().to_owned(),
            token_file: PathBuf::from(ready["admin_token_file"].as_str().unwrap()),
            data_dir,
            log,
        }
    }

    /// Server and pin, plus the fast test-only KDF; no credential.
    fn env(&self) -> Vec<(&str, &str)> {
        vec![
            ("EID_SERVER", self.url.as_str()),
            ("EID_SPKI_PIN", self.pin.as_str()),
            ("EID_KDF_ITERATIONS", "1000"),
        ]
    }

    fn token(&self) -> String {
        std::fs::read_to_string(&self.token_file)
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Waits (at most 10 s) until the log holds `text`; returns the log.
    fn wait_for_log(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap();
            if log.contains(text) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The permission bits in octal, as `ls -l` readers think of them.
fn mode(path: &Path) -> String {
    let mode = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode();
    format!("{:o}", mode & 0o777)
}

/// Every folder under `dir` (itself included) that is not 0700 and every
/// file that is not 0600, with its mode.
fn not_private(dir: &Path) -> Vec<String> {
    let mut open = Vec::new();
    if mode(dir) != "700" {
        open.push(format!("{}/ {}", dir.display(), mode(dir)));
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            open.extend(not_private(&path));
        } else if mode(&path) != "600" {
            open.push(format!("{} {}", path.display(), mode(&path)));
        }
    }
    open.sort();
    open
}

/// An identity with an activation code; returns the code.
fn identity_with_code(s: &Serve, user_id: &str) -> String {
    let mut env = s.env();
    let token_file = s.token_file.to_str().unwrap();
    env.push(("EID_ADMIN_TOKEN_FILE", token_file));
    let created = eid(
        &[
            "--json",
            "admin",
            "create-identity",
            "--user-id",
            user_id,
            "--email",
            "grete@example.dk",
        ],
        &env,
        None,
    )
    .ok();
    let identity = created["identity_id"].as_str().unwrap();
    let code = eid(
        &["--json", "admin", "activation-code", "--identity", identity],
        &env,
        None,
    )
    .ok();
    code["activation_code"].as_str().unwrap().to_owned()
}

#[test]
fn eid_serve_and_the_phone_keep_their_folders_private_under_a_permissive_umask() {
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(dir.path(), &[]);
    let code = identity_with_code(&s, "grete#1950x");
    let phone = dir.path().join("phones").join("grete");
    let mut env = s.env();
    env.push(("EID_APP_DIR", phone.to_str().unwrap()));
    eid(
        &[
            "--json",
            "app",
            "activate",
            "--user-id",
            "grete#1950x",
            "--code",
            &code,
            "--pin-stdin",
        ],
        &env,
        Some(&format!("{PIN}\n")),
    )
    .ok();

    // The server still runs: its database has its -wal and -shm.
    for name in ["eid-server.sqlite3-wal", "eid-server.sqlite3-shm"] {
        assert!(s.data_dir.join(name).exists(), "{name} missing");
    }
    assert!(phone.join("core.sqlite3").exists());
    let mut open = not_private(&s.data_dir);
    open.extend(not_private(&phone));
    // The phone's parent folder was made by `eid` too.
    let parent = dir.path().join("phones");
    if mode(&parent) != "700" {
        open.push(format!("{}/ {}", parent.display(), mode(&parent)));
    }
    assert_eq!(open, Vec::<String>::new());
}

#[test]
fn eid_serve_logs_its_start_on_stderr_without_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(dir.path(), &[("EID_LOG", "info")]);
    let log = s.wait_for_log("eid-server listening");
    assert!(log.contains("eid-server listening"), "stderr: {log:?}");
    assert!(!log.contains('\u{1b}'), "colour codes in a file: {log:?}");
    // Events are logged with ids, never the admin token.
    identity_with_code(&s, "hans#1948x");
    let log = s.wait_for_log("activation code issued");
    assert!(log.contains("identity created"), "stderr: {log:?}");
    assert!(!log.contains(&s.token()), "the admin token is in the log");
}

#[test]
fn secrets_on_the_command_line_are_refused_with_a_usage_error() {
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "admin",
                "show",
                "--identity",
                "00000000000000000000000000000000",
                "--admin-token",
                "s3cr3t-value-1234",
            ],
            "EID_ADMIN_TOKEN",
        ),
        (
            &[
                "--admin-token=s3cr3t-value-1234",
                "admin",
                "show",
                "--identity",
                "x",
            ],
            "EID_ADMIN_TOKEN",
        ),
        (
            &[
                "rp",
                "cancel",
                "--request",
                "x",
                "--api-key",
                "s3cr3t-value-1234",
            ],
            "EID_API_KEY",
        ),
        (
            &["rp", "binding-code", "--secret", "s3cr3t-value-1234"],
            "EID_BINDING_SECRET",
        ),
    ];
    for (args, variable) in cases {
        // JSON: kind "usage", exit code 2, the secret not echoed.
        let mut with_json = vec!["--json"];
        with_json.extend_from_slice(args);
        let run = eid(&with_json, &[], None);
        assert_eq!(run.code, 2, "{args:?}: {} / {}", run.stdout, run.stderr);
        let error = &run.json()["error"];
        assert_eq!(error["kind"], "usage", "{args:?}: {error}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(variable), "{args:?}: {message}");
        assert!(message.contains("-file"), "{args:?}: {message}");
        assert!(!run.stdout.contains("s3cr3t") && !run.stderr.contains("s3cr3t"));
        // Text: the same advice on stderr.
        let run = eid(args, &[], None);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(variable), "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("s3cr3t"), "{}", run.stderr);
    }
}

#[test]
fn the_old_pin_flag_is_refused_with_its_new_name_and_where_the_persons_pin_goes() {
    const MESSAGE: &str = "--pin is now --spki-pin (the server key pin); the person's PIN comes \
                           from --pin-stdin or EID_PIN";
    let cases: &[&[&str]] = &[
        &["app", "activate", "--pin", "384726"],
        &["--pin=384726", "app", "pending"],
        &["admin", "show", "--identity", "x", "--pin"],
    ];
    for args in cases {
        let mut with_json = vec!["--json"];
        with_json.extend_from_slice(args);
        let run = eid(&with_json, &[], None);
        assert_eq!(run.code, 2, "{args:?}: {} / {}", run.stdout, run.stderr);
        let error = &run.json()["error"];
        assert_eq!(error["kind"], "usage", "{args:?}: {error}");
        assert_eq!(error["message"], MESSAGE, "{args:?}");
        assert!(!run.stdout.contains("384726"), "the PIN is echoed");
        let run = eid(args, &[], None);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(MESSAGE), "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("384726"), "the PIN is echoed");
    }
    // The new name is listed in the help, as the server key pin.
    let help = eid(&["--help"], &[], None);
    assert!(help.stdout.contains("--spki-pin"), "{}", help.stdout);
    assert!(help.stdout.contains("server key pin"), "{}", help.stdout);
}

#[test]
fn global_options_are_listed_under_their_own_heading_after_the_commands_own() {
    for command in [
        &["app", "activate", "--help"][..],
        &["rp", "--help"],
        &["--help"],
    ] {
        let help = eid(command, &[], None);
        assert_eq!(help.code, 0, "{command:?}: {}", help.stderr);
        let text = &help.stdout;
        let heading = text
            .find("Global options:")
            .unwrap_or_else(|| panic!("{command:?}: {text}"));
        let (own, global) = text.split_at(heading);
        // The command's own flags, not its description (which may name a
        // global flag).
        let own = &own[own.find("Options:").unwrap()..];
        for flag in ["--json", "--server", "--spki-pin", "--admin-token-file"] {
            assert!(global.contains(flag), "{command:?}: {flag} in {text}");
            assert!(
                !own.contains(flag),
                "{command:?}: {flag} among its own: {text}"
            );
        }
    }
    let activate = eid(&["app", "activate", "--help"], &[], None).stdout;
    let heading = activate.find("Global options:").unwrap();
    assert!(activate[..heading].contains("--user-id"), "{activate}");
}

#[test]
fn admin_token_api_key_and_binding_secret_come_from_a_file_or_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(dir.path(), &[]);
    let token = s.token();
    let token_file = s.token_file.to_str().unwrap().to_owned();
    let register = |name: &str, extra: &[&str], env: &[(&str, &str)]| {
        let mut all = s.env();
        all.extend_from_slice(env);
        let mut args = vec!["--json"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["admin", "register-provider", "--name", name]);
        eid(&args, &all, None)
    };
    register(
        "Nordisk Bank A/S",
        &["--admin-token-file", &token_file],
        &[],
    )
    .ok();
    register(
        "Fynske Spareinstitut",
        &[],
        &[("EID_ADMIN_TOKEN_FILE", &token_file)],
    )
    .ok();
    let sp = register("Jysk Kommune", &[], &[("EID_ADMIN_TOKEN", &token)]).ok();

    // Without any: a missing option naming the file and the variable.
    let missing = register("Vestegnens Forsyning", &[], &[]);
    assert_ne!(missing.code, 0);
    let error = &missing.json()["error"];
    assert_eq!(error["kind"], "missing_option", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("--admin-token-file")
    );

    let api_key = sp["api_key"].as_str().unwrap();
    let key_file = dir.path().join("api-key");
    std::fs::write(&key_file, format!("{api_key}\n")).unwrap();
    let key_file = key_file.to_str().unwrap();
    // An unknown request: the key was accepted, the request not found.
    let status = |extra: &[&str], env: &[(&str, &str)]| {
        let mut all = s.env();
        all.extend_from_slice(env);
        let mut args = vec!["--json"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[
            "rp",
            "status",
            "--request",
            "0123456789abcdef0123456789abcdef",
        ]);
        let run = eid(&args, &all, None);
        assert_ne!(run.code, 0);
        let error = run.json()["error"].clone();
        assert!(error["code"].is_string(), "{error}");
        error["code"].clone()
    };
    assert_eq!(
        status(&[], &[("EID_API_KEY", "wrong-key-wrong-key")]),
        "unauthorized"
    );
    assert_eq!(
        status(&["--api-key-file", key_file], &[]),
        "unknown_request"
    );
    assert_eq!(
        status(&[], &[("EID_API_KEY_FILE", key_file)]),
        "unknown_request"
    );
    assert_eq!(status(&[], &[("EID_API_KEY", api_key)]), "unknown_request");

    // The binding secret of a QR request, offline.
    let vectors: Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testvectors/binding-v1.json"
    )))
    .unwrap();
    let v = &vectors["vectors"][0];
    let at = v["unix_ms"].as_u64().unwrap().to_string();
    let secret_file = dir.path().join("binding-secret");
    std::fs::write(&secret_file, v["secret_hex"].as_str().unwrap()).unwrap();
    let secret_file = secret_file.to_str().unwrap();
    let binding = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["--json", "rp", "binding-code", "--at-ms", &at];
        args.extend_from_slice(extra);
        eid(&args, env, None).ok()["code"].clone()
    };
    assert_eq!(binding(&["--secret-file", secret_file], &[]), v["code"]);
    assert_eq!(
        binding(&[], &[("EID_BINDING_SECRET_FILE", secret_file)]),
        v["code"]
    );
    assert_eq!(
        binding(
            &[],
            &[("EID_BINDING_SECRET", v["secret_hex"].as_str().unwrap())]
        ),
        v["code"]
    );
}

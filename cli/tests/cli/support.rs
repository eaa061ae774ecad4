//! What every group of `eid` tests needs: the binary with a clean
//! environment, and the PIN the test phones use.

use std::process::{Command, Stdio};

use serde_json::Value;

/// A PIN that passes the default policy.
pub(crate) const PIN: &str = "384726";

/// `eid` without any `EID_` variable of this process's environment, so
/// whatever the caller set (a server, a token, a fail point) cannot leak into
/// a test; each test gives the child exactly the variables it means.
pub(crate) fn eid_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eid"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("EID_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// Runs `eid --json ...` with exactly `env`; the exit code and the one JSON
/// object it printed.
pub(crate) fn eid_json(args: &[&str], env: &[(&str, &str)]) -> (i32, Value) {
    let out = eid_command()
        .arg("--json")
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "one JSON object expected, got {stdout:?} ({e}; stderr {:?})",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), json)
}

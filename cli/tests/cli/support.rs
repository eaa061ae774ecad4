//! What every group of `eid` tests needs: the binary with a clean
//! environment, and the PIN the test phones use.

use std::process::Command;

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

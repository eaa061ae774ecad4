//! Fail points for the crash-consistency harness (cli/tests/cli/crash.rs).
//!
//! Compiled only with the cargo feature `crash-points` (off by default, so a
//! release build contains no fail point and ignores `EID_CRASH_AT`). With the
//! feature, [`point`] kills the process with a real `SIGKILL` when the
//! environment variable `EID_CRASH_AT` names it: `EID_CRASH_AT=<name>` at the
//! first hit, `EID_CRASH_AT=<name>@<n>` at the n-th hit in this process.
//! Nothing after the point runs: no destructor, no flush, no answer.
//!
//! It lives here because both the core and the server place fail points and
//! both depend on this crate; their own `crash-points` features turn this
//! one on. Point names start with `core.` or `server.`
//! (docs/reliability.md lists them).

/// A fail point: does nothing unless the `crash-points` feature is on and
/// `EID_CRASH_AT` names this point.
#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub fn point(_name: &'static str) {}

/// A fail point: kills this process with `SIGKILL` when `EID_CRASH_AT` names it.
#[cfg(feature = "crash-points")]
pub fn point(name: &'static str) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static HITS: AtomicU32 = AtomicU32::new(0);
    let Ok(spec) = std::env::var("EID_CRASH_AT") else {
        return;
    };
    let (target, nth) = match spec.split_once('@') {
        Some((t, n)) => (t, n.trim().parse::<u32>().unwrap_or(1).max(1)),
        None => (spec.as_str(), 1),
    };
    if target.trim() != name {
        return;
    }
    if HITS.fetch_add(1, Ordering::SeqCst) + 1 != nth {
        return;
    }
    eprintln!("crash point {name}: SIGKILL");
    // `unsafe` is forbidden workspace-wide, so no libc::kill: the `kill`
    // utility sends the real signal. Block until it lands so nothing after the
    // point runs; abort (SIGABRT, which the harness reports) if it never does.
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status();
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::process::abort();
}

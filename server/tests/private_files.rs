//! The server's data folder is its owner's alone: the folder is 0700 and the
//! database (with its `-wal`/`-shm`), the admin token and the keys are 0600,
//! whatever the process umask. Another local user must not read binding
//! secrets, activation codes or contact data out of a live database.
//!
//! This binary sets the process umask to the common 022 (umask is
//! process-wide: it must stay the only test in this file's process).
#![cfg(unix)]
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use eid_api_client::{AdminClient, Endpoint};
use eid_server::ServerOptions;

/// The permission bits in octal, as `ls -l` readers think of them.
fn mode(path: &Path) -> String {
    let mode = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode();
    format!("{:o}", mode & 0o777)
}

/// Starts a server on `data_dir`, writes through the admin API, and returns
/// while the server still runs (so the `-wal` and `-shm` files exist).
async fn start_and_write(data_dir: &Path, user_id: &str) -> eid_server::RunningServer {
    let server = eid_server::start(ServerOptions::new(common::config(data_dir)))
        .await
        .unwrap();
    let endpoint = Endpoint::new(&server.base_url(), &server.spki_pin).unwrap();
    let admin = AdminClient::new(endpoint, &server.admin_token);
    let identity = admin
        .create_identity(user_id, Some("Grete Jensen"))
        .await
        .unwrap();
    admin
        .issue_activation_code(identity.identity_id)
        .await
        .unwrap();
    server
}

/// The folder is 0700 and every file in it but the public TLS certificate
/// 0600; the message lists every one that is not.
fn assert_private(data_dir: &Path) {
    let mut open = Vec::new();
    if mode(data_dir) != "700" {
        open.push(format!("folder {}", mode(data_dir)));
    }
    for name in [
        "eid-server.sqlite3",
        "eid-server.sqlite3-wal",
        "eid-server.sqlite3-shm",
        "admin-token",
        "server-signing-key.pk8",
        "oidc-id-token-key.pk8",
        "oidc-pairwise.key",
        "dev-tls-key.pem",
    ] {
        assert!(data_dir.join(name).exists(), "{name} missing");
    }
    for entry in std::fs::read_dir(data_dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        // The certificate is public: every client is shown it.
        if name != "dev-tls-cert.pem" && mode(&entry.path()) != "600" {
            open.push(format!("{name} {}", mode(&entry.path())));
        }
    }
    open.sort();
    assert!(open.is_empty(), "{}: {open:?}", data_dir.display());
}

#[tokio::test]
async fn data_folder_and_its_files_are_private_under_a_permissive_umask() {
    // The umask of a typical login shell: new files 0644, folders 0755.
    rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o022));
    let parent = tempfile::tempdir().unwrap();

    // A folder the server creates.
    let fresh = parent.path().join("fresh");
    let server = start_and_write(&fresh, "grete#1950x").await;
    assert_private(&fresh);
    server.shutdown().await;

    // A folder left open by an earlier version: 0755, database 0644.
    let old = parent.path().join("old");
    {
        let server = start_and_write(&old, "grete#1950x").await;
        server.shutdown().await;
    }
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
    for entry in std::fs::read_dir(&old).unwrap() {
        std::fs::set_permissions(
            entry.unwrap().path(),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }
    let server = start_and_write(&old, "hans#1948x").await;
    assert_private(&old);
    server.shutdown().await;
}

//! What `eid-server` and `eid serve` print once they listen: where the
//! server is, its TLS pin and files, and `export` lines to paste into the
//! terminal that runs `eid`. One function for both programs, so that what
//! they print cannot drift apart.
//!
//! The labelled lines (`listening on`, `TLS SPKI pin:`, `admin token file:`)
//! are read by the test servers of the Kotlin and Swift shells and by
//! `scripts/*.sh`: keep them, in this order.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Config, RunningServer};

/// What the start-up banner shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupFacts {
    /// `https://<addr>`.
    pub base_url: String,
    /// The TLS certificate's SPKI pin.
    pub spki_pin: String,
    /// The server's signing public key, base64.
    pub server_key: String,
    /// The database: the SQLite file, absolute, or with `database_url` the
    /// PostgreSQL database as `postgresql://host:port/name` (never the user
    /// or password).
    pub database: PathBuf,
    /// The admin token file, absolute; `None` when the configuration sets
    /// `admin_token` (then no file is read).
    pub admin_token_file: Option<PathBuf>,
    /// The phone's folder for `eid app ...` (`eid serve --app-dir`), absolute.
    pub app_dir: Option<PathBuf>,
}

impl StartupFacts {
    /// The facts of a started `server` run with `config`; `app_dir` is the
    /// phone's folder the caller knows of, if any.
    pub fn of(server: &RunningServer, config: &Config, app_dir: Option<&Path>) -> Self {
        Self {
            base_url: server.base_url(),
            spki_pin: server.spki_pin.clone(),
            server_key: eid_protocol::wire::b64::encode(server.server_public_key.as_bytes()),
            database: match &config.database_url {
                Some(url) => PathBuf::from(
                    crate::store::postgres::parse_database_url(url.expose())
                        .map(|pg| {
                            format!(
                                "postgresql://{}",
                                crate::store::postgres::DatabaseTarget::of(&pg)
                            )
                        })
                        .unwrap_or_else(|_| "postgresql (database_url)".to_owned()),
                ),
                None => absolute(&server.database_path),
            },
            admin_token_file: config
                .admin_token
                .is_none()
                .then(|| absolute(&config.data_dir.join("admin-token"))),
            app_dir: app_dir.map(absolute),
        }
    }
}

/// `path` made absolute against the working directory (not resolved: a
/// path through a symbolic link stays as the user gave it). Unchanged if the
/// working directory cannot be read.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// `text` as one shell word: bare when it has only characters no shell
/// treats specially, else in single quotes.
fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@,%#".contains(c));
    if plain && !text.starts_with('#') {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// The banner `program` prints on stdout once it listens: the labelled
/// lines, then ready-to-paste `export` lines with absolute paths.
pub fn banner(program: &str, facts: &StartupFacts) -> String {
    let token_file = match &facts.admin_token_file {
        Some(path) => path.display().to_string(),
        None => "none (admin_token is set in the configuration)".to_owned(),
    };
    let mut text = format!(
        "{program} listening on {url}\n\
         \x20 TLS SPKI pin:      {pin}\n\
         \x20 server key:        {key}\n\
         \x20 database:          {database}\n\
         \x20 admin token file:  {token_file}\n\
         \x20 OpenAPI document:  {url}/openapi.json\n\
         \n\
         # To use it with `eid` from another terminal, paste:\n\
         export EID_SERVER={url_word}\n\
         export EID_SPKI_PIN={pin_word}\n",
        url = facts.base_url,
        pin = facts.spki_pin,
        key = facts.server_key,
        database = facts.database.display(),
        url_word = shell_word(&facts.base_url),
        pin_word = shell_word(&facts.spki_pin),
    );
    match &facts.admin_token_file {
        Some(path) => text.push_str(&format!(
            "export EID_ADMIN_TOKEN_FILE={}\n",
            shell_word(&path.display().to_string())
        )),
        None => text.push_str(
            "# the admin token is the configuration's admin_token: export EID_ADMIN_TOKEN yourself\n",
        ),
    }
    if let Some(app_dir) = &facts.app_dir {
        text.push_str(&format!(
            "export EID_APP_DIR={}\n",
            shell_word(&app_dir.display().to_string())
        ));
    }
    text
}

/// Prints what a server process shows once it listens: the development
/// profile's warning (if on) on stderr, then [`banner`] on stdout in one
/// write, flushed, so that a reader waiting for its last labelled line has
/// all of it.
pub fn print_startup(program: &str, facts: &StartupFacts, config: &Config) -> std::io::Result<()> {
    if let Some(warning) = config.development_warning() {
        let mut err = std::io::stderr().lock();
        err.write_all(warning.as_bytes())?;
        err.flush()?;
    }
    let mut out = std::io::stdout().lock();
    out.write_all(banner(program, facts).as_bytes())?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> StartupFacts {
        StartupFacts {
            base_url: "https://127.0.0.1:8443".to_owned(),
            spki_pin: "sha256/AAAA+bb/cc=".to_owned(),
            server_key: "BBBB".to_owned(),
            database: PathBuf::from("/srv/eid data/eid-server.sqlite3"),
            admin_token_file: Some(PathBuf::from("/srv/eid data/admin-token")),
            app_dir: None,
        }
    }

    #[test]
    fn the_banner_keeps_the_labelled_lines_in_order_and_ends_with_export_lines() {
        let text = banner("eid-server", &facts());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "eid-server listening on https://127.0.0.1:8443");
        assert_eq!(lines[1], "  TLS SPKI pin:      sha256/AAAA+bb/cc=");
        let token = lines
            .iter()
            .position(|l| l.contains("admin token file:"))
            .unwrap();
        assert!(token > 1, "{text}");
        assert_eq!(
            &lines[lines.len() - 3..],
            [
                "export EID_SERVER=https://127.0.0.1:8443",
                "export EID_SPKI_PIN=sha256/AAAA+bb/cc=",
                "export EID_ADMIN_TOKEN_FILE='/srv/eid data/admin-token'",
            ]
        );
    }

    #[test]
    fn the_app_dir_is_exported_when_there_is_one() {
        let with_app = StartupFacts {
            app_dir: Some(PathBuf::from("/home/tester/phone")),
            ..facts()
        };
        let text = banner("eid serve", &with_app);
        assert!(text.starts_with("eid serve listening on "), "{text}");
        assert!(
            text.ends_with("export EID_APP_DIR=/home/tester/phone\n"),
            "{text}"
        );
    }

    #[test]
    fn a_configured_admin_token_is_neither_exported_nor_printed() {
        let without_file = StartupFacts {
            admin_token_file: None,
            ..facts()
        };
        let text = banner("eid-server", &without_file);
        assert!(!text.contains("EID_ADMIN_TOKEN_FILE"), "{text}");
        assert!(text.contains("admin token file:  none"), "{text}");
    }

    #[test]
    fn shell_words_survive_pasting() {
        assert_eq!(shell_word("/tmp/a-b_c.d"), "/tmp/a-b_c.d");
        assert_eq!(shell_word("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_word("/tmp/it's"), r"'/tmp/it'\''s'");
        assert_eq!(shell_word("$HOME"), "'$HOME'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn relative_paths_are_made_absolute() {
        let made = absolute(Path::new("data/admin-token"));
        assert!(made.is_absolute(), "{}", made.display());
        assert!(made.ends_with("data/admin-token"));
    }
}

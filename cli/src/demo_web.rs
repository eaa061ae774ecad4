//! `eid demo --web`: the web login of the demo, in a real browser.
//!
//! Starts the embedded server in a temporary folder, creates the demo
//! person's identity, activates a phone for it (in a phone folder that
//! `eid app` can open from another terminal), registers "Danske Eksempel
//! Bank" with an OpenID Connect client (`private_key_jwt`, a P-256 key the
//! bank generates) and serves the bank's web site (`bank.rs`) on 127.0.0.1
//! until Ctrl-C.
//!
//! Text mode prints the bank's address, the user ID and how to approve from
//! a second terminal; when stdin is a terminal (or with `--phone-loop on`)
//! a built-in phone watches for the login, shows it, asks for the binding
//! code the browser shows and approves with the demo PIN. `--json` prints
//! one line with everything a test needs and runs no phone loop.
//!
//! The embedded server reads the `EID_SERVER_*` environment like
//! `eid-server` (docs/configuration.md), so a test can shorten
//! `request_lifetime_secs` to see a login expire.

use std::collections::HashSet;
use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use clap::ValueEnum;
use eid_api_client::{AdminClient, Endpoint};
use eid_protocol::RequestId;
use eid_protocol::wire::RegisterOidcClientRequest;
use serde::Serialize;

use crate::bank::{self, BankSettings, ClientKey};
use crate::common::{Common, endpoint};
use crate::demo::{DEMO_PIN, DemoArgs, PERSON, PROVIDER};
use crate::error::{CliError, ErrorKind};
use crate::json;
use crate::output::{Report, view_lines};
use crate::phone::{Phone, PhoneFolder, ServerSettings};

/// Whether `eid demo --web` runs its built-in phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PhoneLoop {
    /// In text mode when stdin is a terminal.
    Auto,
    /// Always (text mode only).
    On,
    /// Never: approve with `eid app` from another terminal.
    Off,
}

/// The line `eid demo --web --json` prints when the bank is ready.
#[derive(Debug, Serialize)]
struct WebDemoReady {
    /// The phone's data folder (`EID_APP_DIR`).
    app_dir: String,
    /// The environment that points `eid app` at the demo's phone (the PIN
    /// is not in it: it goes in `EID_PIN` or on stdin).
    app_env: AppEnv,
    /// The bank's front page.
    bank_url: String,
    /// The broker's base URL for the phone and the APIs (`127.0.0.1`).
    broker_url: String,
    /// The OIDC issuer the bank uses: the broker as `localhost` (the login
    /// and self-service pages are opened there, so a chip can be used).
    issuer: String,
    /// The broker's self-signed certificate (PEM).
    certificate_pem: String,
    /// The bank's OIDC client.
    client_id: String,
    /// How the bank authenticates to the broker.
    client_auth: &'static str,
    /// This process (to stop it with SIGINT).
    pid: u32,
    /// The broker's request lifetime in seconds.
    request_lifetime_secs: u64,
    /// `sha256/<base64>`: the pin of the broker's TLS key.
    spki_pin: String,
    /// The same hash as bare base64, as Chromium's
    /// `--ignore-certificate-errors-spki-list` takes it.
    spki_sha256_base64: String,
    /// The demo person's user ID.
    user_id: String,
    /// The demo person's code display (docs/authenticators.md).
    code_device: DemoCodeDevice,
    /// An audio code reader nobody has yet, for taking into use on
    /// `/self-service/code-device/app`.
    code_reader: DemoCodeReader,
}

/// The demo's spare audio code reader: imported, not yet anyone's.
#[derive(Debug, Serialize)]
struct DemoCodeReader {
    /// Its serial number.
    serial: String,
    /// The batch file (`eid token code --pskc`).
    pskc_file: String,
    /// The file holding the batch's pre-shared key (`EID_PSKC_KEY_FILE`).
    pre_shared_key_file: String,
}

/// The demo's code display: a one-device PSKC batch the demo made and
/// imported, activated on the demo person.
#[derive(Debug, Serialize)]
struct DemoCodeDevice {
    /// Its serial number.
    serial: String,
    /// The batch file (`eid token code --pskc`).
    pskc_file: String,
    /// The file holding the batch's pre-shared key (`EID_PSKC_KEY_FILE`).
    pre_shared_key_file: String,
    /// The access code chosen for it (a demo value).
    access_code: &'static str,
}

/// The demo code display's serial number.
const DEMO_SERIAL: &str = "DEMO-CD-0001";
/// The demo's spare audio code reader's serial number.
const DEMO_READER_SERIAL: &str = "DEMO-CR-0001";
/// The demo code display's access code (demo only: printed on purpose).
const DEMO_ACCESS_CODE: &str = "demo-kodeviser-42";

/// A one-device PSKC batch of `kind` with a fresh seed and pre-shared key,
/// written to `<dir>/<name>.pskc` and `<dir>/<name>.key` and imported.
/// Returns the device's parameters and seed, and the two files.
async fn demo_batch(
    admin: &AdminClient,
    kind: eid_protocol::wire::CodeDeviceKind,
    serial: &str,
    (dir, name): (&std::path::Path, &str),
) -> Result<
    (
        eid_server::code_devices::totp::Params,
        zeroize::Zeroizing<[u8; 20]>,
        std::path::PathBuf,
        std::path::PathBuf,
    ),
    CliError,
> {
    use eid_server::code_devices::pskc::build::batch_document;
    use eid_server::code_devices::totp::{Algorithm, Params};
    let io = |e: std::io::Error| CliError::new(ErrorKind::Io, e.to_string());
    let key: zeroize::Zeroizing<[u8; 16]> =
        zeroize::Zeroizing::new(eid_protocol::crypto::random_array());
    let seed: zeroize::Zeroizing<[u8; 20]> =
        zeroize::Zeroizing::new(eid_protocol::crypto::random_array());
    let params = Params {
        algorithm: Algorithm::Sha1,
        digits: 6,
        step_secs: 30,
    };
    let document = batch_document(&key, &format!("demo-{name}"), &[(serial, params, &*seed)]);
    let pskc_file = dir.join(format!("{name}.pskc"));
    let key_file = dir.join(format!("{name}.key"));
    std::fs::write(&pskc_file, &document).map_err(io)?;
    eid_server::write_private_file(&key_file, hex::encode(*key).as_bytes()).map_err(io)?;
    admin
        .import_token_batch(&eid_protocol::wire::ImportTokenBatchRequest {
            pskc: document,
            pre_shared_key: hex::encode(*key),
            kind,
            label: None,
        })
        .await?;
    Ok((params, seed, pskc_file, key_file))
}

/// Imports the demo's spare audio code reader (nobody's yet).
async fn demo_code_reader(
    admin: &AdminClient,
    dir: &std::path::Path,
) -> Result<DemoCodeReader, CliError> {
    let kind = eid_protocol::wire::CodeDeviceKind::CodeReader;
    let (_, _, pskc_file, key_file) =
        demo_batch(admin, kind, DEMO_READER_SERIAL, (dir, "code-reader")).await?;
    Ok(DemoCodeReader {
        serial: DEMO_READER_SERIAL.to_owned(),
        pskc_file: pskc_file.display().to_string(),
        pre_shared_key_file: key_file.display().to_string(),
    })
}

/// Makes a one-device PSKC batch with a fresh seed and pre-shared key in
/// `dir`, imports it and activates the device on `user_id` with a fresh
/// activation code from support and two consecutive codes.
async fn demo_code_device(
    admin: &AdminClient,
    ep: &Endpoint,
    identity: eid_protocol::IdentityId,
    user_id: &str,
    dir: &std::path::Path,
) -> Result<DemoCodeDevice, CliError> {
    use eid_server::code_devices::totp;
    let kind = eid_protocol::wire::CodeDeviceKind::CodeDisplay;
    let (params, seed, pskc_file, key_file) =
        demo_batch(admin, kind, DEMO_SERIAL, (dir, "code-display")).await?;
    let code = admin.issue_activation_code(identity).await?;
    let step = totp::step_at(crate::when::now_ms() / 1000, params.step_secs);
    eid_api_client::SelfServiceClient::new(ep.clone())
        .activate_code_device(&eid_protocol::wire::ActivateCodeDeviceRequest {
            user_id: user_id.to_owned(),
            activation_code: code.activation_code,
            serial: DEMO_SERIAL.to_owned(),
            first_code: totp::code_for_step(params, &*seed, step - 1),
            second_code: totp::code_for_step(params, &*seed, step),
            access_code: DEMO_ACCESS_CODE.to_owned(),
        })
        .await?;
    Ok(DemoCodeDevice {
        serial: DEMO_SERIAL.to_owned(),
        pskc_file: pskc_file.display().to_string(),
        pre_shared_key_file: key_file.display().to_string(),
        access_code: DEMO_ACCESS_CODE,
    })
}

/// What the ready line tells of the embedded server's configuration.
struct ServerFacts {
    request_lifetime_secs: u64,
    certificate_pem: std::path::PathBuf,
}

/// `eid app`'s environment for the demo's phone.
#[derive(Debug, Serialize)]
#[allow(non_snake_case)]
struct AppEnv {
    EID_APP_DIR: String,
    EID_SERVER: String,
    EID_SPKI_PIN: String,
}

/// Runs the web demo until Ctrl-C.
pub(crate) async fn run(common: &Common, args: &DemoArgs) -> Result<Report, CliError> {
    let phone_loop = match (args.phone_loop, common.json) {
        (PhoneLoop::On, true) => {
            return Err(CliError::new(
                ErrorKind::Usage,
                "--phone-loop on needs text mode: with --json, approve with `eid app`",
            ));
        }
        (PhoneLoop::On, false) => true,
        (PhoneLoop::Auto, false) => std::io::stdin().is_terminal(),
        (PhoneLoop::Auto | PhoneLoop::Off, _) => false,
    };
    let tmp = tempfile::Builder::new()
        .prefix("eid-demo-web-")
        .tempdir()
        .map_err(|e| {
            CliError::new(
                ErrorKind::Storage,
                format!("cannot create a temporary folder: {e}"),
            )
        })?;
    // The server settings from the environment (EID_SERVER_*), then the
    // demo's own: loopback, the temporary folder, a generated admin token.
    let mut config = eid_server::Config::load(None).map_err(|e| {
        CliError::new(
            ErrorKind::Config,
            format!("the EID_SERVER_* environment is not a valid configuration: {e}"),
        )
    })?;
    config.listen = ([127, 0, 0, 1], 0).into();
    config.data_dir = tmp.path().join("server");
    config.admin_token = None;
    let facts = ServerFacts {
        request_lifetime_secs: config.request_lifetime_secs,
        // The configured certificate, else the development one the server
        // creates in its folder.
        certificate_pem: config
            .tls
            .cert_path
            .clone()
            .unwrap_or_else(|| config.data_dir.join("dev-tls-cert.pem")),
    };
    let server = eid_server::start(eid_server::ServerOptions::new(config))
        .await
        .map_err(|e| CliError::new(ErrorKind::Server, format!("{e:#}")))?;
    let result = serve(common, args, &server, tmp.path(), phone_loop, &facts).await;
    server.shutdown().await;
    result
}

async fn serve(
    common: &Common,
    args: &DemoArgs,
    server: &eid_server::RunningServer,
    dir: &std::path::Path,
    phone_loop: bool,
    facts: &ServerFacts,
) -> Result<Report, CliError> {
    let broker_url = server.base_url();
    let ep: Endpoint = endpoint(&broker_url, &server.spki_pin)?;
    let admin = AdminClient::new(ep.clone(), &server.admin_token);

    // The person and their phone.
    let identity = admin.create_identity(&args.user_id, Some(PERSON)).await?;
    let code = admin.issue_activation_code(identity.identity_id).await?;
    let app_dir = dir.join("phone");
    let phone = PhoneFolder::at(app_dir.clone(), common).open_with(ServerSettings::new(
        broker_url.clone(),
        server.spki_pin.clone(),
    ))?;
    phone
        .core
        .activate(&identity.user_id, &code.activation_code, DEMO_PIN)
        .await?;
    // `eid app` in another terminal finds the server in the folder.
    phone.remember_server()?;
    let code_device =
        demo_code_device(&admin, &ep, identity.identity_id, &identity.user_id, dir).await?;
    let code_reader = demo_code_reader(&admin, dir).await?;

    // The bank: its port first (the redirect URI), then its client.
    let sp = admin.register_service_provider(PROVIDER).await?;
    let (listener, bank_url) = bank::bind().await?;
    let redirect_uri = format!("{bank_url}/callback");
    let key = ClientKey::generate()?;
    let client = admin
        .register_oidc_client(&RegisterOidcClientRequest {
            service_provider_id: sp.service_provider_id,
            redirect_uris: vec![redirect_uri.clone()],
            client_secret_basic: false,
            jwk: Some(key.public_jwk()),
            scopes: vec!["openid".into()],
        })
        .await?;
    let client_id = client.client_id.clone();
    // The bank and the browser call the broker `localhost`, so the issuer
    // (named by the Host the request came by) is a domain: a WebAuthn
    // relying party, which the chip needs, cannot be an IP address.
    let issuer = format!("https://localhost:{}", server.addr.port());
    let bank_broker = endpoint(&issuer, &server.spki_pin)?;
    let running = bank::start(
        listener,
        BankSettings {
            broker: bank_broker,
            client_id: client_id.clone(),
            key,
            redirect_uri,
            reference_text: args.text.clone(),
        },
    )
    .await?;

    let app_dir_s = app_dir.display().to_string();
    let ready = WebDemoReady {
        app_dir: app_dir_s.clone(),
        app_env: AppEnv {
            EID_APP_DIR: app_dir_s.clone(),
            EID_SERVER: broker_url.clone(),
            EID_SPKI_PIN: server.spki_pin.clone(),
        },
        bank_url: format!("{bank_url}/"),
        broker_url: broker_url.clone(),
        certificate_pem: facts.certificate_pem.display().to_string(),
        client_id,
        client_auth: "private_key_jwt",
        pid: std::process::id(),
        request_lifetime_secs: facts.request_lifetime_secs,
        spki_pin: server.spki_pin.clone(),
        spki_sha256_base64: server.spki_pin.trim_start_matches("sha256/").to_owned(),
        user_id: identity.user_id.clone(),
        code_device,
        code_reader,
        issuer: issuer.clone(),
    };
    let text = [
        "eID demo, web login: the demo bank and the broker run on 127.0.0.1 (temporary data)"
            .to_owned(),
        String::new(),
        format!("  1. open the bank:   {bank_url}/"),
        "     (the broker's certificate is self-signed: accept it in the browser, or start"
            .to_owned(),
        format!(
            "     Chromium with --ignore-certificate-errors-spki-list={})",
            ready.spki_sha256_base64
        ),
        format!(
            "  2. click \"Log på Netbank\" and type the user ID {}",
            identity.user_id
        ),
        "  3. approve on the phone, with the code the browser shows:".to_owned(),
        format!(
            "     {}in another terminal:\n       export EID_APP_DIR={app_dir_s}\n       \
             eid app open\n       \
             EID_PIN=<the demo PIN> eid app approve --request <ID> --binding-code <CODE>\n     \
             (or `eid app deny` / `eid app report`; stop the demo with Ctrl-C)",
            if phone_loop {
                "the built-in phone below asks for it, or "
            } else {
                ""
            }
        ),
        format!(
            "  or choose \"Kodeviser\" on the login page: the demo code display {} shows
       \
             EID_PSKC_KEY_FILE={} eid token code --serial {} --pskc {}
     \
             and its access code is {}",
            ready.code_device.serial,
            ready.code_device.pre_shared_key_file,
            ready.code_device.serial,
            ready.code_device.pskc_file,
            ready.code_device.access_code
        ),
        format!(
            "  or take the audio code reader {} into use at {issuer}/self-service/code-device/app
     \
             (codes: EID_PSKC_KEY_FILE={} eid token code --serial {} --pskc {};
     \
             the app approves with the code the page shows), then choose \"Kodeoplæser\"",
            ready.code_reader.serial,
            ready.code_reader.pre_shared_key_file,
            ready.code_reader.serial,
            ready.code_reader.pskc_file,
        ),
        format!(
            "  a chip (security key) is registered at {issuer}/self-service/chip and used with
     \
             \"Log på med chip (niveau Høj)\" (set EID_SERVER_CHIP_WAIT_SECS=0 to skip the wait)"
        ),
        String::new(),
        format!("  broker {broker_url} (TLS SPKI pin {})", server.spki_pin),
        format!("  the bank and the browser use it as {issuer}"),
    ];
    {
        let mut out = std::io::stdout().lock();
        let written = if common.json {
            let line = serde_json::to_string(&ready).expect("strings and numbers");
            writeln!(out, "{line}")
        } else {
            text.iter().try_for_each(|l| writeln!(out, "{l}"))
        };
        written
            .and_then(|()| out.flush())
            .map_err(|e| CliError::new(ErrorKind::Io, e.to_string()))?;
    }

    let waited = if phone_loop {
        tokio::select! {
            waited = stop_signal() => waited,
            () = run_phone(&phone) => Ok(()),
        }
    } else {
        stop_signal().await
    };
    running.shutdown().await;
    waited.map_err(|e| CliError::new(ErrorKind::Io, format!("cannot wait for Ctrl-C: {e}")))?;
    Ok(Report::new(
        &json::Stopped { stopped: true },
        vec!["eid demo --web: stopped".to_owned()],
    ))
}

/// Ctrl-C, or SIGTERM (`timeout`, a test harness): either way the demo
/// stops its servers and deletes its temporary folder.
async fn stop_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            waited = tokio::signal::ctrl_c() => waited,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}

/// The built-in phone: waits for each new request, shows it, and asks what
/// to do with it. Runs until the process stops (or stdin closes).
async fn run_phone(phone: &Phone) {
    let mut lines = stdin_lines();
    let mut seen: HashSet<RequestId> = HashSet::new();
    println!();
    println!("phone: waiting for a login (refreshing every second)");
    loop {
        let views = match phone.core.refresh().await {
            Ok(v) => v,
            Err(e) => {
                println!("phone: cannot fetch requests: {e}");
                Vec::new()
            }
        };
        let Some(view) = views.into_iter().find(|v| !seen.contains(&v.request_id)) else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        seen.insert(view.request_id);
        println!();
        println!("phone: a request arrived:");
        for line in view_lines(&view, "  ") {
            println!("{line}");
        }
        println!(
            "phone: type the code the browser shows to approve, \"deny\" to deny, \
             or \"report\" for \"this wasn't me\":"
        );
        let Some(answer) = lines.recv().await else {
            println!("phone: stdin closed; the built-in phone stops (the bank goes on)");
            return std::future::pending().await;
        };
        match decide(phone, &view, answer.trim()).await {
            Ok(what) => println!("phone: {what}"),
            Err(e) => {
                // Nothing was decided (a mistyped code, say): ask again
                // while the request is pending.
                println!("phone: refused: {e}");
                seen.remove(&view.request_id);
            }
        }
        println!("phone: waiting for the next login");
    }
}

async fn decide(
    phone: &Phone,
    view: &eid_core::RequestView,
    answer: &str,
) -> Result<&'static str, CliError> {
    let (authenticator, request) = (&view.authenticator_id, &view.request_id);
    match answer.to_ascii_lowercase().as_str() {
        "deny" => {
            phone.core.deny(authenticator, request).await?;
            Ok("denied")
        }
        "report" => {
            phone.core.report_fraud(authenticator, request).await?;
            Ok("refused and reported (\"this wasn't me\")")
        }
        _ => {
            let code: String = answer.chars().filter(|c| !c.is_whitespace()).collect();
            let token = phone.core.unlock(authenticator, request, DEMO_PIN).await?;
            println!("phone: demo PIN entered and checked; swipe to approve: confirmed");
            let wait_ms = phone.core.read_time_left(authenticator, request)?;
            if wait_ms > 0 {
                tokio::time::sleep(Duration::from_millis(wait_ms)).await;
            }
            phone.core.approve(&token, true, Some(&code)).await?;
            Ok("approved: the browser goes back to the bank")
        }
    }
}

/// Lines of stdin, read on a plain thread: a thread blocked in a read does
/// not keep the process from exiting after Ctrl-C, as a runtime's blocking
/// task would.
fn stdin_lines() -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

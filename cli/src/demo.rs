//! `eid demo`: the whole journey on an embedded server in a temporary folder.
//!
//! Support creates an identity and an activation code, the phone activates
//! with a PIN, a bank asks for a login, the person opens the app, reads the
//! request, enters the PIN, swipes and approves; the bank verifies the signed
//! receipt. Then a request the person did not start is refused with "report
//! fraud", and the bank sees `fraud_reported`.

use std::time::Instant;

use clap::Args;
use eid_api_client::{AdminClient, Endpoint, ProviderClient};
use eid_core::{App, RequestView};
use eid_protocol::wire::{RequestStatus, RequestStatusResponse};
use eid_protocol::{RequestId, RequestKind};

use crate::common::{Common, endpoint, ms_since, reference_text_sha256};
use crate::error::{CliError, ErrorKind};
use crate::json::{self, ProviderReceipt};
use crate::output::{Report, serde_name, view_lines};
use crate::phone::{PhoneFolder, ServerSettings};
use crate::rp::check_receipt;

/// Options of the demo.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// The user ID of the demo person.
    #[arg(long, default_value = "grete#1950x")]
    pub(crate) user_id: String,
    /// The reference text of the login the person approves.
    #[arg(long, default_value = "Log på Netbank – Danske Eksempel Bank")]
    pub(crate) text: String,
    /// Log in on the web instead: serve a demo bank on 127.0.0.1 whose
    /// "Log på Netbank" goes through the broker's hosted login page, until
    /// Ctrl-C (see `demo_web.rs`).
    #[arg(long)]
    pub(crate) web: bool,
    /// With --web: approve in a built-in phone in this terminal (auto: when
    /// stdin is a terminal and without --json).
    #[arg(long, value_enum, default_value = "auto", requires = "web")]
    pub(crate) phone_loop: crate::demo_web::PhoneLoop,
}

/// The demo's PIN (passes the PIN policy); never printed.
pub(crate) const DEMO_PIN: &str = "384726";
pub(crate) const PROVIDER: &str = "Danske Eksempel Bank";
pub(crate) const PERSON: &str = "Grete Jensen";

/// Records and (in text mode) prints the steps as they happen.
struct Journey {
    as_json: bool,
    steps: Vec<json::DemoStep>,
    started: Instant,
}

impl Journey {
    fn say(&self, line: impl AsRef<str>) {
        if !self.as_json {
            println!("{}", line.as_ref());
        }
    }

    /// Records a finished step that started at `t`.
    fn step(&mut self, name: &str, t: Instant, detail: impl AsRef<str>) {
        let ms = ms_since(t);
        self.steps.push(json::DemoStep {
            ms,
            step: name.to_owned(),
        });
        self.say(format!("[{ms:>5} ms] {}", detail.as_ref()));
    }

    fn fail(&self, step: &str, e: impl Into<CliError>) -> CliError {
        e.into().at_step(step)
    }
}

/// Runs the demo.
pub(crate) async fn run(common: &Common, args: &DemoArgs) -> Result<Report, CliError> {
    if args.web {
        return crate::demo_web::run(common, args).await;
    }
    let mut j = Journey {
        as_json: common.json,
        steps: Vec::new(),
        started: Instant::now(),
    };
    let tmp = tempfile::Builder::new()
        .prefix("eid-demo-")
        .tempdir()
        .map_err(|e| {
            CliError::new(
                ErrorKind::Storage,
                format!("cannot create a temporary folder: {e}"),
            )
        })?;

    j.say("eID demo: the whole journey on an embedded server (temporary data)");
    j.say("");

    // 1. Server.
    let t = Instant::now();
    let mut config = eid_server::Config {
        listen: ([127, 0, 0, 1], 0).into(),
        data_dir: tmp.path().join("server"),
        ..eid_server::Config::default()
    };
    config.admin_token = None;
    let server = eid_server::start(eid_server::ServerOptions::new(config))
        .await
        .map_err(|e| {
            j.fail(
                "start_server",
                CliError::new(ErrorKind::Server, format!("{e:#}")),
            )
        })?;
    let base_url = server.base_url();
    let spki_pin = server.spki_pin.clone();
    j.step(
        "start_server",
        t,
        format!("server started on {base_url}\n           TLS SPKI pin {spki_pin}"),
    );

    let result = journey(&mut j, common, args, &server, tmp.path()).await;
    server.shutdown().await;
    let record = result?;
    let total = ms_since(j.started);
    j.say("");
    j.say(format!(
        "done in {total} ms: approved with a verified receipt, and the unwanted request was reported as fraud"
    ));
    let summary = json::DemoSummary {
        authenticator: record.authenticator,
        identity: record.identity,
        login: record.login,
        ok: true,
        refusal: record.refusal,
        server: json::DemoServer {
            spki_pin,
            url: base_url,
        },
        service_provider: record.service_provider,
        steps: std::mem::take(&mut j.steps),
        total_ms: total,
    };
    Ok(Report::new(&summary, Vec::new()))
}

/// What the journey printed about itself (the summary adds the server, the
/// steps and the time).
struct JourneyRecord {
    authenticator: json::PhoneAuthenticator,
    identity: json::IdentityCreated,
    login: json::DemoDecision,
    refusal: json::DemoDecision,
    service_provider: json::DemoProvider,
}

async fn journey(
    j: &mut Journey,
    common: &Common,
    args: &DemoArgs,
    server: &eid_server::RunningServer,
    dir: &std::path::Path,
) -> Result<JourneyRecord, CliError> {
    let ep: Endpoint =
        endpoint(&server.base_url(), &server.spki_pin).map_err(|e| j.fail("connect", e))?;
    let admin = AdminClient::new(ep.clone(), &server.admin_token);

    // 2. Support creates the identity and an activation code.
    let t = Instant::now();
    let identity = admin
        .create_identity(&args.user_id, Some(PERSON))
        .await
        .map_err(|e| j.fail("create_identity", e))?;
    j.step(
        "create_identity",
        t,
        format!(
            "support created identity {} for user ID {:?}",
            identity.identity_id, identity.user_id
        ),
    );
    let t = Instant::now();
    let code = admin
        .issue_activation_code(identity.identity_id)
        .await
        .map_err(|e| j.fail("activation_code", e))?;
    j.step(
        "activation_code",
        t,
        "support issued a single-use activation code (sent by letter)",
    );

    // 3. The phone activates.
    let t = Instant::now();
    let opened = PhoneFolder::at(dir.join("phone"), common)
        .open_with(ServerSettings::new(
            server.base_url(),
            server.spki_pin.clone(),
        ))
        .map_err(|e| j.fail("activate", e))?;
    let phone = &opened.core;
    let authenticator = phone
        .activate(&identity.user_id, &code.activation_code, DEMO_PIN)
        .await
        .map_err(|e| j.fail("activate", e))?;
    j.step(
        "activate",
        t,
        format!(
            "phone activated authenticator {} (device key + PIN-sealed key, 6-digit PIN)",
            authenticator.authenticator_id
        ),
    );

    // 4. A bank is registered.
    let t = Instant::now();
    let sp = admin
        .register_service_provider(PROVIDER)
        .await
        .map_err(|e| j.fail("register_provider", e))?;
    let rp = ProviderClient::new(ep.clone(), &sp.api_key);
    j.step(
        "register_provider",
        t,
        format!(
            "service provider {:?} registered ({})",
            sp.name, sp.service_provider_id
        ),
    );

    // 5. The bank asks for a login; the person opens the app and approves.
    let login = login_request(j, &rp, &identity.user_id, &args.text, "rp_request").await?;
    let view = open_app(j, phone, login, "open_app").await?;

    let t = Instant::now();
    let token = phone
        .unlock(&view.authenticator_id, &view.request_id, DEMO_PIN)
        .await
        .map_err(|e| j.fail("enter_pin", e))?;
    j.step("enter_pin", t, "PIN entered and checked: request unlocked");
    let wait_ms = phone
        .read_time_left(&view.authenticator_id, &view.request_id)
        .map_err(|e| j.fail("approve", e))?;
    if wait_ms > 0 {
        j.say(format!(
            "           reading the request: waiting {} (minimum read time)",
            crate::when::duration(wait_ms)
        ));
        tokio::time::sleep(std::time::Duration::from_millis(wait_ms)).await;
    }
    let t = Instant::now();
    j.say("           swipe to approve: confirmed");
    let receipt = phone
        .approve(&token, true, None)
        .await
        .map_err(|e| j.fail("approve", e))?;
    j.step(
        "approve",
        t,
        format!(
            "approved; the app verified the server's receipt (counter {})",
            receipt.receipt.counter
        ),
    );
    let (approved, approved_check) = rp_result(
        j,
        &rp,
        server,
        login,
        &args.text,
        RequestStatus::Approved,
        "rp_status_approved",
    )
    .await?;

    // 6. A request the person did not start: refused with "report fraud".
    j.say("");
    j.say("now a request the person did NOT start (a scammer on the phone):");
    let scam_text = "Log på Netbank – Danske Eksempel Bank (ny enhed)";
    let scam = login_request(j, &rp, &identity.user_id, scam_text, "rp_request_unwanted").await?;
    let scam_view = open_app(j, phone, scam, "open_app_unwanted").await?;
    let t = Instant::now();
    let fraud_receipt = phone
        .report_fraud(&scam_view.authenticator_id, &scam_view.request_id)
        .await
        .map_err(|e| j.fail("report_fraud", e))?;
    j.step(
        "report_fraud",
        t,
        "the person chose \"This wasn't me\": refused and reported (no PIN needed)",
    );
    let (fraud, fraud_check) = rp_result(
        j,
        &rp,
        server,
        scam,
        scam_text,
        RequestStatus::FraudReported,
        "rp_status_fraud_reported",
    )
    .await?;

    Ok(JourneyRecord {
        authenticator: (&authenticator).into(),
        identity: json::IdentityCreated {
            identity_id: identity.identity_id.to_string(),
            user_id: identity.user_id,
        },
        login: json::DemoDecision {
            app_receipt: (&receipt).into(),
            receipt_verified: approved_check.is_some(),
            request: (&view).into(),
            rp: json::Status::new(&approved, approved_check, true),
            status: approved.status,
        },
        refusal: json::DemoDecision {
            app_receipt: (&fraud_receipt).into(),
            receipt_verified: fraud_check.is_some(),
            request: (&scam_view).into(),
            rp: json::Status::new(&fraud, fraud_check, true),
            status: fraud.status,
        },
        service_provider: json::DemoProvider {
            id: sp.service_provider_id.to_string(),
            name: sp.name,
        },
    })
}

async fn login_request(
    j: &mut Journey,
    rp: &ProviderClient,
    user_id: &str,
    text: &str,
    step: &str,
) -> Result<RequestId, CliError> {
    let t = Instant::now();
    let created = rp
        .create_request(user_id, RequestKind::Login, text, None)
        .await
        .map_err(|e| j.fail(step, e))?;
    j.step(
        step,
        t,
        format!(
            "the bank asked for a login: {text:?} (request {})",
            created.request_id
        ),
    );
    Ok(created.request_id)
}

async fn open_app(
    j: &mut Journey,
    phone: &App,
    request: RequestId,
    step: &str,
) -> Result<RequestView, CliError> {
    let t = Instant::now();
    let views = phone.refresh().await.map_err(|e| j.fail(step, e))?;
    let view = views
        .into_iter()
        .find(|v| v.request_id == request)
        .ok_or_else(|| j.fail(step, eid_core::Error::UnknownRequest))?;
    j.step(step, t, "the person opened the app; it shows:");
    for line in view_lines(&view, "           ") {
        j.say(line);
    }
    Ok(view)
}

async fn rp_result(
    j: &mut Journey,
    rp: &ProviderClient,
    server: &eid_server::RunningServer,
    request: RequestId,
    text: &str,
    expected: RequestStatus,
    step: &str,
) -> Result<(RequestStatusResponse, Option<ProviderReceipt>), CliError> {
    let t = Instant::now();
    let status = rp.status(request, 5).await.map_err(|e| j.fail(step, e))?;
    let key = rp.server_key().await.map_err(|e| j.fail(step, e))?;
    if key != server.server_public_key {
        return Err(j.fail(
            step,
            CliError::new(
                ErrorKind::InvalidServerKey,
                "the server key served does not match the server's",
            ),
        ));
    }
    let sha = reference_text_sha256(text).map_err(|e| j.fail(step, e))?;
    let check = check_receipt(Some(&key), &status, Some(&sha)).map_err(|e| j.fail(step, e))?;
    if status.status != expected || check.is_none() {
        return Err(j.fail(
            step,
            CliError::new(
                ErrorKind::UnexpectedStatus,
                format!(
                    "expected {} with a receipt, got {}",
                    serde_name(&expected),
                    serde_name(&status.status)
                ),
            ),
        ));
    }
    j.step(
        step,
        t,
        format!(
            "the bank read status {:?}; receipt signature VERIFIED against the server key",
            serde_name(&status.status)
        ),
    );
    Ok((status, check))
}

//! `eid app`: the phone's commands, each on the phone opened from its data
//! folder (`phone.rs`).

use std::time::Instant;

use clap::Subcommand;
use eid_core::{EnrolmentStatus, WarningKind};
use eid_protocol::wire::SignedReceipt;
use eid_protocol::{AuthenticatorId, ChangeId, RequestId};

use crate::common::{Common, ms_since, parse_id, read_pin};
use crate::error::CliError;
use crate::json::{self, DecisionResult, authenticator_state_name};
use crate::output::{Report, serde_name, view_lines};
use crate::phone::PhoneFolder;
use crate::when;

/// What the phone is told about calls and screen sharing (the CLI has no
/// platform to ask): each flag turns one signal on; the rest stay unknown,
/// or off with `--others-off`. Without a flag everything is unknown, as on
/// a phone that cannot tell (docs/protocol.md, "Call context").
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub(crate) struct ContextFlags {
    /// A phone or VoIP call is on.
    #[arg(long)]
    on_call: bool,
    /// The screen is shared, mirrored or recorded.
    #[arg(long)]
    screen_shared: bool,
    /// An accessibility service that is not from the system is on.
    #[arg(long)]
    remote_control: bool,
    /// The signals not turned on are off (seen), not unknown.
    #[arg(long)]
    others_off: bool,
}

impl ContextFlags {
    fn signals(self) -> eid_core::CallSignals {
        use eid_core::Signal;
        let rest = if self.others_off {
            Signal::Off
        } else {
            Signal::Unknown
        };
        let one = |on: bool| if on { Signal::On } else { rest };
        eid_core::CallSignals {
            call: one(self.on_call),
            screen_shared: one(self.screen_shared),
            remote_control: one(self.remote_control),
        }
    }

    /// Tells the phone's core what it "sees".
    fn install(self, core: &eid_core::App) -> Result<(), CliError> {
        core.set_context_provider(std::sync::Arc::new(eid_core::FixedContext(self.signals())))?;
        Ok(())
    }
}

/// The phone's commands.
#[derive(Debug, Subcommand)]
pub(crate) enum AppCommand {
    /// Activate an authenticator with a user ID and activation code; reads the new PIN
    /// from stdin (--pin-stdin) or EID_PIN. Remembers --server and --spki-pin.
    Activate {
        /// The user ID.
        #[arg(long)]
        user_id: String,
        /// The activation code from the letter or SMS.
        #[arg(long)]
        code: String,
        /// Read the PIN as one line from stdin (otherwise EID_PIN).
        #[arg(long)]
        pin_stdin: bool,
    },
    /// Finish an interrupted activation (the answer was lost, or the app
    /// stopped): re-sends the same keys with the code; no PIN needed.
    ResumeActivation {
        /// The activation code used for the interrupted activation.
        #[arg(long)]
        code: String,
    },
    /// Open the app: fetch pending requests and show them. With --authenticator,
    /// only that person's requests (the household's second screen).
    Open {
        /// Show only this authenticator's requests.
        #[arg(long, alias = "account")]
        authenticator: Option<String>,
        /// What the phone sees about calls and screen sharing.
        #[command(flatten)]
        context: ContextFlags,
    },
    /// Re-send decisions that were signed but not confirmed (`open` does this too).
    Retry,
    /// Approve a request: PIN (stdin or EID_PIN), swipe, approve.
    Approve {
        /// The request.
        #[arg(long)]
        request: String,
        /// The authenticator holding it (found automatically when omitted).
        #[arg(long, alias = "account")]
        authenticator: Option<String>,
        /// Read the PIN as one line from stdin (otherwise EID_PIN).
        #[arg(long)]
        pin_stdin: bool,
        /// The code shown where the request was started, when it needs one.
        #[arg(long)]
        binding_code: Option<String>,
        /// What the phone sees about calls and screen sharing.
        #[command(flatten)]
        context: ContextFlags,
        /// The person confirms "I started this myself" (after the minimum
        /// read time), which a call or screen sharing makes necessary.
        #[arg(long)]
        started_it_myself: bool,
    },
    /// Deny a request (no PIN needed).
    Deny {
        /// The request.
        #[arg(long)]
        request: String,
        /// The authenticator holding it (found automatically when omitted).
        #[arg(long, alias = "account")]
        authenticator: Option<String>,
        /// What the phone sees about calls and screen sharing.
        #[command(flatten)]
        context: ContextFlags,
    },
    /// Deny a request and report it as fraud ("this wasn't me").
    Report {
        /// The request.
        #[arg(long)]
        request: String,
        /// The authenticator holding it (found automatically when omitted).
        #[arg(long, alias = "account")]
        authenticator: Option<String>,
        /// What the phone sees about calls and screen sharing.
        #[command(flatten)]
        context: ContextFlags,
    },
    /// List the authenticators on this phone.
    #[command(alias = "accounts")]
    Authenticators,
    /// Block the authenticator's identity at once ("I suspect abuse"); no PIN.
    /// Support unblocks.
    Block {
        /// The authenticator (needed when the phone holds several).
        #[arg(long, alias = "account")]
        authenticator: Option<String>,
    },
    /// The authenticator's security feed, newest first (fetched from the server).
    Events {
        /// The authenticator (needed when the phone holds several).
        #[arg(long, alias = "account")]
        authenticator: Option<String>,
    },
    /// Turn "notify me on every use" on or off for the authenticator's identity.
    #[command(group(clap::ArgGroup::new("setting").required(true).args(["on", "off"])))]
    Notify {
        /// Notify on every use (no PIN).
        #[arg(long)]
        on: bool,
        /// Notify only on security events; needs the PIN from stdin
        /// (--pin-stdin) or EID_PIN.
        #[arg(long)]
        off: bool,
        /// Read the PIN (for --off) from one line on stdin instead of EID_PIN.
        #[arg(long)]
        pin_stdin: bool,
        /// The authenticator (needed when the phone holds several).
        #[arg(long, alias = "account")]
        authenticator: Option<String>,
    },
    /// The people on this phone and how many requests wait for each, nothing
    /// more (then `open --authenticator` for one person's requests).
    Household,
    /// The open phone and e-mail changes of the authenticator's identity.
    Changes {
        /// The authenticator (needed when the phone holds several).
        #[arg(long, alias = "account")]
        authenticator: Option<String>,
    },
    /// Cancel an open phone or e-mail change ("that wasn't me"); no PIN.
    CancelChange {
        /// The change shown by `changes`.
        #[arg(long)]
        change: String,
        /// The authenticator (needed when the phone holds several).
        #[arg(long, alias = "account")]
        authenticator: Option<String>,
    },
    /// New phone: ask to be added to an identity that already has a device;
    /// reads the new PIN like `activate`. Shows the code to type on the
    /// existing phone. Remembers --server and --spki-pin.
    Enrol {
        /// The user ID.
        #[arg(long)]
        user_id: String,
        /// Read the PIN as one line from stdin (otherwise EID_PIN).
        #[arg(long)]
        pin_stdin: bool,
    },
    /// New phone: how the enrolment stands (awaiting approval, waiting, or
    /// activated now).
    EnrolStatus,
    /// New phone: give up the enrolment and delete its keys.
    EnrolDiscard,
    /// Existing phone: the new devices being added to the authenticator's identity
    /// (fetched with `open`).
    Devices {
        /// The authenticator (needed when the phone holds several).
        #[arg(long, alias = "account")]
        authenticator: Option<String>,
    },
    /// Existing phone: cancel a new device being added ("not my phone"); no PIN.
    CancelDevice {
        /// The enrolment shown by `devices`.
        #[arg(long)]
        enrolment: String,
        /// The authenticator (needed when the phone holds several).
        #[arg(long, alias = "account")]
        authenticator: Option<String>,
    },
}

/// Runs a phone command.
pub(crate) async fn run(common: &Common, cmd: AppCommand) -> Result<Report, CliError> {
    // A missing folder is reported before any other mistake in the arguments;
    // each command then checks its own arguments before opening the phone.
    let folder = PhoneFolder::from_options(common)?;
    match cmd {
        AppCommand::Activate {
            user_id,
            code,
            pin_stdin,
        } => {
            let pin = read_pin(pin_stdin)?;
            let phone = folder.open()?;
            let start = Instant::now();
            let authenticator = phone.core.activate(&user_id, &code, &pin).await?;
            let settings_file = phone.remember_server()?;
            Ok(Report::new(
                &json::Activated {
                    authenticator: (&authenticator).into(),
                    ms: ms_since(start),
                },
                vec![
                    format!("account activated: {}", authenticator.authenticator_id),
                    format!("user ID:  {}", authenticator.user_id),
                    format!("identity: {}", authenticator.identity_id),
                    format!("server remembered in {}", settings_file.display()),
                ],
            ))
        }
        AppCommand::ResumeActivation { code } => {
            let phone = folder.open()?;
            let start = Instant::now();
            let authenticator = phone.core.resume_activation(&code).await?;
            phone.remember_server()?;
            Ok(Report::new(
                &json::Activated {
                    authenticator: (&authenticator).into(),
                    ms: ms_since(start),
                },
                vec![
                    format!("activation resumed: {}", authenticator.authenticator_id),
                    format!("user ID:  {}", authenticator.user_id),
                ],
            ))
        }
        AppCommand::Retry => {
            let phone = folder.open()?;
            let resent = phone.core.retry_unsent_decisions().await?;
            Ok(Report::new(
                &json::Retried {
                    resent_decisions: resent,
                },
                vec![format!(
                    "{resent} unconfirmed decision(s) re-sent and confirmed"
                )],
            ))
        }
        AppCommand::Authenticators => {
            let phone = folder.open()?;
            // The states change on the server (support blocks and
            // unblocks): ask it first. A list must still list when the
            // server cannot answer, so any failure shows the last known
            // states, says why and when they were seen.
            let refresh_failure = phone.refresh().await.err();
            let refreshed = refresh_failure.is_none();
            let seen_at_ms = phone.refreshed_at_ms();
            let authenticators = phone.core.authenticators()?;
            let mut lines = vec![format!("{} account(s)", authenticators.len())];
            if let Some(e) = &refresh_failure {
                lines.push(match seen_at_ms {
                    Some(t) => format!(
                        "not refreshed ({}): last known states, seen at {}",
                        e.message,
                        when::moment(t, when::now_ms())
                    ),
                    None => format!(
                        "not refreshed ({}): the states at activation, never refreshed since",
                        e.message
                    ),
                });
            }
            let mut items = Vec::new();
            for a in &authenticators {
                let notify = phone.core.notify_every_use(&a.authenticator_id)?;
                lines.push(format!(
                    "  {}  {}  {}{}",
                    a.authenticator_id,
                    a.user_id,
                    authenticator_state_name(a.state),
                    if notify {
                        "  (notify on every use)"
                    } else {
                        ""
                    }
                ));
                items.push(json::PhoneAuthenticator {
                    notify_every_use: Some(notify),
                    ..a.into()
                });
            }
            Ok(Report::new(
                &json::PhoneAuthenticators {
                    authenticators: items,
                    refreshed,
                    seen_at_ms,
                },
                lines,
            ))
        }
        AppCommand::Open {
            authenticator: Some(authenticator),
            context,
        } => {
            let authenticator: AuthenticatorId = parse_id("account ID", &authenticator)?;
            let phone = folder.open()?;
            context.install(&phone.core)?;
            let resent = phone.core.retry_unsent_decisions().await?;
            phone.refresh().await?;
            let info = phone
                .core
                .authenticators()?
                .into_iter()
                .find(|a| a.authenticator_id == authenticator)
                .ok_or(eid_core::Error::UnknownAuthenticator)?;
            let views = phone.core.requests_for(&authenticator, common.language())?;
            let mut lines = vec![format!(
                "{} pending request(s) for {}",
                views.len(),
                info.user_id
            )];
            for v in &views {
                lines.push(String::new());
                lines.extend(view_lines(v, "  "));
            }
            Ok(Report::new(
                &json::OpenedAuthenticator {
                    authenticator: (&info).into(),
                    requests: views.iter().map(Into::into).collect(),
                    resent_decisions: resent,
                },
                lines,
            ))
        }
        AppCommand::Open {
            authenticator: None,
            context,
        } => {
            let phone = folder.open()?;
            context.install(&phone.core)?;
            let resent = phone.core.retry_unsent_decisions().await?;
            let views = phone.refresh().await?;
            let authenticators = phone.core.authenticators()?;
            let mut lines = vec![format!("{} pending request(s)", views.len())];
            for a in authenticators
                .iter()
                .filter(|a| a.state != eid_core::AuthenticatorState::Active)
            {
                lines.push(format!(
                    "account {} ({}) is {}",
                    a.authenticator_id,
                    a.user_id,
                    authenticator_state_name(a.state)
                ));
            }
            for v in &views {
                lines.push(String::new());
                lines.extend(view_lines(v, "  "));
            }
            Ok(Report::new(
                &json::Opened {
                    authenticators: authenticators.iter().map(Into::into).collect(),
                    requests: views.iter().map(Into::into).collect(),
                    resent_decisions: resent,
                },
                lines,
            ))
        }
        AppCommand::Approve {
            request,
            authenticator,
            pin_stdin,
            binding_code,
            context,
            started_it_myself,
        } => {
            let request: RequestId = parse_id("request ID", &request)?;
            let pin = read_pin(pin_stdin)?;
            let phone = folder.open()?;
            context.install(&phone.core)?;
            let authenticator = phone
                .authenticator_holding(&request, authenticator.as_deref())
                .await?;
            // A request bound to the screen where it was started is refused
            // without its code: say so now, before the PIN is tried and the
            // minimum read time waited out for nothing.
            if binding_code.is_none()
                && phone
                    .core
                    .requests_for(&authenticator, common.language())?
                    .iter()
                    .any(|v| {
                        v.request_id == request
                            && v.warnings
                                .iter()
                                .any(|w| w.kind == WarningKind::BindingCodeRequired)
                    })
            {
                return Err(eid_core::Error::BindingCodeRequired.into());
            }
            let token = phone.core.unlock(&authenticator, &request, &pin).await?;
            drop(pin);
            // The core's minimum read time counts from the display in this
            // process: a terminal approve waits it out, and says so.
            let wait_ms = phone.core.read_time_left(&authenticator, &request)?;
            if wait_ms > 0 {
                eprintln!(
                    "waiting {} (minimum read time) before signing",
                    when::duration(wait_ms)
                );
                tokio::time::sleep(std::time::Duration::from_millis(wait_ms)).await;
            }
            if started_it_myself {
                phone
                    .core
                    .confirm_started_myself(&authenticator, &request)?;
            }
            let receipt = phone
                .core
                .approve(&token, true, binding_code.as_deref())
                .await?;
            Ok(decision_report(DecisionResult::Approved, &receipt))
        }
        AppCommand::Deny {
            request,
            authenticator,
            context,
        } => {
            let request: RequestId = parse_id("request ID", &request)?;
            let phone = folder.open()?;
            context.install(&phone.core)?;
            let authenticator = phone
                .authenticator_holding(&request, authenticator.as_deref())
                .await?;
            let receipt = phone.core.deny(&authenticator, &request).await?;
            Ok(decision_report(DecisionResult::Denied, &receipt))
        }
        AppCommand::Report {
            request,
            authenticator,
            context,
        } => {
            let request: RequestId = parse_id("request ID", &request)?;
            let phone = folder.open()?;
            context.install(&phone.core)?;
            let authenticator = phone
                .authenticator_holding(&request, authenticator.as_deref())
                .await?;
            let receipt = phone.core.report_fraud(&authenticator, &request).await?;
            Ok(decision_report(DecisionResult::FraudReported, &receipt))
        }
        AppCommand::Block { authenticator } => {
            let phone = folder.open()?;
            let authenticator = phone.only_authenticator(authenticator.as_deref())?;
            phone.core.block_identity(&authenticator).await?;
            Ok(Report::new(
                &json::IdentityBlocked {
                    authenticator_id: authenticator.to_string(),
                    state: "blocked",
                },
                vec![format!(
                    "account {authenticator}: identity blocked; pending requests cancelled; support can unblock"
                )],
            ))
        }
        AppCommand::Enrol { user_id, pin_stdin } => {
            let pin = read_pin(pin_stdin)?;
            let phone = folder.open()?;
            let e = phone.core.start_device_enrolment(&user_id, &pin).await?;
            phone.remember_server()?;
            Ok(Report::new(
                &json::EnrolmentStarted {
                    code: e.code.clone(),
                    enrolment_id: e.enrolment_id.to_string(),
                    expires_at_ms: e.expires_at_ms,
                    qr_payload: e.qr_payload.clone(),
                },
                vec![
                    format!("enrolment {} asked for", e.enrolment_id),
                    format!("code to type on the existing phone: {}", e.code),
                    format!(
                        "it expires at {}",
                        when::moment(e.expires_at_ms, when::now_ms())
                    ),
                    format!("QR payload: {}", e.qr_payload),
                    "then: eid app enrol-status".into(),
                ],
            ))
        }
        AppCommand::EnrolStatus => {
            let phone = folder.open()?;
            Ok(match phone.core.poll_device_enrolment().await? {
                EnrolmentStatus::AwaitingApproval => Report::new(
                    &json::EnrolmentState::bare("awaiting_approval"),
                    vec!["awaiting approval on the existing phone".into()],
                ),
                EnrolmentStatus::Waiting {
                    usable_at_ms,
                    remaining_ms,
                } => Report::new(
                    &json::EnrolmentState {
                        remaining_ms: Some(remaining_ms),
                        usable_at_ms: Some(usable_at_ms),
                        ..json::EnrolmentState::bare("waiting")
                    },
                    vec![format!(
                        "approved; this phone works at {} (waiting period)",
                        // The server's now: its usable_at less what it says is left.
                        when::moment(usable_at_ms, usable_at_ms.saturating_sub(remaining_ms))
                    )],
                ),
                EnrolmentStatus::Activated(authenticator) => Report::new(
                    &json::EnrolmentState {
                        authenticator: Some((&authenticator).into()),
                        ..json::EnrolmentState::bare("activated")
                    },
                    vec![
                        format!("account activated: {}", authenticator.authenticator_id),
                        format!("user ID:  {}", authenticator.user_id),
                    ],
                ),
                other => Report::new(
                    &json::EnrolmentState::bare(format!("{other:?}")),
                    vec![format!("{other:?}")],
                ),
            })
        }
        AppCommand::EnrolDiscard => {
            let phone = folder.open()?;
            phone.core.discard_device_enrolment()?;
            Ok(Report::new(
                &json::EnrolmentDiscarded { discarded: true },
                vec!["enrolment discarded; its keys are deleted".into()],
            ))
        }
        AppCommand::Devices { authenticator } => {
            let phone = folder.open()?;
            let authenticator = phone.only_authenticator(authenticator.as_deref())?;
            let devices = phone.core.pending_devices(&authenticator)?;
            let mut lines = vec![format!("{} new device(s) being added", devices.len())];
            let now = when::now_ms();
            let mut items = Vec::new();
            for d in &devices {
                let state = match d.state {
                    eid_core::PendingDeviceState::AwaitingApproval => "awaiting_approval",
                    _ => "waiting",
                };
                lines.push(format!(
                    "  {}  {state}{}  (cancel: eid app cancel-device --enrolment {})",
                    d.enrolment_id,
                    d.usable_at_ms
                        .map(|u| format!(", works from {}", when::moment(u, now)))
                        .unwrap_or_default(),
                    d.enrolment_id
                ));
                items.push(json::Device {
                    enrolment_id: d.enrolment_id.to_string(),
                    requested_at_ms: d.requested_at_ms,
                    state,
                    usable_at_ms: d.usable_at_ms,
                });
            }
            Ok(Report::new(&json::Devices { devices: items }, lines))
        }
        AppCommand::CancelDevice {
            enrolment,
            authenticator,
        } => {
            let enrolment: AuthenticatorId = parse_id("enrolment ID", &enrolment)?;
            let phone = folder.open()?;
            let authenticator = phone.only_authenticator(authenticator.as_deref())?;
            phone
                .core
                .cancel_device_enrolment(&authenticator, &enrolment)
                .await?;
            Ok(Report::new(
                &json::DeviceCancelled {
                    enrolment_id: enrolment.to_string(),
                    state: "cancelled",
                },
                vec![format!("new device {enrolment} cancelled")],
            ))
        }
        AppCommand::Events { authenticator } => {
            let phone = folder.open()?;
            let authenticator = phone.only_authenticator(authenticator.as_deref())?;
            phone.refresh().await?;
            let events = phone.core.events(&authenticator, common.language())?;
            let mut lines = vec![format!("{} event(s), newest first", events.len())];
            let now = when::now_ms();
            let mut items = Vec::new();
            for e in &events {
                lines.push(format!(
                    "  {} {}{}  {}",
                    when::local_time(e.occurred_at_ms, now),
                    if e.critical { "⚠ " } else { "" },
                    e.title,
                    if e.this_device { "(this phone)" } else { "" }
                ));
                lines.push(format!("      {}", e.body));
                items.push(json::Event {
                    body: e.body.clone(),
                    critical: e.critical,
                    event_id: e.event_id,
                    kind: e.kind.as_str(),
                    occurred_at_ms: e.occurred_at_ms,
                    this_device: e.this_device,
                    title: e.title.clone(),
                });
            }
            Ok(Report::new(
                &json::Events {
                    authenticator_id: authenticator.to_string(),
                    events: items,
                },
                lines,
            ))
        }
        AppCommand::Notify {
            on,
            off,
            pin_stdin,
            authenticator,
        } => {
            if on == off {
                return Err(CliError::invalid_argument(
                    "give exactly one of --on and --off",
                ));
            }
            // Turning it off silences notifications: the PIN first, like
            // an approval.
            let pin = if off {
                Some(read_pin(pin_stdin)?)
            } else {
                None
            };
            let phone = folder.open()?;
            let authenticator = phone.only_authenticator(authenticator.as_deref())?;
            match pin {
                Some(pin) => {
                    phone
                        .core
                        .turn_off_notify_every_use(&authenticator, &pin)
                        .await?
                }
                None => phone.core.turn_on_notify_every_use(&authenticator).await?,
            }
            Ok(Report::new(
                &json::NotifySet {
                    authenticator_id: authenticator.to_string(),
                    notify_every_use: on,
                },
                vec![if on {
                    format!("account {authenticator}: you will be notified on every use")
                } else {
                    format!("account {authenticator}: you will be notified of security events only")
                }],
            ))
        }
        AppCommand::Household => {
            let phone = folder.open()?;
            phone.refresh().await?;
            let people = phone.core.household(common.language())?;
            let mut lines = vec![format!("{} person(s) on this phone", people.len())];
            let mut items = Vec::new();
            for p in &people {
                lines.push(format!(
                    "  {}  {}  {}",
                    p.authenticator_id, p.user_id, p.headline
                ));
                if let Some(next) = &p.next_step {
                    lines.push(format!("      {next}"));
                }
                items.push(json::Person {
                    authenticator_id: p.authenticator_id.to_string(),
                    headline: p.headline.clone(),
                    next_step: p.next_step.clone(),
                    pending_requests: p.pending_requests,
                    state: authenticator_state_name(p.state),
                    user_id: p.user_id.clone(),
                });
            }
            Ok(Report::new(&json::Household { people: items }, lines))
        }
        AppCommand::Changes { authenticator } => {
            let phone = folder.open()?;
            let authenticator = phone.only_authenticator(authenticator.as_deref())?;
            phone.refresh().await?;
            let changes = phone.core.pending_contact_changes(&authenticator)?;
            let mut lines = vec![format!("{} open contact change(s)", changes.len())];
            let now = when::now_ms();
            let mut items = Vec::new();
            for c in &changes {
                lines.push(format!(
                    "  {}  {} → {}  {}{}  (cancel: eid app cancel-change --change {})",
                    c.change_id,
                    serde_name(&c.channel),
                    c.new_value_masked,
                    serde_name(&c.state),
                    c.earliest_completion_at_ms
                        .map(|t| format!(", can complete at {}", when::moment(t, now)))
                        .unwrap_or_default(),
                    c.change_id
                ));
                items.push(json::Change {
                    change_id: c.change_id.to_string(),
                    channel: c.channel,
                    created_at_ms: c.created_at_ms,
                    earliest_completion_at_ms: c.earliest_completion_at_ms,
                    new_value_masked: c.new_value_masked.clone(),
                    state: c.state,
                });
            }
            Ok(Report::new(
                &json::Changes {
                    authenticator_id: authenticator.to_string(),
                    changes: items,
                },
                lines,
            ))
        }
        AppCommand::CancelChange {
            change,
            authenticator,
        } => {
            let change: ChangeId = parse_id("change ID", &change)?;
            let phone = folder.open()?;
            let authenticator = phone.only_authenticator(authenticator.as_deref())?;
            phone
                .core
                .cancel_contact_change(&authenticator, &change)
                .await?;
            Ok(Report::new(
                &json::ChangeCancelled {
                    change_id: change.to_string(),
                    state: "cancelled",
                },
                vec![format!(
                    "change {change} cancelled; the old and the new contact are notified"
                )],
            ))
        }
    }
}

fn decision_report(result: DecisionResult, receipt: &SignedReceipt) -> Report {
    Report::new(
        &json::Decided {
            authenticator_id: receipt.receipt.authenticator_id.to_string(),
            receipt: receipt.into(),
            request_id: receipt.receipt.request_id.to_string(),
            result,
        },
        vec![
            format!("request {}: {result}", receipt.receipt.request_id),
            format!(
                "receipt signature verified by the app (counter {})",
                receipt.receipt.counter
            ),
        ],
    )
}

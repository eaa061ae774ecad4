//! `eid self-service`: the public self-service portal's calls, as a person's
//! browser makes them. No credentials: each step creates a self-service login
//! request that the person approves in the app (`eid app approve`). Needs only
//! the server URL and its SPKI pin.

use clap::{ArgGroup, Subcommand};
use eid_api_client::SelfServiceClient;
use eid_protocol::ChangeId;
use eid_protocol::wire::{ChangeStatus, ContactChannel, SelfServiceStep};

use crate::common::{Common, parse_id};
use crate::error::CliError;
use crate::json;
use crate::output::{Report, serde_name};
use crate::when;

/// The self-service portal's commands.
#[derive(Debug, Subcommand)]
pub(crate) enum SelfServiceCommand {
    /// Start a change of phone number or e-mail address: approve the login it
    /// creates in the app, wait out the gap (one hour), then `confirm`.
    #[command(group(ArgGroup::new("contact").required(true).args(["phone", "email"])))]
    ChangeContact {
        /// The person's user ID.
        #[arg(long)]
        user_id: String,
        /// The new phone number (E.164, `+4512345678`).
        #[arg(long)]
        phone: Option<String>,
        /// The new e-mail address.
        #[arg(long)]
        email: Option<String>,
    },
    /// Ask for the second self-service login of a contact change (refused
    /// with `too_early` before the gap has passed).
    Confirm {
        /// The change (from `change-contact`).
        #[arg(long)]
        change: String,
        /// The person's user ID (the change must be theirs).
        #[arg(long)]
        user_id: String,
    },
    /// Where a contact change stands.
    Status {
        /// The change.
        #[arg(long)]
        change: String,
        /// The person's user ID.
        #[arg(long)]
        user_id: String,
    },
    /// Start a change of user ID: one self-service login, approved in the app.
    ChangeUserId {
        /// The person's current user ID.
        #[arg(long)]
        user_id: String,
        /// The user ID wanted.
        #[arg(long)]
        new_user_id: String,
    },
    /// Where a user-ID change stands.
    UserIdStatus {
        /// The change.
        #[arg(long)]
        change: String,
        /// The person's current user ID (the new one once the change completed).
        #[arg(long)]
        user_id: String,
    },
}

/// Runs a self-service command.
pub(crate) async fn run(common: &Common, cmd: SelfServiceCommand) -> Result<Report, CliError> {
    let client = SelfServiceClient::new(common.endpoint()?);
    match cmd {
        SelfServiceCommand::ChangeContact {
            user_id,
            phone,
            email,
        } => {
            let (channel, value) = match (phone, email) {
                (Some(p), None) => (ContactChannel::Phone, p),
                (None, Some(e)) => (ContactChannel::Email, e),
                _ => {
                    return Err(CliError::invalid_argument(
                        "give exactly one of --phone and --email",
                    ));
                }
            };
            let step = client
                .start_contact_change(&user_id, channel, &value)
                .await?;
            Ok(step_report(&step, "contact change started"))
        }
        SelfServiceCommand::Confirm { change, user_id } => {
            let change: ChangeId = parse_id("change ID", &change)?;
            let step = client.confirm_contact_change(&user_id, change).await?;
            Ok(step_report(&step, "second login asked for"))
        }
        SelfServiceCommand::Status { change, user_id } => {
            let change: ChangeId = parse_id("change ID", &change)?;
            Ok(status_report(
                &client.contact_change_status(&user_id, change).await?,
            ))
        }
        SelfServiceCommand::ChangeUserId {
            user_id,
            new_user_id,
        } => {
            let step = client.start_user_id_change(&user_id, &new_user_id).await?;
            Ok(step_report(&step, "user-ID change started"))
        }
        SelfServiceCommand::UserIdStatus { change, user_id } => {
            let change: ChangeId = parse_id("change ID", &change)?;
            Ok(status_report(
                &client.user_id_change_status(&user_id, change).await?,
            ))
        }
    }
}

/// `{"binding_code", "change_id", "request_id", "expires_at_ms"}`.
fn step_report(step: &SelfServiceStep, what: &str) -> Report {
    Report::new(
        &json::SelfServiceStep {
            binding_code: step.binding_code.clone(),
            change_id: step.change_id.to_string(),
            expires_at_ms: step.expires_at_ms,
            request_id: step.request_id.to_string(),
        },
        vec![
            format!("{what}: change {}", step.change_id),
            format!("code to type in the app: {}", step.binding_code),
            format!(
                "approve the self-service login in the app: eid app approve --request {} --binding-code {}",
                step.request_id, step.binding_code
            ),
            format!(
                "it expires at {}",
                when::moment(step.expires_at_ms, when::now_ms())
            ),
        ],
    )
}

/// `{"change_id", "state", "channel", "earliest_second_login_at_ms", "failure"}`;
/// absent values are `null`.
fn status_report(st: &ChangeStatus) -> Report {
    let mut lines = vec![format!(
        "change {}: {}",
        st.change_id,
        serde_name(&st.state)
    )];
    if let Some(c) = st.channel {
        lines.push(format!("channel: {}", serde_name(&c)));
    }
    if let Some(t) = st.earliest_second_login_at_ms {
        lines.push(format!(
            "second login possible at {}",
            when::moment(t, when::now_ms())
        ));
    }
    if let Some(f) = &st.failure {
        lines.push(format!("failed: {} ({})", serde_name(&f.code), f.message));
    }
    Report::new(
        &json::ChangeStatus {
            change_id: st.change_id.to_string(),
            channel: st.channel,
            earliest_second_login_at_ms: st.earliest_second_login_at_ms,
            failure: st.failure.as_ref().map(|f| json::ChangeFailure {
                code: f.code,
                message: f.message.clone(),
            }),
            state: st.state,
        },
        lines,
    )
}

//! `eid admin`: support operations on a running server.

use clap::Subcommand;
use eid_api_client::AdminClient;
use eid_protocol::IdentityId;
use eid_protocol::wire::{CreateIdentityRequest, IdentityInfo};

use crate::common::{Common, parse_id};
use crate::error::CliError;
use crate::json;
use crate::output::{Report, serde_name};

/// Support operations (need the admin token).
#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// Create an identity with a user ID (8–40 characters mixing letters, digits and a special).
    CreateIdentity {
        /// The user ID the person chose.
        #[arg(long)]
        user_id: String,
        /// The person's name (a user ID equal to it is refused).
        #[arg(long)]
        name: Option<String>,
        /// Phone number for SMS notifications (E.164, `+4512345678`).
        #[arg(long)]
        phone: Option<String>,
        /// E-mail address for notifications.
        #[arg(long)]
        email: Option<String>,
    },
    /// Issue a single-use activation code for an identity (prints the code).
    ActivationCode {
        /// The identity.
        #[arg(long)]
        identity: String,
    },
    /// Block an identity (pending requests are cancelled).
    Block {
        /// The identity.
        #[arg(long)]
        identity: String,
    },
    /// Unblock an identity.
    Unblock {
        /// The identity.
        #[arg(long)]
        identity: String,
    },
    /// Show an identity and its authenticators.
    Show {
        /// The identity.
        #[arg(long)]
        identity: String,
    },
    /// Register a service provider (prints its API key once).
    RegisterProvider {
        /// The name shown to people on every request.
        #[arg(long)]
        name: String,
    },
}

/// Runs an admin command.
pub(crate) async fn run(common: &Common, cmd: AdminCommand) -> Result<Report, CliError> {
    let endpoint = common.endpoint()?;
    let token = common.admin_token()?;
    let admin = AdminClient::new(endpoint, &token);
    match cmd {
        AdminCommand::CreateIdentity {
            user_id,
            name,
            phone,
            email,
        } => {
            let body = CreateIdentityRequest {
                user_id,
                display_name: name,
                phone,
                email,
            };
            let created = admin.create_identity_with(&body).await?;
            Ok(Report::new(
                &json::IdentityCreated {
                    identity_id: created.identity_id.to_string(),
                    user_id: created.user_id.clone(),
                },
                vec![
                    format!("identity created: {}", created.identity_id),
                    format!("user ID:          {}", created.user_id),
                ],
            ))
        }
        AdminCommand::ActivationCode { identity } => {
            let id: IdentityId = parse_id("identity ID", &identity)?;
            let issued = admin.issue_activation_code(id).await?;
            Ok(Report::new(
                &json::ActivationCodeIssued {
                    activation_code: issued.activation_code.clone(),
                    expires_at_ms: issued.expires_at_ms,
                    identity_id: id.to_string(),
                },
                vec![
                    format!("activation code: {}", issued.activation_code),
                    format!("expires at (Unix ms): {}", issued.expires_at_ms),
                ],
            ))
        }
        AdminCommand::Block { identity } => {
            let id: IdentityId = parse_id("identity ID", &identity)?;
            Ok(identity_report(&admin.block(id).await?))
        }
        AdminCommand::Unblock { identity } => {
            let id: IdentityId = parse_id("identity ID", &identity)?;
            Ok(identity_report(&admin.unblock(id).await?))
        }
        AdminCommand::Show { identity } => {
            let id: IdentityId = parse_id("identity ID", &identity)?;
            Ok(identity_report(&admin.identity(id).await?))
        }
        AdminCommand::RegisterProvider { name } => {
            let sp = admin.register_service_provider(&name).await?;
            Ok(Report::new(
                &json::ProviderRegistered {
                    api_key: sp.api_key.clone(),
                    name: sp.name.clone(),
                    service_provider_id: sp.service_provider_id.to_string(),
                },
                vec![
                    format!("service provider: {}", sp.service_provider_id),
                    format!("name:             {}", sp.name),
                    format!("API key:          {}", sp.api_key),
                    "(the API key is shown only this once; keep it secret)".into(),
                ],
            ))
        }
    }
}

fn identity_report(info: &IdentityInfo) -> Report {
    let mut lines = vec![
        format!("identity: {}", info.identity_id),
        format!("user ID:  {}", info.user_id),
        format!("blocked:  {}", if info.blocked { "yes" } else { "no" }),
        format!("phone:    {}", info.phone_masked.as_deref().unwrap_or("-")),
        format!("e-mail:   {}", info.email_masked.as_deref().unwrap_or("-")),
        format!("authenticators: {}", info.authenticators.len()),
    ];
    for a in &info.authenticators {
        lines.push(format!(
            "  {} {} (wrong PINs in a row: {})",
            a.authenticator_id,
            serde_name(&a.state),
            a.failed_pin_count
        ));
    }
    Report::new(&json::Identity::from(info), lines)
}

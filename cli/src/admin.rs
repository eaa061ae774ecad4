//! `eid admin`: support operations on a running server.

use clap::Subcommand;
use eid_api_client::AdminClient;
use eid_protocol::IdentityId;
use eid_protocol::wire::{
    AgentInfo, AgentRole, ApiKeyInfo, ApiKeyList, ClientJwk, CreateIdentityRequest, IdentityInfo,
    OidcClientAuthMethod, RegisterOidcClientRequest,
};

use crate::common::{Common, parse_id};
use crate::error::CliError;
use crate::json;
use crate::output::{Report, serde_name};
use crate::when;

/// Support operations (need the admin token or an agent's token).
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
        /// Why (required; stored in the audit, for example the support case).
        #[arg(long)]
        reason: String,
    },
    /// Unblock an identity.
    Unblock {
        /// The identity.
        #[arg(long)]
        identity: String,
        /// Why (required; stored in the audit).
        #[arg(long)]
        reason: String,
    },
    /// Show an identity and its authenticators.
    Show {
        /// The identity.
        #[arg(long)]
        identity: String,
    },
    /// Register a service provider (prints its API key once; administrator).
    RegisterProvider {
        /// The name shown to people on every request.
        #[arg(long)]
        name: String,
    },
    /// Register an OpenID Connect client for a service provider (prints its
    /// client secret once; administrator).
    RegisterOidcClient {
        /// The service provider's id.
        #[arg(long)]
        provider: String,
        /// An exact redirect URI (https, or http://127.0.0.1 for tests); repeat for more.
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// Issue a client secret for `client_secret_basic`.
        #[arg(long)]
        client_secret: bool,
        /// A file with the client's public EC P-256 JWK, for `private_key_jwt`.
        #[arg(long)]
        jwk_file: Option<std::path::PathBuf>,
        /// A scope the client may ask for; repeat for more (default: openid).
        #[arg(long = "scope", default_value = "openid")]
        scopes: Vec<String>,
    },
    /// List a service provider's API keys: id, state, end (never the key; administrator).
    ApiKeys {
        /// The service provider's id.
        #[arg(long)]
        provider: String,
    },
    /// Issue a new API key for a service provider (prints it once); its older
    /// keys keep working for the grace period, a day by default (administrator).
    RotateApiKey {
        /// The service provider's id.
        #[arg(long)]
        provider: String,
    },
    /// Revoke one API key of a service provider: refused at once (administrator).
    RevokeApiKey {
        /// The service provider's id.
        #[arg(long)]
        provider: String,
        /// The key's id (from `eid admin api-keys`).
        #[arg(long)]
        key: u64,
    },
    /// Set a service provider's webhook (prints its signing secret once) or
    /// remove it with `--remove` (administrator). See docs/webhooks.md.
    SetWebhook {
        /// The service provider's id.
        #[arg(long)]
        provider: String,
        /// Where events are POSTed (https, or http://127.0.0.1 for tests).
        #[arg(long, required_unless_present = "remove", conflicts_with = "remove")]
        url: Option<String>,
        /// Remove the webhook.
        #[arg(long)]
        remove: bool,
    },
    /// Create a support agent with its own token (prints it once; administrator).
    CreateAgent {
        /// The agent's name, as the audit shows it.
        #[arg(long)]
        name: String,
        /// What the agent may do.
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// List the agents (administrator).
    ListAgents,
    /// Revoke an agent: its token stops working at once (administrator).
    RevokeAgent {
        /// The agent's id.
        #[arg(long)]
        agent: u64,
    },
    /// Show the audit of admin actions, newest first (support: one identity only).
    Audit {
        /// Only this identity's rows.
        #[arg(long)]
        identity: Option<String>,
        /// At most this many rows (1 to 200).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Import a manufacturer's batch of code devices: a PSKC file (RFC 6030)
    /// whose seeds are encrypted under the pre-shared key (administrator).
    ImportTokens {
        /// The PSKC file.
        #[arg(long)]
        file: std::path::PathBuf,
        /// What the batch's devices are.
        #[arg(long, value_enum, default_value = "code-display")]
        kind: TokenKindArg,
        /// A label for the batch (default: the document's Id).
        #[arg(long)]
        label: Option<String>,
        /// Refused: see `SecretSource::refused_in_argv`.
        #[arg(
            long = "pre-shared-key",
            hide = true,
            num_args = 0..=1,
            default_missing_value = "",
            value_parser = crate::common::forget_secret
        )]
        pre_shared_key_in_argv: Option<crate::common::SecretInArgv>,
        /// File holding the pre-shared key (32 hex digits). Or the key
        /// itself in EID_PSKC_KEY (never on the command line).
        #[arg(long, env = "EID_PSKC_KEY_FILE")]
        pre_shared_key_file: Option<std::path::PathBuf>,
    },
}

/// A code device's kind on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum TokenKindArg {
    /// Shows the code on a screen.
    CodeDisplay,
    /// Reads the code out.
    CodeReader,
}

/// An agent's role on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum RoleArg {
    /// Look up, block, unblock, activation codes.
    Support,
    /// Also providers and agents.
    Administrator,
}

impl From<RoleArg> for AgentRole {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Support => AgentRole::Support,
            RoleArg::Administrator => AgentRole::Administrator,
        }
    }
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
                    format!(
                        "expires at {}",
                        when::moment(issued.expires_at_ms, when::now_ms())
                    ),
                ],
            ))
        }
        AdminCommand::Block { identity, reason } => {
            let id: IdentityId = parse_id("identity ID", &identity)?;
            Ok(identity_report(&admin.block(id, &reason).await?))
        }
        AdminCommand::Unblock { identity, reason } => {
            let id: IdentityId = parse_id("identity ID", &identity)?;
            Ok(identity_report(&admin.unblock(id, &reason).await?))
        }
        AdminCommand::RegisterOidcClient {
            provider,
            redirect_uris,
            client_secret,
            jwk_file,
            scopes,
        } => {
            let jwk = jwk_file.map(|path| read_jwk(&path)).transpose()?;
            let request = RegisterOidcClientRequest {
                service_provider_id: parse_id("service provider ID", &provider)?,
                redirect_uris,
                client_secret_basic: client_secret,
                jwk,
                scopes,
            };
            let c = admin.register_oidc_client(&request).await?;
            let methods: Vec<&str> = c
                .token_endpoint_auth_methods
                .iter()
                .map(|m| match m {
                    OidcClientAuthMethod::ClientSecretBasic => "client_secret_basic",
                    OidcClientAuthMethod::PrivateKeyJwt => "private_key_jwt",
                })
                .collect();
            let mut lines = vec![
                format!("client ID:        {}", c.client_id),
                format!("service provider: {}", c.service_provider_id),
                format!("redirect URIs:    {}", c.redirect_uris.join(" ")),
                format!("scopes:           {}", c.scopes.join(" ")),
                format!("authentication:   {}", methods.join(" ")),
                format!("sector:           {}", c.sector),
            ];
            if let Some(secret) = &c.client_secret {
                lines.push(format!("client secret:    {secret}"));
                lines.push("(the client secret is shown only this once; keep it secret)".into());
            }
            Ok(Report::new(
                &json::OidcClientRegistered {
                    client_id: c.client_id.clone(),
                    client_secret: c.client_secret.clone(),
                    redirect_uris: c.redirect_uris.clone(),
                    scopes: c.scopes.clone(),
                    sector: c.sector.clone(),
                    service_provider_id: c.service_provider_id.to_string(),
                    token_endpoint_auth_methods: methods.iter().map(|m| (*m).to_owned()).collect(),
                },
                lines,
            ))
        }
        AdminCommand::CreateAgent { name, role } => {
            let created = admin.create_agent(&name, role.into()).await?;
            let mut lines = agent_lines(&created.agent);
            lines.push(format!("token:    {}", created.token));
            lines.push("(the token is shown only this once; hand it over securely)".into());
            Ok(Report::new(
                &agent_json(&created.agent, Some(created.token.clone())),
                lines,
            ))
        }
        AdminCommand::ListAgents => {
            let list = admin.agents().await?;
            let lines = if list.agents.is_empty() {
                vec!["no agents".into()]
            } else {
                list.agents.iter().flat_map(agent_lines).collect()
            };
            Ok(Report::new(
                &json::Agents {
                    agents: list.agents.iter().map(|a| agent_json(a, None)).collect(),
                },
                lines,
            ))
        }
        AdminCommand::ApiKeys { provider } => {
            let id = parse_id("service provider ID", &provider)?;
            Ok(api_keys_report(&admin.api_keys(id).await?))
        }
        AdminCommand::RevokeApiKey { provider, key } => {
            let id = parse_id("service provider ID", &provider)?;
            Ok(api_keys_report(&admin.revoke_api_key(id, key).await?))
        }
        AdminCommand::RotateApiKey { provider } => {
            let id = parse_id("service provider ID", &provider)?;
            let rotated = admin.rotate_api_key(id).await?;
            Ok(Report::new(
                &json::ApiKeyRotated {
                    api_key: rotated.api_key.clone(),
                    key: api_key_json(&rotated.key),
                    old_keys_expire_at_ms: rotated.old_keys_expire_at_ms,
                    service_provider_id: id.to_string(),
                },
                vec![
                    format!("service provider: {id}"),
                    format!("new key id:       {}", rotated.key.key_id),
                    format!("API key:          {}", rotated.api_key),
                    "(the API key is shown only this once; keep it secret)".into(),
                    format!(
                        "older keys stop at (Unix ms): {}",
                        rotated.old_keys_expire_at_ms
                    ),
                ],
            ))
        }
        AdminCommand::SetWebhook {
            provider,
            url,
            remove: _,
        } => {
            let id = parse_id("service provider ID", &provider)?;
            let set = admin.set_webhook(id, url.as_deref()).await?;
            let mut lines = vec![format!("service provider: {id}")];
            match (&set.url, &set.secret) {
                (Some(url), Some(secret)) => {
                    lines.push(format!("webhook:          {url}"));
                    lines.push(format!("signing secret:   {secret}"));
                    lines.push(
                        "(the signing secret is shown only this once; keep it secret)".into(),
                    );
                }
                _ => lines.push("webhook:          removed".into()),
            }
            Ok(Report::new(
                &json::WebhookSet {
                    secret: set.secret.clone(),
                    service_provider_id: id.to_string(),
                    url: set.url.clone(),
                },
                lines,
            ))
        }
        AdminCommand::RevokeAgent { agent } => {
            let info = admin.revoke_agent(agent).await?;
            Ok(Report::new(&agent_json(&info, None), agent_lines(&info)))
        }
        AdminCommand::ImportTokens {
            file,
            kind,
            label,
            pre_shared_key_file,
            ..
        } => {
            let key = crate::common::read_pskc_key(pre_shared_key_file.as_deref())?;
            let pskc = std::fs::read_to_string(&file).map_err(|e| {
                CliError::invalid_argument(format!("cannot read {}: {e}", file.display()))
            })?;
            let imported = admin
                .import_token_batch(&eid_protocol::wire::ImportTokenBatchRequest {
                    pskc,
                    pre_shared_key: hex::encode(*key),
                    kind: match kind {
                        TokenKindArg::CodeDisplay => {
                            eid_protocol::wire::CodeDeviceKind::CodeDisplay
                        }
                        TokenKindArg::CodeReader => eid_protocol::wire::CodeDeviceKind::CodeReader,
                    },
                    label,
                })
                .await?;
            Ok(Report::new(
                &json::TokenBatchImported {
                    batch_id: imported.batch_id.clone(),
                    label: imported.label.clone(),
                    serials: imported.serials.clone(),
                },
                vec![
                    format!("batch imported: {} ({})", imported.label, imported.batch_id),
                    format!("devices:        {}", imported.serials.len()),
                ],
            ))
        }
        AdminCommand::Audit { identity, limit } => {
            let id = identity
                .as_deref()
                .map(|raw| parse_id::<IdentityId>("identity ID", raw))
                .transpose()?;
            let list = admin.audit(id, Some(limit), None).await?;
            let mut lines = Vec::new();
            let now = when::now_ms();
            for e in &list.entries {
                let target = e
                    .identity_id
                    .map(|i| format!(" identity {i}"))
                    .or(e.service_provider_id.map(|p| format!(" provider {p}")))
                    .or(e.target_agent_id.map(|a| format!(" agent {a}")))
                    .unwrap_or_default();
                let agent = e.agent_id.map_or_else(
                    || e.agent_name.clone(),
                    |a| format!("{} (agent {a})", e.agent_name),
                );
                lines.push(format!(
                    "#{} at {}: {} {}{} [{}]{}",
                    e.audit_id,
                    when::local_time(e.at_ms, now),
                    agent,
                    e.action,
                    target,
                    e.outcome,
                    e.reason
                        .as_deref()
                        .map(|r| format!(" reason: {r}"))
                        .unwrap_or_default()
                ));
            }
            if lines.is_empty() {
                lines.push("no audit rows".into());
            }
            Ok(Report::new(
                &json::Audit {
                    entries: list
                        .entries
                        .iter()
                        .map(|e| json::AuditEntry {
                            action: e.action.clone(),
                            agent_id: e.agent_id,
                            agent_name: e.agent_name.clone(),
                            at_ms: e.at_ms,
                            audit_id: e.audit_id,
                            identity_id: e.identity_id.map(|i| i.to_string()),
                            outcome: e.outcome.clone(),
                            reason: e.reason.clone(),
                            service_provider_id: e.service_provider_id.map(|p| p.to_string()),
                            target_agent_id: e.target_agent_id,
                        })
                        .collect(),
                },
                lines,
            ))
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

/// Reads a public JWK from a file (a JSON object).
fn read_jwk(path: &std::path::Path) -> Result<ClientJwk, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::invalid_argument(format!("cannot read the JWK file {}: {e}", path.display()))
    })?;
    serde_json::from_str(&text).map_err(|e| {
        CliError::invalid_argument(format!(
            "the JWK file {} is not a JSON object with kty and crv, x, y (EC) or n, e (RSA): {e}",
            path.display()
        ))
    })
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

fn api_key_json(key: &ApiKeyInfo) -> json::ApiKey {
    json::ApiKey {
        created_at_ms: key.created_at_ms,
        expires_at_ms: key.expires_at_ms,
        key_id: key.key_id,
        revoked_at_ms: key.revoked_at_ms,
        state: serde_name(&key.state),
    }
}

fn api_keys_report(list: &ApiKeyList) -> Report {
    let mut lines = vec![format!("service provider: {}", list.service_provider_id)];
    for k in &list.keys {
        let end = match (k.revoked_at_ms, k.expires_at_ms) {
            (Some(t), _) => format!(", revoked at {t} ms"),
            (None, Some(t)) => format!(", ends at {t} ms"),
            (None, None) => String::new(),
        };
        lines.push(format!(
            "  key {} {} (created at {} ms{end})",
            k.key_id,
            serde_name(&k.state),
            k.created_at_ms
        ));
    }
    Report::new(
        &json::ApiKeys {
            keys: list.keys.iter().map(api_key_json).collect(),
            service_provider_id: list.service_provider_id.to_string(),
        },
        lines,
    )
}

fn agent_json(agent: &AgentInfo, token: Option<String>) -> json::Agent {
    json::Agent {
        agent_id: agent.agent_id,
        created_at_ms: agent.created_at_ms,
        name: agent.name.clone(),
        revoked_at_ms: agent.revoked_at_ms,
        role: serde_name(&agent.role),
        token,
    }
}

fn agent_lines(agent: &AgentInfo) -> Vec<String> {
    vec![
        format!("agent:    {}", agent.agent_id),
        format!("name:     {}", agent.name),
        format!("role:     {}", serde_name(&agent.role)),
        format!(
            "revoked:  {}",
            agent.revoked_at_ms.map_or_else(
                || "no".to_owned(),
                |t| format!("at {}", when::moment(t, when::now_ms()))
            )
        ),
    ]
}

//! Support agents, roles and the append-only audit over real TLS with a real
//! SQLite file: who did what, when and why, for every admin action.

mod common;

use common::{Harness, assert_code};
use eid_api_client::AdminClient;
use eid_protocol::IdentityId;
use eid_protocol::wire::{AgentRole, AuditEntryInfo, ErrorBody, ErrorCode};

/// A support agent created by the bootstrap administrator, with its client.
async fn support_agent(h: &Harness, name: &str) -> (u64, AdminClient) {
    let created = h
        .admin
        .create_agent(name, AgentRole::Support)
        .await
        .unwrap();
    assert_eq!(created.agent.role, AgentRole::Support);
    (
        created.agent.agent_id,
        AdminClient::new(h.endpoint.clone(), &created.token),
    )
}

async fn identity(h: &Harness, user_id: &str) -> IdentityId {
    h.admin
        .create_identity(user_id, None)
        .await
        .unwrap()
        .identity_id
}

/// The newest audit rows of everything (read as the administrator).
async fn all_audit(h: &Harness) -> Vec<AuditEntryInfo> {
    h.admin.audit(None, Some(200), None).await.unwrap().entries
}

/// A raw admin POST; the status and error body.
async fn raw_post(
    h: &Harness,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> (u16, Option<ErrorBody>) {
    let mut req = h
        .endpoint
        .client
        .post(format!("{}{}", h.endpoint.base_url, path))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_owned());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.ok())
}

#[tokio::test]
async fn a_support_agent_blocks_with_a_reason_and_the_audit_row_names_them() {
    let h = Harness::start().await;
    let anna = identity(&h, "Anna#2024x").await;
    let (agent_id, support) = support_agent(&h, "Bo Support").await;

    let info = support
        .block(anna, "case 4711: phone stolen")
        .await
        .unwrap();
    assert!(info.blocked);
    let unblocked = support
        .unblock(anna, "case 4711: person identified at the counter")
        .await
        .unwrap();
    assert!(!unblocked.blocked);
    // Support may issue codes and look up too; each is audited.
    support.issue_activation_code(anna).await.unwrap();
    support.identity(anna).await.unwrap();

    let rows = support
        .audit(Some(anna), Some(10), None)
        .await
        .unwrap()
        .entries;
    let actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "look_up_identity",
            "issue_activation_code",
            "unblock",
            "block",
            "create_identity"
        ]
    );
    let block = &rows[3];
    assert_eq!(block.agent_id, Some(agent_id));
    assert_eq!(block.agent_name, "Bo Support");
    assert_eq!(block.identity_id, Some(anna));
    assert_eq!(block.reason.as_deref(), Some("case 4711: phone stolen"));
    assert_eq!(block.outcome, "done");
    assert!(block.at_ms > 0);
    // The identity's creation was by the bootstrap administrator.
    assert_eq!(rows[4].agent_id, None);
    assert_eq!(rows[4].agent_name, "bootstrap administrator");
    // Paging: the rows before the block.
    let older = support
        .audit(Some(anna), Some(10), Some(block.audit_id))
        .await
        .unwrap()
        .entries;
    assert_eq!(older.len(), 1);
    assert_eq!(older[0].action, "create_identity");
    // Audit ids are row ids: a cursor past i64::MAX, or a page of 0 or 201,
    // is refused.
    assert_code(
        h.admin.audit(None, None, Some(u64::MAX)).await,
        ErrorCode::InvalidParameter,
    );
    for limit in [0, 201] {
        assert_code(
            h.admin.audit(None, Some(limit), None).await,
            ErrorCode::InvalidParameter,
        );
    }
}

/// docs/protocol.md lists `read_audit` and `list_agents` among the audited
/// actions: a read of someone's case history, or of who may act on people,
/// leaves a row naming the reader (after the rows it read).
#[tokio::test]
async fn reading_the_audit_or_the_agents_is_audited_with_the_reader_and_the_identity() {
    let h = Harness::start().await;
    let anna = identity(&h, "Anna#2024x").await;
    let (agent_id, support) = support_agent(&h, "Bo Support").await;
    let first = support.audit(Some(anna), Some(10), None).await.unwrap();
    assert!(
        first.entries.iter().all(|r| r.action != "read_audit"),
        "a page does not show its own read"
    );
    h.admin.agents().await.unwrap();
    let rows = all_audit(&h).await;
    assert_eq!(rows[0].action, "list_agents");
    assert_eq!((rows[0].agent_id, rows[0].outcome.as_str()), (None, "done"));
    assert_eq!(rows[1].action, "read_audit");
    assert_eq!(rows[1].agent_id, Some(agent_id));
    assert_eq!(rows[1].identity_id, Some(anna));
    assert_eq!(rows[1].outcome, "done");
    let again = all_audit(&h).await;
    assert_eq!(again[0].action, "read_audit", "the administrator's read");
    assert_eq!(again[0].identity_id, None);
}

#[tokio::test]
async fn a_block_or_unblock_without_a_reason_is_refused_with_reason_required() {
    let h = Harness::start().await;
    let anna = identity(&h, "Anna#2024x").await;
    let (_, support) = support_agent(&h, "Bo Support").await;
    let token = h.server().admin_token.to_string();
    let long = format!("{{\"reason\": \"{}\"}}", "x".repeat(501));
    for verb in ["block", "unblock"] {
        let path = format!("/v1/admin/identities/{anna}/{verb}");
        for body in [
            None,
            Some("{}"),
            Some(r#"{"reason": ""}"#),
            Some(r#"{"reason": "   "}"#),
            Some(r#"{"reason": "two\nlines"}"#),
            Some(r#"{"reason": "hidden \u202e text"}"#),
            Some(long.as_str()),
        ] {
            let (status, error) = raw_post(&h, &path, &token, body).await;
            assert_eq!(status, 400, "{verb} {body:?}");
            assert_eq!(
                error.unwrap().error.code,
                ErrorCode::ReasonRequired,
                "{verb} {body:?}"
            );
        }
        assert_code(support.block(anna, "").await, ErrorCode::ReasonRequired);
    }
    assert!(!h.admin.identity(anna).await.unwrap().blocked);
    assert!(
        all_audit(&h)
            .await
            .iter()
            .all(|r| r.action != "block" && r.action != "unblock"),
        "a refused block writes no block row"
    );
}

#[tokio::test]
async fn a_support_agent_cannot_register_a_provider_or_manage_agents_and_the_refusal_is_audited() {
    let h = Harness::start().await;
    let (agent_id, support) = support_agent(&h, "Bo Support").await;

    assert_code(
        support.register_service_provider("Fake Bank").await,
        ErrorCode::ForbiddenRole,
    );
    assert_code(
        support
            .create_agent("Mallory", AgentRole::Administrator)
            .await,
        ErrorCode::ForbiddenRole,
    );
    assert_code(support.agents().await, ErrorCode::ForbiddenRole);
    assert_code(
        support.revoke_agent(agent_id).await,
        ErrorCode::ForbiddenRole,
    );
    // Support reads one identity's audit, not all of it.
    assert_code(
        support.audit(None, None, None).await,
        ErrorCode::ForbiddenRole,
    );

    let rows = all_audit(&h).await;
    let refused: Vec<&str> = rows
        .iter()
        .filter(|r| r.outcome == "refused_role")
        .map(|r| {
            assert_eq!(r.agent_id, Some(agent_id));
            r.action.as_str()
        })
        .collect();
    assert_eq!(
        refused,
        [
            "read_audit",
            "revoke_agent",
            "list_agents",
            "create_agent",
            "register_provider"
        ]
    );
    // Nothing was registered or created.
    assert_eq!(h.admin.agents().await.unwrap().agents.len(), 1);
    assert!(
        rows.iter()
            .filter(|r| r.action == "register_provider" && r.outcome == "done")
            .all(|r| r.agent_id.is_none()),
        "only the bootstrap administrator registered a provider"
    );
}

#[tokio::test]
async fn a_revoked_agent_token_is_refused_with_unauthorized() {
    let h = Harness::start().await;
    let anna = identity(&h, "Anna#2024x").await;
    let (agent_id, support) = support_agent(&h, "Bo Support").await;
    support.identity(anna).await.unwrap();

    let revoked = h.admin.revoke_agent(agent_id).await.unwrap();
    assert!(revoked.revoked_at_ms.is_some());
    assert_code(support.identity(anna).await, ErrorCode::Unauthorized);
    assert_code(
        support.block(anna, "case 1: after revocation").await,
        ErrorCode::Unauthorized,
    );
    // A second revocation finds nothing to revoke.
    assert_code(
        h.admin.revoke_agent(agent_id).await,
        ErrorCode::UnknownAgent,
    );
    assert_code(h.admin.revoke_agent(999).await, ErrorCode::UnknownAgent);
    let rows = all_audit(&h).await;
    assert_eq!(rows[0].action, "revoke_agent");
    assert_eq!(rows[0].target_agent_id, Some(agent_id));
    // The listing keeps the revoked agent, without its token.
    let listed = h.admin.agents().await.unwrap().agents;
    assert_eq!(listed[0].revoked_at_ms, revoked.revoked_at_ms);
}

#[tokio::test]
async fn audit_rows_cannot_be_updated_or_deleted_even_with_raw_sql() {
    let h = Harness::start().await;
    let anna = identity(&h, "Anna#2024x").await;
    h.admin
        .block(anna, "case 9: suspected fraud")
        .await
        .unwrap();

    let db = h.database();
    let count = |db: &rusqlite::Connection| -> i64 {
        db.query_row("SELECT COUNT(*) FROM audit", [], |r| r.get(0))
            .unwrap()
    };
    let before = count(&db);
    assert!(before >= 2);
    let update = db
        .execute("UPDATE audit SET reason = 'nothing happened'", [])
        .unwrap_err();
    assert!(update.to_string().contains("append-only"), "{update}");
    let delete = db.execute("DELETE FROM audit", []).unwrap_err();
    assert!(delete.to_string().contains("append-only"), "{delete}");
    assert_eq!(count(&db), before);
    let reason: String = db
        .query_row("SELECT reason FROM audit WHERE action = 'block'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(reason, "case 9: suspected fraud");
}

#[tokio::test]
async fn the_persons_block_event_points_to_the_audit_row_of_the_support_agent() {
    let h = Harness::start().await;
    let (anna, _phone) = h.person("Anna#2024x").await;
    let (agent_id, support) = support_agent(&h, "Bo Support").await;
    support.block(anna, "case 12: lost phone").await.unwrap();
    support.unblock(anna, "case 12: found it").await.unwrap();

    let rows = support
        .audit(Some(anna), Some(10), None)
        .await
        .unwrap()
        .entries;
    let block = rows.iter().find(|r| r.action == "block").unwrap();
    let unblock = rows.iter().find(|r| r.action == "unblock").unwrap();
    assert_eq!(block.agent_id, Some(agent_id));

    let db = h.database();
    let event_audit = |kind: &str| -> Option<i64> {
        db.query_row(
            "SELECT audit_id FROM security_events WHERE kind = ?1",
            [kind],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(event_audit("identity_blocked"), Some(block.audit_id as i64));
    assert_eq!(
        event_audit("identity_unblocked"),
        Some(unblock.audit_id as i64)
    );
    // Other events (the activation) point to no audit row.
    assert_eq!(event_audit("device_activated"), None);
}

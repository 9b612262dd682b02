//! Migrations 0009 and 0010 carry rows written by the text-era schema over to the typed
//! payload and job report, on SQLite (the SQL for PostgreSQL is the same statement for
//! statement, with its own JSON builder).

use keap::{ContactId, EmailAddress, EmailStatus};

use super::{AuditAction, EventPayload, JobId, Proof, Rule, Store, Subject, WritePath};

const BEFORE: [&str; 8] = [
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_reconcile.sql"),
    include_str!("../../migrations/sqlite/0003_providers.sql"),
    include_str!("../../migrations/sqlite/0004_opt_out_paths.sql"),
    include_str!("../../migrations/sqlite/0005_fair_shares.sql"),
    include_str!("../../migrations/sqlite/0006_dedupe_by_kind.sql"),
    include_str!("../../migrations/sqlite/0007_tokens_per_signing_key.sql"),
    include_str!("../../migrations/sqlite/0008_console.sql"),
];

const OLD_ROWS: &str = "
INSERT INTO tenants (id, app, keap_base_url, credential_kind, credential_sealed, token_hash, token_sealed, created_at, updated_at)
     VALUES (1, 'acme', 'http://keap', 'api_key', 'x', 'h', 's', 0, 0);
INSERT INTO jobs (id, tenant_id, subject, state, attempts, run_at, created_at, updated_at)
     VALUES (7, 1, 'contact:42', 'done', 1, 0, 0, 0);
INSERT INTO events (tenant_id, source, kind, contact_id, email, provider_event_id, body_digest, received_at, job_id, snapshot)
     VALUES (1, 'keap_post', 'opt_out', 42, NULL, NULL, 'abc', 1, 7, NULL),
            (1, 'fanout', 'shared_address', 42, 'a@x.example', NULL, 'job:3', 2, 7, NULL),
            (1, 'reconcile', 'discrepancy', 42, NULL, NULL, 'sweep', 3, 7,
             '{\"contact_id\":42,\"taken_at\":3,\"addresses\":[{\"field\":\"EMAIL2\",\"email\":\"a@x.example\",\"status\":\"Manual\"}]}'),
            (1, 'esp:sendgrid', 'unsubscribe', NULL, 'b@x.example', 'sg-1', 'def', 4, 7, NULL);
INSERT INTO audit (tenant_id, job_id, event_ids, contact_id, email, status_before, status_after, action, path, keap_calls, received_at, honoured_at, detail)
     VALUES (1, 7, '1,2', 42, 'c@x.example', 'SingleOptIn', 'Admin', 'opted_out', 'rest', 2, 1, 5, 'source a@x.example'),
            (1, 7, '4', NULL, 'b@x.example', 'SingleOptIn', 'Admin', 'opted_out', 'xmlrpc', 2, 4, 5, 'hard bounce');
";

#[tokio::test]
async fn text_era_rows_become_typed() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    for sql in BEFORE {
        sqlx::raw_sql(sql).execute(store.pool()).await.unwrap();
    }
    sqlx::raw_sql(OLD_ROWS).execute(store.pool()).await.unwrap();
    for sql in [
        include_str!("../../migrations/sqlite/0009_event_payload.sql"),
        include_str!("../../migrations/sqlite/0010_job_report.sql"),
    ] {
        sqlx::raw_sql(sql).execute(store.pool()).await.unwrap();
    }

    let events = store.job_events(JobId(7)).await.unwrap();
    let contact = ContactId::new(42).unwrap();
    let payloads: Vec<&EventPayload> = events.iter().map(|e| &e.payload).collect();
    assert_eq!(
        payloads[0],
        &EventPayload::KeapPost {
            subject: Subject::Contact(contact),
            addresses: Default::default(),
        }
    );
    assert!(
        matches!(payloads[1], EventPayload::Fanout { from_job, contact: c, .. } if *from_job == JobId(3) && *c == contact)
    );
    let EventPayload::Discrepancy {
        snapshot: Some(s), ..
    } = payloads[2]
    else {
        panic!("{:?}", payloads[2]);
    };
    assert_eq!(s.addresses[0].status, EmailStatus::Manual);
    assert!(matches!(payloads[3], EventPayload::Provider(p) if p.id.as_deref() == Some("sg-1")));
    let digests: Vec<Option<String>> = sqlx::query_scalar("SELECT digest FROM events ORDER BY id")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(
        digests,
        vec![Some("abc".into()), None, None, Some("def".into())]
    );

    let audit = store.audit(None, None, 10).await.unwrap();
    let bounce = &audit[0];
    assert_eq!(bounce.decision.rule, Some(Rule::Bounce));
    assert_eq!(bounce.event_ids.len(), 1);
    let propagated = &audit[1];
    assert_eq!(propagated.event_ids.len(), 2);
    assert_eq!(propagated.decision.action, AuditAction::OptedOut);
    assert_eq!(
        propagated.decision.rule,
        Some(Rule::Propagation {
            source: EmailAddress::parse("a@x.example").unwrap()
        })
    );
    let write = propagated.decision.write.unwrap();
    assert_eq!(
        (write.path, write.proof),
        (WritePath::Rest, Proof::ReadBack)
    );
    assert_eq!(propagated.decision.after, Some(EmailStatus::Admin));
}

//! XML-RPC: Keap's recorded wire samples answered byte for byte, its faults, and paging.

use keap::EmailStatus;
use keap::xmlrpc::{self, Response, Value};
use keap_sim::KeapSim;

use crate::{sim, xmlrpc_call};

const PROLOG: &str = r#"<?xml version="1.0" encoding="utf-8"?>"#;

async fn fixture_sim() -> KeapSim {
    let sim = sim().await;
    sim.add_contact(
        "hagglundized@gmail.com",
        None,
        None,
        EmailStatus::SingleOptIn,
    );
    sim.with_store_mut(|s| {
        s.set_next_contact_id(3606);
        let now = 1_437_000_000_000;
        let a = s.add_contact(
            "Severus",
            "Snape",
            [Some("test@tester.com".into()), None, None],
            EmailStatus::SingleOptIn,
            now,
        );
        s.set_next_contact_id(3610);
        let b = s.add_contact(
            "Albus",
            "Snape",
            [
                Some("albus@tester.com".into()),
                Some("TEST@tester.com".into()),
                None,
            ],
            EmailStatus::SingleOptIn,
            now,
        );
        assert_eq!((a, b), (3606, 3610));
    });
    sim
}

async fn assert_answer(sim: &KeapSim, request: &str, expected_body: &str) {
    for path in ["/crm/xmlrpc/v1", "/crm/xmlrpc"] {
        let (status, ct, body) = xmlrpc_call(sim, path, request).await;
        assert_eq!(status, 200);
        assert_eq!(ct, "text/xml;charset=UTF-8");
        assert_eq!(body, format!("{PROLOG}{expected_body}"), "{path}");
    }
}

#[tokio::test]
async fn recorded_samples_are_answered_byte_for_byte() {
    let sim = fixture_sim().await;
    // getOptStatus (S-CAS email_get_opt_status.yml)
    assert_answer(
        &sim,
        "<methodCall><methodName>APIEmailService.getOptStatus</methodName><params><param><value><string>not_a_real_key</string></value></param><param><value><string>hagglundized@gmail.com</string></value></param></params></methodCall>",
        "<methodResponse><params><param><value><i4>1</i4></value></param></params></methodResponse>",
    )
    .await;
    // optIn of an address that is already opted in → false
    assert_answer(
        &sim,
        "<methodCall><methodName>APIEmailService.optIn</methodName><params><param><value><string>not_a_real_key</string></value></param><param><value><string>hagglundized@gmail.com</string></value></param><param><value><string>because i said so</string></value></param></params></methodCall>",
        "<methodResponse><params><param><value><boolean>0</boolean></value></param></params></methodResponse>",
    )
    .await;
    // ContactService.findByEmail: two contacts share the address (one in EmailAddress2)
    assert_answer(
        &sim,
        "<methodCall><methodName>ContactService.findByEmail</methodName><params><param><value><string>not_a_real_key</string></value></param><param><value><string>test@tester.com</string></value></param><param><value><array><data><value><string>Id</string></value></data></array></value></param></params></methodCall>",
        "<methodResponse><params><param><value><array><data><value><struct><member><name>Id</name><value><i4>3606</i4></value></member></struct></value><value><struct><member><name>Id</name><value><i4>3610</i4></value></member></struct></value></data></array></value></param></params></methodResponse>",
    )
    .await;
    // ContactService.load: strings come back untyped
    assert_answer(
        &sim,
        "<methodCall><methodName>ContactService.load</methodName><params><param><value><string>not_a_real_key</string></value></param><param><value><i4>3606</i4></value></param><param><value><array><data><value><string>FirstName</string></value><value><string>LastName</string></value></data></array></value></param></params></methodCall>",
        "<methodResponse><params><param><value><struct><member><name>FirstName</name><value>Severus</value></member><member><name>LastName</name><value>Snape</value></member></struct></value></param></params></methodResponse>",
    )
    .await;
    // DataService.query with orderBy Id, ascending false (shape of data_query_order_by.yml)
    assert_answer(
        &sim,
        "<methodCall><methodName>DataService.query</methodName><params><param><value><string>not_a_real_key</string></value></param><param><value><string>Contact</string></value></param><param><value><i4>5</i4></value></param><param><value><i4>0</i4></value></param><param><value><struct><member><name>LastName</name><value><string>Snape</string></value></member></struct></value></param><param><value><array><data><value><string>Id</string></value><value><string>LastName</string></value></data></array></value></param><param><value><string>Id</string></value></param><param><value><boolean>0</boolean></value></param></params></methodCall>",
        "<methodResponse><params><param><value><array><data><value><struct><member><name>Id</name><value><i4>3610</i4></value></member><member><name>LastName</name><value>Snape</value></member></struct></value><value><struct><member><name>Id</name><value><i4>3606</i4></value></member><member><name>LastName</name><value>Snape</value></member></struct></value></data></array></value></param></params></methodResponse>",
    )
    .await;
    // findByField without orderBy: ascending by Id
    assert_answer(
        &sim,
        "<methodCall><methodName>DataService.findByField</methodName><params><param><value><string>k</string></value></param><param><value><string>Contact</string></value></param><param><value><i4>5</i4></value></param><param><value><i4>0</i4></value></param><param><value><string>LastName</string></value></param><param><value><string>Snape</string></value></param><param><value><array><data><value><string>Id</string></value></data></array></value></param></params></methodCall>",
        "<methodResponse><params><param><value><array><data><value><struct><member><name>Id</name><value><i4>3606</i4></value></member></struct></value><value><struct><member><name>Id</name><value><i4>3610</i4></value></member></struct></value></data></array></value></param></params></methodResponse>",
    )
    .await;
}

#[tokio::test]
async fn opt_out_of_an_unknown_address_creates_an_opted_out_row() {
    let sim = fixture_sim().await;
    // The recorded request, prolog and line breaks included (S-CAS email_optout.yml).
    let req = "<?xml version=\"1.0\" ?><methodCall><methodName>APIEmailService.optOut</methodName><params>\n<param><value><string>not_a_real_key</string></value></param>\n<param><value><string>boutthat@ction.boss</string></value></param>\n<param><value><string>because i said so</string></value></param>\n</params></methodCall>";
    let (_, _, body) = xmlrpc_call(&sim, "/crm/xmlrpc/v1", req).await;
    assert_eq!(
        body,
        format!(
            "{PROLOG}<methodResponse><params><param><value><boolean>1</boolean></value></param></params></methodResponse>"
        )
    );
    assert_eq!(sim.status("boutthat@ction.boss"), Some(EmailStatus::Admin));
    // Already opted out → false, and nothing written the second time.
    let (_, _, body) = xmlrpc_call(&sim, "/crm/xmlrpc/v1", req).await;
    assert!(body.contains("<boolean>0</boolean>"));
    assert_eq!(sim.stats().writes, 1);
    assert_eq!(sim.stats().calls.get("APIEmailService.optOut"), Some(&2));
}

#[tokio::test]
async fn opt_in_never_revives_an_opt_out() {
    let sim = fixture_sim().await;
    sim.add_contact("gone@example.com", None, None, EmailStatus::Manual);
    sim.add_contact("cold@example.com", None, None, EmailStatus::NonMarketable);
    let call = |e: &str| {
        xmlrpc::encode_call(
            "APIEmailService.optIn",
            &[Value::str("k"), Value::str(e), Value::str("")],
        )
    };
    let (_, _, body) = xmlrpc_call(&sim, "/crm/xmlrpc", &call("gone@example.com")).await;
    assert!(body.contains("<boolean>0</boolean>"));
    assert_eq!(sim.status("gone@example.com"), Some(EmailStatus::Manual));
    let (_, _, body) = xmlrpc_call(&sim, "/crm/xmlrpc", &call("cold@example.com")).await;
    assert!(body.contains("<boolean>1</boolean>"));
    assert_eq!(
        sim.status("cold@example.com"),
        Some(EmailStatus::SingleOptIn)
    );
}

async fn fault_of(sim: &KeapSim, body: &str) -> (i32, String) {
    let (status, ct, text) = xmlrpc_call(sim, "/crm/xmlrpc/v1", body).await;
    assert_eq!(status, 200, "faults come with HTTP 200");
    assert_eq!(ct, "text/xml;charset=UTF-8");
    match xmlrpc::parse_response(text.as_bytes()).expect("valid response") {
        Response::Fault(f) => (f.code, f.string),
        other => panic!("expected a fault, got {other:?}"),
    }
}

#[tokio::test]
async fn faults_carry_keaps_codes_and_texts() {
    let sim = fixture_sim().await;
    assert_eq!(
        fault_of(&sim, "<methodCall><methodName>APIEmailService.getOptStatus</methodName><params><param><value><string>k</string></value></param><param><value><nil/></value></param></params></methodCall>").await,
        (0, "Failed to parse XML-RPC request: Unknown type: nil".into())
    );
    assert_eq!(
        fault_of(&sim, "").await,
        (
            0,
            "Failed to parse XML-RPC request: Premature end of file.".into()
        )
    );
    assert_eq!(fault_of(&sim, "<methodCall><methodName>X").await.0, 0);
    assert_eq!(
        fault_of(
            &sim,
            &xmlrpc::encode_call("APIEmailService.sendTemplate", &[Value::str("k")])
        )
        .await,
        (0, "No such handler: APIEmailService.sendTemplate".into())
    );
    let wrong = xmlrpc::encode_call(
        "DataService.query",
        &[
            Value::str("k"),
            Value::Int(5),
            Value::Array(vec![]),
            Value::Struct(vec![]),
        ],
    );
    assert_eq!(
        fault_of(&sim, &wrong).await,
        (0, "No method matching arguments: java.lang.String, java.lang.Integer, [Ljava.lang.Object;, java.util.HashMap".into())
    );
    let load_missing = xmlrpc::encode_call(
        "ContactService.load",
        &[
            Value::str("k"),
            Value::Int(999_999),
            Value::Array(vec![Value::str("Id")]),
        ],
    );
    let (code, text) = fault_of(&sim, &load_missing).await;
    assert_eq!(code, 5);
    assert!(text.starts_with("[RecordNotFound]"), "{text}");
    let no_table = xmlrpc::encode_call(
        "DataService.count",
        &[Value::str("k"), Value::str("Nope"), Value::Struct(vec![])],
    );
    assert_eq!(fault_of(&sim, &no_table).await.0, 9);
    let no_field = xmlrpc::encode_call(
        "DataService.query",
        &[
            Value::str("k"),
            Value::str("Contact"),
            Value::Int(5),
            Value::Int(0),
            Value::Struct(vec![]),
            Value::Array(vec![Value::str("Nope")]),
        ],
    );
    let (code, text) = fault_of(&sim, &no_field).await;
    assert_eq!((code, text.starts_with("[NoFieldFound]")), (10, true));
}

#[tokio::test]
async fn data_service_pages_through_three_pages_with_like_and_null() {
    let sim = KeapSim::builder()
        .api_key(crate::KEY)
        .seed(1_100, 3)
        .start()
        .await
        .unwrap();
    let rows = sim.with_store(|s| s.rows.len());
    assert!(
        (2_001..3_000).contains(&rows),
        "{rows} EmailAddStatus rows: three pages"
    );
    let mut seen = std::collections::BTreeSet::new();
    let mut sizes = Vec::new();
    for page in 0..4 {
        let call = xmlrpc::encode_call(
            "DataService.query",
            &[
                Value::str("k"),
                Value::str("EmailAddStatus"),
                Value::Int(5_000), // clamped to 1000
                Value::Int(page),
                Value::Struct(vec![("Id".into(), Value::str("%"))]),
                Value::Array(vec![
                    Value::str("Id"),
                    Value::str("Email"),
                    Value::str("Type"),
                ]),
            ],
        );
        let (_, _, body) = xmlrpc_call(&sim, "/crm/xmlrpc/v1", &call).await;
        let Response::Value(Value::Array(items)) = xmlrpc::parse_response(body.as_bytes()).unwrap()
        else {
            panic!("not an array")
        };
        sizes.push(items.len());
        for it in &items {
            let ty = it.member("Type").and_then(Value::as_str).unwrap();
            assert!(ty.parse::<EmailStatus>().is_ok(), "{ty}");
            assert!(
                seen.insert(it.member("Id").and_then(Value::as_i64).unwrap()),
                "no row twice"
            );
        }
    }
    assert_eq!(sizes, vec![1000, 1000, rows - 2000, 0]);
    let count = xmlrpc::encode_call(
        "DataService.count",
        &[
            Value::str("k"),
            Value::str("EmailAddStatus"),
            Value::Struct(vec![]),
        ],
    );
    let (_, _, body) = xmlrpc_call(&sim, "/crm/xmlrpc/v1", &count).await;
    assert_eq!(
        xmlrpc::parse_response(body.as_bytes()).unwrap(),
        Response::Value(Value::Int(rows as i32))
    );
    // ~null~ matches contacts without an EmailAddress3; LIKE is case-insensitive.
    let nulls = xmlrpc::encode_call(
        "DataService.count",
        &[
            Value::str("k"),
            Value::str("Contact"),
            Value::Struct(vec![("EmailAddress3".into(), Value::str("~null~"))]),
        ],
    );
    let (_, _, body) = xmlrpc_call(&sim, "/crm/xmlrpc/v1", &nulls).await;
    let expected = sim.with_store(|s| {
        s.contacts
            .values()
            .filter(|c| c.emails[2].is_none())
            .count()
    });
    assert_eq!(
        xmlrpc::parse_response(body.as_bytes()).unwrap(),
        Response::Value(Value::Int(expected as i32))
    );
}

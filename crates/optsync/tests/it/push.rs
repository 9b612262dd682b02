//! `optsync provider push`: refusals store nothing, valid configurations store and list with
//! their scope, the credential is sealed in the row, and `doctor` names a refused key — all
//! against a real esp-sim.

use esp_sim::{EspSim, SesReason};

use crate::processes::cli_with;
use crate::{Db, MASTER_KEY, TestApp, on_both_backends};

const SES_ID: &str = "AKIDPUSHTEST0001";
const SES_SECRET: &str = "wJalrXUtnFEMIK7MDENGbPxRfiCYpushtestkey";
const SENDGRID_KEY: &str = "SG.push-test-key-0123456789abcdef";
const MAILGUN_KEY: &str = "key-push-test-0123456789abcdef";
const POSTMARK_TOKEN: &str = "postmark-server-token-push-test";

async fn esp() -> EspSim {
    EspSim::builder()
        .credential("ses", &format!("{SES_ID}:{SES_SECRET}"))
        .credential("sendgrid", SENDGRID_KEY)
        .credential("mailgun", MAILGUN_KEY)
        .credential("postmark", POSTMARK_TOKEN)
        .credential("mailjet", "mjpublic:mjprivate")
        .credential("brevo", "xkeysib-push-test")
        .ses_suppressed_reasons(&[SesReason::Bounce])
        .start()
        .await
        .expect("esp-sim starts")
}

struct Ctx {
    t: TestApp,
    esp: EspSim,
}

impl Ctx {
    async fn new(db: Db) -> Self {
        let t = TestApp::spawn(db).await;
        let dir = t.dir.path();
        std::fs::write(dir.join("sendgrid.key"), format!("{SENDGRID_KEY}\n")).unwrap();
        std::fs::write(dir.join("wrong.key"), "SG.not-the-key\n").unwrap();
        std::fs::write(dir.join("mailgun.key"), MAILGUN_KEY).unwrap();
        std::fs::write(dir.join("postmark.key"), POSTMARK_TOKEN).unwrap();
        std::fs::write(dir.join("mailjet.key"), "mjpublic:mjprivate").unwrap();
        std::fs::write(dir.join("brevo.key"), "xkeysib-push-test").unwrap();
        let aws = format!(
            "[default]\naws_access_key_id = OTHER\naws_secret_access_key = other\n\n[relay]\naws_access_key_id = {SES_ID}\naws_secret_access_key = {SES_SECRET}\n"
        );
        std::fs::write(dir.join("aws"), aws).unwrap();
        Self {
            t,
            esp: esp().await,
        }
    }

    fn file(&self, name: &str) -> String {
        self.t.dir.path().join(name).to_str().unwrap().to_string()
    }

    /// Runs the CLI on the test's database, off the runtime's threads.
    async fn cli(&self, args: Vec<String>) -> (bool, String, String) {
        let dir = self.t.dir.path().to_path_buf();
        let url = self.t.database_url.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cli_with(&dir, &url, &args, &[("OPTSYNC_MASTER_KEY", MASTER_KEY)])
        })
        .await
        .unwrap()
    }

    async fn push(&self, provider: &str, prefix: &str, extra: &[&str]) -> (bool, String, String) {
        let mut args: Vec<String> = ["provider", "push", "acme", provider, "--api-url"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(self.esp.url(prefix));
        args.extend(extra.iter().map(|s| s.to_string()));
        self.cli(args).await
    }

    async fn stored(&self) -> i64 {
        self.t.count("SELECT COUNT(*) FROM push_settings").await
    }
}

async fn refusals_store_nothing(db: Db) {
    let c = Ctx::new(db).await;
    let aws = c.file("aws");
    let key = |f| c.file(f);
    let cases: Vec<(&str, &str, Vec<String>, &str)> = vec![
        // The account enforces BOUNCE only: a COMPLAINT entry would not stop mail.
        (
            "ses",
            "/ses",
            vec![
                "--aws-credentials-file".into(),
                aws.clone(),
                "--aws-profile".into(),
                "relay".into(),
                "--region".into(),
                "us-east-1".into(),
                "--reason".into(),
                "COMPLAINT".into(),
            ],
            "not COMPLAINT",
        ),
        (
            "ses",
            "/ses",
            vec![
                "--aws-credentials-file".into(),
                aws.clone(),
                "--aws-profile".into(),
                "relay".into(),
            ],
            "per region",
        ),
        (
            "mailjet",
            "/mailjet",
            vec!["--api-key-file".into(), key("mailjet.key")],
            "marketing",
        ),
        (
            "mailgun",
            "/mailgun/us",
            vec!["--api-key-file".into(), key("mailgun.key")],
            "per sending domain",
        ),
        (
            "postmark",
            "/postmark",
            vec!["--api-key-file".into(), key("postmark.key")],
            "per message stream",
        ),
        (
            "brevo",
            "/brevo",
            vec!["--api-key-file".into(), key("brevo.key")],
            "per sender",
        ),
        (
            "sendgrid",
            "/sendgrid",
            vec!["--api-key-file".into(), key("wrong.key")],
            "credential refused",
        ),
    ];
    for (provider, prefix, extra, why) in cases {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let (ok, _, err) = c.push(provider, prefix, &extra).await;
        assert!(!ok, "{provider} {extra:?} was accepted");
        assert!(
            err.contains(why) && err.contains("nothing stored"),
            "{provider}: {err}"
        );
        assert_eq!(c.stored().await, 0, "{provider}: something was stored");
    }
    // http off loopback is refused before any call.
    let (ok, _, err) = c
        .cli(
            [
                "provider",
                "push",
                "acme",
                "sendgrid",
                "--api-url",
                "http://example.com",
                "--api-key-file",
                &key("sendgrid.key"),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        )
        .await;
    assert!(!ok && err.contains("https"), "{err}");
    assert_eq!(c.stored().await, 0);
}
on_both_backends!(refusals_store_nothing);

async fn valid_pushes_store_list_and_seal(db: Db) {
    let c = Ctx::new(db).await;
    let (aws, sg, mg, pm) = (
        c.file("aws"),
        c.file("sendgrid.key"),
        c.file("mailgun.key"),
        c.file("postmark.key"),
    );
    let ses = [
        "--aws-credentials-file",
        &aws,
        "--aws-profile",
        "relay",
        "--region",
        "us-east-1",
        "--region",
        "eu-west-1",
        "--reason",
        "BOUNCE",
    ];
    for (p, prefix, extra) in [
        ("ses", "/ses", &ses[..]),
        ("sendgrid", "/sendgrid", &["--api-key-file", &sg][..]),
        (
            "mailgun",
            "/mailgun/us",
            &[
                "--api-key-file",
                &mg,
                "--domain",
                "mg.example.com",
                "--domain",
                "news.example.com",
            ][..],
        ),
        (
            "postmark",
            "/postmark",
            &[
                "--api-key-file",
                &pm,
                "--stream",
                "outbound",
                "--stream",
                "broadcast",
            ][..],
        ),
    ] {
        let (ok, out, err) = c.push(p, prefix, extra).await;
        assert!(ok, "{p}: {err}");
        assert!(
            out.contains(&format!("{p} push configured for acme")),
            "{out}"
        );
    }
    let (ok, out, err) = c
        .push(
            "mailjet",
            "/mailjet",
            &["--api-key-file", &c.file("mailjet.key"), "--marketing-only"],
        )
        .await;
    assert!(ok, "{err}");
    assert!(out.contains("Only marketing mail will be blocked"), "{out}");
    assert_eq!(c.stored().await, 5);

    let (ok, out, _) = c
        .cli(vec!["provider".into(), "list".into(), "acme".into()])
        .await;
    assert!(ok);
    for scope in [
        "ses        push to regions us-east-1,eu-west-1; reason BOUNCE",
        "sendgrid   push to global suppressions",
        "mailgun    push to domains mg.example.com,news.example.com; region us",
        "postmark   push to streams outbound,broadcast",
        "mailjet    push to marketing only",
    ] {
        assert!(out.contains(scope), "{scope:?} not in {out}");
    }
    for secret in [
        SES_SECRET,
        SENDGRID_KEY,
        MAILGUN_KEY,
        POSTMARK_TOKEN,
        "mjprivate",
    ] {
        assert!(!out.contains(secret), "list shows a secret");
    }

    // The raw rows hold no secret in clear.
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT scope, config_sealed FROM push_settings")
            .fetch_all(c.t.state.store.pool())
            .await
            .unwrap();
    for (scope, sealed) in rows {
        for secret in [
            SES_SECRET,
            SES_ID,
            SENDGRID_KEY,
            MAILGUN_KEY,
            POSTMARK_TOKEN,
            "mjprivate",
        ] {
            assert!(
                !sealed.contains(secret) && !scope.contains(secret),
                "{secret} in clear"
            );
        }
        assert!(
            !sealed.contains("regions") && !sealed.contains("us-east-1"),
            "config in clear"
        );
    }

    let (ok, out, _) = c
        .cli(
            ["provider", "unpush", "acme", "mailjet"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        )
        .await;
    assert!(ok && out.contains("mailjet push removed"), "{out}");
    let (ok, _, _) = c
        .cli(
            ["provider", "push", "acme", "postmark", "--remove"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        )
        .await;
    assert!(ok);
    assert_eq!(c.stored().await, 3);
}
on_both_backends!(valid_pushes_store_list_and_seal);

async fn doctor_names_a_refused_push_key(db: Db) {
    let c = Ctx::new(db).await;
    let sg = c.file("sendgrid.key");
    let (ok, _, err) = c
        .push("sendgrid", "/sendgrid", &["--api-key-file", &sg])
        .await;
    assert!(ok, "{err}");
    let doctor = || c.cli(vec!["doctor".into(), "acme".into()]);
    let (_, out, _) = doctor().await;
    assert!(
        out.contains("ok   push") && out.contains("sendgrid: global suppressions readable"),
        "{out}"
    );
    // The key is revoked at SendGrid: only a new one is accepted now.
    c.esp.shared().lock().config.credentials = vec!["sendgrid=SG.rotated-key".parse().unwrap()];
    let (ok, out, _) = doctor().await;
    assert!(!ok, "doctor passed with a refused push key: {out}");
    assert!(
        out.contains("FAIL push") && out.contains("sendgrid for acme"),
        "{out}"
    );
    assert!(out.contains("credential refused"), "{out}");
}
on_both_backends!(doctor_names_a_refused_push_key);

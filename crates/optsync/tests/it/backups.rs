//! `optsync backup` while posts stream in, and `optsync restore` elsewhere: the copy holds
//! every post answered before the backup began, and a service on it honours its pending jobs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use keap::EmailStatus;
use keap_sim::SimEvent;
use optsync::app::App;
use optsync::config::Settings;
use sqlx::Row as _;

use crate::processes::cli_with;
use crate::{Db, MASTER_KEY, TempDir, TestApp, post_to, test_pacing};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_posts_holds_every_answered_post_and_restores() {
    let t = TestApp::spawn(Db::Sqlite).await;
    let contacts: Vec<(i64, Vec<String>)> = (0..200)
        .map(|i| {
            let c = t.contact(&format!("b{i}"), 2);
            // The person unsubscribed on Email 1; Keap's post is what the test sends.
            t.sim.event(&c.1[0], SimEvent::UnsubscribeLink).unwrap();
            c
        })
        .collect();
    let answered = Arc::new(Mutex::new(Vec::<i64>::new()));
    let poster = {
        let (answered, url) = (answered.clone(), t.post_url.clone());
        let ids: Vec<i64> = contacts.iter().map(|c| c.0).collect();
        tokio::spawn(async move {
            for id in ids {
                let (code, _) = post_to(&url, &[("contactId", &id.to_string())]).await;
                if code == 200 {
                    answered.lock().unwrap().push(id);
                }
            }
        })
    };
    while answered.lock().unwrap().len() < 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Everything answered 200 up to here must be in the copy; posts go on meanwhile.
    let before = answered.lock().unwrap().clone();
    let backup = TempDir::new("backup");
    let dest = backup.path().join("copy");
    let (dir, url) = (t.dir.path().to_path_buf(), t.database_url.clone());
    let dest_arg = dest.display().to_string();
    let key = [("OPTSYNC_MASTER_KEY", MASTER_KEY)];
    let (ok, _, err) =
        tokio::task::spawn_blocking(move || cli_with(&dir, &url, &["backup", &dest_arg], &key))
            .await
            .unwrap();
    assert!(ok, "{err}");
    assert!(err.contains("master key is not in it"), "{err}");
    assert!(!dest.join("master.key").exists(), "the key stays out");
    let during = answered.lock().unwrap().len();
    poster.await.unwrap();
    assert!(
        during > before.len(),
        "posts were answered while the backup ran"
    );

    // Restore into an empty data directory; a second restore into it is refused.
    let restored = TempDir::new("restored");
    let data = restored.path().join("data");
    let rurl = format!("sqlite://{}", data.join("optsync.db").display());
    let src = dest.display().to_string();
    let (ok, _, err) = cli_with(&data, &rurl, &["restore", &src], &key);
    assert!(ok, "{err}");
    let (ok, _, err) = cli_with(&data, &rurl, &["restore", &src], &key);
    assert!(!ok && err.contains("not empty"), "{err}");

    let mut settings = Settings::for_dir(&data, Some(rurl));
    settings.master_key = Some(MASTER_KEY.into());
    let copy = App::builder(settings)
        .pacing(test_pacing())
        .build()
        .await
        .unwrap();
    let in_copy: Vec<i64> = sqlx::query("SELECT contact_id FROM events")
        .fetch_all(copy.store().pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get(0).unwrap())
        .collect();
    for id in &before {
        assert!(
            in_copy.contains(id),
            "contact {id} was answered 200 before the backup"
        );
    }
    // The restored service honours the copy's pending jobs against Keap.
    copy.worker().drain().await.unwrap();
    for (id, emails) in contacts.iter().filter(|c| in_copy.contains(&c.0)) {
        assert_eq!(
            t.statuses(emails),
            vec![Some(EmailStatus::Manual), Some(EmailStatus::Admin)],
            "contact {id}"
        );
    }
}

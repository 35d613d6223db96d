//! The store's behaviour, run on both engines: SQLite in a temporary directory, and
//! PostgreSQL in a fresh database on the server `TEST_DATABASE_URL` names (`scripts/test`
//! starts a throwaway one).

use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;

use super::*;
use crate::asana::{AsanaUser, StoredTokens};

/// A fresh store on each engine; the temporary directory lives as long as the store.
pub async fn engines() -> Vec<(Store, Option<tempfile::TempDir>)> {
    let mut stores = Vec::new();
    for (url, dir) in urls().await {
        let store = Store::open_and_migrate(&url, Sealer::default())
            .await
            .expect("store");
        stores.push((store, dir));
    }
    stores
}

/// The URL of a fresh store on each engine.
async fn urls() -> Vec<(DatabaseUrl, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = DatabaseUrl::parse(&format!(
        "sqlite://{}",
        dir.path().join("data/linker.db").display()
    ))
    .expect("sqlite url");
    vec![(sqlite, Some(dir)), (fresh_postgres().await, None)]
}

/// A new, empty database on the test server.
pub async fn fresh_postgres() -> DatabaseUrl {
    let server = std::env::var("TEST_DATABASE_URL").expect(
        "TEST_DATABASE_URL is not set: run the tests with scripts/test, which starts PostgreSQL",
    );
    let name = format!("linker_test_{}", crate::util::random::hex_id());
    let admin = Store::open(
        &DatabaseUrl::parse(&server).expect("TEST_DATABASE_URL"),
        Sealer::default(),
    )
    .await
    .expect("the test PostgreSQL server answers");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin.pool)
        .await
        .expect("create a test database");
    admin.pool.close().await;
    let mut url = ::url::Url::parse(&server).expect("TEST_DATABASE_URL");
    url.set_path(&name);
    DatabaseUrl::parse(url.as_str()).expect("url")
}

fn tokens(user: &str, access: &str, valid_for: Duration) -> StoredTokens {
    StoredTokens {
        access_token: SecretString::from(access),
        refresh_token: Some(SecretString::from(format!("refresh-{access}"))),
        expires_at: SystemTime::now() + valid_for,
        user: AsanaUser {
            gid: user.to_owned(),
            name: format!("User {user}"),
            email: None,
        },
    }
}

/// Connects Asana user `user` (a consent with tokens valid for an hour).
pub async fn connect(store: &Store, user: &str) {
    store
        .save_consent(&tokens(
            user,
            &format!("a{user}"),
            Duration::from_secs(3600),
        ))
        .await
        .expect("consent");
}

fn access(tokens: &StoredTokens) -> &str {
    tokens.access_token.expose_secret()
}

#[tokio::test]
async fn the_first_connection_is_the_default_until_another_is_marked_or_it_disconnects() {
    for (store, _dir) in engines().await {
        let engine = store.url().engine();
        assert!(store.default_connection().await.expect("read").is_none());
        store
            .save_consent(&tokens("1", "a1", Duration::from_secs(3600)))
            .await
            .expect("save");
        store
            .save_consent(&tokens("2", "b1", Duration::from_secs(3600)))
            .await
            .expect("save");
        store
            .save_consent(&tokens("2", "b2", Duration::from_secs(3600)))
            .await
            .expect("save again");
        let default = store
            .default_connection()
            .await
            .expect("read")
            .expect("one");
        assert_eq!(
            (default.user.gid.as_str(), access(&default)),
            ("1", "a1"),
            "{engine}: a later consent changes nothing for the first"
        );
        let second = store.connection("2").await.expect("read").expect("kept");
        assert_eq!(access(&second), "b2", "{engine}");
        let report = store.report().await.expect("report");
        assert_eq!(report.rows[0], ("connections", 2), "{engine}");
        assert_eq!(report.schema_version, 4, "{engine}");

        assert!(store.set_default("2").await.expect("mark"));
        assert!(!store.set_default("3").await.expect("not connected"));
        assert_eq!(store.connected_users().await.expect("read"), ["2", "1"]);
        store.disconnect("2").await.expect("disconnect");
        assert_eq!(
            store.connected_users().await.expect("read"),
            ["1"],
            "{engine}"
        );
        assert_eq!(
            store.find_user("1").await.expect("find").as_deref(),
            Some("1")
        );
        let listed = store.list_connections().await.expect("list");
        assert_eq!(
            listed
                .iter()
                .map(|c| (c.user_gid.as_str(), c.state, c.is_default))
                .collect::<Vec<_>>(),
            [
                ("1", ConnectionState::Healthy, true),
                ("2", ConnectionState::Revoked, false)
            ],
            "{engine}"
        );
    }
}

#[tokio::test]
async fn one_process_at_a_time_holds_the_refresh_lease_and_the_others_see_its_token() {
    for (store, _dir) in engines().await {
        let engine = store.url().engine();
        let stale = tokens("1", "old", Duration::ZERO);
        store.save_consent(&stale).await.expect("save");
        let lease = Duration::from_secs(30);

        let first = store
            .take_refresh_lease("1", &stale.access_token, "a", lease)
            .await
            .expect("lease");
        assert!(matches!(first, Lease::Taken(_)), "{engine}: {first:?}");
        let second = store
            .take_refresh_lease("1", &stale.access_token, "b", lease)
            .await
            .expect("lease");
        assert!(matches!(second, Lease::Held(_)), "{engine}: {second:?}");

        store
            .save_refreshed(&tokens("1", "new", Duration::from_secs(3600)), "a")
            .await
            .expect("save");
        match store
            .take_refresh_lease("1", &stale.access_token, "b", lease)
            .await
            .expect("lease")
        {
            Lease::Changed(current) => assert_eq!(access(&current), "new", "{engine}"),
            other => panic!("{engine}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_a_revoked_connection_is_gone() {
    for (store, _dir) in engines().await {
        let engine = store.url().engine();
        let stale = tokens("1", "old", Duration::ZERO);
        store.save_consent(&stale).await.expect("save");
        let short = Duration::from_millis(1);
        let taken = store
            .take_refresh_lease("1", &stale.access_token, "dead", short)
            .await
            .expect("lease");
        assert!(matches!(taken, Lease::Taken(_)), "{engine}");
        tokio::time::sleep(Duration::from_millis(5)).await;
        let again = store
            .take_refresh_lease("1", &stale.access_token, "alive", short)
            .await
            .expect("lease");
        assert!(matches!(again, Lease::Taken(_)), "{engine}: {again:?}");

        store.revoke_connection("1").await.expect("revoke");
        let gone = store
            .take_refresh_lease("1", &stale.access_token, "alive", short)
            .await
            .expect("lease");
        assert!(matches!(gone, Lease::Gone), "{engine}: {gone:?}");
        assert!(store.default_connection().await.expect("read").is_none());
    }
}

#[tokio::test]
async fn a_key_is_claimed_once_and_taken_over_only_as_it_was_read() {
    for (store, _dir) in engines().await {
        let engine = store.url().engine();
        let lease = Duration::from_secs(30);
        assert!(
            store
                .claim_key("s", "k", "f", "a", lease)
                .await
                .expect("claim")
        );
        assert!(
            !store
                .claim_key("s", "k", "f", "b", lease)
                .await
                .expect("claim"),
            "{engine}"
        );
        assert!(
            store
                .claim_key("other", "k", "f", "b", lease)
                .await
                .expect("scoped")
        );

        store
            .finish_key("s", "k", "a", KeyState::Unknown, 504, "{}")
            .await
            .expect("finish");
        let row = store.key("s", "k").await.expect("read").expect("row");
        assert_eq!(row.state, KeyState::Unknown, "{engine}");
        assert!(
            store
                .take_over_key("s", "k", &row, "b", lease)
                .await
                .expect("take")
        );
        assert!(
            !store
                .take_over_key("s", "k", &row, "c", lease)
                .await
                .expect("take"),
            "{engine}: a row is taken over once"
        );
        store.release_key("s", "k", "b").await.expect("release");
        assert!(
            store.key("s", "k").await.expect("read").is_none(),
            "{engine}"
        );
    }
}

#[tokio::test]
async fn seen_events_are_recorded_once_and_old_rows_are_pruned() {
    for (store, _dir) in engines().await {
        let engine = store.url().engine();
        assert!(store.mark_seen("story:1").await.expect("mark"));
        assert!(!store.mark_seen("story:1").await.expect("mark"), "{engine}");
        assert!(store.is_seen("story:1").await.expect("read"));
        store
            .claim_key("s", "k", "f", "a", Duration::from_secs(30))
            .await
            .expect("claim");
        tokio::time::sleep(Duration::from_millis(5)).await;

        assert_eq!(
            store.prune(Duration::from_secs(3600)).await.expect("prune"),
            0
        );
        assert_eq!(
            store.prune(Duration::ZERO).await.expect("prune"),
            2,
            "{engine}"
        );
        assert!(!store.is_seen("story:1").await.expect("read"));
    }
}

#[cfg(unix)]
#[tokio::test]
async fn the_sqlite_file_and_its_directory_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("state/linker.db");
    let url = DatabaseUrl::parse(&format!("sqlite://{}", path.display())).expect("url");
    Store::open_and_migrate(&url, Sealer::default())
        .await
        .expect("store");
    let mode = |p: &Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().expect("dir")), 0o700);
}

fn sealer(current: Option<&str>, previous: Option<&str>) -> Sealer {
    let key =
        |k: Option<&str>| k.map(|k| StoreKey::parse("STORE_KEY", &k.repeat(32)).expect("key"));
    Sealer::new(key(current), key(previous))
}

#[tokio::test]
async fn with_a_store_key_no_token_is_in_the_database_and_a_key_can_be_rotated() {
    for (url, _dir) in urls().await {
        let engine = url.engine();
        let plain = Store::open_and_migrate(&url, Sealer::default())
            .await
            .expect("store");
        plain
            .save_consent(&tokens("1", "secret-access", Duration::from_secs(3600)))
            .await
            .expect("save");

        // Setting a key seals what was stored plain.
        let sealed = Store::open_and_migrate(&url, sealer(Some("aa"), None))
            .await
            .expect("store");
        let raw = sqlx::query("SELECT access_token, refresh_token FROM connections")
            .fetch_one(&sealed.pool)
            .await
            .expect("row");
        let (a, r): (String, String) = (raw.get("access_token"), raw.get("refresh_token"));
        assert!(
            !a.contains("secret-access") && !r.contains("secret-access"),
            "{engine}: {a}"
        );
        let read = sealed
            .default_connection()
            .await
            .expect("opens")
            .expect("row");
        assert_eq!(access(&read), "secret-access", "{engine}");

        // The lease still finds the token it was asked about, sealed as it is.
        let lease = sealed
            .take_refresh_lease("1", &read.access_token, "a", Duration::from_secs(5))
            .await
            .expect("lease");
        assert!(matches!(lease, Lease::Taken(_)), "{engine}: {lease:?}");

        // Without the key, or with another, it stops with a line naming STORE_KEY.
        for wrong in [Sealer::default(), sealer(Some("bb"), None)] {
            let error = Store::open_and_migrate(&url, wrong)
                .await
                .expect_err("refused");
            assert!(error.to_string().contains("STORE_KEY"), "{engine}: {error}");
        }

        // Rotation: the new key with the old one as previous reseals everything.
        let rotated = Store::open_and_migrate(&url, sealer(Some("bb"), Some("aa")))
            .await
            .expect("rotated");
        let after = Store::open_and_migrate(&url, sealer(Some("bb"), None))
            .await
            .expect("new key alone");
        assert_eq!(
            access(
                &after
                    .default_connection()
                    .await
                    .expect("opens")
                    .expect("row")
            ),
            "secret-access",
            "{engine}"
        );
        drop(rotated);
    }
}

#[tokio::test]
async fn a_consent_state_is_spent_once_and_the_cookie_key_is_made_once_and_sealed() {
    for (url, _dir) in urls().await {
        let engine = url.engine();
        let key = StoreKey::parse("STORE_KEY", &"ab".repeat(32)).expect("key");
        let store = Store::open_and_migrate(&url, Sealer::new(Some(key), None))
            .await
            .expect("store");
        let ttl = Duration::from_secs(600);
        assert!(store.spend_consent("s1", ttl).await.expect("spend"));
        assert!(
            !store.spend_consent("s1", ttl).await.expect("replay"),
            "{engine}"
        );
        assert!(store.spend_consent("s2", ttl).await.expect("another"));

        let first = store.cookie_key().await.expect("made");
        assert_eq!(store.cookie_key().await.expect("read"), first, "{engine}");
        let stored: String = sqlx::query("SELECT value FROM secrets WHERE name = 'cookie_key'")
            .fetch_one(&store.pool)
            .await
            .expect("row")
            .try_get("value")
            .expect("value");
        let hex: String = first.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!stored.contains(&hex), "{engine}: sealed with STORE_KEY");
    }
}

#[tokio::test]
async fn posted_stories_are_recorded_once_and_read_newest_first() {
    for (store, _dir) in engines().await {
        let engine = store.url().engine();
        let story = |gid: &str, at: i64| PostedStory {
            connection: "default".to_owned(),
            story_gid: gid.to_owned(),
            task_gid: "1".to_owned(),
            context_name: "n".to_owned(),
            marker: format!("ref 0123456789abcdef.{gid}"),
            posted_at: at,
        };
        store
            .record_posted(vec![story("1", 10), story("2", 20)])
            .await
            .expect("record");
        store
            .record_posted(vec![story("2", 99), story("3", 30)])
            .await
            .expect("record again");

        let latest = store.latest_posted("default", 10).await.expect("read");
        assert_eq!(
            latest,
            [story("3", 30), story("2", 20), story("1", 10)],
            "{engine}"
        );
        // Batches of every statement size, full and part-filled: each story goes in once, and
        // nothing else does.
        let mut next = 5000;
        for size in [1, 3, 4, 17, 64, 255, 256] {
            let batch = (next..next + size)
                .map(|i| story(&i.to_string(), i))
                .collect();
            next += size;
            store.record_posted(batch).await.expect("record a batch");
        }
        let rows = |report: super::Report| {
            report
                .rows
                .into_iter()
                .find(|(table, _)| *table == "posted_stories")
                .map(|(_, n)| n)
        };
        assert_eq!(
            rows(store.report().await.expect("report")),
            Some(603),
            "{engine}"
        );
        // A big batch, with a text that needs escaping, goes in whole.
        let mut many: Vec<PostedStory> = (100..1100).map(|i| story(&i.to_string(), i)).collect();
        many[0].context_name = "quote \" and \\ and ünïcode, {NULL}".to_owned();
        store
            .record_posted(many.clone())
            .await
            .expect("record many");
        let latest = store.latest_posted("default", 2000).await.expect("read");
        assert_eq!(latest.len(), 1603, "{engine}");
        assert_eq!(latest.last(), Some(&story("1", 10)));
        assert_eq!(latest[latest.len() - 4], many[0], "{engine}");
        assert!(
            store
                .latest_posted("other", 10)
                .await
                .expect("read")
                .is_empty()
        );
    }
}

#[tokio::test]
async fn a_webhook_job_is_queued_once_claimed_by_one_worker_and_kept_until_handled() {
    for (store, _dir) in engines().await {
        let engine = store.url().engine();
        let lease = Duration::from_secs(30);
        let events = [("e1".to_owned(), "{}".to_owned())];
        assert_eq!(store.enqueue_jobs("h", &events).await.expect("queue"), 1);
        assert_eq!(store.enqueue_jobs("h", &events).await.expect("again"), 0);
        assert_eq!(store.queued_jobs().await.expect("count"), 1);

        let job = store
            .claim_job("a", lease, Duration::ZERO)
            .await
            .expect("claim")
            .expect("a job");
        assert_eq!((job.event_id.as_str(), job.attempts), ("e1", 1));
        assert_eq!(
            store
                .claim_job("b", lease, Duration::ZERO)
                .await
                .expect("claim"),
            None,
            "{engine}: held by a"
        );
        // Queued work is never pruned, whatever its age.
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(store.prune(Duration::ZERO).await.expect("prune"), 0);
        store.finish_job("e1", "b").await.expect("not b's");
        assert_eq!(store.queued_jobs().await.expect("count"), 1, "{engine}");
        store.finish_job("e1", "a").await.expect("finish");

        assert_eq!(store.queued_jobs().await.expect("count"), 0);
        assert_eq!(
            store.enqueue_jobs("h", &events).await.expect("redelivery"),
            0
        );
        assert_eq!(store.prune(Duration::ZERO).await.expect("prune"), 1);
        assert_eq!(
            store.enqueue_jobs("h", &events).await.expect("after 24 h"),
            1
        );
    }
}

#[tokio::test]
async fn a_dead_workers_job_is_taken_over_after_lease_and_grace_with_its_attempts_counted() {
    for (store, _dir) in engines().await {
        let engine = store.url().engine();
        let events = [("e1".to_owned(), "{\"x\":1}".to_owned())];
        store.enqueue_jobs("h", &events).await.expect("queue");
        store
            .claim_job("dead", Duration::from_millis(1), Duration::ZERO)
            .await
            .expect("claim")
            .expect("a job");
        tokio::time::sleep(Duration::from_millis(20)).await;

        assert_eq!(
            store
                .claim_job("b", Duration::from_secs(30), Duration::from_secs(30))
                .await
                .expect("claim"),
            None,
            "{engine}: within the grace"
        );
        let job = store
            .claim_job("b", Duration::from_secs(30), Duration::ZERO)
            .await
            .expect("claim")
            .expect("taken over");
        assert_eq!((job.event.as_str(), job.attempts), ("{\"x\":1}", 2));
        store.finish_job("e1", "dead").await.expect("too late");
        assert_eq!(store.queued_jobs().await.expect("count"), 1, "{engine}");
    }
}

#[tokio::test]
async fn concurrent_workers_claim_each_job_exactly_once() {
    for (store, _dir) in engines().await {
        let engine = store.url().engine();
        let events: Vec<(String, String)> = (0..40)
            .map(|i| (format!("e{i}"), "{}".to_owned()))
            .collect();
        store.enqueue_jobs("h", &events).await.expect("queue");
        let workers = (0..6).map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                while let Some(job) = store
                    .claim_job(&format!("w{w}"), Duration::from_secs(30), Duration::ZERO)
                    .await
                    .expect("claim")
                {
                    mine.push(job.event_id);
                }
                mine
            })
        });
        let mut claimed = Vec::new();
        for worker in workers.collect::<Vec<_>>() {
            claimed.extend(worker.await.expect("worker"));
        }
        claimed.sort();
        let mut expected: Vec<String> = events.into_iter().map(|(id, _)| id).collect();
        expected.sort();
        assert_eq!(claimed, expected, "{engine}");
    }
}

#[tokio::test]
async fn mcp_sessions_keep_their_owner_and_end_with_their_persons_keys_or_connection() {
    for (store, _dir) in engines().await {
        let engine = store.url().engine();
        for user in ["42", "77"] {
            connect(&store, user).await;
        }
        store
            .put_mcp_session("s-ada", "hash-a", Some("42"), "{}")
            .await
            .expect("put");
        store
            .put_mcp_session("s-grace", "hash-g", Some("77"), "{}")
            .await
            .expect("put");
        store
            .put_mcp_session("s-operator", "hash-o", None, r#"{"a":1}"#)
            .await
            .expect("put");
        let row = store.mcp_session("s-operator").await.expect("read");
        assert_eq!(
            row.map(|r| (r.owner, r.state)),
            Some(("hash-o".to_owned(), r#"{"a":1}"#.to_owned())),
            "{engine}"
        );

        store.revoke_api_keys("42").await.expect("revoke");
        store.disconnect("77").await.expect("disconnect");

        for gone in ["s-ada", "s-grace"] {
            assert!(
                store.mcp_session(gone).await.expect("read").is_none(),
                "{engine}: {gone}"
            );
        }
        assert!(
            store
                .mcp_session("s-operator")
                .await
                .expect("read")
                .is_some()
        );
        store
            .delete_mcp_session("s-operator")
            .await
            .expect("delete");
        assert!(
            store
                .mcp_session("s-operator")
                .await
                .expect("read")
                .is_none()
        );
    }
}

#[tokio::test]
async fn a_postgres_connection_that_broke_while_it_waited_in_the_pool_is_replaced() {
    let store = Store::open_and_migrate(&fresh_postgres().await, Sealer::default())
        .await
        .expect("store");
    store.ping().await.expect("a first query");
    // Another session ends every connection the pool holds, as a restarted server would.
    let other = Store::open(store.url(), Sealer::default())
        .await
        .expect("a second pool");
    let ended: i64 = sqlx::query(
        "SELECT COUNT(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_one(&other.pool)
    .await
    .expect("end the pool's connections")
    .try_get("n")
    .expect("n");
    assert!(ended >= 1, "the pool held a connection");
    other.pool.close().await;
    // What is under test is how long a connection waited in the pool.
    tokio::time::sleep(TEST_IDLE_AFTER + Duration::from_millis(200)).await;
    store
        .ping()
        .await
        .expect("the broken connection is replaced, not handed out");
}

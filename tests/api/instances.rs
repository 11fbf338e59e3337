//! The PostgreSQL backend as operators meet it: readiness that follows the database, and
//! several instances on one database behaving as one server.

use std::time::{Duration, Instant};

use crate::helpers::TestApp;
use crate::postgres;

/// A server on `pg` in a schema of its own.
async fn on(pg: &postgres::PgServer, extra: &str) -> TestApp {
    let url = pg.new_schema();
    TestApp::spawn_with(&format!(
        "[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n{extra}"
    ))
    .await
}

async fn ready(app: &TestApp) -> u16 {
    app.get("/readyz", None).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_database_and_recovers_without_a_restart() {
    let Some(pg) = postgres::dedicated() else {
        return;
    };
    let app = on(&pg, "").await;
    let t = app.register("ready@example.com").await;
    assert_eq!(ready(&app).await, 200);
    pg.stop();
    assert_eq!(ready(&app).await, 503, "the database is down");
    assert!(
        app.me(&t.token).await.status >= 500,
        "no answer from a store that is gone"
    );
    pg.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    while ready(&app).await != 200 {
        assert!(Instant::now() < deadline, "readiness did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        app.me(&t.token).await.status,
        200,
        "served again, same data"
    );
}

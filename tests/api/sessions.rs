//! Refresh-token rotation, reuse detection, the grace, logout and the session list.

use std::sync::Arc;

use serde_json::json;

use crate::helpers::{keys, tokens, TestApp, PASSWORD};

#[tokio::test]
async fn refresh_rotates_both_tokens() {
    let app = TestApp::spawn().await;
    let t0 = app.register("rot@example.com").await;
    app.clock.advance(5);
    let r = app.refresh(&t0.refresh_token).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(keys(&r.json()), ["refresh_token", "token"]);
    let t1 = tokens(&r);
    assert_ne!(t1.refresh_token, t0.refresh_token);
    assert_ne!(t1.token, t0.token);
    assert_eq!(t1.refresh_token.len(), 43, "256 random bits, base64url");
    assert_eq!(app.me(&t1.token).await.status, 200);
}

#[tokio::test]
async fn reusing_a_rotated_out_token_ends_the_session() {
    let app = TestApp::spawn().await;
    let t0 = app.register("reuse@example.com").await;
    let t1 = tokens(&app.refresh(&t0.refresh_token).await);
    let t2 = tokens(&app.refresh(&t1.refresh_token).await);
    // Same second, two generations back: still detected.
    let replay = app.refresh(&t0.refresh_token).await;
    assert_eq!(
        (replay.status, replay.code()),
        (401, "invalid_refresh_token".to_string())
    );
    assert_eq!(
        app.refresh(&t2.refresh_token).await.status,
        401,
        "the live token died with the session"
    );
    assert_eq!(
        app.me(&t2.token).await.status,
        401,
        "and so did its access tokens, at once"
    );
}

#[tokio::test]
async fn reuse_in_one_session_leaves_other_sessions_alone() {
    let app = TestApp::spawn().await;
    let a0 = app.register("fam@example.com").await;
    let b0 = tokens(&app.login("fam@example.com", PASSWORD).await);
    app.refresh(&a0.refresh_token).await;
    assert_eq!(app.refresh(&a0.refresh_token).await.status, 401);
    assert_eq!(app.refresh(&b0.refresh_token).await.status, 200);
}

#[tokio::test]
async fn of_concurrent_refreshes_of_one_token_at_most_one_succeeds() {
    let app = Arc::new(TestApp::spawn().await);
    let t0 = app.register("race@example.com").await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (app, rt) = (app.clone(), t0.refresh_token.clone());
        tasks.push(tokio::spawn(async move { app.refresh(&rt).await }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let r = t.await.expect("task");
        assert!(r.status == 200 || r.status == 401, "{}", r.status);
        if r.status == 200 {
            winners.push(tokens(&r));
        }
    }
    assert!(winners.len() <= 1, "{} successors", winners.len());
    // The losers presented a rotated-out token, so the session is over: no live lineage remains.
    for w in winners {
        assert_eq!(app.refresh(&w.refresh_token).await.status, 401);
    }
}

#[tokio::test]
async fn concurrent_refreshes_of_different_sessions_all_succeed() {
    let app = Arc::new(TestApp::spawn().await);
    // Several sessions per user as well as several users: neither may hold up the other.
    let mut live = Vec::new();
    for u in 0..8 {
        let email = format!("many{u}@example.com");
        live.push(app.register(&email).await.refresh_token);
        for _ in 0..2 {
            live.push(tokens(&app.login(&email, PASSWORD).await).refresh_token);
        }
    }
    let first = live.clone();
    for _round in 0..3 {
        let tasks: Vec<_> = live
            .iter()
            .map(|rt| {
                let (app, rt) = (app.clone(), rt.clone());
                tokio::spawn(async move { app.refresh(&rt).await })
            })
            .collect();
        let mut next = Vec::new();
        for t in tasks {
            let r = t.await.expect("task");
            assert_eq!(r.status, 200, "{:?}", r.body);
            let t = tokens(&r);
            assert_eq!(app.me(&t.token).await.status, 200);
            next.push(t.refresh_token);
        }
        live = next;
    }
    // Each rotated once per round: the first tokens are three generations gone.
    assert_eq!(app.refresh(&first[0]).await.status, 401);
    assert_eq!(app.refresh(&live[1]).await.status, 200);
}

#[tokio::test]
async fn within_the_grace_a_rotated_out_token_gets_the_same_successor() {
    let app = Arc::new(TestApp::spawn_with("[tokens]\nrefresh_reuse_grace = \"10s\"").await);
    let t0 = app.register("grace@example.com").await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (app, rt) = (app.clone(), t0.refresh_token.clone());
        tasks.push(tokio::spawn(async move { app.refresh(&rt).await }));
    }
    let mut pairs = Vec::new();
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!(r.status, 200, "every racing tab succeeds");
        let t = tokens(&r);
        pairs.push((t.token, t.refresh_token));
    }
    pairs.dedup();
    assert_eq!(pairs.len(), 1, "one lineage, one successor pair");
    let (_, t1) = pairs.remove(0);
    app.clock.advance(10);
    let again = tokens(&app.refresh(&t0.refresh_token).await);
    assert_eq!(again.refresh_token, t1, "still within the grace");
    app.clock.advance(1);
    assert_eq!(
        app.refresh(&t0.refresh_token).await.status,
        401,
        "after the grace it is reuse"
    );
    assert_eq!(
        app.refresh(&t1).await.status,
        401,
        "and the session is over"
    );
}

#[tokio::test]
async fn the_grace_only_covers_the_immediate_predecessor() {
    let app = TestApp::spawn_with("[tokens]\nrefresh_reuse_grace = \"10s\"").await;
    let t0 = app.register("grace2@example.com").await;
    let t1 = tokens(&app.refresh(&t0.refresh_token).await);
    let t2 = tokens(&app.refresh(&t1.refresh_token).await);
    assert_eq!(
        app.refresh(&t0.refresh_token).await.status,
        401,
        "two generations back"
    );
    assert_eq!(
        app.refresh(&t2.refresh_token).await.status,
        401,
        "session ended"
    );
}

#[tokio::test]
async fn sessions_end_after_refresh_ttl_however_often_refreshed() {
    let app = TestApp::spawn_with("[tokens]\nrefresh_ttl = \"1h\"").await;
    let mut t = app.register("ttl@example.com").await;
    for _ in 0..3 {
        app.clock.advance(1000);
        t = tokens(&app.refresh(&t.refresh_token).await);
    }
    app.clock.advance(600);
    assert_eq!(app.refresh(&t.refresh_token).await.status, 401);
}

#[tokio::test]
async fn bad_refresh_requests() {
    let app = TestApp::spawn().await;
    let t = app.register("badref@example.com").await;
    let mut flipped = t.refresh_token.clone().into_bytes();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    for bad in [
        flipped.as_str(),
        "",
        "x",
        &"A".repeat(43),
        &"a".repeat(60_000),
    ] {
        let r = app.refresh(bad).await;
        assert_eq!(
            (r.status, r.code()),
            (401, "invalid_refresh_token".to_string()),
            "{}",
            bad.len()
        );
    }
    for body in [json!({}), json!({"refresh_token": null})] {
        assert_eq!(app.post("/v1/auth/refresh", body).await.status, 422);
    }
    for body in [json!({"refresh_token": 5}), json!({"refresh_token": ["x"]})] {
        assert_eq!(app.post("/v1/auth/refresh", body).await.status, 400);
    }
    assert_eq!(
        app.refresh(&t.refresh_token).await.status,
        200,
        "the real one still works"
    );
}

#[tokio::test]
async fn logout_ends_the_current_session_at_once() {
    let app = TestApp::spawn().await;
    let t = app.register("bye@example.com").await;
    let other = tokens(&app.login("bye@example.com", PASSWORD).await);
    let r = app
        .post_as("/v1/auth/logout", Some(&t.token), json!({}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"message_code": "logged_out"}));
    assert_eq!(app.me(&t.token).await.status, 401);
    assert_eq!(app.refresh(&t.refresh_token).await.status, 401);
    assert_eq!(
        app.me(&other.token).await.status,
        200,
        "other sessions live on"
    );
    let no_body = app
        .request(
            "POST",
            "/v1/auth/logout",
            &[("authorization", &format!("Bearer {}", other.token))],
            None,
        )
        .await;
    assert_eq!(no_body.status, 200, "logout needs no body");
    assert_eq!(app.post("/v1/auth/logout", json!({})).await.status, 401);
}

#[tokio::test]
async fn sessions_are_listed_with_the_current_one_marked() {
    let app = TestApp::spawn().await;
    let first = app.register("list@example.com").await;
    app.clock.advance(1);
    let second = app
        .request(
            "POST",
            "/v1/auth/login",
            &[
                ("content-type", "application/json"),
                ("user-agent", "TestBrowser/1.0"),
            ],
            Some(
                json!({"email": "list@example.com", "password": PASSWORD})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await;
    let second = tokens(&second);
    let r = app.get("/v1/auth/sessions", Some(&second.token)).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(keys(&v), ["sessions"]);
    let list = v["sessions"].as_array().expect("list");
    assert_eq!(list.len(), 2);
    assert_eq!(
        keys(&list[0]),
        [
            "created_at",
            "current",
            "id",
            "ip",
            "last_used_at",
            "user_agent"
        ]
    );
    assert_eq!(list[0]["current"], true, "newest first, and it is this one");
    assert_eq!(list[0]["user_agent"], "TestBrowser/1.0");
    assert_eq!(list[0]["ip"], "127.0.0.1");
    assert_eq!(list[1]["current"], false);
    let first_sid = crate::helpers::jwt_part(&first.token, 1)["sid"].clone();
    assert_eq!(list[1]["id"], first_sid);
}

#[tokio::test]
async fn a_session_can_be_revoked_by_its_owner_only() {
    let app = TestApp::spawn().await;
    let a1 = app.register("owner@example.com").await;
    let a2 = tokens(&app.login("owner@example.com", PASSWORD).await);
    let b = app.register("intruder@example.com").await;
    let sid = crate::helpers::jwt_part(&a1.token, 1)["sid"]
        .as_str()
        .expect("sid")
        .to_string();
    let path = format!("/v1/auth/sessions/{sid}");
    assert_eq!(
        app.delete(&path, &b.token).await.status,
        404,
        "another user's session"
    );
    assert_eq!(app.me(&a1.token).await.status, 200);
    let r = app.delete(&path, &a2.token).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"message_code": "session_revoked"}));
    assert_eq!(app.me(&a1.token).await.status, 401);
    assert_eq!(app.refresh(&a1.refresh_token).await.status, 401);
    assert_eq!(
        app.delete(&path, &a2.token).await.status,
        404,
        "already gone"
    );
    assert_eq!(
        app.delete("/v1/auth/sessions/ses-unknown", &a2.token)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn a_user_holds_at_most_max_sessions_and_the_oldest_ends_first() {
    let app = TestApp::spawn_with("[tokens]\nmax_sessions_per_user = 3").await;
    let first = app.register("many@example.com").await;
    let mut latest = Vec::new();
    for _ in 0..3 {
        app.clock.advance(1);
        latest.push(tokens(&app.login("many@example.com", PASSWORD).await));
    }
    assert_eq!(
        app.refresh(&first.refresh_token).await.status,
        401,
        "the oldest session ended"
    );
    assert_eq!(app.me(&first.token).await.status, 401);
    let list = app
        .get("/v1/auth/sessions", Some(&latest[2].token))
        .await
        .json();
    assert_eq!(list["sessions"].as_array().expect("sessions").len(), 3);
    for t in &latest {
        assert_eq!(
            app.refresh(&t.refresh_token).await.status,
            200,
            "newer ones live"
        );
    }
}

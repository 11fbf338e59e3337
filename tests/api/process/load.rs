//! Memory under load: fifty logins at once at the default scrypt cost.

use serde_json::json;

use super::support::{configured, start, try_http};

#[test]
fn fifty_concurrent_logins_at_the_default_cost_stay_under_1_gib() {
    use cloudheed_auth::testing::domain::password::Password;
    use cloudheed_auth::testing::secret::Secret;
    use cloudheed_auth::testing::store::{NewSession, NewUser, Store};
    // The default scrypt cost (ln=17, 128 MiB per hash); only rate limits are off.
    let (dir, args) = configured("");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // Fifty accounts written straight into the store, sharing one hash computed once.
    let params = scrypt::Params::new(17, 8, 1, 32).expect("params");
    let hash = cloudheed_auth::testing::crypto::password::hash_with(
        &params,
        &Password::new("overload-password-1".into()),
    )
    .expect("hash");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let store =
            Store::open(&dir.path().join("data").join("cloudheed-auth.redb")).expect("open");
        for i in 0..50 {
            let user = NewUser {
                id: format!("user-load{i}"),
                email: format!("load{i}@example.com"),
                email_key: format!("load{i}@example.com"),
                name: "L".into(),
                company: None,
                plan: "free".into(),
                password_hash: Secret::new(hash.clone()),
                created_at: 1,
            };
            let session = NewSession {
                id: format!("ses-load{i}"),
                user_id: user.id.clone(),
                now: 1,
                expires_at: 2,
                user_agent: None,
                ip: None,
                keep_at_most: 100,
                network: None,
                refresh_hash: [i as u8; 32],
            };
            store
                .create_account(user, session, Vec::new())
                .await
                .expect("create");
        }
    });
    drop(rt);
    let server = start(dir.path(), &args, &[]);
    let pid = server.child.id();
    let mut threads = Vec::new();
    for i in 0..50 {
        let addr = server.addr.clone();
        threads.push(std::thread::spawn(move || {
            let body =
                json!({"email": format!("load{i}@example.com"), "password": "overload-password-1"});
            try_http(&addr, "POST", "/v1/auth/login", None, Some(&body))
                .map(|(s, v)| (s, v["message_code"].clone()))
        }));
    }
    let mut ok = 0;
    for t in threads {
        match t.join().expect("thread") {
            Some((200, _)) => ok += 1,
            Some((503, code)) => assert_eq!(code, "overloaded"),
            other => panic!("every login ends 200 or 503: {other:?}"),
        }
    }
    assert!(ok > 0, "some logins got through");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    assert!(peak_kib < 1024 * 1024, "peak memory {peak_kib} KiB");
    assert_eq!(server.terminate().0, 0);
}

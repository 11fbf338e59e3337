//! Criterion benchmarks of each hot path through the public API: scrypt, JWT sign and verify,
//! SHA-256 of a token, a store read and a durable store write (DESIGN "Performance budget"),
//! a group of 64 concurrent durable writes against the same 64 one at a time (group commit),
//! the API-key checksum, authenticating a bearer credential as `GET /v1/auth/verify` does, and
//! one rate-limit check with few and with 300k clients tracked (it must stay flat).
//!
//! Run with `cargo bench --bench hot_paths`; medians land in
//! `target/criterion/<group>/<bench>/new/estimates.json`.

use std::hint::black_box;
use std::time::Duration;

use cloudheed_auth::clock::{Clock, SystemClock, UnixTime};
use cloudheed_auth::testing::crypto::api_key;
use cloudheed_auth::testing::crypto::jwt::{self, Claims};
use cloudheed_auth::testing::crypto::keys::{KeyPair, Keyring};
use cloudheed_auth::testing::crypto::password::hash_with;
use cloudheed_auth::testing::crypto::random;
use cloudheed_auth::testing::domain::models::{ClientInfo, Credential};
use cloudheed_auth::testing::domain::password::Password;
use cloudheed_auth::testing::domain::types::{Company, DisplayName, Email, KeyName, Scopes};
use cloudheed_auth::testing::service::accounts::{self, Registration};
use cloudheed_auth::testing::service::api_keys::{self, KeyRequest};
use cloudheed_auth::testing::service::credentials;
use cloudheed_auth::testing::service::token_cache::TokenCache;
use cloudheed_auth::testing::store::{CreateOutcome, NewSession, NewUser, Rotation, Store};
use cloudheed_auth::{App, Config};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use tokio::runtime::Runtime;

const ISSUER: &str = "cloudheed-auth";

/// scrypt at the default cost (ln=17, r=8, p=1: ~128 MiB per hash) and at ln=15 for comparison.
/// Flat sampling with 10 samples keeps this to about one hash per sample.
fn scrypt(c: &mut Criterion) {
    let password = Password::new("load-test-password-91".into());
    let mut group = c.benchmark_group("scrypt");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1));
    for (log_n, secs) in [(15u8, 3), (17u8, 8)] {
        let params = scrypt::Params::new(log_n, 8, 1, scrypt::Params::RECOMMENDED_LEN)
            .expect("valid scrypt parameters");
        group.measurement_time(Duration::from_secs(secs));
        group.bench_function(format!("hash_ln{log_n}_r8_p1"), |b| {
            b.iter(|| hash_with(black_box(&params), black_box(&password)).expect("scrypt hash"))
        });
    }
    group.finish();
}

/// Claims shaped like the ones the server issues.
fn claims(now: UnixTime) -> Claims {
    Claims {
        iss: ISSUER.into(),
        sub: random::id("user-"),
        iat: now,
        exp: now + 900,
        jti: random::id("jti-"),
        sid: random::id("ses-"),
        auth_time: now,
    }
}

/// Ed25519 JWS: signing an access token and strictly verifying one.
fn jwt(c: &mut Criterion) {
    let key = KeyPair::generate();
    let ring = Keyring::new(vec![(key.clone(), None)], 960).expect("one key makes a keyring");
    let now = SystemClock.now();
    let claims = claims(now);
    let token = jwt::sign(&claims, &key);
    assert!(
        jwt::verify(&token, &ring, ISSUER, now).is_ok(),
        "fresh token verifies"
    );

    let mut group = c.benchmark_group("jwt");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("sign", |b| {
        b.iter(|| jwt::sign(black_box(&claims), black_box(&key)))
    });
    group.bench_function("verify", |b| {
        b.iter(|| {
            jwt::verify(black_box(&token), black_box(&ring), ISSUER, black_box(now))
                .expect("token verifies")
        })
    });
    // The same check through the verified-token cache: a hit costs one SHA-256 and a lookup;
    // with the cache off (0 entries) every call verifies the signature.
    let cached = TokenCache::new(10_000);
    let off = TokenCache::new(0);
    group.bench_function("verify_cached", |b| {
        b.iter(|| {
            cached
                .verify(black_box(&token), &ring, ISSUER, now)
                .expect("token verifies")
        })
    });
    group.bench_function("verify_cache_off", |b| {
        b.iter(|| {
            off.verify(black_box(&token), &ring, ISSUER, now)
                .expect("token verifies")
        })
    });
    group.finish();
}

/// SHA-256 of a 43-character opaque token: the at-rest form of refresh tokens and API keys.
fn sha256(c: &mut Criterion) {
    let token = random::token();
    assert_eq!(token.len(), 43);
    let mut group = c.benchmark_group("sha256");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("token_43_chars", |b| {
        b.iter(|| random::sha256(black_box(token.as_bytes())))
    });
    group.finish();
}

/// A store holding one account with one session, in a temp dir on the same disk as `target/`
/// (not a tmpfs) so commits really reach the disk.
struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    session_id: String,
    refresh_hash: [u8; 32],
    now: UnixTime,
}

fn fixture(rt: &Runtime) -> Fixture {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let store = Store::open(&dir.path().join("cloudheed-auth.redb")).expect("open store");
    let now = SystemClock.now();
    let (session_id, refresh_hash) = account(rt, &store, "bench@example.com", now);
    Fixture {
        _dir: dir,
        store,
        session_id,
        refresh_hash,
        now,
    }
}

/// Create an account with one session; its id and the hash of its refresh token.
fn account(rt: &Runtime, store: &Store, email: &str, now: UnixTime) -> (String, [u8; 32]) {
    let user_id = random::id("user-");
    let session_id = random::id("ses-");
    let refresh_hash = random::sha256(random::token().as_bytes());
    let user = NewUser {
        id: user_id.clone(),
        email: email.into(),
        email_key: email.into(),
        name: "Bench User".into(),
        company: None,
        plan: "free".into(),
        // The store never looks inside the hash; a real PHC string keeps the record realistic.
        password_hash: cloudheed_auth::testing::secret::Secret::new(
            "$scrypt$ln=17,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$\
             aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
                .into(),
        ),
        created_at: now,
    };
    let session = NewSession {
        id: session_id.clone(),
        user_id,
        now,
        expires_at: now + 30 * 24 * 3600,
        user_agent: Some("criterion".into()),
        ip: Some("127.0.0.1".into()),
        keep_at_most: 100,
        network: Some("127.0.0.1".into()),
        refresh_hash,
    };
    let outcome = rt
        .block_on(store.create_account(user, session, Vec::new()))
        .expect("create account");
    assert_eq!(outcome, CreateOutcome::Created);
    (session_id, refresh_hash)
}

/// One read transaction (`session_with_user`, as GET /me does) and one durable write transaction
/// (`rotate_refresh`, as POST /refresh does), each including the hop to the blocking pool.
fn store(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let mut group = c.benchmark_group("store");
    group.measurement_time(Duration::from_secs(5));

    let f = fixture(&rt);
    group.bench_function("session_with_user", |b| {
        b.iter(|| {
            rt.block_on(f.store.session_with_user(f.session_id.clone(), f.now))
                .expect("store read")
                .expect("session exists")
        })
    });

    let mut current = f.refresh_hash;
    let mut counter: u64 = 0;
    group.bench_function("rotate_refresh_commit", |b| {
        b.iter(|| {
            counter += 1;
            let next = random::sha256(&counter.to_le_bytes());
            let r = rt
                .block_on(
                    f.store
                        .rotate_refresh(current, next, f.now, 0, reuse_event()),
                )
                .expect("store write");
            assert!(matches!(r, Rotation::Rotated(_)), "rotation succeeds");
            current = next;
        })
    });
    group.finish();
}

/// A group of N concurrent durable writes (`rotate_refresh` of N sessions, as N clients
/// refreshing at once) against the same N one after another. The store's writer commits what
/// queued together under one fsync, so the group should cost a fraction of N single commits.
fn group_commit(c: &mut Criterion) {
    const N: u64 = 64;
    let rt = Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let store = Store::open(&dir.path().join("cloudheed-auth.redb")).expect("open store");
    let now = SystemClock.now();
    let mut current: Vec<[u8; 32]> = (0..N)
        .map(|i| account(&rt, &store, &format!("group{i}@example.com"), now).1)
        .collect();
    let mut counter: u64 = 0;
    let mut next_hash = || {
        counter += 1;
        random::sha256(&counter.to_le_bytes())
    };

    let mut group = c.benchmark_group("group_commit");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    group.bench_function(format!("rotate_refresh_{N}_concurrent"), |b| {
        b.iter(|| {
            let tasks: Vec<_> = current
                .iter()
                .map(|&presented| {
                    let (store, next) = (store.clone(), next_hash());
                    (
                        next,
                        rt.spawn(async move {
                            store
                                .rotate_refresh(presented, next, now, 0, reuse_event())
                                .await
                        }),
                    )
                })
                .collect();
            for (slot, (next, task)) in current.iter_mut().zip(tasks) {
                let r = rt.block_on(task).expect("task").expect("store write");
                assert!(matches!(r, Rotation::Rotated(_)), "rotation succeeds");
                *slot = next;
            }
        })
    });
    group.bench_function(format!("rotate_refresh_{N}_one_at_a_time"), |b| {
        b.iter(|| {
            for slot in current.iter_mut() {
                let next = next_hash();
                let r = rt
                    .block_on(store.rotate_refresh(*slot, next, now, 0, reuse_event()))
                    .expect("store write");
                assert!(matches!(r, Rotation::Rotated(_)), "rotation succeeds");
                *slot = next;
            }
        })
    });
    group.finish();
}

/// The API-key checksum alone: what refuses a mistyped or invented key without the store.
fn api_key_checksum(c: &mut Criterion) {
    let prefix = "ch_live_";
    let key = api_key::generate(prefix);
    let key = key.secret.expose();
    assert!(
        api_key::well_formed(key, prefix),
        "fresh key is well formed"
    );
    let mut group = c.benchmark_group("api_key");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("checksum", |b| {
        b.iter(|| api_key::well_formed(black_box(key), black_box(prefix)))
    });
    group.finish();
}

/// A whole `App` (store in a temp dir on the target disk) with one registered user, that user's
/// access token and one API key created through the services.
struct VerifyFixture {
    _dir: tempfile::TempDir,
    app: App,
    access_token: String,
    api_key: String,
}

fn verify_fixture(rt: &Runtime) -> VerifyFixture {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let config = Config::from_toml(&format!(
        "data_dir = {:?}\n\n[passwords]\nscrypt_log_n = 10\n",
        dir.path().join("data").display().to_string()
    ))
    .expect("valid bench config");
    rt.block_on(async {
        let app = App::build(config).await.expect("build app");
        let state = app.state();
        let registration = Registration {
            email: Email::parse("bench@example.com").expect("valid email"),
            password: Password::new("load-test-password-91".into()),
            name: DisplayName::parse("Bench User").expect("valid name"),
            company: Company::parse(None).expect("no company is valid"),
        };
        let client = ClientInfo {
            ip: Some([127, 0, 0, 1].into()),
            user_agent: Some("criterion".into()),
        };
        let (tokens, _user) = accounts::register(state, registration, client)
            .await
            .expect("register");
        let access_token = tokens.access_token.expose().to_string();
        let session = credentials::authenticate(state, &access_token)
            .await
            .expect("access token authenticates")
            .into_session()
            .expect("a session");
        let request = KeyRequest {
            name: KeyName::parse("bench").expect("valid key name"),
            scopes: Scopes::parse(vec!["databases:read".into()], &state.config.api_keys.scopes)
                .expect("valid scopes"),
            expires_in: state.config.api_keys.default_expires_in,
        };
        let client = cloudheed_auth::testing::domain::models::ClientInfo {
            ip: None,
            user_agent: None,
        };
        let (secret, _key) = api_keys::create(state, &session, request, &client)
            .await
            .expect("create api key");
        let api_key = secret.expose().to_string();
        let who = credentials::authenticate(state, &api_key)
            .await
            .expect("api key authenticates");
        assert!(matches!(who.credential, Credential::ApiKey { .. }));
        VerifyFixture {
            _dir: dir,
            app,
            access_token,
            api_key,
        }
    })
}

/// `credentials::authenticate` for each bearer kind, the work behind `GET /v1/auth/verify`
/// (and every authenticated route): API key = checksum + SHA-256 + one read; access token =
/// Ed25519 verify + one read. Each includes the hop to the blocking pool.
fn verify(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let f = verify_fixture(&rt);
    let state = f.app.state();
    let mut group = c.benchmark_group("verify");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("api_key", |b| {
        b.iter(|| {
            rt.block_on(credentials::authenticate(state, black_box(&f.api_key)))
                .expect("api key authenticates")
        })
    });
    group.bench_function("access_token", |b| {
        b.iter(|| {
            rt.block_on(credentials::authenticate(state, black_box(&f.access_token)))
                .expect("access token authenticates")
        })
    });
    group.finish();
}

/// One per-client limit check, with 1,000 clients tracked and after 300,000 distinct clients
/// (the limiter holds at most its default 100,000): the cost must not grow with the count.
fn rate_limit(c: &mut Criterion) {
    use cloudheed_auth::testing::service::rate_limit::{Bucket, RateLimiter};
    use std::net::IpAddr;
    let mut config = Config::default().rate_limits;
    config.login = vec![cloudheed_auth::config::Rate::parse("1000000/1s").expect("rate")];
    let mut group = c.benchmark_group("rate_limit");
    for clients in [1_000_u32, 300_000] {
        let limiter = RateLimiter::new(&config);
        let ip = |i: u32| Some(IpAddr::from(i.wrapping_add(0x0a00_0000).to_be_bytes()));
        for i in 0..clients {
            let _ = limiter.take(Bucket::Login, ip(i), 0);
        }
        let mut i = 0_u32;
        group.bench_function(format!("take_{clients}_clients"), |b| {
            b.iter(|| {
                i = (i + 1) % 1_000;
                black_box(limiter.take(Bucket::Login, ip(clients - 1 - i), 0))
            });
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    rate_limit,
    scrypt,
    jwt,
    sha256,
    store,
    group_commit,
    api_key_checksum,
    verify
);
criterion_main!(benches);

/// The event a rotation records if it finds the token reused (never, in these benches).
fn reuse_event() -> cloudheed_auth::testing::domain::audit::Event {
    use cloudheed_auth::testing::domain::audit::{Event, EventKind};
    Event::by_system(EventKind::RefreshTokenReused, 0)
}

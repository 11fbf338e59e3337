//! Issuing token pairs and rotating refresh tokens (with reuse detection and the optional grace).

use crate::crypto::seal;
use crate::domain::audit::{Actor, Event, EventKind};
use crate::domain::models::ClientInfo;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::clock::UnixTime;
use crate::crypto::jwt::{self, Claims};
use crate::crypto::random;
use crate::error::Error;
use crate::secret::Secret;
use crate::service::state::AppState;
use crate::store::Rotation;

use super::rate_limit::Bucket;

/// What a client receives after register, login or refresh.
#[derive(Debug, Clone)]
pub struct TokenPair {
    /// Signed access token (JWT).
    pub access_token: Secret,
    /// Opaque refresh token.
    pub refresh_token: Secret,
}

/// A new refresh token and the hash the store keeps instead of it.
pub(crate) fn new_refresh_token() -> (Secret, [u8; 32]) {
    let token = random::token();
    let hash = random::sha256(token.as_bytes());
    (Secret::new(token), hash)
}

/// Sign an access token for a session.
pub(crate) fn access_token(
    state: &AppState,
    user_id: &str,
    session_id: &str,
    auth_time: UnixTime,
) -> Secret {
    let now = state.now();
    let ttl = crate::clock::secs(state.config.tokens.access_ttl);
    let claims = Claims {
        iss: state.config.tokens.issuer.clone(),
        sub: user_id.to_string(),
        iat: now,
        exp: now + ttl,
        jti: random::id(""),
        sid: session_id.to_string(),
        auth_time,
    };
    Secret::new(jwt::sign(&claims, state.keyring().active()))
}

/// Refresh-token rotation's locks. Of several concurrent refreshes of one token exactly one
/// may rotate and the others must see its result, so each rotation holds the stripe of the
/// presented token; refreshes of other tokens take other stripes, run concurrently and share
/// the store's group commits. A stripe is shared by chance (one in `STRIPES`), which only
/// makes two refreshes take turns.
#[derive(Debug)]
pub struct RefreshLocks {
    stripes: Box<[tokio::sync::Mutex<()>]>,
    /// Held for a lookup or an insert, never across an await.
    grace: std::sync::Mutex<GraceCache>,
}

const STRIPES: usize = 256;

impl Default for RefreshLocks {
    fn default() -> Self {
        RefreshLocks {
            stripes: (0..STRIPES).map(|_| Default::default()).collect(),
            grace: Default::default(),
        }
    }
}

impl RefreshLocks {
    fn stripe(&self, presented: &[u8; 32]) -> &tokio::sync::Mutex<()> {
        &self.stripes[usize::from(presented[0]) % STRIPES]
    }

    fn grace(&self) -> std::sync::MutexGuard<'_, GraceCache> {
        self.grace.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Successor pairs handed out recently, by the SHA-256 of the token they replaced; each lives
/// for `tokens.refresh_reuse_grace`, in memory only.
#[derive(Debug, Default)]
pub struct GraceCache {
    entries: HashMap<[u8; 32], (TokenPair, UnixTime)>,
    /// The same keys in the order remembered. The grace is one fixed length, so ends rise along
    /// it and the lapsed ones are at the front: pruning costs what it removes, not a scan of
    /// every entry on every rotation.
    order: VecDeque<([u8; 32], UnixTime)>,
}

impl GraceCache {
    /// Keep `pair` as the successor of `predecessor` until `until`, and drop what has lapsed.
    fn remember(
        &mut self,
        predecessor: [u8; 32],
        pair: &TokenPair,
        now: UnixTime,
        until: UnixTime,
    ) {
        while let Some(&(hash, end)) = self.order.front() {
            if end >= now {
                break;
            }
            self.order.pop_front();
            if self.entries.get(&hash).is_some_and(|(_, e)| *e == end) {
                self.entries.remove(&hash);
            }
        }
        self.entries.insert(predecessor, (pair.clone(), until));
        self.order.push_back((predecessor, until));
    }

    /// The successor of `predecessor`, while its grace lasts.
    fn successor(&self, predecessor: &[u8; 32], now: UnixTime) -> Option<TokenPair> {
        match self.entries.get(predecessor) {
            Some((pair, until)) if *until >= now => Some(pair.clone()),
            _ => None,
        }
    }
}

/// Whether a string could be one of our refresh tokens: 43 base64url characters. Anything else is
/// refused without touching the store.
fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What a refresh grace successor is sealed for.
const GRACE: &str = "cloudheed-auth refresh grace v1";

/// A pair as the bytes kept sealed for other instances.
fn pair_bytes(pair: &TokenPair) -> Vec<u8> {
    format!(
        "{}\n{}",
        pair.access_token.expose(),
        pair.refresh_token.expose()
    )
    .into_bytes()
}

fn pair_from_bytes(bytes: &[u8]) -> Option<TokenPair> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (access, refresh) = text.split_once('\n')?;
    Some(TokenPair {
        access_token: Secret::new(access.to_string()),
        refresh_token: Secret::new(refresh.to_string()),
    })
}

/// Exchange a refresh token for a new pair (RFC 9700 §4.14.2 rotation).
pub async fn refresh(
    state: &Arc<AppState>,
    presented: Secret,
    client: ClientInfo,
) -> Result<TokenPair, Error> {
    let client_ip = client.ip;
    let result = exchange(state, presented, client).await;
    // Only refused tokens count against the client: a valid refresh token is never refused
    // because of what other clients behind the same address did.
    if matches!(result, Err(Error::InvalidRefreshToken)) {
        super::limits::take_client(state, Bucket::Refresh, client_ip).await?;
    }
    result
}

async fn exchange(
    state: &Arc<AppState>,
    presented: Secret,
    client: ClientInfo,
) -> Result<TokenPair, Error> {
    if !well_formed(presented.expose()) {
        return Err(Error::InvalidRefreshToken);
    }
    let presented_hash = random::sha256(presented.expose().as_bytes());
    // Invented tokens are refused by a read: they never queue for the refresh lock or cost a
    // write transaction.
    if !state.store.refresh_token_known(presented_hash).await? {
        return Err(Error::InvalidRefreshToken);
    }
    // Rotation and the grace-cache entry must happen together even if the client goes away
    // mid-request (hyper then drops this future): otherwise a retry within the grace would find
    // a committed rotation without its successor. A spawned task runs to completion regardless.
    let state = state.clone();
    let task = async move { rotate(&state, presented, presented_hash, client).await };
    tokio::spawn(tracing::Instrument::in_current_span(task))
        .await
        .unwrap_or_else(|e| {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic())
            }
            Err(Error::Internal("refresh task cancelled".into()))
        })
}

async fn rotate(
    state: &AppState,
    presented: Secret,
    presented_hash: [u8; 32],
    client: ClientInfo,
) -> Result<TokenPair, Error> {
    let grace = crate::clock::secs(state.config.tokens.refresh_reuse_grace);
    let _turn = state.refresh.stripe(&presented_hash).lock().await;
    let now = state.now();
    let (new_token, new_hash) = new_refresh_token();
    // The server ends the session; the client that presented the spent token is on record.
    let on_reuse = Event {
        actor: Actor::System,
        ..Event::by_user(EventKind::RefreshTokenReused, now, &client)
    };
    let rotation = state
        .store
        .rotate_refresh(presented_hash, new_hash, now, grace, on_reuse)
        .await?;
    match rotation {
        Rotation::Rotated(session) => {
            let pair = TokenPair {
                access_token: access_token(state, &session.user_id, &session.id, session.auth_time),
                refresh_token: new_token,
            };
            if grace > 0 {
                state
                    .refresh
                    .grace()
                    .remember(presented_hash, &pair, now, now + grace);
                // Other instances sharing the database answer its re-presentation too; only the
                // holder of the presented token can open what is kept for them.
                let plain = zeroize::Zeroizing::new(pair_bytes(&pair));
                let sealed = seal::seal(presented.expose().as_bytes(), GRACE, &plain);
                if let Err(e) = state
                    .store
                    .remember_grace(presented_hash, sealed, now, now + grace)
                    .await
                {
                    tracing::warn!(error = %e, "could not share a refresh successor with other instances");
                }
            }
            Ok(pair)
        }
        Rotation::WithinGrace { session_id } => {
            let mut successor = state.refresh.grace().successor(&presented_hash, now);
            if successor.is_none() {
                successor = state
                    .store
                    .grace_successor(presented_hash, now)
                    .await?
                    .and_then(|sealed| seal::open(presented.expose().as_bytes(), GRACE, &sealed))
                    .map(zeroize::Zeroizing::new)
                    .and_then(|bytes| pair_from_bytes(&bytes));
            }
            match successor {
                Some(pair) => Ok(pair),
                // The successor was made before a restart; refuse without ending the session.
                None => {
                    tracing::info!(
                        session_id = %session_id,
                        "rotated-out refresh token within grace but successor not in memory"
                    );
                    Err(Error::InvalidRefreshToken)
                }
            }
        }
        Rotation::Reused {
            session_id,
            user_id,
        } => {
            tracing::warn!(user_id = %user_id, session_id = %session_id, client = client.ip.map(tracing::field::display), "refresh token reuse detected; session ended");
            Err(Error::InvalidRefreshToken)
        }
        Rotation::Unknown => Err(Error::InvalidRefreshToken),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grace_cache_forgets_what_lapsed_without_scanning_the_rest() {
        let pair = |i: u8| TokenPair {
            access_token: Secret::new(format!("a{i}")),
            refresh_token: Secret::new(format!("r{i}")),
        };
        let mut cache = GraceCache::default();
        for i in 0..10u8 {
            cache.remember([i; 32], &pair(i), 100 + i64::from(i), 110 + i64::from(i));
        }
        assert_eq!(cache.entries.len(), 10);
        assert!(
            cache.successor(&[0; 32], 110).is_some(),
            "the end is inclusive"
        );
        assert!(cache.successor(&[0; 32], 111).is_none());
        // At 115, the first five have lapsed and go with the next insert.
        cache.remember([99; 32], &pair(99), 115, 125);
        assert_eq!(cache.entries.len(), 6);
        assert_eq!(cache.order.len(), 6);
        let successor = cache.successor(&[5; 32], 115).expect("still within");
        assert_eq!(successor.refresh_token.expose(), "r5");
    }

    #[test]
    fn only_our_token_shape_reaches_the_store() {
        let (t, h) = new_refresh_token();
        assert!(well_formed(t.expose()));
        assert_eq!(h, random::sha256(t.expose().as_bytes()));
        for bad in [
            "",
            "abc",
            &"a".repeat(44),
            &format!("{}=", "a".repeat(42)),
            &format!("{}.", "a".repeat(42)),
        ] {
            assert!(!well_formed(bad), "{bad}");
        }
    }
}

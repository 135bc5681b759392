//! HTTP basic auth against bcrypt hashes, with a cache of verified credentials so that bcrypt's
//! deliberate slowness is paid once per credential, not once per scrape.

use base64::Engine;
use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::{Mutex, OnceLock};

/// A bcrypt hash verified against when the user is unknown, so that the answer takes as long for
/// unknown users as for known ones.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| bcrypt::hash("fleetwatch-unknown-user", bcrypt::DEFAULT_COST).unwrap_or_default())
}

pub struct BasicAuth {
    users: BTreeMap<String, String>,
    verified: Mutex<HashSet<u64>>,
    hasher: RandomState,
}

impl BasicAuth {
    pub fn new(users: BTreeMap<String, String>) -> Self {
        BasicAuth { users, verified: Mutex::new(HashSet::new()), hasher: RandomState::new() }
    }

    pub fn enabled(&self) -> bool {
        !self.users.is_empty()
    }

    /// Checks an `Authorization` header value. Blocking (bcrypt): call off the async threads.
    pub fn check(&self, header: Option<&str>) -> bool {
        let Some((user, password)) = header.and_then(decode_basic) else {
            return false;
        };
        let key = self.cache_key(&user, &password);
        if self.verified.lock().map(|set| set.contains(&key)).unwrap_or(false) {
            return true;
        }
        let (hash, known) = match self.users.get(&user) {
            Some(h) => (h.as_str(), true),
            None => (dummy_hash(), false),
        };
        let ok = bcrypt::verify(&password, hash).unwrap_or(false) && known;
        if ok {
            if let Ok(mut set) = self.verified.lock() {
                set.insert(key);
            }
        }
        ok
    }

    fn cache_key(&self, user: &str, password: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        user.hash(&mut h);
        password.hash(&mut h);
        h.finish()
    }
}

/// Splits `Basic base64(user:password)`.
fn decode_basic(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, pass: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
    }

    #[test]
    fn accepts_right_and_rejects_wrong_credentials() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let auth = BasicAuth::new(BTreeMap::from([("alice".to_string(), hash)]));
        assert!(auth.check(Some(&header("alice", "s3cret"))));
        assert!(auth.check(Some(&header("alice", "s3cret"))), "cached path");
        assert!(!auth.check(Some(&header("alice", "wrong"))));
        assert!(!auth.check(Some(&header("bob", "s3cret"))));
        assert!(!auth.check(Some("Bearer abc")));
        assert!(!auth.check(Some("Basic !!!")));
        assert!(!auth.check(None));
    }
}

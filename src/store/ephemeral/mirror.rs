//! What an instance keeps in memory to answer without a round trip: the revoked
//! sessions, and recently read user profiles. It is only used while it is known to be
//! complete: always for the in-process store (one instance), and for Redis while the
//! instance hears its heartbeats through the pub/sub subscription that carries every
//! revocation and user change. Otherwise callers ask Redis and the database directly.
//!
//! Two ways of not being trusted, told apart: *lapsed* (no heartbeat for a while,
//! nothing known to be missing: heartbeats only came late, say on a saturated machine)
//! is over at the next heartbeat; *distrusted* (an event missed, the subscription
//! reconnected, a write to Redis failed) is over only once a rebuild begun after it
//! has finished ([`LocalMirror::rebuild_started`], [`LocalMirror::rebuilt`]).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::DateTime;
use mini_moka::sync::Cache;
use uuid::Uuid;

use crate::domain::user::User;

/// How long the memory is trusted after the last heartbeat heard.
pub const TRUST_WINDOW: Duration = Duration::from_secs(1);
/// How long a profile is kept; also bounds a stale copy in a rare read/invalidate race.
const USER_TTL: Duration = Duration::from_secs(10);
const USER_CAPACITY: u64 = 10_000;

pub struct LocalMirror {
    /// session → revoked until (Unix ms)
    revoked: Mutex<HashMap<Uuid, i64>>,
    users: Cache<Uuid, Arc<Profile>>,
    /// `None`: always trusted (the in-process store is the only truth).
    heartbeat: Option<Heartbeat>,
    writes: AtomicU64,
}

struct Heartbeat {
    epoch: Instant,
    /// ms since `epoch` of the last heartbeat heard; negative: distrusted (or never
    /// rebuilt), until a rebuild finishes. Read on every request, without a lock.
    last_ms: AtomicI64,
    /// How many times the memory was distrusted; changes of `last_ms` hold this lock,
    /// so that a rebuild cannot end a distrust that came after it began.
    distrusts: Mutex<u64>,
}

impl LocalMirror {
    /// The memory of the in-process store: complete by construction.
    pub fn authoritative() -> Self {
        Self::new(None)
    }

    /// The memory of one instance among several, fed by pub/sub.
    pub fn follower() -> Self {
        Self::new(Some(Heartbeat {
            epoch: Instant::now(),
            last_ms: AtomicI64::new(-1),
            distrusts: Mutex::new(0),
        }))
    }

    fn new(heartbeat: Option<Heartbeat>) -> Self {
        Self {
            revoked: Mutex::default(),
            users: Cache::builder()
                .max_capacity(USER_CAPACITY)
                .time_to_live(USER_TTL)
                .build(),
            heartbeat,
            writes: AtomicU64::new(0),
        }
    }

    pub fn is_trusted(&self) -> bool {
        match &self.heartbeat {
            None => true,
            Some(h) => {
                let last = h.last_ms.load(Ordering::Acquire);
                let window = i64::try_from(TRUST_WINDOW.as_millis()).unwrap_or(i64::MAX);
                last >= 0 && elapsed_ms(h.epoch) - last <= window
            }
        }
    }

    /// Whether the memory waits for a rebuild before it can be trusted again.
    pub fn needs_rebuild(&self) -> bool {
        self.heartbeat
            .as_ref()
            .is_some_and(|h| h.last_ms.load(Ordering::Acquire) < 0)
    }

    /// A heartbeat, with nothing known to be missing: trusted again if it had only
    /// lapsed; a distrusted memory stays so until its rebuild is done.
    pub fn heard_heartbeat(&self) {
        if let Some(h) = &self.heartbeat {
            let _transition = h.lock_distrusts();
            if h.last_ms.load(Ordering::Acquire) >= 0 {
                h.last_ms.store(elapsed_ms(h.epoch), Ordering::Release);
            }
        }
    }

    /// Stops trusting the memory until a rebuild begun after this call is done (e.g.
    /// messages were lost).
    pub fn distrust(&self) {
        if let Some(h) = &self.heartbeat {
            let mut distrusts = h.lock_distrusts();
            *distrusts += 1;
            h.last_ms.store(-1, Ordering::Release);
        }
    }

    /// A rebuild begins: its mark, for [`LocalMirror::rebuilt`].
    pub fn rebuild_started(&self) -> RebuildMark {
        RebuildMark(self.heartbeat.as_ref().map_or(0, |h| *h.lock_distrusts()))
    }

    /// A rebuild begun at `mark` is done: trusted again, unless the memory was
    /// distrusted since it began (what was missed then may not be in what it read).
    /// Returns whether it is trusted now.
    pub fn rebuilt(&self, mark: RebuildMark) -> bool {
        let Some(h) = &self.heartbeat else {
            return true;
        };
        let distrusts = h.lock_distrusts();
        if *distrusts == mark.0 {
            h.last_ms.store(elapsed_ms(h.epoch), Ordering::Release);
        }
        drop(distrusts);
        !self.needs_rebuild()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, i64>> {
        self.revoked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn revoke(&self, sessions: &[Uuid], until_ms: i64, now_ms: i64) {
        let mut revoked = self.lock();
        for id in sessions {
            let entry = revoked.entry(*id).or_insert(until_ms);
            *entry = (*entry).max(until_ms);
        }
        if self
            .writes
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(256)
        {
            revoked.retain(|_, until| *until > now_ms);
        }
    }

    pub fn is_revoked(&self, session: Uuid, now_ms: i64) -> bool {
        self.lock()
            .get(&session)
            .is_some_and(|until| *until > now_ms)
    }

    /// After a gap: the revocations read back from the database and Redis are added to
    /// what was known (never replacing it: Redis may have lost keys), and every cached
    /// profile is dropped (changes may have been missed).
    pub fn merge(&self, revoked: &HashMap<Uuid, i64>) {
        let mut known = self.lock();
        for (id, until) in revoked {
            let entry = known.entry(*id).or_insert(*until);
            *entry = (*entry).max(*until);
        }
        drop(known);
        self.users.invalidate_all();
    }

    /// Every revocation known, with its expiry (Unix ms), still live at `now_ms`.
    pub fn revoked_since(&self, now_ms: i64) -> HashMap<Uuid, i64> {
        self.lock()
            .iter()
            .filter(|(_, until)| **until > now_ms)
            .map(|(id, until)| (*id, *until))
            .collect()
    }

    pub fn user(&self, id: Uuid) -> Option<User> {
        if self.is_trusted() {
            self.users.get(&id).map(|profile| profile.current())
        } else {
            None
        }
    }

    pub fn put_user(&self, user: &User) {
        self.users.insert(
            user.id,
            Arc::new(Profile {
                user: user.clone(),
                signed_in_us: AtomicI64::new(i64::MIN),
            }),
        );
    }

    /// The user signed in at `at_us` (Unix µs): a copy held keeps everything but moves
    /// `lastLogin` (a sign-in changes nothing else). In place, so a copy dropped
    /// meanwhile (another change) stays dropped; and a maximum, so sign-ins heard out
    /// of order agree.
    pub fn signed_in(&self, id: Uuid, at_us: i64) {
        if let Some(profile) = self.users.get(&id) {
            profile.signed_in_us.fetch_max(at_us, Ordering::Relaxed);
        }
    }

    pub fn forget_user(&self, id: Uuid) {
        self.users.invalidate(&id);
    }
}

/// A profile as read from the database, and the latest sign-in heard since.
struct Profile {
    user: User,
    /// Unix µs; `i64::MIN`: none heard.
    signed_in_us: AtomicI64,
}

impl Profile {
    fn current(&self) -> User {
        let mut user = self.user.clone();
        let signed_in = match self.signed_in_us.load(Ordering::Relaxed) {
            i64::MIN => None,
            us => DateTime::from_timestamp_micros(us),
        };
        if let Some(at) = signed_in
            && user.last_login.is_none_or(|last| last < at)
        {
            user.last_login = Some(at);
        }
        user
    }
}

/// How many distrusts a rebuild began after.
#[derive(Debug, Clone, Copy)]
pub struct RebuildMark(u64);

impl Heartbeat {
    fn lock_distrusts(&self) -> MutexGuard<'_, u64> {
        // A count: a panic cannot leave it half-changed.
        self.distrusts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn elapsed_ms(epoch: Instant) -> i64 {
    i64::try_from(epoch.elapsed().as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: Uuid) -> User {
        User {
            id,
            email: "ada@example.com".into(),
            full_name: "Ada".into(),
            is_active: true,
            date_joined: crate::clock::wall_now(),
            last_login: None,
            email_verified_at: None,
            deletion_scheduled_for: None,
            has_password: true,
        }
    }

    #[test]
    fn a_follower_is_trusted_only_just_after_a_heartbeat() {
        let state = LocalMirror::follower();
        let id = Uuid::new_v4();
        state.put_user(&user(id));
        assert!(!state.is_trusted());
        assert!(state.user(id).is_none(), "untrusted memory answers nothing");
        state.heard_heartbeat();
        assert!(
            !state.is_trusted(),
            "never rebuilt: a heartbeat is not enough"
        );
        assert!(state.rebuilt(state.rebuild_started()));
        assert!(state.is_trusted());
        let cached = state.user(id).unwrap();
        assert_eq!(cached.id, id);
        state.distrust();
        assert!(state.user(id).is_none());
        assert!(LocalMirror::authoritative().is_trusted());
    }

    #[test]
    fn a_lapse_ends_with_a_heartbeat_a_distrust_only_with_a_rebuild_begun_after_it() {
        // A follower that has been up for a minute.
        let state = LocalMirror::new(Some(Heartbeat {
            epoch: Instant::now().checked_sub(Duration::from_secs(60)).unwrap(),
            last_ms: AtomicI64::new(-1),
            distrusts: Mutex::new(0),
        }));
        assert!(state.rebuilt(state.rebuild_started()));
        // Lapsed: heartbeats came late, nothing is known to be missing.
        if let Some(h) = &state.heartbeat {
            h.last_ms.store(
                elapsed_ms(h.epoch) - 2 * i64::try_from(TRUST_WINDOW.as_millis()).unwrap(),
                Ordering::Release,
            );
        }
        assert!(!state.is_trusted() && !state.needs_rebuild());
        state.heard_heartbeat();
        assert!(state.is_trusted(), "a late heartbeat ends a lapse");

        state.distrust();
        state.heard_heartbeat();
        assert!(state.needs_rebuild() && !state.is_trusted());
        let early = state.rebuild_started();
        state.distrust(); // while that rebuild reads
        assert!(
            !state.rebuilt(early),
            "it may have read before the second gap"
        );
        assert!(!state.is_trusted());
        assert!(state.rebuilt(state.rebuild_started()));
        assert!(state.is_trusted());
    }

    #[test]
    fn revocations_expire_and_a_rebuild_never_forgets() {
        let state = LocalMirror::authoritative();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        state.revoke(&[a], 1_000, 0);
        assert!(state.is_revoked(a, 999));
        assert!(!state.is_revoked(a, 1_000));
        state.put_user(&user(b));
        state.merge(&HashMap::from([(b, 5_000), (a, 500)]));
        assert!(state.is_revoked(a, 10) && state.is_revoked(b, 10));
        assert!(
            state.is_revoked(a, 999),
            "a shorter expiry read back does not win"
        );
        assert_eq!(state.revoked_since(1_000), HashMap::from([(b, 5_000)]));
        assert!(state.user(b).is_none(), "profiles are dropped after a gap");
    }

    #[test]
    fn a_sign_in_moves_last_login_on_a_held_copy_and_brings_back_no_dropped_one() {
        let state = LocalMirror::authoritative();
        let (held, dropped) = (Uuid::new_v4(), Uuid::new_v4());
        let at = |s: i64| DateTime::from_timestamp(1_796_000_000 + s, 0).unwrap();
        state.put_user(&user(held));
        state.signed_in(held, at(20).timestamp_micros());
        state.signed_in(held, at(10).timestamp_micros()); // heard out of order
        let copy = state.user(held).unwrap();
        assert_eq!(copy.last_login, Some(at(20)));
        assert_eq!(copy.full_name, "Ada", "the rest of the copy is kept");
        state.put_user(&User {
            last_login: Some(at(30)),
            ..user(held)
        });
        state.signed_in(held, at(25).timestamp_micros());
        assert_eq!(state.user(held).unwrap().last_login, Some(at(30)));

        state.put_user(&user(dropped));
        state.forget_user(dropped);
        state.signed_in(dropped, at(40).timestamp_micros());
        assert!(
            state.user(dropped).is_none(),
            "a dropped copy stays dropped"
        );
    }
}

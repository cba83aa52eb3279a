//! The events channel's wire format, and how a listener tells that it missed one:
//! every event carries its publisher's id and a sequence number, and each heartbeat the
//! number of events its publisher had sent a beat earlier.

use std::{
    collections::{BTreeSet, HashMap},
    sync::atomic::{AtomicU64, Ordering},
};

use uuid::Uuid;

/// Events of one publisher heard ahead of a missing one, before it counts as lost.
const MAX_AHEAD: usize = 4_096;

/// A message on the channel.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Event {
    /// `settled`: how many events the publisher had numbered one beat ago (each of
    /// them should have arrived by now).
    Heartbeat { publisher: Uuid, settled: u64 },
    Revoked {
        publisher: Uuid,
        seq: u64,
        until_ms: i64,
        sessions: Vec<Uuid>,
    },
    UserChanged {
        publisher: Uuid,
        seq: u64,
        user: Uuid,
    },
    /// The user signed in at `at_us` (Unix µs); nothing else of the profile changed,
    /// so a copy is kept with its `lastLogin` moved, not dropped.
    SignedIn {
        publisher: Uuid,
        seq: u64,
        user: Uuid,
        at_us: i64,
    },
    /// A kind this build does not know, from a newer instance (a rolling upgrade): it
    /// is counted, so it is not taken for lost. A kind whose name begins with `~` is
    /// news an instance may ignore (`ignorable`); any other may carry something the
    /// memory must not miss, so the memory is read back from the shared state.
    Unknown {
        publisher: Uuid,
        seq: u64,
        ignorable: bool,
    },
}

impl Event {
    pub(super) fn encode(&self) -> String {
        match self {
            Self::Heartbeat { publisher, settled } => format!("h:{publisher}:{settled}"),
            Self::Revoked {
                publisher,
                seq,
                until_ms,
                sessions,
            } => {
                let ids: Vec<String> = sessions.iter().map(Uuid::to_string).collect();
                format!("r:{publisher}:{seq}:{until_ms}:{}", ids.join(","))
            }
            Self::UserChanged {
                publisher,
                seq,
                user,
            } => format!("u:{publisher}:{seq}:{user}"),
            Self::SignedIn {
                publisher,
                seq,
                user,
                at_us,
            } => format!("l:{publisher}:{seq}:{user}:{at_us}"),
            Self::Unknown {
                publisher,
                seq,
                ignorable,
            } => format!("{}:{publisher}:{seq}", if *ignorable { "~?" } else { "?" }),
        }
    }

    pub(super) fn decode(text: &str) -> Option<Self> {
        let mut parts = text.splitn(5, ':');
        let kind = parts.next()?;
        let publisher = parts.next()?.parse().ok()?;
        let number = parts.next()?.parse().ok()?;
        let event = match kind {
            "h" => Self::Heartbeat {
                publisher,
                settled: number,
            },
            "u" => Self::UserChanged {
                publisher,
                seq: number,
                user: parts.next()?.parse().ok()?,
            },
            "l" => Self::SignedIn {
                publisher,
                seq: number,
                user: parts.next()?.parse().ok()?,
                at_us: parts.next()?.parse().ok()?,
            },
            "r" => Self::Revoked {
                publisher,
                seq: number,
                until_ms: parts.next()?.parse().ok()?,
                sessions: parts
                    .next()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .ok()?,
            },
            "" => return None,
            // Whatever follows the number is the newer kind's own.
            unknown => {
                return Some(Self::Unknown {
                    publisher,
                    seq: number,
                    ignorable: unknown.starts_with('~'),
                });
            }
        };
        parts.next().is_none().then_some(event)
    }
}

/// This instance's name on the channel, the count of events it has numbered, and the
/// highest of them its own listener has heard back.
pub(super) struct Sequence {
    publisher: Uuid,
    numbered: AtomicU64,
    echoed: tokio::sync::watch::Sender<u64>,
}

impl Sequence {
    pub(super) fn new() -> Self {
        Self {
            publisher: Uuid::new_v4(),
            numbered: AtomicU64::new(0),
            echoed: tokio::sync::watch::Sender::new(0),
        }
    }

    /// This instance's listener heard its own event `seq` (or a later one).
    pub(super) fn heard_own(&self, seq: u64) {
        self.echoed.send_if_modified(|heard| {
            let newer = seq > *heard;
            if newer {
                *heard = seq;
            }
            newer
        });
    }

    /// Waits, at most `limit`, until this instance's listener has heard its own event
    /// `seq` back: Redis has then written it to every subscriber, and the other
    /// instances have it in hand as well. False if it did not come in time.
    pub(super) async fn echo(&self, seq: u64, limit: std::time::Duration) -> bool {
        let mut heard = self.echoed.subscribe();
        tokio::time::timeout(limit, heard.wait_for(|heard| *heard >= seq))
            .await
            .is_ok_and(|waited| waited.is_ok())
    }

    pub(super) fn publisher(&self) -> Uuid {
        self.publisher
    }

    /// The number of the next event (from 1).
    pub(super) fn next(&self) -> u64 {
        self.numbered.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub(super) fn numbered(&self) -> u64 {
        self.numbered.load(Ordering::SeqCst)
    }
}

/// What a listener has heard of each publisher: every event below `next`, and those
/// in `ahead` (heard out of order, across the publisher's pooled connections).
#[derive(Default)]
pub(super) struct Publishers(HashMap<Uuid, Heard>);

struct Heard {
    next: u64,
    ahead: BTreeSet<u64>,
}

impl Heard {
    fn advance(&mut self) {
        while self.ahead.remove(&self.next) {
            self.next += 1;
        }
    }
}

impl Publishers {
    /// An event numbered `seq`; false if too many are missing before it.
    pub(super) fn event(&mut self, publisher: Uuid, seq: u64) -> bool {
        let heard = self.0.entry(publisher).or_insert_with(|| Heard {
            next: seq,
            ahead: BTreeSet::new(),
        });
        if seq == heard.next {
            heard.next += 1;
            heard.advance();
        } else if seq > heard.next {
            heard.ahead.insert(seq);
            if heard.ahead.len() > MAX_AHEAD {
                heard.next = seq + 1;
                heard.ahead.clear();
                return false;
            }
        }
        true
    }

    /// A heartbeat; false if an event numbered up to `settled` never arrived.
    pub(super) fn heartbeat(&mut self, publisher: Uuid, settled: u64) -> bool {
        let Some(heard) = self.0.get_mut(&publisher) else {
            // A publisher heard for the first time (it, or this listener, just started).
            self.0.insert(
                publisher,
                Heard {
                    next: settled + 1,
                    ahead: BTreeSet::new(),
                },
            );
            return true;
        };
        if heard.next > settled {
            return true;
        }
        heard.next = settled + 1;
        heard.ahead.retain(|seq| *seq > settled);
        heard.advance();
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_the_wire() {
        let (a, b, p) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        for event in [
            Event::Revoked {
                publisher: p,
                seq: 7,
                until_ms: 42,
                sessions: vec![a, b],
            },
            Event::UserChanged {
                publisher: p,
                seq: 8,
                user: a,
            },
            Event::SignedIn {
                publisher: p,
                seq: 9,
                user: b,
                at_us: 1_796_675_233_239_123,
            },
            Event::Heartbeat {
                publisher: p,
                settled: 9,
            },
            Event::Unknown {
                publisher: p,
                seq: 10,
                ignorable: true,
            },
        ] {
            assert_eq!(Event::decode(&event.encode()), Some(event));
        }
        // A newer kind, from an instance of a later build: counted either way.
        assert_eq!(
            Event::decode(&format!("~n:{p}:10:{a}:whatever:else")),
            Some(Event::Unknown {
                publisher: p,
                seq: 10,
                ignorable: true
            })
        );
        assert_eq!(
            Event::decode(&format!("x:{p}:11")),
            Some(Event::Unknown {
                publisher: p,
                seq: 11,
                ignorable: false
            })
        );
        for junk in [
            "h",
            "r:x:y",
            "zzz",
            &format!(":{p}:1:{a}"),
            &format!("x:{p}"),
            &format!("x:{p}:soon:{a}"),
            &format!("x:nobody:1:{a}"),
            &format!("h:{p}:1:extra"),
            &format!("u:{p}:x:{a}"),
            &format!("l:{p}:1:{a}"),
            &format!("l:{p}:1:{a}:soon"),
        ] {
            assert!(Event::decode(junk).is_none(), "{junk}");
        }
    }

    #[test]
    fn a_missing_event_shows_at_the_heartbeat_that_settles_it() {
        let p = Uuid::new_v4();
        let mut heard = Publishers::default();
        assert!(heard.heartbeat(p, 0), "first sight");
        assert!(heard.event(p, 1) && heard.event(p, 3) && heard.event(p, 2));
        assert!(heard.heartbeat(p, 3), "all three arrived, out of order");
        assert!(heard.event(p, 5));
        assert!(heard.heartbeat(p, 3), "4 may still be on its way");
        assert!(!heard.heartbeat(p, 5), "4 never came");
        assert!(heard.heartbeat(p, 5), "reported once");
        assert!(heard.event(p, 6) && heard.heartbeat(p, 6));
        // A forged or restarted publisher that claims events nobody heard.
        let q = Uuid::new_v4();
        assert!(heard.heartbeat(q, 0));
        assert!(!heard.heartbeat(q, 3));
    }
}

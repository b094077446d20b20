//! Who is writing, from which device, with which actor id and clock.

use automerge::ActorId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

use crate::ids::{DeviceId, UserId};
use crate::model::Role;

/// The person and device behind an edit. Recorded in every value written
/// (see [`Stamp`]) and as the Automerge author of every change.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Editor {
    pub user: UserId,
    pub device: DeviceId,
}

impl Editor {
    pub fn new(user: UserId, device: DeviceId) -> Self {
        Self { user, device }
    }

    /// The bytes written into Automerge's author field: `device/user`.
    pub(crate) fn author_bytes(&self) -> Vec<u8> {
        format!("{}/{}", self.device, self.user).into_bytes()
    }

    /// The editor a change names in its author field, if it names one.
    pub fn of_change(change: &automerge::Change) -> Option<Self> {
        change
            .author()
            .and_then(|a| Self::from_author_bytes(a.as_bytes()))
    }

    /// Parses the author field back; `None` for authors not written by kiemtra.
    pub(crate) fn from_author_bytes(bytes: &[u8]) -> Option<Self> {
        let s = std::str::from_utf8(bytes).ok()?;
        let (device, user) = s.split_once('/')?;
        Some(Self {
            user: UserId::parse(user).ok()?,
            device: DeviceId::parse(device).ok()?,
        })
    }
}

impl fmt::Display for Editor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.user, self.device)
    }
}

type ClockFn = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// One editing session: an editor, a fresh Automerge actor id and a clock.
///
/// The actor id is new for every session (every opened store), so a process
/// that crashed after committing a change it never saved can never reuse that
/// change's sequence number.
#[derive(Clone)]
pub struct Session {
    editor: Editor,
    actor: ActorId,
    clock: ClockFn,
    role: Role,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("editor", &self.editor)
            .field("actor", &self.actor.to_hex_string())
            .finish()
    }
}

impl Session {
    /// A session with a fresh random actor id and the system clock.
    pub fn new(editor: Editor) -> Self {
        Self {
            editor,
            actor: ActorId::from(uuid::Uuid::new_v4().as_bytes().as_slice()),
            clock: Arc::new(Utc::now),
            role: Role::Supervisor,
        }
    }

    /// Sets the editor's role (a new session is a supervisor's). The visit
    /// refuses locally what the server would refuse from this role.
    pub fn with_role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Replaces the clock (tests, simulations, replays).
    pub fn with_clock(mut self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    pub fn editor(&self) -> &Editor {
        &self.editor
    }
    pub fn actor(&self) -> &ActorId {
        &self.actor
    }
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }
    pub(crate) fn stamp(&self) -> Stamp {
        Stamp {
            by: self.editor.user.clone(),
            device: self.editor.device.clone(),
            at: self.now(),
        }
    }
}

/// Who wrote a value and when (device clock, UTC).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stamp {
    pub by: UserId,
    pub device: DeviceId,
    pub at: DateTime<Utc>,
}

/// A value with its stamp, as stored in a document slot: one flat JSON
/// object, `{"value": …, "by": …, "device": …, "at": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "FlatStamped<T>")]
pub struct Stamped<T> {
    pub value: T,
    #[serde(flatten)]
    pub stamp: Stamp,
}

/// How a [`Stamped`] is read: the same four fields, named directly. Reading
/// through `#[serde(flatten)]` would buffer every field first, the larger
/// part of working out a visit's state (every slot is one such object).
#[derive(Deserialize)]
struct FlatStamped<T> {
    value: T,
    by: UserId,
    device: DeviceId,
    #[serde(deserialize_with = "rfc3339")]
    at: DateTime<Utc>,
}

/// Reads a stamp's time with chrono's RFC 3339 parser, several times faster
/// than its general `FromStr` (the format `Stamp` is written in).
fn rfc3339<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    struct Rfc3339;
    impl serde::de::Visitor<'_> for Rfc3339 {
        type Value = DateTime<Utc>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an RFC 3339 time")
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(E::custom)
        }
    }
    d.deserialize_str(Rfc3339)
}

impl<T> From<FlatStamped<T>> for Stamped<T> {
    fn from(f: FlatStamped<T>) -> Self {
        Stamped {
            value: f.value,
            stamp: Stamp {
                by: f.by,
                device: f.device,
                at: f.at,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamped() -> Stamped<String> {
        Stamped {
            value: "Có mặt".into(),
            stamp: Stamp {
                by: UserId::parse("u-lan").expect("user"),
                device: DeviceId::parse("d-1").expect("device"),
                at: DateTime::parse_from_rfc3339("2026-11-22T08:15:30.250Z")
                    .expect("time")
                    .with_timezone(&Utc),
            },
        }
    }

    #[test]
    fn a_stamped_value_reads_back_from_its_flat_json_in_any_field_order() {
        let json = serde_json::to_string(&stamped()).expect("write");
        assert!(json.starts_with(r#"{"value":"Có mặt","by":"u-lan","device":"d-1","at":"#));
        assert_eq!(
            serde_json::from_str::<Stamped<String>>(&json).expect("read"),
            stamped()
        );
        let reordered = r#"{"at":"2026-11-22T08:15:30.250Z","device":"d-1","value":"Có mặt","by":"u-lan","extra":1}"#;
        assert_eq!(
            serde_json::from_str::<Stamped<String>>(reordered).expect("read"),
            stamped()
        );
        // The same instant written with an offset is the same stamp.
        let offset = r#"{"value":"Có mặt","by":"u-lan","device":"d-1","at":"2026-11-22T15:15:30.250+07:00"}"#;
        assert_eq!(
            serde_json::from_str::<Stamped<String>>(offset).expect("read"),
            stamped()
        );
    }

    #[test]
    fn a_stamp_with_a_bad_time_or_a_missing_field_is_refused() {
        for bad in [
            r#"{"value":"x","by":"u-lan","device":"d-1","at":"22/11/2026"}"#,
            r#"{"value":"x","by":"u-lan","device":"d-1","at":7}"#,
            r#"{"value":"x","by":"u-lan","device":"d-1"}"#,
            r#"{"value":"x","by":"u-lan","at":"2026-11-22T08:15:30Z"}"#,
            r#"{"by":"u-lan","device":"d-1","at":"2026-11-22T08:15:30Z"}"#,
        ] {
            assert!(
                serde_json::from_str::<Stamped<String>>(bad).is_err(),
                "accepted {bad}"
            );
        }
    }
}

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

/// A value with its stamp, as stored in a document slot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stamped<T> {
    pub value: T,
    #[serde(flatten)]
    pub stamp: Stamp,
}

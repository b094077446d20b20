//! One enrolled device: its store, opened as the enrolled user, with its
//! credentials. The desk tool and the mobile bindings both enroll, open,
//! sync, upload evidence and approve through it, so what a device is —
//! which session its edits are stamped with, where its key is kept, how an
//! approval is signed — is decided once.

use std::path::Path;

use kiemtra_core::{Approval, DeviceId, Editor, Role, Session, UserId, VisitId};
use kiemtra_store::Store;

use crate::client::{
    Credentials, EvidenceReport, Progress, SyncClient, SyncOptions, SyncReport, enroll_with_key,
};
use crate::error::Error;

/// The store setting naming where the device's key is kept when the app
/// keeps it in a key store of its own (the Android Keystore, the iOS
/// Keychain): the store then holds everything but the key.
pub const KEY_ALIAS_SETTING: &str = "device.key_alias";

/// An enrolled device's store and credentials.
pub struct Device {
    pub store: Store,
    pub creds: Credentials,
}

/// What a store holds of its enrollment before it is opened.
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// The credentials; `signing_key` is empty when the key is kept
    /// outside the store.
    pub creds: Credentials,
    /// The alias of a key kept outside the store.
    pub key_alias: Option<String>,
}

/// The session a device's edits are stamped with: its user and device, in
/// its role.
pub fn session_for(creds: &Credentials) -> Result<Session, Error> {
    let editor = Editor::new(
        UserId::parse(&creds.user_id).map_err(kiemtra_store::Error::from)?,
        DeviceId::parse(&creds.device_id).map_err(kiemtra_store::Error::from)?,
    );
    let role = Role::parse(&creds.role).map_err(kiemtra_store::Error::from)?;
    Ok(Session::new(editor).with_role(role))
}

/// A session for reading a store before its credentials are known.
fn unenrolled() -> Result<Session, Error> {
    Ok(Session::new(Editor::new(
        UserId::parse("unenrolled").map_err(kiemtra_store::Error::from)?,
        DeviceId::parse("unenrolled").map_err(kiemtra_store::Error::from)?,
    ))
    .with_role(Role::Auditor))
}

/// The alias under which an app keeps the key whose public half is
/// `public_hex`.
pub fn key_alias(public_hex: &str) -> String {
    format!("kiemtra-device-{public_hex}")
}

impl Device {
    /// What the store at `path` holds of its enrollment; `None` when it is
    /// not enrolled (or does not exist yet).
    pub fn enrollment(path: &Path) -> Result<Option<Enrollment>, Error> {
        let store = Store::open_with_session(path, unenrolled()?)?;
        let creds = match Credentials::load(&store) {
            Ok(c) => c,
            Err(Error::NotEnrolled) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(Enrollment {
            creds,
            key_alias: store.setting(KEY_ALIAS_SETTING)?,
        }))
    }

    /// Opens an enrolled store that keeps its own key.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let enrollment = Self::enrollment(path)?.ok_or(Error::NotEnrolled)?;
        Self::open_enrolled(path, enrollment, None)
    }

    /// Opens an enrolled store with `key` (PKCS#8) from the app's key
    /// store, checked to be the key the store names.
    pub fn open_with_key(path: &Path, key: &[u8]) -> Result<Self, Error> {
        let enrollment = Self::enrollment(path)?.ok_or(Error::NotEnrolled)?;
        Self::open_enrolled(path, enrollment, Some(key))
    }

    /// Opens the store at `path` as `enrollment` (read by
    /// [`Device::enrollment`]) says: with its own key, or, when the key is
    /// kept by the app, with `key`, checked to be the one it names.
    pub fn open_enrolled(
        path: &Path,
        enrollment: Enrollment,
        key: Option<&[u8]>,
    ) -> Result<Self, Error> {
        let creds = match (enrollment.key_alias, key) {
            (None, _) => enrollment.creds,
            (Some(alias), None) => return Err(Error::KeyElsewhere(alias)),
            (Some(alias), Some(key)) => {
                let matches = crate::client::public_key_of(key)
                    .map(|p| key_alias(&p) == alias)
                    .unwrap_or(false);
                if !matches {
                    return Err(Error::KeyMismatch(alias));
                }
                Credentials {
                    signing_key: kiemtra_core::hex::encode(key),
                    ..enrollment.creds
                }
            }
        };
        let store = Store::open_with_session(path, session_for(&creds)?)?;
        Ok(Self { store, creds })
    }

    /// Enrolls with `server` using a single-use `code` and the device key
    /// `key` (PKCS#8, made by [`crate::new_device_key`]), retrying a lost
    /// answer with the same key under `options`, and creates the store at
    /// `path`. With `key_alias` the app keeps the key itself: the store
    /// keeps everything but the key, and the alias.
    pub async fn enroll(
        path: &Path,
        server: &str,
        code: &str,
        device_name: &str,
        options: &SyncOptions,
        key: &[u8],
        key_alias: Option<&str>,
    ) -> Result<Self, Error> {
        if Self::enrollment(path)?.is_some() {
            return Err(Error::AlreadyEnrolled(path.display().to_string()));
        }
        let creds = enroll_with_key(server, code, device_name, options, key).await?;
        let mut store = Store::open_with_session(path, session_for(&creds)?)?;
        match key_alias {
            Some(alias) => {
                let without_key = Credentials {
                    signing_key: String::new(),
                    ..creds.clone()
                };
                store.batch(|store| {
                    without_key.save(store).map_err(|e| match e {
                        Error::Store(e) => e,
                        other => kiemtra_store::Error::Refused(other.to_string()),
                    })?;
                    store.set_setting(KEY_ALIAS_SETTING, alias)
                })?;
            }
            None => creds.save(&mut store)?,
        }
        Ok(Self { store, creds })
    }

    pub fn role(&self) -> Result<Role, Error> {
        Ok(Role::parse(&self.creds.role).map_err(kiemtra_store::Error::from)?)
    }

    /// A sync client with this device's credentials.
    pub fn client(&self, options: SyncOptions) -> Result<SyncClient, Error> {
        SyncClient::new(self.creds.clone(), options)
    }

    /// Syncs with the server (SPEC §7), reporting progress.
    pub async fn sync(
        &mut self,
        options: SyncOptions,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<SyncReport, Error> {
        let client = self.client(options)?;
        client.sync(&mut self.store, progress).await
    }

    /// Uploads the evidence files the server does not hold whole.
    pub async fn upload_evidence(&mut self, options: SyncOptions) -> Result<EvidenceReport, Error> {
        let client = self.client(options)?;
        client.upload_evidence(&mut self.store).await
    }

    /// Approves a submitted visit, signed with this device's key; a key
    /// that cannot sign is found before anything is written.
    pub fn approve(&mut self, id: &VisitId, note: &str) -> Result<Approval, Error> {
        self.creds.sign_bytes(b"key-check")?;
        let creds = self.creds.clone();
        let sign = move |m: &[u8]| creds.sign_bytes(m).unwrap_or_default();
        Ok(self.store.edit(id, |v| v.approve_signed(note, &sign))?)
    }
}

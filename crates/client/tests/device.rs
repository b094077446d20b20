//! Opening a device store through the one facade the desk and the bindings
//! share: the session its edits carry, where its key is, and each refusal.

use kiemtra_client::{Credentials, Device, Error, KEY_ALIAS_SETTING, key_alias};
use kiemtra_core::{Role, Session};
use kiemtra_store::Store;

fn creds(key: &[u8]) -> Credentials {
    Credentials {
        server: "http://127.0.0.1:9".into(),
        device_id: "dev-1".into(),
        token: "t".into(),
        user_id: "sup-1".into(),
        team: "team-1".into(),
        role: "supervisor".into(),
        signing_key: kiemtra_core::hex::encode(key),
    }
}

fn stored(path: &std::path::Path, creds: &Credentials, alias: Option<&str>) {
    let session = kiemtra_client::session_for(creds).expect("session");
    let mut store = Store::open_with_session(path, session).expect("store");
    creds.save(&mut store).expect("save");
    if let Some(alias) = alias {
        store.set_setting(KEY_ALIAS_SETTING, alias).expect("alias");
    }
}

#[test]
fn a_store_without_credentials_is_not_enrolled() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("d.db");
    assert!(Device::enrollment(&path).expect("read").is_none());
    assert!(matches!(Device::open(&path), Err(Error::NotEnrolled)));
}

#[test]
fn an_enrolled_store_opens_as_its_user_in_its_role() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("d.db");
    let key = kiemtra_client::new_device_key().expect("key");
    stored(&path, &creds(&key), None);
    let device = Device::open(&path).expect("open");
    assert_eq!(device.creds.device_id, "dev-1");
    assert_eq!(device.role().expect("role"), Role::Supervisor);
    let session: &Session = device.store.session();
    assert_eq!(session.editor().device.as_str(), "dev-1");
    assert_eq!(session.editor().user.as_str(), "sup-1");
}

#[test]
fn a_key_kept_by_the_app_is_asked_for_and_checked() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("d.db");
    let key = kiemtra_client::new_device_key().expect("key");
    let alias = key_alias(&kiemtra_client::public_key_of(&key).expect("public"));
    let without_key = Credentials {
        signing_key: String::new(),
        ..creds(&key)
    };
    stored(&path, &without_key, Some(&alias));
    let e = Device::enrollment(&path).expect("read").expect("enrolled");
    assert_eq!(e.key_alias.as_deref(), Some(alias.as_str()));
    match Device::open(&path) {
        Err(Error::KeyElsewhere(a)) => assert_eq!(a, alias),
        other => panic!("expected KeyElsewhere, got {:?}", other.map(|_| ())),
    }
    let other = kiemtra_client::new_device_key().expect("other key");
    assert!(matches!(
        Device::open_with_key(&path, &other),
        Err(Error::KeyMismatch(_))
    ));
    assert!(matches!(
        Device::open_with_key(&path, b"not a key"),
        Err(Error::KeyMismatch(_))
    ));
    let device = Device::open_with_key(&path, &key).expect("the right key");
    assert_eq!(device.creds.signing_key, kiemtra_core::hex::encode(&key));
}

#[test]
fn enrolling_a_store_that_is_enrolled_is_refused_before_the_network() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("d.db");
    let key = kiemtra_client::new_device_key().expect("key");
    stored(&path, &creds(&key), None);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // The server address is not listening: reaching it would fail
    // otherwise than as "already enrolled".
    let out = rt.block_on(Device::enroll(
        &path,
        "http://127.0.0.1:9",
        "CODE",
        "phone",
        &kiemtra_client::SyncOptions::default(),
        &key,
        None,
    ));
    assert!(
        matches!(out, Err(Error::AlreadyEnrolled(_))),
        "{:?}",
        out.err()
    );
}

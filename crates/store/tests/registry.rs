//! Enrollment codes (a retry after a lost answer) and the store's files
//! being its owner's alone.

use kiemtra_core::{DeviceId, Editor, UserId};
use kiemtra_store::{EnrollmentRefusal, Store};
use std::path::Path;

fn editor() -> Editor {
    Editor::new(
        UserId::parse("server").expect("user"),
        DeviceId::parse("server").expect("device"),
    )
}

fn server(dir: &Path) -> Store {
    Store::open(dir.join("kiemtra.db"), editor()).expect("open")
}

const CODE: &[u8] = b"code-digest";
const KEY: [u8; 32] = [7; 32];
const NOW: &str = "2025-01-01T10:00:00Z";

fn with_code(store: &mut Store) {
    store
        .create_enrollment_code(
            CODE,
            "insp-an",
            "team-1",
            "inspector",
            "2025-01-01T09:00:00Z",
            "2025-01-02T09:00:00Z",
        )
        .expect("code");
}

#[test]
fn a_retry_with_the_same_key_gets_the_same_device_and_a_fresh_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = server(dir.path());
    with_code(&mut store);
    let (first, retry) = store
        .redeem_enrollment_code(CODE, NOW, "d-1", "phone", b"token-1", &KEY)
        .expect("redeem")
        .expect("accepted");
    assert!(!retry);
    assert_eq!(first.device_id, "d-1");
    // The answer was lost: the phone asks again with the same key; the
    // server made up another device id and token for this attempt.
    let (again, retry) = store
        .redeem_enrollment_code(
            CODE,
            "2025-01-01T10:05:00Z",
            "d-2",
            "phone",
            b"token-2",
            &KEY,
        )
        .expect("redeem")
        .expect("a retry is accepted");
    assert!(retry);
    assert_eq!(again, first, "the same device, as first enrolled");
    assert_eq!(
        store.devices().expect("devices").len(),
        1,
        "no second device"
    );
    assert!(store.device("d-2").expect("lookup").is_none());
    assert_eq!(
        store
            .device_by_token(b"token-2")
            .expect("lookup")
            .map(|d| d.device_id),
        Some("d-1".to_owned()),
        "the fresh token is the device's"
    );
    assert!(
        store.device_by_token(b"token-1").expect("lookup").is_none(),
        "the lost answer's token no longer works"
    );
}

#[test]
fn a_used_code_with_another_key_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = server(dir.path());
    with_code(&mut store);
    store
        .redeem_enrollment_code(CODE, NOW, "d-1", "phone", b"token-1", &KEY)
        .expect("redeem")
        .expect("accepted");
    let other = store
        .redeem_enrollment_code(CODE, NOW, "d-2", "thief", b"token-2", &[9; 32])
        .expect("redeem");
    assert_eq!(other, Err(EnrollmentRefusal::Used));
    let devices = store.devices().expect("devices");
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].name, "phone");
    assert!(store.device_by_token(b"token-1").expect("lookup").is_some());
    assert!(store.device_by_token(b"token-2").expect("lookup").is_none());
}

#[test]
fn no_retry_after_the_code_expires_or_the_device_is_revoked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = server(dir.path());
    with_code(&mut store);
    store
        .redeem_enrollment_code(CODE, NOW, "d-1", "phone", b"token-1", &KEY)
        .expect("redeem")
        .expect("accepted");
    let late = store
        .redeem_enrollment_code(
            CODE,
            "2025-01-02T09:00:00Z",
            "d-2",
            "phone",
            b"token-2",
            &KEY,
        )
        .expect("redeem");
    assert_eq!(late, Err(EnrollmentRefusal::Used), "past the code's life");
    store
        .revoke_device("d-1", "2025-01-01T11:00:00Z")
        .expect("revoke");
    let revoked = store
        .redeem_enrollment_code(
            CODE,
            "2025-01-01T12:00:00Z",
            "d-3",
            "phone",
            b"token-3",
            &KEY,
        )
        .expect("redeem");
    assert_eq!(revoked, Err(EnrollmentRefusal::Used), "a revoked device");
    assert!(store.device_by_token(b"token-1").expect("lookup").is_some());
    assert!(store.device_by_token(b"token-3").expect("lookup").is_none());
    assert_eq!(store.devices().expect("devices").len(), 1);
}

#[cfg(unix)]
mod modes {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("metadata").permissions().mode() & 0o7777
    }

    fn write_something(store: &mut Store) {
        store
            .set_setting("sync.credentials", "secret")
            .expect("set");
    }

    #[test]
    fn a_new_store_folder_is_0700_and_its_files_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("a").join("data");
        let db = data.join("device.db");
        let mut store = Store::open(&db, editor()).expect("open");
        write_something(&mut store);
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&dir.path().join("a")), 0o700, "created parents too");
        for f in ["device.db", "device.db-wal", "device.db-shm"] {
            let p = data.join(f);
            assert!(p.exists(), "{f} exists while the store is open");
            assert_eq!(mode(&p), 0o600, "{f}");
        }
    }

    #[test]
    fn an_existing_open_folder_and_files_are_tightened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let db = data.join("device.db");
        {
            let mut store = Store::open(&db, editor()).expect("open");
            write_something(&mut store);
        }
        // As an older build left them, with a WAL not yet checkpointed.
        std::fs::write(data.join("device.db-wal"), b"").expect("wal");
        for (p, m) in [
            (data.clone(), 0o755),
            (db.clone(), 0o644),
            (data.join("device.db-wal"), 0o664),
        ] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).expect("chmod");
        }
        let mut store = Store::open(&db, editor()).expect("reopen");
        assert_eq!(
            store.setting("sync.credentials").expect("read").as_deref(),
            Some("secret"),
            "the data is kept"
        );
        write_something(&mut store);
        assert_eq!(mode(&data), 0o700);
        for f in ["device.db", "device.db-wal", "device.db-shm"] {
            assert_eq!(mode(&data.join(f)), 0o600, "{f}");
        }
    }

    #[test]
    fn a_shared_sticky_folder_is_left_alone_but_the_file_is_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).expect("mkdir");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        let db = shared.join("device.db");
        let mut store = Store::open(&db, editor()).expect("open");
        write_something(&mut store);
        assert_eq!(mode(&shared), 0o1777, "a folder like /tmp is not changed");
        assert_eq!(mode(&db), 0o600);
    }
}

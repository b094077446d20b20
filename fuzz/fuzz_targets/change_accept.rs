//! Received bytes (change chunks or a whole document) through the
//! acceptance rule, on a stored visit and as a new visit: never a panic,
//! a refusal changes nothing, and whatever is accepted passes the audit of
//! the resulting history. Seeds: `cargo test -p kiemtra-core --test accept
//! write_fuzz_seeds -- --ignored` with `KIEMTRA_FUZZ_DIR=fuzz`.
#![no_main]

use kiemtra_core::{DeviceId, Editor, Role, Session, UserId, Visit};
use libfuzzer_sys::fuzz_target;

/// The visit the seeds were recorded on, as the server holds it.
const BASE: &[u8] = include_bytes!("../seeds/base.visit");

/// Users named `insp…` are inspectors, `sup…` supervisors.
fn roles(e: &Editor) -> Option<Role> {
    match e.user.as_str() {
        u if u.starts_with("insp") => Some(Role::Inspector),
        u if u.starts_with("sup") => Some(Role::Supervisor),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    // Automerge's own parser panics on some inputs; the code under test
    // catches those panics and refuses the input (the server's second
    // line). libFuzzer's hook would abort on any panic, caught or not: the
    // default hook lets caught ones pass, while one that escapes still
    // aborts the run.
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| drop(std::panic::take_hook()));
    let server = Session::new(Editor::new(
        UserId::parse("server").expect("user"),
        DeviceId::parse("server").expect("device"),
    ));
    let mut visit = Visit::load(BASE, &server).expect("the base visit loads");
    let before = visit.heads();
    match visit.accept_remote(data, &roles, 1 << 20) {
        Ok(_) => assert!(visit.audit_history(&roles).is_empty()),
        Err(_) => assert_eq!(visit.heads(), before),
    }
    if let Ok((v, _)) = Visit::accept_new(data, &server, &roles, 1 << 20) {
        assert!(v.audit_history(&roles).is_empty());
    }
});

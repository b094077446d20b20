//! The server's feed: one row per visit (its latest update), cursors that
//! stay valid when the row they name is superseded, and cursors from after
//! a restored backup refused.

use chrono::NaiveDate;
use kiemtra_core::*;
use kiemtra_store::{FeedEntry, Store};

const STANDARD: &str = include_str!("../../../fixtures/templates/standard-v1.json");

fn vid(s: &str) -> VisitId {
    VisitId::parse(s).expect("id")
}

fn server(path: &std::path::Path) -> Store {
    let editor = Editor::new(
        UserId::parse("server").expect("user"),
        DeviceId::parse("server").expect("device"),
    );
    Store::open(path, editor).expect("open").with_feed()
}

fn create(s: &mut Store, id: &str, team: &str) {
    let visit = NewVisit {
        visit_id: vid(id),
        unit: Unit::new(
            UnitCode::parse("u-1").expect("code"),
            "Sở Nội vụ",
            UnitKind::Department,
            "TP Cần Thơ",
        )
        .expect("unit"),
        campaign: CampaignId::parse("ct-2015").expect("campaign"),
        team: TeamId::parse(team).expect("team"),
        scheduled_on: NaiveDate::from_ymd_opt(2015, 8, 31).expect("date"),
        roster: vec![
            StaffMember::new(
                StaffId::parse("s-000").expect("staff"),
                "Nguyễn Thị Hoa",
                "Chuyên viên",
                StaffCategory::CivilServant,
                true,
            )
            .expect("member"),
        ],
    };
    let template = Template::from_json(STANDARD).expect("template");
    s.create_visit(visit, &template).expect("create");
}

fn mark(s: &mut Store, id: &str, m: AttendanceMark) {
    s.edit(&vid(id), |v| {
        v.record_attendance(&StaffId::parse("s-000")?, m, "", None)
    })
    .expect("edit");
}

fn ids(entries: &[FeedEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.visit_id.as_str()).collect()
}

#[test]
fn the_feed_keeps_one_row_per_visit_and_old_cursors_stay_valid() {
    let dir = tempfile::tempdir().expect("dir");
    let mut s = server(&dir.path().join("server.db"));
    create(&mut s, "v-1", "team-1");
    create(&mut s, "v-2", "team-1");
    create(&mut s, "v-3", "team-2");
    // A device's cursor after it has seen all three.
    let (seen, nonce) = s.feed_head().expect("head");
    assert!(s.feed_cursor_valid(seen, nonce).expect("check"));
    for m in [
        AttendanceMark::Present,
        AttendanceMark::Late,
        AttendanceMark::Present,
    ] {
        mark(&mut s, "v-1", m);
    }
    let (head, _) = s.feed_head().expect("head");
    let all = s.feed_since(None, 0, head).expect("feed");
    assert_eq!(
        ids(&all),
        ["v-2", "v-3", "v-1"],
        "one row each, oldest first"
    );
    assert_eq!(all.last().map(|e| e.seq), Some(head));
    // The row `seen` named was v-3's, still there; the cursor of an update
    // of v-1 that has since been dropped is valid too.
    let first_v1 = seen - 2;
    assert!(
        s.feed_since(None, first_v1 - 1, first_v1)
            .expect("feed")
            .is_empty()
    );
    assert!(s.feed_cursor_valid(first_v1, nonce).expect("check"));
    assert_eq!(
        ids(&s.feed_since(Some("team-1"), seen, head).expect("feed")),
        ["v-1"],
        "after the cursor: only what changed"
    );
    // Refused: seq 0, a nonce this database never used, a seq past the head.
    assert!(!s.feed_cursor_valid(0, nonce).expect("check"));
    assert!(!s.feed_cursor_valid(seen, nonce ^ 1).expect("check"));
    assert!(!s.feed_cursor_valid(head + 1, nonce).expect("check"));
    assert!(!s.feed_cursor_valid(seen, u64::MAX).expect("check"));
}

#[test]
fn cursors_from_after_a_restored_backup_are_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("server.db");
    let backup = dir.path().join("backup.db");
    let mut s = server(&path);
    create(&mut s, "v-1", "team-1");
    let (before, before_nonce) = s.feed_head().expect("head");
    drop(s);
    // Closing checkpointed the log into the file: the file is the backup.
    std::fs::copy(&path, &backup).expect("backup");
    // The server is opened again (a new generation) and more lands on it.
    let mut s = server(&path);
    create(&mut s, "v-2", "team-1");
    mark(&mut s, "v-1", AttendanceMark::Late);
    let (after, after_nonce) = s.feed_head().expect("head");
    assert_ne!(after_nonce, before_nonce, "a new generation per opening");
    assert!(s.feed_cursor_valid(after, after_nonce).expect("check"));
    assert!(s.feed_cursor_valid(before, before_nonce).expect("check"));
    drop(s);
    // The disk is lost; the backup comes back and the server is opened on it.
    std::fs::copy(&backup, &path).expect("restore");
    let mut s = server(&path);
    assert!(s.feed_cursor_valid(before, before_nonce).expect("check"));
    assert!(
        !s.feed_cursor_valid(after, after_nonce).expect("check"),
        "a cursor from after the backup"
    );
    // New rows reuse the sequence numbers the lost state had used; the old
    // generation's cursor is refused all the same.
    create(&mut s, "v-3", "team-1");
    mark(&mut s, "v-1", AttendanceMark::Present);
    let (head, _) = s.feed_head().expect("head");
    assert!(
        head >= after,
        "sequence numbers reused: {head} against {after}"
    );
    assert!(!s.feed_cursor_valid(after, after_nonce).expect("check"));
    assert!(
        !s.feed_cursor_valid(before + 1, before_nonce)
            .expect("check")
    );
}

//! Naming changes by actor and sequence ranges.

mod common;

use common::*;
use kiemtra_core::*;

fn hash(n: u8) -> ChangeHash {
    ChangeHash([n; 32])
}

#[test]
fn ranges_resolve_to_the_changes_they_name() {
    let mut index = ChangeIndex::default();
    for seq in 1..=5u64 {
        index.insert(b"actor-a", seq, hash(seq as u8));
    }
    index.insert(b"actor-b", 1, hash(100));
    // The first hash given for a place stays.
    index.insert(b"actor-a", 2, hash(200));
    assert_eq!(
        index.hashes(&[(b"actor-a".to_vec(), 2, 4), (b"actor-b".to_vec(), 1, 1)]),
        Some(vec![hash(2), hash(3), hash(4), hash(100)])
    );
    assert_eq!(index.get(b"actor-a", 2), Some(hash(2)));
    // A change not held, an unknown actor, a reversed range, sequence 0.
    assert_eq!(index.hashes(&[(b"actor-a".to_vec(), 4, 6)]), None);
    assert_eq!(index.hashes(&[(b"actor-c".to_vec(), 1, 1)]), None);
    assert_eq!(index.hashes(&[(b"actor-a".to_vec(), 3, 2)]), None);
    assert_eq!(index.get(b"actor-a", 0), None);
    // Absurd ranges are refused before any lookup.
    assert_eq!(index.hashes(&[(b"actor-a".to_vec(), 1, u64::MAX)]), None);
}

#[test]
fn huge_sequence_numbers_are_kept_without_a_huge_vector() {
    let mut index = ChangeIndex::default();
    index.insert(b"actor-a", u64::MAX - 1, hash(7));
    assert_eq!(index.get(b"actor-a", u64::MAX - 1), Some(hash(7)));
    assert_eq!(
        index.hashes(&[(b"actor-a".to_vec(), u64::MAX - 1, u64::MAX - 1)]),
        Some(vec![hash(7)])
    );
}

#[test]
fn a_visits_index_names_every_change_with_its_author() {
    let mut v = create(4);
    v.record_attendance(&staff(1), AttendanceMark::Present, "", None)
        .expect("mark");
    let mut r = replica(&v, "insp-2", "dev-2", 5);
    r.record_attendance(&staff(2), AttendanceMark::Late, "", None)
        .expect("mark");
    v.record_attendance(&staff(3), AttendanceMark::Present, "", None)
        .expect("mark");
    v.merge(&r).expect("merge");
    let (index, authors) = v.change_index();
    let changes = v.automerge().get_changes(&[]);
    assert_eq!(authors.len(), changes.len());
    for c in &changes {
        assert_eq!(index.get(c.actor_id().to_bytes(), c.seq()), Some(c.hash()));
    }
    let names: Vec<String> = authors
        .iter()
        .map(|(_, a)| a.as_ref().map(|e| e.user.to_string()).unwrap_or_default())
        .collect();
    // Consecutive changes by one author share a parsed name; a change by
    // another author in between is named for itself.
    assert_eq!(
        names.iter().filter(|n| *n == "insp-2").count(),
        1,
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| *n == "sup-1").count(),
        names.len() - 1
    );
}

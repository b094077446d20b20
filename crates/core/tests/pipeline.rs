//! Loading documents in the background while the caller consumes them.

mod common;

use common::*;
use kiemtra_core::*;

fn docs_with_staff(counts: &[usize]) -> Vec<Vec<u8>> {
    counts.iter().map(|n| create(*n).save()).collect()
}

#[test]
fn results_come_in_input_order_with_errors_and_gaps_in_their_place() {
    let counts = [3, 5, 7, 9, 11, 13, 15, 17, 19];
    let good = docs_with_staff(&counts);
    let garbage = b"not a document".to_vec();
    let mut docs: Vec<Option<&[u8]>> = good.iter().map(|d| Some(d.as_slice())).collect();
    docs.insert(4, Some(&garbage));
    docs.insert(7, None);
    let session = session("insp-1", "dev-1", 0);
    let seen = load_pipelined(
        &docs,
        &session,
        2,
        |v| v.state().map(|s| s.staff.len()).unwrap_or(0),
        |loads| {
            loads
                .map(|r| r.map(|loaded| loaded.map(|(_, staff)| staff).ok()))
                .collect::<Vec<_>>()
        },
    );
    let mut expected: Vec<Option<Option<usize>>> = counts.iter().map(|n| Some(Some(*n))).collect();
    expected.insert(4, Some(None));
    expected.insert(7, None);
    assert_eq!(seen, expected);
}

#[test]
fn a_caller_that_stops_early_is_not_kept_waiting() {
    let good = docs_with_staff(&[2, 2, 2, 2, 2, 2]);
    let docs: Vec<Option<&[u8]>> = good.iter().map(|d| Some(d.as_slice())).collect();
    let session = session("insp-1", "dev-1", 0);
    let first = load_pipelined(
        &docs,
        &session,
        1,
        |_| (),
        |loads| loads.next().flatten().map(|r| r.is_ok()),
    );
    assert_eq!(first, Some(true));
    let none = load_pipelined(&[], &session, 4, |_| (), |loads| loads.next().is_none());
    assert!(none);
    let nothing_to_load = load_pipelined(
        &[None, None],
        &session,
        4,
        |_| (),
        |loads| loads.map(|r| r.is_none()).collect::<Vec<_>>(),
    );
    assert_eq!(nothing_to_load, vec![true, true]);
}

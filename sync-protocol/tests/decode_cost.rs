//! What decoding costs in memory: measured with a counting allocator, every
//! decode — of adversarial bodies built to amplify (thousands of tiny
//! ranges, empty visits, counts promising more than the bytes hold) and of
//! honest ones — allocates at most `decode_budget(len)` bytes in all
//! (`DECODE_PER_BYTE` × len + `DECODE_SLACK`), so its peak is under that
//! too; messages that would take more are refused as `TooCostly`, and honest
//! shapes are not.
//!
//! One test function: the allocator's counters are global, so nothing else
//! may run beside it in this binary.

use kiemtra_sync_protocol::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated while decoding `bytes` (an upper bound of the peak), the
/// bytes the decoded value still holds, and the outcome.
fn measure<T>(
    bytes: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, DecodeError>,
) -> (usize, usize, Result<(), DecodeError>) {
    let region = Region::new(GLOBAL);
    let outcome = decode(bytes);
    let stats = region.change();
    let grown = usize::try_from(stats.bytes_reallocated.max(0)).expect("fits");
    let allocated = stats.bytes_allocated + grown;
    let held = (stats.bytes_allocated + grown).saturating_sub(stats.bytes_deallocated);
    let outcome = outcome.map(drop);
    (allocated, held, outcome)
}

fn check_request(bytes: &[u8]) -> Result<(), DecodeError> {
    let (allocated, held, outcome) = measure(bytes, |b| SyncRequest::decode(b, 64 << 20));
    let budget = decode_budget(bytes.len());
    assert!(
        allocated <= budget,
        "a {}-byte request allocated {allocated} bytes decoding (budget {budget}): {outcome:?}",
        bytes.len()
    );
    assert!(held <= allocated);
    outcome
}

fn check_response(bytes: &[u8]) -> Result<(), DecodeError> {
    let (allocated, _, outcome) = measure(bytes, |b| SyncResponse::decode(b, 64 << 20));
    let budget = decode_budget(bytes.len());
    assert!(
        allocated <= budget,
        "a {}-byte response allocated {allocated} bytes decoding (budget {budget}): {outcome:?}",
        bytes.len()
    );
    outcome
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn request_head(visits: u64) -> Vec<u8> {
    let mut b = b"KTSQ".to_vec();
    b.push(PROTOCOL_VERSION);
    varint(&mut b, 0);
    b.extend_from_slice(&0u64.to_le_bytes());
    varint(&mut b, 0);
    varint(&mut b, visits);
    b
}

/// One visit whose signatures each hold `ranges` ranges of an `actor`-byte
/// actor, (1, 1) each: the smallest range on the wire, 3 bytes plus the actor.
fn ranges_body(signatures: usize, ranges: usize, actor: usize) -> Vec<u8> {
    let mut b = request_head(1);
    b.extend_from_slice(&[1, b'v', 0, 0, 0]); // id "v", flags, no heads, no changes
    varint(&mut b, signatures as u64);
    for _ in 0..signatures {
        b.push(0); // own signer
        varint(&mut b, ranges as u64);
        for _ in 0..ranges {
            varint(&mut b, actor as u64);
            b.extend(std::iter::repeat_n(0xab, actor));
            b.extend_from_slice(&[1, 1]);
        }
        b.push(64);
        b.extend_from_slice(&[0x44; 64]);
    }
    b
}

/// An honest check-in: `n` visits offered with one head, confirmed as heads.
fn check_in(n: usize) -> SyncRequest {
    SyncRequest {
        cursor: Cursor { seq: 7, nonce: 9 },
        max_response: 0,
        visits: (0..n)
            .map(|i| VisitOffer {
                visit_id: format!("CT2015.U{i:05}"),
                heads: vec![[i as u8; 32]],
                confirmed: Some(vec![[i as u8; 32]]),
                changes: vec![],
                signatures: vec![],
                implied: false,
            })
            .collect(),
    }
}

/// An honest upload: visits with changes and one own signature each, plus
/// forwarded signatures of colleagues.
fn upload(visits: usize, change_bytes: usize, forwarded: usize) -> SyncRequest {
    let sig = |signer: &str, actor: u8| Signature {
        signer: signer.into(),
        ranges: vec![SeqRange {
            actor: vec![actor; 16],
            first: 1,
            last: 40,
        }],
        signature: vec![0x55; 64],
    };
    SyncRequest {
        cursor: Cursor::default(),
        max_response: 0,
        visits: (0..visits)
            .map(|i| VisitOffer {
                visit_id: format!("CT2015.U{i:05}"),
                heads: vec![],
                confirmed: None,
                changes: vec![0x85; change_bytes],
                signatures: std::iter::once(sig("", 1))
                    .chain((0..forwarded).map(|k| sig(&format!("device-{k:032}"), k as u8)))
                    .collect(),
                implied: true,
            })
            .collect(),
    }
}

/// A response of `n` results: whole documents of `doc` bytes with listings
/// of `reasons` absence reasons, or (`doc` 0) heads only.
fn response(n: usize, doc: usize, reasons: usize) -> SyncResponse {
    SyncResponse {
        cursor: Cursor::default(),
        more: false,
        visits: (0..n)
            .map(|i| VisitResult {
                visit_id: format!("CT2015.U{i:05}"),
                status: VisitStatus::Ok,
                heads: vec![[1; 32]],
                changes: vec![0x85; doc],
                signatures: vec![],
                message: String::new(),
                listing: (doc > 0).then(|| Listing {
                    unit_code: format!("U{i:05}"),
                    unit_name: "Trường Tiểu học".into(),
                    absent_by_reason: (0..reasons).map(|r| (format!("reason_{r}"), 1)).collect(),
                    ..Listing::default()
                }),
            })
            .collect(),
    }
}

/// Adversarial bytes: a request head, then pieces that promise much and
/// hold little, in any order, cut anywhere.
fn adversarial() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        // A huge count with little behind it.
        (0u64..u64::MAX).prop_map(|n| {
            let mut b = Vec::new();
            varint(&mut b, n);
            b
        }),
        // A tiny range.
        (0usize..3).prop_map(|a| {
            let mut b = vec![a as u8];
            b.extend(std::iter::repeat_n(0xab, a));
            b.extend_from_slice(&[1, 1]);
            b
        }),
        // An empty visit.
        Just(vec![1, b'v', 0, 0, 0, 0]),
        // A signature's tail.
        Just([&[64u8][..], &[0x44; 64][..]].concat()),
        prop::collection::vec(any::<u8>(), 0..8),
    ];
    (
        0u64..20_000,
        prop::collection::vec((piece, 1usize..500), 0..20),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(visits, pieces, cut)| {
            let mut b = request_head(visits);
            for (p, times) in pieces {
                for _ in 0..times {
                    b.extend_from_slice(&p);
                }
            }
            let keep = b.len() - cut.index(b.len() / 4 + 1);
            b.truncate(keep);
            b
        })
}

#[test]
fn decoding_allocates_within_its_budget() {
    // Thousands of tiny ranges: 40 bytes each decoded for 3 on the wire.
    // Within the slack they decode; past it they are refused, and the
    // refusal itself stays within budget.
    assert_eq!(check_request(&ranges_body(1, 4096, 0)), Ok(()));
    for (signatures, ranges, actor) in [(64, 4096, 0), (256, 4096, 1), (200, 1000, 4)] {
        let body = ranges_body(signatures, ranges, actor);
        assert!(
            matches!(check_request(&body), Err(DecodeError::TooCostly { .. })),
            "{signatures} × {ranges} ranges of {actor}-byte actors ({} bytes) must be refused",
            body.len()
        );
    }
    // A few ranges stay well within the slack and decode.
    assert_eq!(check_request(&ranges_body(4, 16, 16)), Ok(()));

    // Counts promising more than the bytes hold allocate nothing for them.
    let mut lying = request_head(MAX_VISITS as u64);
    lying.extend_from_slice(&[1, b'v', 0, 0, 0]);
    varint(&mut lying, MAX_SIGNATURES as u64);
    let (allocated, _, outcome) = measure(&lying, |b| SyncRequest::decode(b, 1 << 20));
    assert!(outcome.is_err());
    assert!(
        allocated < 1024,
        "{allocated} bytes allocated for a {}-byte lie",
        lying.len()
    );

    // Honest shapes decode, large and small.
    for req in [
        check_in(MAX_VISITS),
        check_in(3),
        upload(2000, 300, 3),
        upload(50, 4000, 8),
    ] {
        let bytes = req.encode();
        assert_eq!(check_request(&bytes), Ok(()), "{} bytes", bytes.len());
    }
    for resp in [
        response(MAX_VISITS, 0, 0),
        response(MAX_VISITS, 1500, 8),
        response(100, 1500, MAX_REASONS),
    ] {
        let bytes = resp.encode();
        assert_eq!(check_response(&bytes), Ok(()), "{} bytes", bytes.len());
    }

    // Adversarial bytes of every shape: never beyond the budget.
    let mut runner = TestRunner::new(Config {
        cases: 512,
        ..Config::default()
    });
    runner
        .run(&adversarial(), |bytes| {
            let _ = check_request(&bytes);
            // The same bytes as a response (magic swapped).
            let mut resp = bytes.clone();
            resp[..4].copy_from_slice(b"KTSR");
            let _ = check_response(&resp);
            Ok(())
        })
        .expect("every decode stays within its budget");
}

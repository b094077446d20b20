//! Property tests of the decoder: any message round-trips, and arbitrary or
//! mutated bytes never panic — they decode or give a DecodeError.

use kiemtra_sync_protocol::*;
use proptest::prelude::*;

fn hash() -> impl Strategy<Value = Hash> {
    any::<[u8; 32]>()
}

fn offer() -> impl Strategy<Value = VisitOffer> {
    (
        "[a-z0-9.-]{1,20}",
        prop::collection::vec(hash(), 0..3),
        prop::option::of(prop::collection::vec(hash(), 0..3)),
        prop::collection::vec(any::<u8>(), 0..64),
        any::<bool>(),
    )
        .prop_map(|(visit_id, heads, confirmed, changes, implied)| {
            // An implied offer carries changes and leaves its hashes off.
            let implied = implied && !changes.is_empty();
            VisitOffer {
                visit_id,
                heads: if implied { vec![] } else { heads.clone() },
                confirmed: if implied {
                    confirmed.map(|_| vec![])
                } else {
                    confirmed
                },
                changes,
                implied,
                signatures: vec![Signature {
                    signer: "d-1".into(),
                    ranges: heads
                        .iter()
                        .map(|h| SeqRange {
                            actor: h[..16].to_vec(),
                            first: 1,
                            last: 1 + u64::from(h[0]),
                        })
                        .collect(),
                    signature: vec![7; 64],
                }],
            }
        })
}

fn request() -> impl Strategy<Value = SyncRequest> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        prop::collection::vec(offer(), 0..5),
    )
        .prop_map(|(seq, nonce, max_response, mut visits)| {
            let mut seen = std::collections::HashSet::new();
            visits.retain(|v| seen.insert(v.visit_id.clone()));
            SyncRequest {
                cursor: Cursor { seq, nonce },
                max_response,
                visits,
            }
        })
}

fn result() -> impl Strategy<Value = VisitResult> {
    (
        "[a-z0-9.-]{1,20}",
        0u8..6,
        prop::collection::vec(hash(), 0..3),
        prop::collection::vec(any::<u8>(), 0..64),
        "[a-zà-ỹ ]{0,30}",
        prop::option::of(listing()),
    )
        .prop_map(
            |(visit_id, s, heads, changes, message, listing)| VisitResult {
                // A listing travels only with a whole document sent ok.
                listing: listing.filter(|_| s == 0 && !changes.is_empty()),
                visit_id,
                status: [
                    VisitStatus::Ok,
                    VisitStatus::Resend,
                    VisitStatus::Deferred,
                    VisitStatus::Denied,
                    VisitStatus::Invalid,
                    VisitStatus::Unknown,
                ][s as usize],
                heads,
                changes,
                signatures: vec![],
                message,
            },
        )
}

fn listing() -> impl Strategy<Value = Listing> {
    (
        prop::collection::vec("[a-zà-ỹA-Z0-9 .-]{0,20}", 7),
        prop::collection::vec(any::<u32>(), 6),
        prop::collection::vec(("[a-z_]{1,12}", any::<u32>()), 0..4),
    )
        .prop_map(|(t, n, absent_by_reason)| Listing {
            unit_code: t[0].clone(),
            unit_name: t[1].clone(),
            unit_kind: t[2].clone(),
            campaign: t[3].clone(),
            team: t[4].clone(),
            scheduled_on: t[5].clone(),
            status: t[6].clone(),
            conflicts: n[0],
            payroll: n[1],
            present: n[2],
            late: n[3],
            absent: n[4],
            unrecorded: n[5],
            absent_by_reason,
        })
}

proptest! {
    #[test]
    fn requests_round_trip(req in request()) {
        prop_assert_eq!(SyncRequest::decode(&req.encode(), 1 << 20), Ok(req));
    }

    #[test]
    fn responses_round_trip(cursor in any::<(u64, u64)>(), more in any::<bool>(), visits in prop::collection::vec(result(), 0..5)) {
        let mut seen = std::collections::HashSet::new();
        let visits: Vec<_> = visits.into_iter().filter(|v| seen.insert(v.visit_id.clone())).collect();
        let resp = SyncResponse { cursor: Cursor { seq: cursor.0, nonce: cursor.1 }, more, visits };
        prop_assert_eq!(SyncResponse::decode(&resp.encode(), 1 << 20), Ok(resp));
    }

    #[test]
    fn mutated_responses_never_panic(cursor in any::<(u64, u64)>(), visits in prop::collection::vec(result(), 1..4), pos in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let mut seen = std::collections::HashSet::new();
        let visits: Vec<_> = visits.into_iter().filter(|v| seen.insert(v.visit_id.clone())).collect();
        let whole = SyncResponse { cursor: Cursor { seq: cursor.0, nonce: cursor.1 }, more: false, visits }.encode();
        let mut bytes = whole.clone();
        let i = pos.index(bytes.len());
        bytes[i] = byte;
        let _ = SyncResponse::decode(&bytes, 1 << 20);
        let truncated = &whole[..cut.index(whole.len())];
        prop_assert!(SyncResponse::decode(truncated, 1 << 20).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = SyncRequest::decode(&bytes, 1 << 20);
        let _ = SyncResponse::decode(&bytes, 1 << 20);
    }

    #[test]
    fn mutated_messages_never_panic(req in request(), pos in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let whole = req.encode();
        let mut bytes = whole.clone();
        let i = pos.index(bytes.len());
        bytes[i] = byte;
        let _ = SyncRequest::decode(&bytes, 1 << 20);
        // Every strict prefix of a valid message is refused.
        let truncated = &whole[..cut.index(whole.len())];
        prop_assert!(SyncRequest::decode(truncated, 1 << 20).is_err());
    }
}

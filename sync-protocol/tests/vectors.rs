//! The test vectors of SPEC.md: bytes in, messages out, and back.

use kiemtra_sync_protocol::*;

fn hex(name: &str) -> Vec<u8> {
    let path = format!("{}/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let t = text.trim();
    (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&t[i..i + 2], 16).expect("hex"))
        .collect()
}

const LIMIT: usize = 1 << 20;

#[test]
fn request_1() {
    let expected = SyncRequest {
        cursor: Cursor { seq: 300, nonce: 1 },
        max_response: 1 << 20,
        visits: vec![VisitOffer {
            visit_id: "v-1".into(),
            heads: vec![[0x11; 32]],
            confirmed: None,
            changes: vec![0x85, 0x6f],
            signatures: vec![],
            implied: false,
        }],
    };
    assert_eq!(
        SyncRequest::decode(&hex("request-1.hex"), LIMIT),
        Ok(expected.clone())
    );
    assert_eq!(expected.encode(), hex("request-1.hex"));
}

#[test]
fn request_2_confirmed_heads_both_ways() {
    let expected = SyncRequest {
        cursor: Cursor::default(),
        max_response: 0,
        visits: vec![
            VisitOffer {
                visit_id: "v-1".into(),
                heads: vec![[0x22; 32]],
                confirmed: Some(vec![[0x11; 32]]),
                changes: vec![],
                signatures: vec![],
                implied: false,
            },
            VisitOffer {
                visit_id: "v-2".into(),
                heads: vec![[0x11; 32]],
                confirmed: Some(vec![[0x11; 32]]),
                changes: vec![],
                signatures: vec![],
                implied: false,
            },
        ],
    };
    assert_eq!(
        SyncRequest::decode(&hex("request-2.hex"), LIMIT),
        Ok(expected.clone())
    );
    assert_eq!(expected.encode(), hex("request-2.hex"));
}

#[test]
fn request_3_with_a_signature() {
    let expected = SyncRequest {
        cursor: Cursor::default(),
        max_response: 0,
        visits: vec![VisitOffer {
            visit_id: "v-1".into(),
            heads: vec![[0x33; 32]],
            confirmed: None,
            changes: vec![0x85, 0x6f],
            signatures: vec![Signature {
                signer: "d-1".into(),
                ranges: vec![SeqRange {
                    actor: vec![0xab, 0xcd],
                    first: 1,
                    last: 3,
                }],
                signature: vec![0x44; 64],
            }],
            implied: false,
        }],
    };
    assert_eq!(
        SyncRequest::decode(&hex("request-3.hex"), LIMIT),
        Ok(expected.clone())
    );
    assert_eq!(expected.encode(), hex("request-3.hex"));
}

#[test]
fn request_4_an_own_signature_leaves_its_signer_implied() {
    // The requesting device's own batch: signer left empty, the server
    // reads it as the authenticated device. Same bytes as request-3
    // otherwise, 3 bytes shorter here (34 with a real device id).
    let mut expected = SyncRequest::decode(&hex("request-3.hex"), LIMIT).expect("request-3");
    expected.visits[0].signatures[0].signer = String::new();
    assert_eq!(
        SyncRequest::decode(&hex("request-4.hex"), LIMIT),
        Ok(expected.clone())
    );
    assert_eq!(expected.encode(), hex("request-4.hex"));
    assert_eq!(hex("request-3.hex").len() - hex("request-4.hex").len(), 3);
}

#[test]
fn request_5_heads_and_confirmation_left_to_the_changes() {
    let offer = |id: &str, confirmed: Option<Vec<Hash>>| VisitOffer {
        visit_id: id.into(),
        heads: vec![],
        confirmed,
        changes: vec![0x85, 0x6f],
        signatures: vec![],
        implied: true,
    };
    let expected = SyncRequest {
        cursor: Cursor::default(),
        max_response: 0,
        visits: vec![offer("v-1", Some(vec![])), offer("v-2", None)],
    };
    assert_eq!(
        SyncRequest::decode(&hex("request-5.hex"), LIMIT),
        Ok(expected.clone())
    );
    assert_eq!(expected.encode(), hex("request-5.hex"));
    // Each offer is 66 bytes shorter than with one head and one
    // confirmation written out (1 + 32 bytes each).
    let mut explicit = expected.clone();
    for v in &mut explicit.visits {
        v.implied = false;
        v.heads = vec![[0x11; 32]];
        v.confirmed = v.confirmed.as_ref().map(|_| vec![[0x22; 32]]);
    }
    assert_eq!(
        explicit.encode().len() - hex("request-5.hex").len(),
        66 + 33
    );
}

#[test]
fn a_response_must_name_every_signer() {
    assert_eq!(
        SyncResponse::decode(&hex("bad-implied-signer.hex"), LIMIT),
        Err(DecodeError::ImpliedSigner)
    );
    // The same signature with its signer named decodes.
    let mut named = hex("bad-implied-signer.hex");
    let at = named
        .windows(4)
        .position(|w| w == [0x01, 0x00, 0x01, 0x02])
        .expect("the signature's start")
        + 1;
    named.splice(at..at + 1, [0x03, b'd', b'-', b'1']);
    let decoded = SyncResponse::decode(&named, LIMIT).expect("named signer");
    assert_eq!(decoded.visits[0].signatures[0].signer, "d-1");
}

#[test]
fn the_signed_message_is_domain_separated_and_order_free() {
    let a = Signature::message("v-1", &[[2; 32], [1; 32]]);
    let b = Signature::message("v-1", &[[1; 32], [2; 32]]);
    assert_eq!(a, b);
    assert!(a.starts_with(b"kiemtra-changes-v1\0v-1\0"));
    assert_eq!(a.len(), 19 + 4 + 64);
    assert_ne!(a, Signature::message("v-2", &[[1; 32], [2; 32]]));
}

#[test]
fn response_1() {
    let expected = SyncResponse {
        cursor: Cursor {
            seq: 7,
            nonce: 0xdead_beef,
        },
        more: false,
        visits: vec![
            VisitResult {
                visit_id: "v-1".into(),
                status: VisitStatus::Ok,
                heads: vec![[0x22; 32]],
                changes: vec![],
                signatures: vec![],
                message: String::new(),
                listing: None,
            },
            VisitResult {
                visit_id: "v-2".into(),
                status: VisitStatus::Denied,
                heads: vec![],
                changes: vec![],
                signatures: vec![],
                message: "team".into(),
                listing: None,
            },
        ],
    };
    assert_eq!(
        SyncResponse::decode(&hex("response-1.hex"), LIMIT),
        Ok(expected.clone())
    );
    assert_eq!(expected.encode(), hex("response-1.hex"));
}

#[test]
fn response_2_a_whole_document_with_its_listing() {
    let expected = SyncResponse {
        cursor: Cursor { seq: 9, nonce: 1 },
        more: false,
        visits: vec![VisitResult {
            visit_id: "v-1".into(),
            status: VisitStatus::Ok,
            heads: vec![[0x44; 32]],
            changes: vec![0x85, 0x6f],
            signatures: vec![],
            message: String::new(),
            listing: Some(Listing {
                unit_code: "u-01".into(),
                unit_name: "UBND xã A".into(),
                unit_kind: "commune".into(),
                campaign: "ct-2015".into(),
                team: "team-1".into(),
                scheduled_on: "2015-08-31".into(),
                status: "draft".into(),
                conflicts: 1,
                payroll: 60,
                present: 50,
                late: 2,
                absent: 5,
                unrecorded: 5,
                absent_by_reason: vec![("business_trip".into(), 5)],
            }),
        }],
    };
    assert_eq!(
        SyncResponse::decode(&hex("response-2.hex"), LIMIT),
        Ok(expected.clone())
    );
    assert_eq!(expected.encode(), hex("response-2.hex"));
}

#[test]
fn a_listing_travels_only_with_a_whole_document_sent_ok() {
    // response-2 with the status byte set to 3 (denied).
    assert_eq!(
        SyncResponse::decode(&hex("bad-listing.hex"), LIMIT),
        Err(DecodeError::UnexpectedListing("v-1".into()))
    );
    // And with no changes: the same listing on an ok result with nothing sent.
    let mut empty = hex("response-2.hex");
    let at = empty
        .windows(3)
        .position(|w| w == [0x02, 0x85, 0x6f])
        .expect("the changes");
    empty.splice(at..at + 3, [0x00]);
    assert_eq!(
        SyncResponse::decode(&empty, LIMIT),
        Err(DecodeError::UnexpectedListing("v-1".into()))
    );
    // A listing flag other than 0 or 1.
    let mut flag = hex("response-1.hex");
    let last = flag.len() - 1;
    flag[last] = 2;
    assert_eq!(
        SyncResponse::decode(&flag, LIMIT),
        Err(DecodeError::UnknownValue {
            what: "listing",
            value: 2
        })
    );
}

#[test]
fn bad_vectors_are_refused_with_the_documented_error() {
    let cases: [(&str, DecodeError); 11] = [
        ("bad-range.hex", DecodeError::BadRange { first: 0, last: 3 }),
        ("bad-magic.hex", DecodeError::BadMagic),
        (
            "bad-version.hex",
            DecodeError::UnsupportedVersion {
                found: 4,
                supported: 5,
            },
        ),
        (
            "bad-signature-length.hex",
            DecodeError::BadSignatureLength(3),
        ),
        ("bad-truncated.hex", DecodeError::Truncated("visit id")),
        ("bad-trailing.hex", DecodeError::TrailingBytes(1)),
        (
            "bad-duplicate.hex",
            DecodeError::DuplicateVisit("v-1".into()),
        ),
        ("bad-overlong-varint.hex", DecodeError::BadVarint("cursor")),
        (
            "bad-flags.hex",
            DecodeError::UnknownValue {
                what: "flags",
                value: 8,
            },
        ),
        (
            "bad-implied-flags.hex",
            DecodeError::UnknownValue {
                what: "flags",
                value: 6,
            },
        ),
        (
            "bad-implied-empty.hex",
            DecodeError::ImpliedWithoutChanges("v-1".into()),
        ),
    ];
    for (file, err) in cases {
        assert_eq!(SyncRequest::decode(&hex(file), LIMIT), Err(err), "{file}");
    }
}

#[test]
fn change_bytes_over_the_limit_are_refused() {
    let mut req = SyncRequest::decode(&hex("request-1.hex"), LIMIT).expect("decode");
    req.visits[0].changes = vec![0; 100];
    let bytes = req.encode();
    assert!(matches!(
        SyncRequest::decode(&bytes, 99),
        Err(DecodeError::TooLong {
            what: "changes",
            ..
        })
    ));
    assert!(SyncRequest::decode(&bytes, 100).is_ok());
}

//! The bundle file format of SPEC §13: its test vector both ways, and
//! damaged or foreign files refused with their reason.

use kiemtra_client::{BUNDLE_VERSION, Bundle, BundleError};
use kiemtra_sync_protocol::{SeqRange, Signature, VisitOffer};

fn vector() -> Vec<u8> {
    let path = format!(
        "{}/../../sync-protocol/vectors/bundle-1.hex",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let t = text.trim();
    (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&t[i..i + 2], 16).expect("hex"))
        .collect()
}

fn expected() -> Bundle {
    Bundle {
        team: "team-1".into(),
        writer: "d-1".into(),
        visits: vec![VisitOffer {
            visit_id: "v-1".into(),
            heads: vec![],
            confirmed: None,
            changes: vec![0x85, 0x6f, 0x4a, 0x83],
            signatures: vec![Signature {
                signer: "d-1".into(),
                ranges: vec![SeqRange {
                    actor: vec![0xaa; 16],
                    first: 1,
                    last: 3,
                }],
                signature: vec![0x55; 64],
            }],
            implied: true,
        }],
    }
}

#[test]
fn the_vector_decodes_and_encodes_back() {
    let bytes = vector();
    assert_eq!(&bytes[..4], b"KTBN");
    assert_eq!(bytes[4], BUNDLE_VERSION);
    assert_eq!(Bundle::decode(&bytes).expect("decode"), expected());
    assert_eq!(expected().encode(), bytes);
}

#[test]
fn damaged_foreign_and_malformed_files_are_refused() {
    let bytes = vector();
    for cut in [0, 3, 4, 5, 20, bytes.len() - 1] {
        assert!(Bundle::decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut flipped = bytes.clone();
    flipped[12] ^= 1;
    assert!(matches!(
        Bundle::decode(&flipped),
        Err(BundleError::Damaged)
    ));
    let mut version = bytes.clone();
    version[4] = 9;
    assert!(matches!(
        Bundle::decode(&version),
        Err(BundleError::Version { found: 9, .. })
    ));
    assert!(matches!(
        Bundle::decode(b"PK\x03\x04 a zip file"),
        Err(BundleError::NotABundle)
    ));
    // A signature naming no signer, with a right checksum: malformed.
    let mut anonymous = expected();
    anonymous.visits[0].signatures[0].signer.clear();
    assert!(matches!(
        Bundle::decode(&anonymous.encode()),
        Err(BundleError::Malformed(_))
    ));
    // Garbage where the body belongs, with a right checksum.
    let mut junk = expected().encode();
    junk.truncate(5 + 8 + 5);
    junk.extend_from_slice(b"not a body");
    let sum = ring::digest::digest(&ring::digest::SHA256, &junk);
    junk.extend_from_slice(sum.as_ref());
    assert!(matches!(
        Bundle::decode(&junk),
        Err(BundleError::Malformed(_))
    ));
}

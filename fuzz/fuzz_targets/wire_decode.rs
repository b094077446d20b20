//! The wire decoder on arbitrary bytes: it never panics; whatever decodes
//! re-encodes to bytes that decode to the same message, and encoding is
//! stable from there on.

#![no_main]

use kiemtra_sync_protocol::{SyncRequest, SyncResponse};
use libfuzzer_sys::fuzz_target;

/// Change bytes allowed per visit (the server's default body limit).
const MAX_CHANGES: usize = 64 << 20;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = SyncRequest::decode(data, MAX_CHANGES) {
        let bytes = request.encode();
        let again = SyncRequest::decode(&bytes, MAX_CHANGES).expect("a re-encoded request decodes");
        assert_eq!(again, request);
        assert_eq!(again.encode(), bytes);
    }
    if let Ok(response) = SyncResponse::decode(data, MAX_CHANGES) {
        let bytes = response.encode();
        let again =
            SyncResponse::decode(&bytes, MAX_CHANGES).expect("a re-encoded response decodes");
        assert_eq!(again, response);
        assert_eq!(again.encode(), bytes);
    }
});

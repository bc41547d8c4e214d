//! Feeds arbitrary bytes to the control-message, stream-metadata and preamble decoders.
#![no_main]

use burrow_protocol::control::{self, ClientMessage, ServerMessage, StreamMeta};
use burrow_protocol::preamble::{self, MAGIC, PREAMBLE_LEN};
use libfuzzer_sys::fuzz_target;
use serde::{de::DeserializeOwned, Serialize};
use std::fmt::Debug;

fuzz_target!(|data: &[u8]| {
    round_trip::<ClientMessage>(data);
    round_trip::<ServerMessage>(data);
    round_trip::<StreamMeta>(data);

    if let Some(head) = data.first_chunk::<PREAMBLE_LEN>() {
        let res = preamble::decode(head);
        assert_eq!(res.is_ok(), head.starts_with(MAGIC));
        if let Ok(v) = res {
            assert_eq!(&preamble::encode(v), head);
        }
    }
});

/// Decodes `data`; whatever decodes must encode and decode back to the same message.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(data: &[u8]) {
    if let Ok(msg) = control::decode::<T>(data) {
        let again =
            control::decode::<T>(&control::encode(&msg)).expect("encoded message must decode");
        assert_eq!(again, msg);
    }
}

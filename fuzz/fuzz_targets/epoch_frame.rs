//! The epoch-frame decoder on arbitrary bytes: it must never panic, and
//! never allocate for a length the input does not hold.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pwal::fuzzing::decode_epoch_frame(data);
});

//! Recovery over an arbitrary log directory (segments, spares and a lock
//! file built from the input, see `pwal::fuzzing::log_dir_from_bytes`): it
//! must never panic and must end in Ok or a corruption report.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pwal::fuzzing::{log_dir_from_bytes, FUZZ_DB};
use pwal::{recover_with_vfs, Error, RecoverOptions, RecoveryReport};

fuzz_target!(|data: &[u8]| {
    let vfs = log_dir_from_bytes(data);
    for durable_prefix in [false, true] {
        let mut report = RecoveryReport::default();
        let r = recover_with_vfs(
            &vfs,
            Path::new(FUZZ_DB),
            &RecoverOptions { durable_prefix },
            &mut |_| true,
            &mut report,
        );
        match r {
            Ok(()) | Err(Error::Corrupt { .. }) => {}
            Err(e) => panic!("recovery ended in neither Ok nor Corrupt: {e}"),
        }
    }
});

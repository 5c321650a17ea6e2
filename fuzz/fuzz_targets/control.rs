//! The control protocol as the daemon reads it: bytes split into lines at `\n`, each line of
//! at most `MAX_REQUEST_BYTES` parsed by the daemon's own `parse_line`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sv_lite::control::MAX_REQUEST_BYTES;

fuzz_target!(|data: &[u8]| {
    for line in data.split_inclusive(|&byte| byte == b'\n') {
        if line.len() > MAX_REQUEST_BYTES {
            continue; // The daemon answers an oversize line without parsing it.
        }
        if let Some(parsed) = sv_lite::daemon::control::parse_line(0, line) {
            std::hint::black_box(format!("{parsed:?}"));
        }
    }
});

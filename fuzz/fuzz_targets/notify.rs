//! sd_notify datagrams (`NOTIFY_SOCKET`): the daemon's parser, whole datagrams of any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (fields, ignored) = sv_lite::daemon::notify::parse(data);
    std::hint::black_box(format!("{fields:?}"));
    for line in &ignored {
        std::hint::black_box(line.len());
    }
});

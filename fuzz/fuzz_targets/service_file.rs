//! Service files in an include directory: `*.json` (service_manager's format, through our
//! JSON-with-comments parser) and `*.yaml`. The first byte picks the kind; the rest is the text.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, text)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(text) else { return };
    let path = if kind & 1 == 0 { Path::new("/srv/services/fuzz.json") } else { Path::new("/srv/services/fuzz.yaml") };
    match sv_lite::config::service_file::parse(path, text) {
        Ok(spec) => {
            std::hint::black_box(format!("{spec:?}"));
        }
        Err(errors) => {
            std::hint::black_box(errors.to_string());
        }
    }
});

//! The YAML config file, as `sv-lite check` and the daemon read it (`config::load` minus the
//! read): parse, validate, and render every error and warning as it would be printed.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // `config::load` reads the file with `read_to_string`: text that is not UTF-8 never gets here.
    let Ok(text) = std::str::from_utf8(data) else { return };
    // A directory that does not exist: `include:` paths are resolved against it, never read.
    match sv_lite::config::from_yaml_str_in_dir(text, "fuzz.yaml", Path::new("/nonexistent/sv-lite-fuzz")) {
        Ok(config) => {
            for warning in &config.warnings {
                std::hint::black_box(warning.len());
            }
        }
        Err(errors) => {
            std::hint::black_box(errors.to_string());
        }
    }
});

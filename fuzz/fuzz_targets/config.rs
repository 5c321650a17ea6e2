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
            // An error with no problem in it would fail `sv-lite check` with nothing to read.
            assert!(!errors.errors.is_empty(), "an error without problems");
            let lines = line_count(text);
            for error in &errors.errors {
                assert!(error.line.is_none_or(|line| (1..=lines).contains(&line)), "{error} in {lines} lines");
                assert!(error.column.is_none_or(|column| column >= 1), "{error}");
            }
            std::hint::black_box(errors.to_string());
        }
    }
});

/// Lines as YAML counts them (`\n`, `\r\n`, `\r`, and NEL, LS, PS break a line), plus one for
/// a position just past the end.
fn line_count(text: &str) -> usize {
    let mut chars = text.chars().peekable();
    let mut breaks = 0;
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}' => breaks += 1,
            _ => {}
        }
    }
    breaks + 2
}

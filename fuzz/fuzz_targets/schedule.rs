//! The schedule language and cron (`schedule:`, `cron:`): both parsers, then the next fire
//! times of what parses, from a start between 1970 and 2106 taken from the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sv_lite::schedule::Entry;

fuzz_target!(|data: &[u8]| {
    // The first four bytes pick the start time; the rest is the entry's text.
    let Some((start, text)) = data.split_first_chunk::<4>() else { return };
    let Ok(text) = std::str::from_utf8(text) else { return };
    let start = i64::from(u32::from_le_bytes(*start));
    for parsed in [Entry::parse(text), Entry::parse_cron(text)] {
        match parsed {
            Ok(entry) => {
                // Bounded: a few steps, each over a ten-year horizon at most.
                let mut after = start;
                for _ in 0..4 {
                    let Some(next) = entry.next_after(after) else { break };
                    assert!(next > after, "{entry}: next_after({after}) gave {next}");
                    assert_eq!(next % 60, 0, "{entry}: next_after({after}) gave {next}, not a whole minute");
                    after = next;
                }
            }
            Err(error) => {
                // The position is a char offset into the text as given, the end at most.
                assert!(error.position <= text.chars().count(), "{text:?}: {error}");
                std::hint::black_box(error.to_string());
            }
        }
    }
});

//! The HTTP endpoint's request heads: the server's own `parse` (httparse plus our limits,
//! keep-alive and body rules), applied as a connection does to pipelined requests: parse the
//! front of the input, drop the head it used, go on until it needs more bytes or fails.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sv_lite::daemon::http::{parse, Parsed, MAX_HEAD_BYTES};

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    while !input.is_empty() {
        match parse(input) {
            Parsed::Partial | Parsed::Error(_) => break,
            Parsed::Complete { length, request, .. } => {
                assert!(length > 0 && length <= input.len(), "head length {length} of {} bytes", input.len());
                assert!(length <= MAX_HEAD_BYTES, "head length {length} over the limit");
                assert!(!request.path.contains('?'), "path {:?} keeps its query", request.path);
                // The head alone parses to the same request: nothing after it was looked at.
                assert_eq!(parse(&input[..length]), parse(input));
                input = &input[length..];
            }
        }
    }
});

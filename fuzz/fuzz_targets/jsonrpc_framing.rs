//! Any bytes as what a client writes to warden's stdio, or what an HTTP
//! upstream sends as an SSE body: framing never panics, never passes on a
//! message over the size limit, and does not depend on how the bytes
//! arrive (read sizes, chunk boundaries).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, input)) = data.split_first() else {
        return;
    };
    // A small limit, so oversize handling is reached often.
    let max = 16 + (knobs as usize % 8) * 64;
    warden_proxy::fuzzing::stdio_frames(input, 1 + (knobs as usize >> 3), max);
    warden_proxy::fuzzing::sse_events(input, knobs as usize * 3, max);
});

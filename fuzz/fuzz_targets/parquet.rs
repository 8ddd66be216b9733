//! Fuzz target `parquet`: see `ember_data::formats::fuzz_one`.
#![no_main]

use libfuzzer_sys::fuzz_target;

static QUIET_HOOK: std::sync::Once = std::sync::Once::new();

fuzz_target!(|data: &[u8]| {
    // The reader turns the parquet crate's own panics on malformed files into errors
    // (catch_unwind). libfuzzer-sys's panic hook aborts on every panic, caught or not, so a
    // silent one replaces it: a panic that escapes the reader still ends the run, as
    // libfuzzer-sys aborts when the target unwinds.
    QUIET_HOOK.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    ember_data::formats::fuzz_one("parquet", data);
});

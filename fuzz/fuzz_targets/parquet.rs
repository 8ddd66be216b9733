//! Fuzz target `parquet`: see `ember_data::formats::fuzz_one`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ember_data::formats::fuzz_one("parquet", data);
});

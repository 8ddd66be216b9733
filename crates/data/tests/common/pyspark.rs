//! Finds the Python with pyspark (and Java) that the Spark tests run. Shared by this
//! crate's Parquet test and `ember`'s launcher test (`#[path]`), which need the same tools.

use std::process::{Command, Stdio};

/// The Python with pyspark, or None (with a note) where it or Java is missing; under CI a
/// missing tool fails the test instead.
pub fn pyspark_python() -> Option<String> {
    let python = std::env::var("EMBER_PYTHON").unwrap_or_else(|_| "python3".into());
    let works = |cmd: &mut Command| {
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if works(Command::new("java").arg("-version"))
        && works(Command::new(&python).args(["-c", "import pyspark"]))
    {
        return Some(python);
    }
    let missing = "Java or pyspark missing (apt-get install openjdk-17-jre-headless; \
                   pip install pyspark; EMBER_PYTHON names the Python)";
    assert!(std::env::var_os("CI").is_none(), "{missing}");
    eprintln!("skipping: {missing}");
    None
}

//! The `ember` built with the `mpi` feature that the `mpirun -n 2` tests run.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The MPI-enabled `ember`, or None (with a note) where MPI is not installed.
pub fn mpi_ember() -> Option<&'static str> {
    static EMBER: OnceLock<Option<String>> = OnceLock::new();
    EMBER.get_or_init(find_or_build).as_deref()
}

fn find_or_build() -> Option<String> {
    let have_mpirun = Command::new("mpirun")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have_mpirun {
        assert!(
            std::env::var_os("CI").is_none(),
            "mpirun missing: install MPICH (apt-get install mpich libmpich-dev libclang-dev)"
        );
        eprintln!("skipping: mpirun missing (apt-get install mpich libmpich-dev libclang-dev)");
        return None;
    }
    let own = env!("CARGO_BIN_EXE_ember");
    if cfg!(feature = "mpi") {
        return Some(own.to_string());
    }
    // TARGET/PROFILE/ember -> TARGET/mpi
    let target = Path::new(own).parent()?.parent()?.join("mpi");
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build.args(["build", "-p", "ember", "--features", "mpi", "--target-dir"]);
    build.arg(&target);
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        build.arg("--release");
        "release"
    };
    let out = build.output().expect("running cargo build");
    assert!(
        out.status.success(),
        "building ember with the mpi feature failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(target.join(profile).join("ember").display().to_string())
}

/// The MPI-enabled `ember` of a test that has checked [`mpi_ember`].
pub fn bin() -> &'static str {
    mpi_ember().expect("checked at the start of the test")
}

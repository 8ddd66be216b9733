//! `cargo xtask` parses its command line like `ember` does (clap): `--help` on any task
//! prints help on stdout and exits 0; a usage error exits 2 with the problem on stderr.

use std::process::Command;

fn xtask(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("running xtask");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn help_goes_to_stdout_and_succeeds_for_every_task() {
    for (task, word) in [
        ("bench", "--compare-torch"),
        ("download", "--from"),
        ("golden", "DIR"),
    ] {
        for help in ["--help", "-h"] {
            let (code, out, err) = xtask(&[task, help]);
            assert_eq!(code, Some(0), "{task} {help}: {err}");
            assert!(
                out.contains("Usage: cargo xtask") && out.contains(word),
                "{out}"
            );
        }
    }
    let (code, out, _) = xtask(&["--help"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("download") && out.contains("bench") && out.contains("golden"));
    // The datasets `download` knows are listed in its help.
    let (_, out, _) = xtask(&["download", "--help"]);
    assert!(
        out.contains("fashion-mnist") && out.contains("cifar100"),
        "{out}"
    );
}

#[test]
fn usage_errors_exit_2_on_stderr() {
    for args in [
        vec![],
        vec!["nosuch"],
        vec!["download"],
        vec!["download", "imagenet"],
        vec!["bench", "--threads", "many"],
        vec!["bench", "--nosuch"],
        vec!["golden"],
    ] {
        let (code, out, err) = xtask(&args);
        assert_eq!(code, Some(2), "{args:?}: {out} {err}");
        assert!(
            out.is_empty() && (err.contains("Usage") || err.contains("--help")),
            "{args:?}: {err}"
        );
    }
    let (_, _, err) = xtask(&["download", "imagenet"]);
    assert!(err.contains("imagenet") && err.contains("cifar10"), "{err}");
}

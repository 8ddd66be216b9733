//! Parsing one task's arguments with clap outside `main`, for the tasks' `main(&[String])`
//! entry points that tests call.

use clap::Parser;

/// Parses `args` (without the task name) as `T` for task `task`; on `--help` or a usage
/// error prints what clap prints and returns the exit code (0 or 2) instead.
pub(crate) fn parse<T: Parser>(task: &str, args: &[String]) -> Result<T, i32> {
    let argv = std::iter::once(format!("cargo xtask {task}")).chain(args.iter().cloned());
    T::try_parse_from(argv).map_err(|e| {
        let _ = e.print();
        e.exit_code()
    })
}

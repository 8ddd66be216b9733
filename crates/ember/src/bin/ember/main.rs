//! The `ember` command line: train, eval, predict, summary, info, dataset info, bench,
//! serve, export, import.
//! Results go to stdout; progress, remarks and errors to stderr.

mod args;
mod commands;
mod deploy;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command, DatasetCommand};

fn main() -> ExitCode {
    if let Err(msg) = ember_tensor::simd::init() {
        eprintln!("ember: {msg}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => commands::train(*a),
        Command::Eval(a) => commands::eval(a),
        Command::Predict(a) => commands::predict(a),
        Command::Summary(a) => commands::summary(a),
        Command::Info(a) => commands::info(a),
        Command::Dataset {
            command: DatasetCommand::Info(a),
        } => commands::dataset_info(a),
        Command::Bench(a) => commands::bench(a),
        Command::Serve(a) => deploy::serve(a),
        Command::Export(a) => deploy::export(a),
        Command::Import(a) => deploy::import(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ember: error: {e}");
            ExitCode::FAILURE
        }
    }
}

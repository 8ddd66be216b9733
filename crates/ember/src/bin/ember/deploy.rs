//! The deployment commands: `serve`, `export` and `import`.

use std::io::Write;

use ember::import::{ImportOptions, import_state_dict};
use ember::serve::{ServeConfig, Server, shutdown_signal};
use ember::{Classifier, Result};

use crate::args::{BenchArgs, ExportArgs, ImportArgs, ServeArgs};

pub fn serve(a: ServeArgs) -> Result<()> {
    let config = ServeConfig {
        addr: a.addr,
        threads: a.threads,
        max_batch: a.max_batch,
        max_wait_ms: a.max_wait_ms,
        max_body: a.max_body,
    };
    config.check()?;
    let clf = Classifier::load(&a.checkpoint)?;
    let meta = clf.meta().clone();
    let server = Server::bind(clf, &config)?;
    eprintln!(
        "ember serve: {} ({} classes, input {:?}) from {}; batches of up to {} images, \
         waiting at most {} ms; Ctrl-C or SIGTERM stops it",
        meta.model
            .name
            .as_deref()
            .or(meta.zoo.as_deref())
            .unwrap_or("model"),
        meta.classes.len(),
        meta.input_shape,
        a.checkpoint.display(),
        config.max_batch,
        config.max_wait_ms
    );
    // The bound address on stdout (port 0 picks one), for people and scripts.
    println!("listening on http://{}", server.local_addr());
    let _ = std::io::stdout().flush();
    server.run(shutdown_signal())?;
    eprintln!("ember serve: stopped");
    Ok(())
}

pub fn export(a: ExportArgs) -> Result<()> {
    let s = ember::export::export_onnx(&a.checkpoint, &a.onnx)?;
    let [c, h, w] = s.input_shape;
    println!(
        "wrote {} (ONNX opset {}): {} nodes, {} weight tensors, {} bytes; input [N, {c}, {h}, {w}] \
         normalised, output logits [N, {}]; classes and normalisation in the metadata",
        a.onnx.display(),
        ember::export::OPSET,
        s.nodes,
        s.initializers,
        s.bytes,
        s.classes
    );
    Ok(())
}

pub fn import(a: ImportArgs) -> Result<()> {
    let r = import_state_dict(&ImportOptions {
        state_dict: a.state_dict,
        model: a.model,
        classes: a.classes,
        mean: a.mean,
        std: a.std,
        out: a.out,
        force: a.force,
    })?;
    println!(
        "wrote {} ({}: {} tensors, {} parameters); use it with ember eval, predict, serve or export",
        r.checkpoint.display(),
        r.model,
        r.tensors,
        r.params
    );
    Ok(())
}

pub fn bench_serve(a: BenchArgs) -> Result<()> {
    let r = ember::serve::loadgen::run(&ember::serve::loadgen::LoadConfig {
        model: a.model,
        seconds: a.seconds,
        threads: a.threads,
        clients: a.clients,
        images_per_request: a.images_per_request,
    })?;
    if a.json {
        println!("{}", serde_json::to_string(&r).unwrap_or_default());
    } else {
        print!("{}", ember::serve::loadgen::report(&r));
    }
    Ok(())
}

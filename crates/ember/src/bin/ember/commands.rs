//! What each command does with its parsed arguments.

use std::sync::Arc;

use ember::config::{ExistingRun, check_threads};
use ember::distributed::{self, Group, Solo};
use ember::trainer::{Output, train_in};
use ember::{Classifier, Error, Result, TrainConfig};

use crate::args::{
    AugmentArg, BenchArgs, DatasetInfoArgs, EvalArgs, InfoArgs, PredictArgs, SummaryArgs, TrainArgs,
};

/// Sizes the global rayon pool to `--threads` (0: one thread per core).
fn use_threads(threads: usize) -> Result<()> {
    check_threads(threads)?;
    if threads > 0 {
        // Fails only if the pool is already built, which nothing here does before.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global();
    }
    Ok(())
}

/// The process group: the MPI job with `--distributed`, else this process alone.
fn join(distributed: bool, timeout_s: f64) -> Result<Arc<dyn Group>> {
    if distributed {
        if !(timeout_s.is_finite() && timeout_s > 0.0) {
            return Err(Error(format!(
                "--collective-timeout {timeout_s} must be a positive number of seconds"
            )));
        }
        distributed::join_mpi(timeout_s)
    } else {
        Ok(Arc::new(Solo))
    }
}

/// Runs `f`; in a job of several processes an error on any rank ends the whole job (the
/// others would wait for it forever), after printing it with the rank.
fn on_every_rank<T>(group: &dyn Group, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match f() {
        Err(e) if group.size() > 1 => group.abort(
            &format!(
                "ember: error (rank {} of {}): {e}",
                group.rank(),
                group.size()
            ),
            1,
        ),
        other => other,
    }
}

pub fn train(a: TrainArgs) -> Result<()> {
    let group = join(a.distributed, a.collective_timeout)?;
    let defaults = TrainConfig::default();
    let existing_run = match (a.force, &a.out) {
        (true, _) => ExistingRun::Replace,
        (false, Some(_)) => ExistingRun::Refuse,
        (false, None) => ExistingRun::MoveAside,
    };
    let augment: Vec<&str> = a
        .augment
        .iter()
        .filter(|x| **x != AugmentArg::None)
        .map(|x| x.name())
        .collect();
    let cfg = TrainConfig {
        dataset: a.dataset,
        model: a.model,
        epochs: a.epochs,
        batch_size: a.batch_size,
        optimizer: a.optimizer.name().into(),
        lr: a.lr,
        momentum: a.momentum,
        nesterov: !a.no_nesterov && a.nesterov.unwrap_or(defaults.nesterov),
        weight_decay: a.weight_decay,
        schedule: a.schedule,
        val_split: a.val_split,
        augment: augment.join(","),
        label_smoothing: a.label_smoothing,
        clip_norm: a.clip_norm,
        eval_every: a.eval_every,
        seed: a.seed,
        threads: a.threads,
        out: a.out.unwrap_or(defaults.out),
        limit: a.limit,
        max_steps: a.max_steps,
        test_every_epoch: a.test_every_epoch,
        sync_bn: a.sync_bn,
        log_every: a.log_every,
        world: group.size(),
        image_size: a.image_size,
        test_split: a.test_split,
        init_from: a.init_from,
        freeze: a.freeze,
        label_column: a.columns.label_column,
        split_column: a.columns.split_column,
        lookahead: a.lookahead,
        lookahead_alpha: a.lookahead_alpha,
        norm_lr_scale: a.norm_lr_scale,
        tta: a.tta.tta(),
        existing_run,
    };
    let output = if a.json { Output::Json } else { Output::Human };
    on_every_rank(group.as_ref(), || {
        train_in(&cfg, a.resume.as_deref(), output, group.clone())
    })?;
    Ok(())
}

pub fn eval(a: EvalArgs) -> Result<()> {
    use_threads(a.scoring.threads)?;
    if a.batch_size == 0 {
        return Err(Error::msg("--batch-size must be at least 1"));
    }
    let clf = Classifier::load(&a.checkpoint)?;
    let eval = ember::evaluate_checkpoint_with(
        &clf,
        &a.dataset,
        a.batch_size,
        a.scoring.tta.tta(),
        a.columns.label_column.as_deref(),
        a.columns.split_column.as_deref(),
    )?;
    if let Some(path) = &a.heatmap {
        ember::plot::plot_confusion(path, &eval)?;
    }
    if a.json {
        println!("{}", serde_json::to_string(&eval).unwrap_or_default());
    } else {
        print!("{}", eval.report());
    }
    Ok(())
}

pub fn predict(a: PredictArgs) -> Result<()> {
    use_threads(a.scoring.threads)?;
    if a.batch_size == 0 {
        return Err(Error::msg("--batch-size must be at least 1"));
    }
    let clf = Classifier::load(&a.checkpoint)?
        .with_batch_size(a.batch_size)
        .with_tta(a.scoring.tta.tta());
    let classes = clf.classes().to_vec();
    let [c, h, w] = clf.meta().input_shape;
    let mut readable = Vec::with_capacity(a.images.len());
    let mut failed = 0usize;
    for path in &a.images {
        match ember_data::load_image(path, c, h, w) {
            Ok(px) => readable.push((path, px)),
            Err(e) => {
                failed += 1;
                eprintln!("ember: error: {e}");
                if a.json {
                    let line = serde_json::json!({"path": path, "error": e.to_string()});
                    println!("{line}");
                }
            }
        }
    }
    clf.meta()
        .model
        .sizes()?
        .check_batch(a.batch_size.min(readable.len()), "--batch-size")
        .map_err(Error)?;
    let refs: Vec<&[u8]> = readable.iter().map(|(_, px)| px.as_slice()).collect();
    let preds = clf.predict_batch(&refs)?;
    for ((path, _), p) in readable.iter().zip(&preds) {
        let top = p.top_k(a.top_k, &classes);
        if a.json {
            let line = serde_json::json!({
                "path": path, "class": p.class, "index": p.index, "probabilities": p.probabilities,
                "top": top.into_iter().map(|(i, n, pr)| serde_json::json!({"index": i, "class": n, "probability": pr})).collect::<Vec<_>>(),
            });
            println!("{line}");
        } else {
            let top: Vec<String> = top
                .into_iter()
                .map(|(_, n, pr)| format!("{n} {:.1}%", 100.0 * pr))
                .collect();
            println!("{}: {}", path.display(), top.join(", "));
        }
    }
    if failed > 0 {
        return Err(Error(format!(
            "{failed} of {} images could not be read (see above)",
            a.images.len()
        )));
    }
    Ok(())
}

pub fn summary(a: SummaryArgs) -> Result<()> {
    if a.batch_size == 0 {
        return Err(Error::msg("--batch-size must be at least 1"));
    }
    let (spec, _) = ember::resolve_model(&a.model)?;
    let sizes = spec
        .sizes()
        .map_err(|e| Error(format!("{}: {e}", a.model)))?;
    sizes
        .check_batch(a.batch_size, "--batch-size")
        .map_err(Error)?;
    let net = spec.build()?;
    let [c, h, w] = spec.input;
    let summary = net.summary(ember_tensor::Shape::from([a.batch_size, c, h, w]))?;
    let name = spec.name.as_deref().unwrap_or(&a.model);
    if a.json {
        let rows: Vec<serde_json::Value> = summary
            .rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "index": r.index, "layer": r.layer, "output": r.output.dims(),
                    "params": r.params, "flops": r.flops,
                })
            })
            .collect();
        let line = serde_json::json!({
            "name": name, "input": summary.input.dims(), "layers": rows,
            "total_params": summary.total_params, "total_flops": summary.total_flops,
        });
        println!("{line}");
    } else {
        println!("{name}");
        println!("{summary}");
    }
    Ok(())
}

pub fn info(a: InfoArgs) -> Result<()> {
    let m = ember::info::machine_info();
    print_json_or_text(a.json, &m, ember::info::machine_info_text);
    Ok(())
}

pub fn dataset_info(a: DatasetInfoArgs) -> Result<()> {
    use_threads(a.threads)?;
    let info = ember::info::dataset_info(
        &a.path,
        a.image_size,
        a.columns.label_column.as_deref(),
        a.columns.split_column.as_deref(),
    )?;
    print_json_or_text(a.json, &info, ember::info::dataset_info_text);
    Ok(())
}

/// Prints `value` as one line of JSON with `--json`, else as `text` writes it.
fn print_json_or_text<T: serde::Serialize>(json: bool, value: &T, text: impl FnOnce(&T) -> String) {
    if json {
        println!("{}", serde_json::to_string(value).unwrap_or_default());
    } else {
        println!("{}", text(value));
    }
}

pub fn bench(a: BenchArgs) -> Result<()> {
    if a.serve {
        return crate::deploy::bench_serve(a);
    }
    let group = join(a.distributed, 300.0)?;
    let r = on_every_rank(group.as_ref(), || {
        ember::bench::bench_in(
            group.as_ref(),
            &a.model,
            a.batch_size,
            a.seconds,
            a.threads,
            a.layers,
        )
    })?;
    if a.json {
        println!("{}", serde_json::to_string(&r).unwrap_or_default());
    } else {
        let ranks = if r.processes > 1 {
            format!(
                "rank {}/{}: allreduce {:.1}% of the step ({:.2} ms alone), ",
                r.rank,
                r.processes,
                100.0 * r.allreduce_share,
                r.allreduce_ms
            )
        } else {
            String::new()
        };
        println!(
            "{}: {ranks}train {:.0} images/s (batch {}), inference {:.0} images/s (batch {}), {} threads, simd {}",
            r.model,
            r.train_images_per_s,
            r.batch,
            r.infer_images_per_s,
            r.infer_batch,
            r.threads,
            r.simd
        );
        if a.layers {
            println!(
                "\ntraining step by layer (wall time, all threads):\n{}",
                r.layer_table()
            );
        }
    }
    if a.scaling && group.rank() == 0 {
        let step_s = r.batch as f64 / r.train_images_per_s;
        let bytes = 4.0 * r.params as f64;
        println!(
            "\n{}: {:.1} MiB of gradients, {:.0} ms per step of {} images on this node\n\n{}",
            r.model,
            bytes / (1024.0 * 1024.0),
            1e3 * step_s,
            r.batch,
            distributed::scaling::efficiency_table(bytes, step_s)
        );
    }
    Ok(())
}

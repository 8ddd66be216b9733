//! The optimizers through their public API: the float64 PyTorch transcription for
//! hyper-parameters the golden files do not cover, convergence to the closed-form
//! minimum of a convex quadratic, parameter groups, exact save/load/resume, clean errors.

mod common;

use common::{Hyper, Ref64, ref_update, rel_err};
use ember_optim::{Adam, AdamW, OptimError, Optimizer, ParamGroup, Schedule, Sgd};
use ember_tensor::Rng;

fn normal_vec(rng: &mut Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.normal() * scale).collect()
}

/// Every variant, including AMSGrad and dampening, against the float64 reference over
/// 30 steps with random hyper-parameters and gradients.
#[test]
fn all_variants_follow_pytorch_in_f64() {
    let mut rng = Rng::new(7);
    let mut variants = Vec::new();
    for &(momentum, dampening, nesterov, wd) in &[
        (0.0, 0.0, false, 0.0),
        (0.0, 0.0, false, 1e-2),
        (0.8, 0.3, false, 1e-3),
        (0.95, 0.0, true, 1e-3),
    ] {
        variants.push(Hyper {
            momentum,
            dampening,
            nesterov,
            weight_decay: wd,
            ..Hyper::sgd(0.05)
        });
    }
    for kind in ["adam", "adamw"] {
        for &(amsgrad, wd, b1, b2) in &[
            (false, 0.0, 0.9, 0.999),
            (true, 0.05, 0.8, 0.99),
            (true, 0.0, 0.5, 0.9),
        ] {
            variants.push(Hyper {
                amsgrad,
                weight_decay: wd,
                betas: (b1, b2),
                eps: 1e-6,
                ..Hyper::adam(kind, 0.01)
            });
        }
    }
    for h in &variants {
        let mut opt = h.build();
        let sizes = [37usize, 1, 8];
        let mut p32: Vec<Vec<f32>> = sizes
            .iter()
            .map(|&n| normal_vec(&mut rng, n, 1.0))
            .collect();
        let mut p64: Vec<Vec<f64>> = p32
            .iter()
            .map(|p| p.iter().map(|&x| x.into()).collect())
            .collect();
        let mut refs = vec![Ref64::default(); sizes.len()];
        for step in 0..30 {
            for i in 0..sizes.len() {
                // The middle parameter joins late: its own step count starts then.
                if i == 1 && step < 10 {
                    continue;
                }
                let g = normal_vec(&mut rng, sizes[i], 0.3);
                let g64: Vec<f64> = g.iter().map(|&x| x.into()).collect();
                opt.update(&format!("p{i}"), &mut p32[i], &g).unwrap();
                ref_update(h, &mut refs[i], &mut p64[i], &g64);
                let e = rel_err(&p32[i], &p64[i]);
                assert!(e <= 1e-5, "{h:?} step {step} param {i}: error {e:.3e}");
            }
        }
    }
}

/// `f(x) = ½ Σ a_i (x_i − c_i)² + ½ wd Σ x_i²` (the decay coupled as L2) has its minimum at
/// `x_i = a_i c_i / (a_i + wd)`; runs `steps` updates and returns the largest distance.
fn minimise(
    opt: &mut dyn Optimizer,
    wd_in_grad: f32,
    steps: u64,
    schedule: Option<&Schedule>,
) -> f32 {
    let mut rng = Rng::new(11);
    let n = 20;
    let a: Vec<f32> = (0..n).map(|_| rng.uniform(0.5, 2.0)).collect();
    let c: Vec<f32> = (0..n).map(|_| rng.uniform(-3.0, 3.0)).collect();
    let mut x = vec![0.0f32; n];
    let mut g = vec![0.0f32; n];
    for step in 0..steps {
        if let Some(s) = schedule {
            opt.set_lr(s.lr(step));
        }
        for i in 0..n {
            g[i] = a[i] * (x[i] - c[i]);
        }
        opt.update("x", &mut x, &g).unwrap();
    }
    (0..n)
        .map(|i| (x[i] - a[i] * c[i] / (a[i] + wd_in_grad)).abs())
        .fold(0.0, f32::max)
}

/// Label, optimizer, L2 decay in the gradient, steps, schedule, tolerance.
type ConvergenceCase = (
    &'static str,
    Box<dyn Optimizer>,
    f32,
    u64,
    Option<Schedule>,
    f32,
);

#[test]
fn converges_to_quadratic_minimum() {
    let cases: Vec<ConvergenceCase> = vec![
        ("sgd", Box::new(Sgd::new(0.1)), 0.0, 500, None, 1e-5),
        (
            "sgd momentum + wd",
            Box::new(Sgd::new(0.1).momentum(0.9).weight_decay(0.1)),
            0.1,
            500,
            None,
            1e-5,
        ),
        (
            "sgd nesterov",
            Box::new(Sgd::new(0.1).momentum(0.9).nesterov(true)),
            0.0,
            500,
            None,
            1e-5,
        ),
        (
            "adam + wd",
            Box::new(Adam::new(0.1).weight_decay(0.1)),
            0.1,
            3000,
            Some(Schedule::parse("cosine", 0.1, 3000).unwrap()),
            1e-3,
        ),
        (
            "adam amsgrad",
            Box::new(Adam::new(0.1).amsgrad(true)),
            0.0,
            3000,
            Some(Schedule::parse("linear", 0.1, 3000).unwrap()),
            1e-3,
        ),
        // Decoupled decay of 1e-4 moves the fixed point by under lr·wd/(1 − β1)-ish; far
        // below the tolerance, so the minimum of the undecayed quadratic is the target.
        (
            "adamw",
            Box::new(AdamW::new(0.1).weight_decay(1e-4)),
            0.0,
            3000,
            Some(Schedule::parse("cosine", 0.1, 3000).unwrap()),
            1e-3,
        ),
    ];
    for (label, mut opt, wd, steps, schedule, tol) in cases {
        let dist = minimise(opt.as_mut(), wd, steps, schedule.as_ref());
        println!("{label}: distance to minimum {dist:.3e}");
        assert!(dist <= tol, "{label}: distance {dist:.3e} > {tol:.0e}");
    }
}

#[test]
fn no_decay_group_exempts_exactly() {
    let mut rng = Rng::new(3);
    let (p0, g) = (normal_vec(&mut rng, 50, 1.0), normal_vec(&mut rng, 50, 0.1));
    for (mut with, mut without) in [
        (
            Box::new(Sgd::new(0.1).momentum(0.9).weight_decay(0.1)) as Box<dyn Optimizer>,
            Box::new(Sgd::new(0.1).momentum(0.9)) as Box<dyn Optimizer>,
        ),
        (
            Box::new(Adam::new(0.01).weight_decay(0.1)),
            Box::new(Adam::new(0.01)),
        ),
        (
            Box::new(AdamW::new(0.01).weight_decay(0.1)),
            Box::new(AdamW::new(0.01).weight_decay(0.0)),
        ),
    ] {
        with.add_group(ParamGroup::no_decay(["0.bias"]));
        let (mut a, mut b, mut c, mut d) = (p0.clone(), p0.clone(), p0.clone(), p0.clone());
        for _ in 0..3 {
            with.update("0.bias", &mut a, &g).unwrap();
            without.update("0.bias", &mut b, &g).unwrap();
            with.update("0.weight", &mut c, &g).unwrap();
            without.update("0.weight", &mut d, &g).unwrap();
        }
        assert_eq!(
            a,
            b,
            "{}: the exempt parameter is updated without decay",
            with.name()
        );
        assert_ne!(c, d, "{}: the other parameter still decays", with.name());
    }
}

#[test]
fn group_lr_scale_and_predicates() {
    let g = [0.5f32, -1.0, 2.0];
    let mut opt = Sgd::new(0.1);
    opt.add_group(ParamGroup::matching(|n| n.starts_with("head.")).lr_scale(3.0));
    let mut scaled = [1.0f32; 3];
    opt.update("head.weight", &mut scaled, &g).unwrap();
    let mut plain = [1.0f32; 3];
    opt.update("body.weight", &mut plain, &g).unwrap();
    let mut reference = [1.0f32; 3];
    Sgd::new(0.1 * 3.0).update("x", &mut reference, &g).unwrap();
    assert_eq!(scaled, reference);
    assert_eq!(plain, [1.0 - 0.1 * 0.5, 1.0 + 0.1, 1.0 - 0.1 * 2.0]);
}

type Make = fn() -> Box<dyn Optimizer>;

fn variants() -> Vec<(&'static str, Make)> {
    vec![
        ("sgd", || Box::new(Sgd::new(0.1))),
        ("sgd momentum nesterov wd", || {
            Box::new(
                Sgd::new(0.1)
                    .momentum(0.9)
                    .nesterov(true)
                    .weight_decay(1e-3),
            )
        }),
        ("adam amsgrad wd", || {
            Box::new(Adam::new(0.01).amsgrad(true).weight_decay(1e-2))
        }),
        ("adamw", || Box::new(AdamW::new(0.01))),
    ]
}

/// Runs steps `range` of a fixed gradient sequence (with a schedule) over three
/// parameters, one longer than the parallel threshold.
fn run(opt: &mut dyn Optimizer, params: &mut [Vec<f32>], range: std::ops::Range<u64>) {
    let schedule = Schedule::parse("onecycle:max=0.05", 0.05, 12).unwrap();
    for step in range {
        opt.set_lr(schedule.lr(step));
        for (i, p) in params.iter_mut().enumerate() {
            let mut rng = Rng::new(100).fork(step * 10 + i as u64);
            let g = normal_vec(&mut rng, p.len(), 0.2);
            opt.update(&format!("{i}.weight"), p, &g).unwrap();
        }
    }
}

#[test]
fn save_load_continue_is_bit_identical() {
    for (label, make) in variants() {
        let mut rng = Rng::new(5);
        let start: Vec<Vec<f32>> = [37usize, 3, 70_000]
            .iter()
            .map(|&n| normal_vec(&mut rng, n, 1.0))
            .collect();

        let mut whole = make();
        let mut a = start.clone();
        run(whole.as_mut(), &mut a, 0..12);

        let mut first = make();
        let mut b = start.clone();
        run(first.as_mut(), &mut b, 0..5);
        let saved = first.state();
        drop(first);
        let mut resumed = make();
        resumed.load_state(saved).unwrap();
        run(resumed.as_mut(), &mut b, 5..12);

        for (x, y) in a.iter().zip(&b) {
            assert!(
                x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()),
                "{label}: resumed parameters differ"
            );
        }
        assert_eq!(whole.state(), resumed.state(), "{label}: states differ");
    }
}

#[test]
fn saved_state_names_its_entries() {
    let mut opt = Adam::new(0.01).amsgrad(true);
    opt.update("0.weight", &mut [1.0; 4], &[0.1; 4]).unwrap();
    opt.update("0.weight", &mut [1.0; 4], &[0.1; 4]).unwrap();
    let s = opt.state();
    assert_eq!(s.optimizer, "adam");
    let keys: Vec<&str> = s.buffers.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "exp_avg/0.weight",
            "exp_avg_sq/0.weight",
            "max_exp_avg_sq/0.weight"
        ]
    );
    assert_eq!(s.counters["step/0.weight"], 2);
}

#[test]
fn bad_updates_fail_cleanly_and_change_nothing() {
    let mut opt = Adam::new(0.01);
    let mut p = vec![1.0f32; 4];
    let err = opt.update("w", &mut p, &[0.1; 3]).unwrap_err();
    assert_eq!(
        err,
        OptimError::GradLength {
            name: "w".into(),
            value: 4,
            grad: 3
        }
    );
    assert_eq!(p, [1.0; 4]);
    opt.update("w", &mut p, &[0.1; 4]).unwrap();
    let before = (p.clone(), opt.state());
    let err = opt.update("w", &mut [1.0; 5], &[0.1; 5]).unwrap_err();
    assert_eq!(
        err,
        OptimError::LengthChanged {
            name: "w".into(),
            state: 4,
            now: 5
        }
    );
    assert!(err.to_string().contains("`w`"), "{err}");
    assert_eq!(before, (p, opt.state()));
}

#[test]
fn invalid_hyper_parameters_are_reported() {
    let bad: Vec<Box<dyn Optimizer>> = vec![
        Box::new(Sgd::new(-0.1)),
        Box::new(Sgd::new(0.1).nesterov(true)),
        Box::new(Sgd::new(0.1).momentum(0.9).dampening(0.1).nesterov(true)),
        Box::new(Sgd::new(f32::NAN)),
        Box::new(Adam::new(0.1).betas(1.0, 0.999)),
        Box::new(AdamW::new(0.1).betas(0.9, -0.1)),
        Box::new(Adam::new(0.1).eps(-1.0)),
        Box::new(AdamW::new(0.1).weight_decay(-0.01)),
    ];
    for mut opt in bad {
        let err = opt.validate().unwrap_err();
        assert!(
            matches!(err, OptimError::InvalidHyperParameter { .. }),
            "{err}"
        );
        assert!(opt.update("w", &mut [1.0], &[1.0]).is_err());
    }
    let mut opt = Sgd::new(0.1);
    opt.add_group(ParamGroup::names(["w"]).lr_scale(-1.0));
    assert!(opt.validate().unwrap_err().to_string().contains("lr_scale"));
}

#[test]
fn bad_states_are_rejected_with_their_key() {
    let mut adam = Adam::new(0.01);
    adam.update("0.weight", &mut [1.0; 4], &[0.1; 4]).unwrap();
    let good = adam.state();

    let err = Sgd::new(0.1)
        .momentum(0.9)
        .load_state(good.clone())
        .unwrap_err();
    assert_eq!(
        err,
        OptimError::WrongOptimizer {
            expected: "sgd".into(),
            found: "adam".into()
        }
    );
    assert!(AdamW::new(0.1).load_state(good.clone()).is_err());

    let err = Adam::new(0.01)
        .amsgrad(true)
        .load_state(good.clone())
        .unwrap_err();
    assert_eq!(
        err,
        OptimError::MissingBuffer {
            key: "max_exp_avg_sq/0.weight".into()
        }
    );

    let mut ams = Adam::new(0.01).amsgrad(true);
    ams.update("0.weight", &mut [1.0; 4], &[0.1; 4]).unwrap();
    let err = Adam::new(0.01).load_state(ams.state()).unwrap_err();
    assert_eq!(
        err,
        OptimError::UnexpectedEntry {
            key: "max_exp_avg_sq/0.weight".into()
        }
    );

    let mut short = good.clone();
    short.buffers.get_mut("exp_avg_sq/0.weight").unwrap().pop();
    let err = Adam::new(0.01).load_state(short).unwrap_err();
    assert_eq!(
        err,
        OptimError::BufferLength {
            key: "exp_avg_sq/0.weight".into(),
            expected: 4,
            found: 3
        }
    );

    let mut odd = good.clone();
    odd.counters.insert("steps/0.weight".into(), 1);
    assert_eq!(
        Adam::new(0.01).load_state(odd).unwrap_err(),
        OptimError::UnexpectedEntry {
            key: "steps/0.weight".into()
        }
    );

    // A loaded state checks the parameter length on the next update, and a failed load
    // keeps the previous state.
    let mut fresh = Adam::new(0.01);
    fresh.load_state(good.clone()).unwrap();
    assert!(matches!(
        fresh.update("0.weight", &mut [1.0; 5], &[0.1; 5]),
        Err(OptimError::LengthChanged {
            state: 4,
            now: 5,
            ..
        })
    ));
    assert!(fresh.load_state(OptimizerStateExt::wrong()).is_err());
    assert_eq!(fresh.state(), good);

    // SGD without momentum keeps only step counts (no per-element state to mismatch),
    // and checks lengths from its first update on.
    let mut sgd = Sgd::new(0.1);
    sgd.update("b", &mut [0.0; 2], &[1.0; 2]).unwrap();
    assert!(sgd.update("b", &mut [0.0; 3], &[1.0; 3]).is_err());
    let mut sgd2 = Sgd::new(0.1);
    sgd2.load_state(sgd.state()).unwrap();
    assert_eq!(sgd2.state(), sgd.state());
    assert!(Sgd::new(0.1).momentum(0.9).load_state(sgd.state()).is_err());
}

struct OptimizerStateExt;
impl OptimizerStateExt {
    fn wrong() -> ember_optim::OptimizerState {
        ember_optim::OptimizerState {
            optimizer: "rmsprop".into(),
            ..Default::default()
        }
    }
}

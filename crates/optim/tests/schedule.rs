//! Schedule values at their boundary steps, and clean errors for bad strings.

use ember_optim::{Schedule, ScheduleKind};
use std::f64::consts::PI;

fn close(got: f32, want: f64) -> bool {
    (f64::from(got) - want).abs() <= 1e-6 * (want.abs() + 1e-12) + 1e-12
}

#[track_caller]
fn check(spec: &str, base: f32, total: u64, points: &[(u64, f64)]) {
    let s = Schedule::parse(spec, base, total).unwrap_or_else(|e| panic!("{e}"));
    for &(step, want) in points {
        let got = s.lr(step);
        assert!(close(got, want), "{spec}: lr({step}) = {got}, want {want}");
    }
}

#[test]
fn constant_step_multistep_exponential() {
    check("constant", 0.1, 0, &[(0, 0.1), (1_000_000, 0.1)]);
    let b = f64::from(0.1f32);
    check(
        "step:30:0.1",
        0.1,
        0,
        &[
            (0, b),
            (29, b),
            (30, b * 0.1),
            (59, b * 0.1),
            (60, b * 0.01),
        ],
    );
    check("step:30", 0.1, 0, &[(30, b * 0.1)]);
    check(
        "multistep:30,60:0.5",
        0.1,
        0,
        &[
            (29, b),
            (30, b * 0.5),
            (59, b * 0.5),
            (60, b * 0.25),
            (10_000, b * 0.25),
        ],
    );
    check(
        "exp:0.95",
        0.1,
        0,
        &[(0, b), (1, b * 0.95), (10, b * 0.95f64.powi(10))],
    );
}

#[test]
fn cosine_with_warmup_boundaries() {
    let b = f64::from(0.1f32);
    // warm-up 5: base·(s+1)/5 up to step 4; cosine over the remaining 100 steps.
    check(
        "cosine:warmup=5",
        0.1,
        105,
        &[
            (0, b / 5.0),
            (4, b),
            (5, b),
            (55, b / 2.0),
            (104, b * (1.0 + (PI * 99.0 / 100.0).cos()) / 2.0),
            (105, 0.0),
            (10_000, 0.0),
        ],
    );
    check(
        "cosine:min=0.01",
        0.1,
        100,
        &[(0, b), (50, 0.01 + (b - 0.01) / 2.0), (100, 0.01)],
    );
    check("cosine:3:0.01", 0.1, 100, &[(2, b), (100, 0.01)]);
}

#[test]
fn linear_decay_boundaries() {
    let b = f64::from(0.1f32);
    check(
        "linear",
        0.1,
        10,
        &[(0, b), (5, b / 2.0), (9, b / 10.0), (10, 0.0), (11, 0.0)],
    );
    check(
        "linear:warmup=2:end=0.1",
        0.1,
        12,
        &[(0, b / 2.0), (1, b), (2, b), (7, b * 0.55), (12, b * 0.1)],
    );
}

/// Warm-up from a start factor (the fast CIFAR-10 recipe's 0.2 -> 1 -> 0 triangle), with
/// the warm-up given in percent of the steps.
#[test]
fn linear_warmup_from_a_start_factor_in_percent() {
    let s = Schedule::parse("linear:warmup=23%:start=0.2:end=0", 2.0, 100).unwrap();
    let near = |a: f32, b: f32| (a - b).abs() < 1e-6;
    assert!(near(s.lr(0), 0.4), "{}", s.lr(0));
    assert!(near(s.lr(23), 2.0), "{}", s.lr(23));
    assert!(
        near(s.lr(11), 2.0 * (0.2 + 0.8 * 11.0 / 23.0)),
        "{}",
        s.lr(11)
    );
    assert!(near(s.lr(100), 0.0) && s.lr(99) > 0.0);
    assert!(near(s.lr(60), 2.0 * (1.0 - 37.0 / 77.0)), "{}", s.lr(60));
    for bad in [
        "linear:warmup=100%",
        "linear:warmup=x%",
        "linear:start=-1:warmup=3",
    ] {
        assert!(Schedule::parse(bad, 1.0, 100).is_err(), "{bad}");
    }
}

#[test]
fn one_cycle_boundaries() {
    // PyTorch OneCycleLR: initial max/25 at 0, max at pct·total − 1 = 29, max/25/1e4 at 99.
    check(
        "onecycle:max=0.1",
        0.5,
        100,
        &[(0, 0.004), (29, 0.1), (99, 0.004 / 1e4), (150, 0.004 / 1e4)],
    );
    let s = Schedule::parse("onecycle", 0.1, 100).unwrap();
    let lrs: Vec<f32> = (0..100).map(|t| s.lr(t)).collect();
    assert!(
        lrs[..30].windows(2).all(|w| w[0] < w[1]),
        "rises to the peak"
    );
    assert!(lrs[29..].windows(2).all(|w| w[0] > w[1]), "then falls");
    assert!(close(lrs[29], f64::from(0.1f32)));
    check(
        "onecycle:pct=0.5:div=10:final_div=100",
        1.0,
        22,
        &[(0, 0.1), (10, 1.0), (21, 0.001)],
    );
}

#[test]
fn keyed_and_positional_arguments_agree() {
    let a = Schedule::parse("step:30:0.5", 0.1, 0).unwrap();
    let b = Schedule::parse(" step : gamma=0.5 : every=30 ", 0.1, 0).unwrap();
    assert_eq!(a, b);
    assert_eq!(
        a.kind(),
        &ScheduleKind::Step {
            every: 30,
            gamma: 0.5
        }
    );
    let c = Schedule::parse("multistep:milestones=3,6", 0.1, 0).unwrap();
    assert_eq!(
        c.kind(),
        &ScheduleKind::MultiStep {
            milestones: vec![3, 6],
            gamma: 0.1
        }
    );
}

#[test]
fn bad_strings_give_clean_errors() {
    let cases: &[(&str, u64, &str)] = &[
        ("", 10, "empty schedule name"),
        ("bogus", 10, "unknown schedule `bogus`"),
        ("step", 10, "missing argument `every`"),
        ("step:0", 10, "EVERY must be > 0"),
        (
            "step:abc",
            10,
            "`every`: `abc` is not a non-negative integer",
        ),
        ("step:30:0.1:9", 10, "too many arguments"),
        ("step:30:gamma=0.5:gamma=0.2", 10, "given twice"),
        ("step:-3", 10, "not a non-negative integer"),
        ("multistep:60,30", 10, "strictly increasing"),
        ("multistep:30,,60", 10, "is not a non-negative integer"),
        ("exp", 10, "missing argument `gamma`"),
        ("exp:-1", 10, "gamma must be finite and > 0"),
        ("exp:nan", 10, "gamma must be finite and > 0"),
        ("constant:5", 10, "too many arguments"),
        ("cosine:warmpu=5", 10, "unknown argument `warmpu`"),
        (
            "cosine:warmup=10",
            10,
            "warmup (10) must be shorter than total_steps (10)",
        ),
        ("cosine", 0, "needs total_steps > 0"),
        ("linear:end=-1", 10, "end must be finite and >= 0"),
        ("onecycle:pct=1.5", 100, "pct must be in (0, 1)"),
        ("onecycle", 2, "pct must be in (0, 1)"),
        ("onecycle:max=0", 100, "max must be finite and > 0"),
    ];
    for &(spec, total, want) in cases {
        let err = Schedule::parse(spec, 0.1, total).unwrap_err().to_string();
        assert!(err.contains(want), "`{spec}`: error `{err}` lacks `{want}`");
        assert!(
            err.contains(&format!("`{spec}`")),
            "`{spec}`: error `{err}` names the input"
        );
    }
    assert!(Schedule::parse("constant", -1.0, 10).is_err());
    assert!(Schedule::new(ScheduleKind::Exponential { gamma: 0.0 }, 0.1, 0).is_err());
}

mod properties {
    use ember_optim::Schedule;
    use proptest::prelude::*;

    proptest! {
        /// Every schedule stays finite, non-negative and at most its peak; cosine and
        /// linear never rise after warm-up, and warm-up never falls.
        #[test]
        fn schedules_are_bounded_and_monotone(
            total in 2u64..5000,
            warmup_frac in 0.0f64..0.9,
            base in 1e-4f32..1.0,
            probe in proptest::collection::vec(0u64..6000, 1..20),
        ) {
            let warmup = ((total as f64) * warmup_frac) as u64;
            for spec in [
                format!("cosine:warmup={warmup}"),
                format!("linear:warmup={warmup}:end=0.1"),
                "step:7:0.5".to_string(),
                "exp:0.999".to_string(),
                "multistep:10,100:0.3".to_string(),
            ] {
                let s = Schedule::parse(&spec, base, total).unwrap();
                for &t in &probe {
                    let lr = s.lr(t);
                    prop_assert!(lr.is_finite() && lr >= 0.0 && lr <= base * (1.0 + 1e-6), "{spec}: lr({t}) = {lr}");
                    if spec.starts_with("cosine") || spec.starts_with("linear") {
                        let next = s.lr(t + 1);
                        if t + 1 < warmup {
                            prop_assert!(next >= lr, "{spec}: warm-up falls at {t}");
                        } else if t >= warmup {
                            prop_assert!(next <= lr, "{spec}: rises at {t}");
                        }
                    }
                }
            }
            if total >= 10 {
                let s = Schedule::parse("onecycle:max=0.5", base, total).unwrap();
                for &t in &probe {
                    let lr = s.lr(t);
                    prop_assert!(lr.is_finite() && lr > 0.0 && lr <= 0.5 * (1.0 + 1e-6), "onecycle: lr({t}) = {lr}");
                }
            }
        }
    }
}

//! Learning-rate schedules as pure functions of the step, so a resumed run gets exactly
//! the learning rates of an uninterrupted one.
//!
//! `step` counts the optimizer updates already done: `lr(0)` is the rate of the first
//! update and `lr(total_steps - 1)` that of the last.

use std::f64::consts::PI;
use std::fmt;

/// The shape of a schedule. Build a [`Schedule`] from it with [`Schedule::new`], or parse
/// one from a string with [`Schedule::parse`].
#[derive(Clone, Debug, PartialEq)]
pub enum ScheduleKind {
    /// `base` throughout.
    Constant,
    /// `base · gamma^⌊step / every⌋` (PyTorch `StepLR`).
    Step {
        /// Steps between decays.
        every: u64,
        /// Decay factor.
        gamma: f64,
    },
    /// `base · gamma^k`, `k` = number of milestones `<= step` (PyTorch `MultiStepLR`).
    MultiStep {
        /// Increasing steps at which the rate is multiplied by `gamma`.
        milestones: Vec<u64>,
        /// Decay factor.
        gamma: f64,
    },
    /// `base · gamma^step` (PyTorch `ExponentialLR`).
    Exponential {
        /// Decay factor per step.
        gamma: f64,
    },
    /// Linear warm-up `base · (step+1)/warmup` for `step < warmup` (reaching `base` at
    /// `warmup - 1`), then cosine annealing from `base` at `warmup` to `min_lr` at
    /// `total_steps` (PyTorch `CosineAnnealingLR` with `T_max = total - warmup`).
    Cosine {
        /// Warm-up steps (0 = none).
        warmup: u64,
        /// The floor the cosine reaches at `total_steps`.
        min_lr: f64,
    },
    /// PyTorch `OneCycleLR`: see [`OneCycle`].
    OneCycle(OneCycle),
    /// Linear warm-up as [`ScheduleKind::Cosine`] (or, with `start_factor`, from
    /// `base · start_factor` at step 0 to `base` at `warmup`), then linear decay from `base`
    /// at `warmup` to `base · end_factor` at `total_steps`.
    Linear {
        /// Warm-up steps (0 = none).
        warmup: u64,
        /// The fraction of `base` reached at `total_steps`.
        end_factor: f64,
        /// The fraction of `base` the warm-up starts from (`None`: `1/warmup`, as cosine).
        start_factor: Option<f64>,
    },
}

/// PyTorch `OneCycleLR` (cosine annealing, two phases): from `max/div` at step 0 up to
/// `max` at step `pct·total − 1`, then down to `max/div/final_div` at `total − 1`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OneCycle {
    /// The peak rate; `None` = the base rate.
    pub max_lr: Option<f64>,
    /// Fraction of the steps spent rising.
    pub pct_start: f64,
    /// `initial = max / div`.
    pub div: f64,
    /// `final = initial / final_div`.
    pub final_div: f64,
}

impl OneCycle {
    /// The step (fractional) at which the rate peaks, of `total` steps.
    fn peak_step(&self, total: f64) -> f64 {
        self.pct_start * total - 1.0
    }

    fn lr(&self, base: f64, step: f64, total: f64) -> f64 {
        let peak = self.max_lr.unwrap_or(base);
        let initial = peak / self.div;
        let floor = initial / self.final_div;
        let end_up = self.peak_step(total);
        let end = total - 1.0;
        let s = step.min(end);
        if s <= end_up {
            cos_anneal(initial, peak, s / end_up)
        } else {
            cos_anneal(peak, floor, (s - end_up) / (end - end_up))
        }
    }

    fn validate(&self, total_steps: u64) -> Result<(), ScheduleError> {
        if let Some(m) = self.max_lr {
            positive("max", m)?;
        }
        positive("div", self.div)?;
        positive("final_div", self.final_div)?;
        let (pct, total) = (self.pct_start, total_steps as f64);
        let end_up = self.peak_step(total);
        if !(pct > 0.0 && pct < 1.0) || end_up <= 0.0 || end_up >= total - 1.0 {
            return Err(ScheduleError(format!(
                "pct must be in (0, 1) with 1 < pct·total_steps < total_steps, got pct {pct} and {total_steps} steps"
            )));
        }
        Ok(())
    }
}

/// `Ok` if `v` is finite and positive, else an error naming `what`.
fn positive(what: &str, v: f64) -> Result<(), ScheduleError> {
    if v > 0.0 && v.is_finite() {
        Ok(())
    } else {
        Err(ScheduleError(format!(
            "{what} must be finite and > 0, got {v}"
        )))
    }
}

/// A bad schedule string or value; the message names the input and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleError(pub String);

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScheduleError {}

/// A learning-rate schedule: a base rate, a number of steps and a [`ScheduleKind`].
///
/// ```
/// use ember_optim::Schedule;
/// let s = Schedule::parse("cosine:warmup=100", 0.1, 1000).unwrap();
/// assert!((s.lr(99) - 0.1).abs() < 1e-7); // end of warm-up
/// assert!(s.lr(999) < 1e-5);               // last step, near the floor
/// assert!(Schedule::parse("cosine:warmpu=100", 0.1, 1000).is_err());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    kind: ScheduleKind,
    base_lr: f32,
    total_steps: u64,
}

/// The schedule grammar, for error messages and CLI help.
pub const SCHEDULE_GRAMMAR: &str = "constant | step:EVERY[:GAMMA=0.1] | \
multistep:M1,M2,..[:GAMMA=0.1] | exp:GAMMA | cosine[:warmup=0][:min=0] | \
linear[:warmup=0][:end=0][:start=1/warmup] | onecycle[:max=BASE][:pct=0.3][:div=25][:final_div=1e4] \
(arguments positional in this order or as key=value, separated by ':'; warmup in steps, \
or in percent of the steps with `%`)";

impl Schedule {
    /// A checked schedule. `total_steps` is only used by cosine, linear and one-cycle.
    pub fn new(kind: ScheduleKind, base_lr: f32, total_steps: u64) -> Result<Self, ScheduleError> {
        let s = Schedule {
            kind,
            base_lr,
            total_steps,
        };
        s.validate()?;
        Ok(s)
    }

    /// Parses a schedule string (see [`SCHEDULE_GRAMMAR`]), e.g. `"constant"`,
    /// `"step:30:0.1"`, `"multistep:30,60:0.1"`, `"exp:0.95"`, `"cosine:warmup=500"`,
    /// `"onecycle:max=0.1"`, `"linear"`.
    pub fn parse(spec: &str, base_lr: f32, total_steps: u64) -> Result<Self, ScheduleError> {
        let kind = parse_kind(spec, total_steps).map_err(|e| {
            ScheduleError(format!(
                "learning-rate schedule `{spec}`: {e}; expected {SCHEDULE_GRAMMAR}"
            ))
        })?;
        Self::new(kind, base_lr, total_steps)
            .map_err(|e| ScheduleError(format!("learning-rate schedule `{spec}`: {e}")))
    }

    /// The schedule's shape.
    pub fn kind(&self) -> &ScheduleKind {
        &self.kind
    }

    /// The base learning rate.
    pub fn base_lr(&self) -> f32 {
        self.base_lr
    }

    /// The learning rate for update number `step` (from 0). Past the end, schedules stay
    /// at their final value (step and exponential decays keep decaying).
    pub fn lr(&self, step: u64) -> f32 {
        let base = f64::from(self.base_lr);
        let total = self.total_steps as f64;
        let s = step as f64;
        let lr = match &self.kind {
            ScheduleKind::Constant => base,
            ScheduleKind::Step { every, gamma } => base * powi(*gamma, step / every),
            ScheduleKind::MultiStep { milestones, gamma } => {
                base * powi(
                    *gamma,
                    milestones.iter().filter(|&&m| m <= step).count() as u64,
                )
            }
            ScheduleKind::Exponential { gamma } => base * powi(*gamma, step),
            ScheduleKind::Cosine { warmup, min_lr } => warmed(base, step, *warmup, total, |p| {
                min_lr + (base - min_lr) * (1.0 + (PI * p).cos()) / 2.0
            }),
            ScheduleKind::Linear {
                warmup,
                end_factor,
                start_factor: Some(start),
            } if step < *warmup => base * (start + (1.0 - start) * s / *warmup as f64),
            ScheduleKind::Linear {
                warmup, end_factor, ..
            } => warmed(base, step, *warmup, total, |p| {
                base * (1.0 - p * (1.0 - end_factor))
            }),
            ScheduleKind::OneCycle(c) => c.lr(base, s, total),
        };
        lr as f32
    }

    fn validate(&self) -> Result<(), ScheduleError> {
        let err = |m: String| Err(ScheduleError(m));
        if !(self.base_lr >= 0.0 && self.base_lr.is_finite()) {
            return err(format!(
                "base learning rate must be finite and >= 0, got {}",
                self.base_lr
            ));
        }
        let needs_total = |warmup: u64| {
            if self.total_steps == 0 {
                Err(ScheduleError("needs total_steps > 0".to_string()))
            } else if warmup >= self.total_steps {
                Err(ScheduleError(format!(
                    "warmup ({warmup}) must be shorter than total_steps ({})",
                    self.total_steps
                )))
            } else {
                Ok(())
            }
        };
        match &self.kind {
            ScheduleKind::Constant => Ok(()),
            ScheduleKind::Step { every, gamma } => {
                if *every == 0 {
                    return err("step: EVERY must be > 0".to_string());
                }
                positive("gamma", *gamma)
            }
            ScheduleKind::MultiStep { milestones, gamma } => {
                if milestones.is_empty() || milestones.windows(2).any(|w| w[0] >= w[1]) {
                    return err(format!(
                        "milestones must be strictly increasing and not empty, got {milestones:?}"
                    ));
                }
                positive("gamma", *gamma)
            }
            ScheduleKind::Exponential { gamma } => positive("gamma", *gamma),
            ScheduleKind::Cosine { warmup, min_lr } => {
                needs_total(*warmup)?;
                if !(*min_lr >= 0.0 && min_lr.is_finite()) {
                    return err(format!("min must be finite and >= 0, got {min_lr}"));
                }
                Ok(())
            }
            ScheduleKind::Linear {
                warmup,
                end_factor,
                start_factor,
            } => {
                needs_total(*warmup)?;
                if !(*end_factor >= 0.0 && end_factor.is_finite()) {
                    return err(format!("end must be finite and >= 0, got {end_factor}"));
                }
                if let Some(s) = start_factor
                    && !(*s >= 0.0 && s.is_finite())
                {
                    return err(format!("start must be finite and >= 0, got {s}"));
                }
                Ok(())
            }
            ScheduleKind::OneCycle(c) => {
                needs_total(0)?;
                c.validate(self.total_steps)
            }
        }
    }
}

fn powi(x: f64, n: u64) -> f64 {
    x.powf(n as f64)
}

/// Linear warm-up to `base` over `warmup` steps, then `after(progress)` with progress
/// from 0 at `warmup` to 1 at `total` (clamped).
fn warmed(base: f64, step: u64, warmup: u64, total: f64, after: impl Fn(f64) -> f64) -> f64 {
    if step < warmup {
        return base * (step + 1) as f64 / warmup as f64;
    }
    let p = ((step - warmup) as f64 / (total - warmup as f64)).min(1.0);
    after(p)
}

/// Cosine interpolation from `start` (pct 0) to `end` (pct 1), as PyTorch's OneCycleLR.
fn cos_anneal(start: f64, end: f64, pct: f64) -> f64 {
    end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0)
}

/// Parses `name[:arg]...`; each arg is positional (in the schedule's order) or `key=value`.
/// A `warmup` ending in `%` is that percentage of `total_steps`.
fn parse_kind(spec: &str, total_steps: u64) -> Result<ScheduleKind, String> {
    let mut parts = spec.trim().split(':');
    let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let keys: &[&str] = match name.as_str() {
        "constant" => &[],
        "step" => &["every", "gamma"],
        "multistep" => &["milestones", "gamma"],
        "exp" | "exponential" => &["gamma"],
        "cosine" => &["warmup", "min"],
        "linear" => &["warmup", "end", "start"],
        "onecycle" => &["max", "pct", "div", "final_div"],
        "" => return Err("empty schedule name".to_string()),
        other => return Err(format!("unknown schedule `{other}`")),
    };
    let mut values: Vec<Option<String>> = vec![None; keys.len()];
    for (i, arg) in parts.enumerate() {
        let arg = arg.trim();
        let (slot, value) = match arg.split_once('=') {
            Some((k, v)) => {
                let k = k.trim();
                let slot = keys
                    .iter()
                    .position(|&name| name == k)
                    .ok_or_else(|| format!("unknown argument `{k}` (known: {})", list(keys)))?;
                (slot, v.trim())
            }
            None if i < keys.len() => (i, arg),
            None => {
                return Err(format!(
                    "too many arguments (at most {}: {})",
                    keys.len(),
                    list(keys)
                ));
            }
        };
        if values[slot].is_some() {
            return Err(format!("argument `{}` given twice", keys[slot]));
        }
        values[slot] = Some(value.to_string());
    }
    let get = |key: &str| -> Option<&str> {
        let i = keys.iter().position(|&k| k == key)?;
        values[i].as_deref()
    };
    let float = |key: &str, default: Option<f64>| -> Result<f64, String> {
        match get(key) {
            Some(v) => v
                .parse::<f64>()
                .map_err(|_| format!("`{key}`: `{v}` is not a number")),
            None => default.ok_or_else(|| format!("missing argument `{key}`")),
        }
    };
    let int = |key: &str, default: Option<u64>| -> Result<u64, String> {
        if key == "warmup"
            && let Some(pct) = get(key).and_then(|v| v.strip_suffix('%'))
        {
            return match pct.trim().parse::<f64>() {
                Ok(p) if (0.0..100.0).contains(&p) => {
                    Ok((p / 100.0 * total_steps as f64).round() as u64)
                }
                _ => Err(format!(
                    "`warmup`: `{pct}%` is not a percentage in [0, 100)"
                )),
            };
        }
        match get(key) {
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| format!("`{key}`: `{v}` is not a non-negative integer")),
            None => default.ok_or_else(|| format!("missing argument `{key}`")),
        }
    };
    Ok(match name.as_str() {
        "constant" => ScheduleKind::Constant,
        "step" => ScheduleKind::Step {
            every: int("every", None)?,
            gamma: float("gamma", Some(0.1))?,
        },
        "multistep" => {
            let list = get("milestones").ok_or("missing argument `milestones`")?;
            let milestones = list
                .split(',')
                .map(|m| {
                    m.trim()
                        .parse::<u64>()
                        .map_err(|_| format!("`milestones`: `{m}` is not a non-negative integer"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            ScheduleKind::MultiStep {
                milestones,
                gamma: float("gamma", Some(0.1))?,
            }
        }
        "exp" | "exponential" => ScheduleKind::Exponential {
            gamma: float("gamma", None)?,
        },
        "cosine" => ScheduleKind::Cosine {
            warmup: int("warmup", Some(0))?,
            min_lr: float("min", Some(0.0))?,
        },
        "linear" => ScheduleKind::Linear {
            warmup: int("warmup", Some(0))?,
            end_factor: float("end", Some(0.0))?,
            start_factor: get("start").map(|_| float("start", None)).transpose()?,
        },
        _ => ScheduleKind::OneCycle(OneCycle {
            max_lr: get("max").map(|_| float("max", None)).transpose()?,
            pct_start: float("pct", Some(0.3))?,
            div: float("div", Some(25.0))?,
            final_div: float("final_div", Some(1e4))?,
        }),
    })
}

fn list(keys: &[&str]) -> String {
    if keys.is_empty() {
        "none".to_string()
    } else {
        keys.join(", ")
    }
}

//! Test helpers: a float64 transcription of PyTorch's SGD / Adam / AdamW (the
//! `_single_tensor_*` code paths), used as an oracle for hyper-parameters the golden files
//! do not cover, and an optimizer builder from golden-style hyper-parameters.
#![allow(dead_code)]

use ember_optim::{Adam, AdamCore, AdamW, Optimizer, Sgd};

/// Hyper-parameters as in a golden file's `params`.
#[derive(Clone, Debug)]
pub struct Hyper {
    pub optimizer: String,
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub amsgrad: bool,
}

impl Hyper {
    pub fn sgd(lr: f64) -> Self {
        Hyper {
            optimizer: "sgd".into(),
            lr,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            betas: (0.9, 0.999),
            eps: 1e-8,
            amsgrad: false,
        }
    }

    pub fn adam(kind: &str, lr: f64) -> Self {
        Hyper {
            optimizer: kind.into(),
            ..Hyper::sgd(lr)
        }
    }

    /// `adam` (Adam or AdamW) with these betas, eps, weight decay and AMSGrad.
    fn adam_options<const DECOUPLED: bool>(
        &self,
        adam: AdamCore<DECOUPLED>,
    ) -> AdamCore<DECOUPLED> {
        adam.betas(self.betas.0 as f32, self.betas.1 as f32)
            .eps(self.eps as f32)
            .weight_decay(self.weight_decay as f32)
            .amsgrad(self.amsgrad)
    }

    /// The Ember optimizer with these hyper-parameters, through the public builders.
    pub fn build(&self) -> Box<dyn Optimizer> {
        match self.optimizer.as_str() {
            "sgd" => Box::new(
                Sgd::new(self.lr as f32)
                    .momentum(self.momentum as f32)
                    .dampening(self.dampening as f32)
                    .nesterov(self.nesterov)
                    .weight_decay(self.weight_decay as f32),
            ),
            "adam" => Box::new(self.adam_options(Adam::new(self.lr as f32))),
            "adamw" => Box::new(self.adam_options(AdamW::new(self.lr as f32))),
            other => panic!("unknown optimizer {other}"),
        }
    }
}

/// One parameter's float64 reference state.
#[derive(Clone, Debug, Default)]
pub struct Ref64 {
    pub step: u64,
    pub buf: Option<Vec<f64>>,
    pub m: Vec<f64>,
    pub v: Vec<f64>,
    pub vmax: Vec<f64>,
}

/// PyTorch's update of one parameter, in float64.
pub fn ref_update(h: &Hyper, st: &mut Ref64, p: &mut [f64], grad: &[f64]) {
    let n = p.len();
    st.step += 1;
    let mut g: Vec<f64> = grad.to_vec();
    if h.optimizer == "sgd" {
        if h.weight_decay != 0.0 {
            for i in 0..n {
                g[i] += h.weight_decay * p[i];
            }
        }
        if h.momentum != 0.0 {
            let buf = match st.buf.take() {
                None => g.clone(),
                Some(mut b) => {
                    for i in 0..n {
                        b[i] = h.momentum * b[i] + (1.0 - h.dampening) * g[i];
                    }
                    b
                }
            };
            if h.nesterov {
                for i in 0..n {
                    g[i] += h.momentum * buf[i];
                }
            } else {
                g.clone_from(&buf);
            }
            st.buf = Some(buf);
        }
        for i in 0..n {
            p[i] -= h.lr * g[i];
        }
        return;
    }
    if st.m.is_empty() {
        st.m = vec![0.0; n];
        st.v = vec![0.0; n];
        st.vmax = vec![0.0; n];
    }
    if h.optimizer == "adamw" {
        for x in p.iter_mut() {
            *x *= 1.0 - h.lr * h.weight_decay;
        }
    } else if h.weight_decay != 0.0 {
        for i in 0..n {
            g[i] += h.weight_decay * p[i];
        }
    }
    let (b1, b2) = h.betas;
    let t = st.step as i32;
    let bc1 = 1.0 - b1.powi(t);
    let bc2 = 1.0 - b2.powi(t);
    let step_size = h.lr / bc1;
    for i in 0..n {
        st.m[i] += (g[i] - st.m[i]) * (1.0 - b1);
        st.v[i] = st.v[i] * b2 + (1.0 - b2) * g[i] * g[i];
        let v = if h.amsgrad {
            st.vmax[i] = st.vmax[i].max(st.v[i]);
            st.vmax[i]
        } else {
            st.v[i]
        };
        let denom = v.sqrt() / bc2.sqrt() + h.eps;
        p[i] -= step_size * st.m[i] / denom;
    }
}

/// `max |got - want| / (1 + |want|)`.
pub fn rel_err(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (f64::from(g) - w).abs() / (1.0 + w.abs()))
        .fold(0.0, f64::max)
}

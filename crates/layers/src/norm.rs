//! `BatchNorm2d` with running statistics, PyTorch semantics.

use std::sync::Arc;

use ember_tensor::{Rng, Shape, Tensor, simd_dispatch};
use rayon::prelude::*;

use crate::buffers::{Buffers, expect_shape, shape_or_panic};
use crate::replica::ReplicaSum;
use crate::{Layer, LayerError, Mode, Param};

/// Batch normalisation over the channels of an NCHW input.
///
/// Training: normalises with the batch mean and the biased batch variance over `N*H*W`,
/// then updates `running_mean` and `running_var` by `momentum` (with the *unbiased*
/// variance, as PyTorch does) and counts `num_batches_tracked`. Eval: normalises with the
/// running statistics. With `affine` (default) a per-channel `weight` (gamma, initially 1)
/// and `bias` (beta, initially 0) follow; both have `decay == false`.
///
/// `state_dict` names: `weight`, `bias`, and buffers `running_mean`, `running_var`,
/// `num_batches_tracked` (a scalar).
///
/// Under data-parallel training, [`Layer::sync_batch_stats`] makes the training-mode
/// statistics (and the matching backward sums) those of the global batch, as PyTorch's
/// `SyncBatchNorm`; parameter gradients stay local, for the trainer to average.
///
/// ```
/// use ember_layers::{BatchNorm2d, Layer, Mode};
/// use ember_tensor::{Rng, Tensor};
/// let mut bn = BatchNorm2d::new(3).momentum(0.1).eps(1e-5);
/// let x = Tensor::normal([4, 3, 5, 5], 2.0, 3.0, &mut Rng::new(0));
/// let y = bn.forward(&x, Mode::Train);
/// let mean: f32 = y.data().iter().sum::<f32>() / y.len() as f32;
/// assert!(mean.abs() < 1e-4);
/// ```
#[derive(Clone, Debug)]
pub struct BatchNorm2d {
    channels: usize,
    eps: f32,
    momentum: f32,
    weight: Option<Param>,
    bias: Option<Param>,
    running_mean: Tensor,
    running_var: Tensor,
    num_batches_tracked: Tensor,
    /// Per channel, from the last forward: the mean and 1/std used to normalise.
    mean: Vec<f32>,
    invstd: Vec<f32>,
    /// The batch mean (f64) minus `mean`: the kernels centre on the f32 `mean` and fold
    /// this residual into their constants, so that neither pass multiplies a large `x` by
    /// a large factor only to cancel it (a nearly constant channel has invstd near
    /// 1/sqrt(eps)).
    mean_residual: Vec<f64>,
    /// Per channel workspace: `y = (x - mean) * scale + shift`, and backward's two sums.
    scale: Vec<f32>,
    shift: Vec<f32>,
    sum_g: Vec<f32>,
    sum_gxm: Vec<f32>,
    last_mode: Mode,
    bufs: Buffers,
    /// The data-parallel group whose global batch the statistics are taken over.
    group: Option<Group>,
    /// Per channel sums exchanged with the group: [s1 (C), s2 (C), count].
    sums: Vec<f64>,
}

/// The group of a synchronised batch norm (a newtype so that the layer stays `Debug`).
#[derive(Clone)]
struct Group(Arc<dyn ReplicaSum>);

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Group({} replicas)", self.0.replicas())
    }
}

impl BatchNorm2d {
    /// Batch norm over `channels` channels: eps 1e-5, momentum 0.1, affine.
    pub fn new(channels: usize) -> Self {
        BatchNorm2d {
            channels,
            eps: 1e-5,
            momentum: 0.1,
            weight: Some(Param::new(Tensor::full([channels], 1.0), false)),
            bias: Some(Param::new(Tensor::zeros([channels]), false)),
            running_mean: Tensor::zeros([channels]),
            running_var: Tensor::full([channels], 1.0),
            num_batches_tracked: Tensor::zeros(Shape::scalar()),
            mean: vec![0.0; channels],
            mean_residual: vec![0.0; channels],
            invstd: vec![0.0; channels],
            scale: vec![0.0; channels],
            shift: vec![0.0; channels],
            sum_g: vec![0.0; channels],
            sum_gxm: vec![0.0; channels],
            last_mode: Mode::Eval,
            bufs: Buffers::EMPTY,
            group: None,
            sums: vec![0.0; 2 * channels + 1],
        }
    }

    /// The epsilon added to the variance (default 1e-5).
    pub fn eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self
    }

    /// The running-statistics momentum (default 0.1): `r = (1 - m) r + m * batch`.
    pub fn momentum(mut self, momentum: f32) -> Self {
        self.momentum = momentum;
        self
    }

    /// With or without the learnable per-channel weight and bias (default: with).
    pub fn affine(mut self, affine: bool) -> Self {
        if affine {
            let c = self.channels;
            self.weight
                .get_or_insert_with(|| Param::new(Tensor::full([c], 1.0), false));
            self.bias
                .get_or_insert_with(|| Param::new(Tensor::zeros([c]), false));
        } else {
            self.weight = None;
            self.bias = None;
        }
        self
    }

    /// The number of channels.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The running mean `[C]`.
    pub fn running_mean(&self) -> &Tensor {
        &self.running_mean
    }

    /// The running (unbiased) variance `[C]`.
    pub fn running_var(&self) -> &Tensor {
        &self.running_var
    }

    /// Computes `mean`, `invstd` from the batch (the group's global batch when synchronised)
    /// and updates the running statistics.
    fn batch_statistics(&mut self, x: &Tensor, n: usize, hw: usize) {
        let c_count = self.channels;
        if n * hw == 0 && self.group.is_none() {
            // An empty batch has no statistics; normalise with the running ones instead
            // of dividing by zero, and leave them untouched.
            self.running_statistics();
            return;
        }
        let xs = x.data();
        let plane = |i: usize, c: usize| &xs[(i * c_count + c) * hw..][..hw];
        let synced = self.group.is_some();
        let running_mean = self.running_mean.data();
        let (s1, rest) = self.sums.split_at_mut(c_count);
        let (s2, count) = rest.split_at_mut(c_count);
        // One pass over the data: sums of (x - k) and (x - k)^2 around a per-channel shift
        // k, so that E[d^2] - E[d]^2 does not cancel catastrophically when the mean is large
        // next to the spread. Locally k is the channel's first value; synchronised it is the
        // running mean, which every replica shares. `mean` holds k until the sums are in.
        self.mean
            .par_iter_mut()
            .zip(s1.par_iter_mut().zip(s2.par_iter_mut()))
            .enumerate()
            .for_each(|(c, (k_out, (s1, s2)))| {
                let local = (n * hw) as f64;
                if local == 0.0 {
                    (*k_out, *s1, *s2) = (running_mean[c], 0.0, 0.0);
                    return;
                }
                let k = plane(0, c)[0];
                let (a, b) = simd_dispatch!(_s => {
                    let (mut a, mut b) = (0.0f64, 0.0f64);
                    for i in 0..n {
                        let (pa, pb) = shifted_sums(plane(i, c), k);
                        a += pa as f64;
                        b += pb as f64;
                    }
                    (a, b)
                });
                if !synced {
                    (*k_out, *s1, *s2) = (k, a, b);
                    return;
                }
                // Re-centre the local sums (taken around the local k, well conditioned) on a
                // shift every replica shares, in f64: local mean m and sum of squares about
                // it give the sums around K = the running mean.
                let kk = running_mean[c];
                let d = a / local;
                let m2 = (b - local * d * d).max(0.0);
                let dm = k as f64 + d - kk as f64;
                (*k_out, *s1, *s2) = (kk, local * dm, m2 + local * dm * dm);
            });
        count[0] = (n * hw) as f64;
        if let Some(group) = &self.group {
            group.0.sum_f64(&mut self.sums);
        }
        let count = self.sums[2 * c_count];
        if count == 0.0 {
            self.running_statistics();
            return;
        }
        let eps = self.eps as f64;
        let mom = self.momentum;
        let unbias = if count > 1.0 {
            (count / (count - 1.0)) as f32
        } else {
            1.0
        };
        let rm = self.running_mean.data_mut();
        let rv = self.running_var.data_mut();
        for c in 0..c_count {
            let d = self.sums[c] / count;
            let var = (self.sums[c_count + c] / count - d * d).max(0.0);
            let mean = self.mean[c] as f64 + d;
            self.mean[c] = mean as f32;
            self.mean_residual[c] = mean - self.mean[c] as f64;
            self.invstd[c] = (1.0 / (var + eps).sqrt()) as f32;
            rm[c] = (1.0 - mom) * rm[c] + mom * self.mean[c];
            rv[c] = (1.0 - mom) * rv[c] + mom * var as f32 * unbias;
        }
        self.num_batches_tracked.data_mut()[0] += 1.0;
    }

    /// `mean`, `invstd` from the running statistics.
    fn running_statistics(&mut self) {
        let rm = self.running_mean.data();
        let rv = self.running_var.data();
        for c in 0..self.channels {
            self.mean[c] = rm[c];
            self.mean_residual[c] = 0.0;
            self.invstd[c] = (1.0 / (rv[c] as f64 + self.eps as f64).sqrt()) as f32;
        }
    }
}

// The loops below are inlined into their callers' dispatch arms (`simd_dispatch!`), so the
// compiler vectorises them for the level chosen at run time.

/// `(sum(x - k), sum((x - k)^2))`, in 8 independent lanes the compiler vectorises.
#[inline(always)]
fn shifted_sums(x: &[f32], k: f32) -> (f32, f32) {
    let (mut s1, mut s2) = ([0.0f32; 8], [0.0f32; 8]);
    let mut chunks = x.chunks_exact(8);
    for ch in &mut chunks {
        for j in 0..8 {
            let d = ch[j] - k;
            s1[j] += d;
            s2[j] += d * d;
        }
    }
    let (mut t1, mut t2) = (0.0, 0.0);
    for &v in chunks.remainder() {
        let d = v - k;
        t1 += d;
        t2 += d * d;
    }
    (s1.iter().sum::<f32>() + t1, s2.iter().sum::<f32>() + t2)
}

/// `(sum(g), sum(g * (x - m)))`, in 8 independent lanes.
#[inline(always)]
fn grad_sums(g: &[f32], x: &[f32], m: f32) -> (f32, f32) {
    let (mut sg, mut sgx) = ([0.0f32; 8], [0.0f32; 8]);
    let mut gc = g.chunks_exact(8);
    let mut xc = x.chunks_exact(8);
    for (g8, x8) in (&mut gc).zip(&mut xc) {
        for k in 0..8 {
            sg[k] += g8[k];
            sgx[k] += g8[k] * (x8[k] - m);
        }
    }
    let (mut tg, mut tgx) = (0.0, 0.0);
    for (&g, &x) in gc.remainder().iter().zip(xc.remainder()) {
        tg += g;
        tgx += g * (x - m);
    }
    (sg.iter().sum::<f32>() + tg, sgx.iter().sum::<f32>() + tgx)
}

/// `out = (x - m) * a + b`.
#[inline(always)]
fn affine(x: &[f32], m: f32, a: f32, b: f32, out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = (v - m) * a + b;
    }
}

/// `out = g * a + (x - m) * b + c`.
#[inline(always)]
fn affine2(g: &[f32], a: f32, x: &[f32], m: f32, b: f32, c: f32, out: &mut [f32]) {
    for ((o, &g), &x) in out.iter_mut().zip(g).zip(x) {
        *o = g * a + ((x - m) * b + c);
    }
}

impl Layer for BatchNorm2d {
    fn forward(&mut self, x: &Tensor, mode: Mode) -> &Tensor {
        let shape = shape_or_panic("BatchNorm2d", self.output_shape(x.shape()));
        let (n, c_count, h, w) = x.shape().nchw().unwrap_or((0, 0, 0, 0));
        let hw = h * w;
        self.last_mode = mode;
        match mode {
            Mode::Train => self.batch_statistics(x, n, hw),
            Mode::Eval => self.running_statistics(),
        }
        for c in 0..c_count {
            let gamma = self.weight.as_ref().map_or(1.0, |p| p.value.data()[c]);
            let beta = self.bias.as_ref().map_or(0.0, |p| p.value.data()[c]);
            self.scale[c] = gamma * self.invstd[c];
            self.shift[c] = (beta as f64 - self.mean_residual[c] * self.scale[c] as f64) as f32;
        }
        let (mean, scale, shift) = (&self.mean, &self.scale, &self.shift);
        let out = self.bufs.out_for(shape);
        if hw > 0 {
            // One task per image, its planes in one dispatch.
            let item = c_count * hw;
            out.data_mut()
                .par_chunks_mut(item)
                .zip(x.data().par_chunks(item))
                .for_each(|(o, x)| {
                    simd_dispatch!(_s => {
                        for (c, (o, x)) in o.chunks_exact_mut(hw).zip(x.chunks_exact(hw)).enumerate() {
                            affine(x, mean[c], scale[c], shift[c], o);
                        }
                    })
                });
        }
        out
    }

    fn backward(&mut self, x: &Tensor, grad_out: &Tensor, need_input_grad: bool) -> &Tensor {
        let shape = shape_or_panic("BatchNorm2d", self.output_shape(x.shape()));
        expect_shape("BatchNorm2d", "grad_out", grad_out.shape(), shape);
        let (n, c_count, h, w) = x.shape().nchw().unwrap_or((0, 0, 0, 0));
        let hw = h * w;
        let (xs, gs) = (x.data(), grad_out.data());
        let (mean, residual) = (&self.mean, &self.mean_residual);
        self.sum_g
            .par_iter_mut()
            .zip(self.sum_gxm.par_iter_mut())
            .enumerate()
            .for_each(|(c, (sg, sgx))| {
                let (a, b) = simd_dispatch!(_s => {
                    let (mut a, mut b) = (0.0f64, 0.0f64);
                    for i in 0..n {
                        let at = (i * c_count + c) * hw;
                        let (pg, px) = grad_sums(&gs[at..at + hw], &xs[at..at + hw], mean[c]);
                        a += pg as f64;
                        b += px as f64;
                    }
                    (a, b)
                });
                *sg = a as f32;
                // Centred on the exact batch mean: sum(g (x - mean - residual)).
                *sgx = (b - residual[c] * a) as f32;
            });
        if let (Some(wp), Some(bp)) = (&mut self.weight, &mut self.bias) {
            let (dw, db) = (wp.grad.data_mut(), bp.grad.data_mut());
            for c in 0..c_count {
                dw[c] += self.sum_gxm[c] * self.invstd[c];
                db[c] += self.sum_g[c];
            }
        }
        // Synchronised, the batch statistics depend on every replica's inputs, so dx needs
        // the two sums over the global batch (every replica takes part, in the same order).
        let mut count = (n * hw) as f32;
        if let (Some(group), Mode::Train) = (&self.group, self.last_mode) {
            for c in 0..c_count {
                self.sums[c] = self.sum_g[c] as f64;
                self.sums[c_count + c] = self.sum_gxm[c] as f64;
            }
            self.sums[2 * c_count] = (n * hw) as f64;
            group.0.sum_f64(&mut self.sums);
            for c in 0..c_count {
                self.sum_g[c] = self.sums[c] as f32;
                self.sum_gxm[c] = self.sums[c_count + c] as f32;
            }
            count = self.sums[2 * c_count] as f32;
        }
        if !need_input_grad {
            return self.bufs.skip_grad();
        }
        // dx = a g + b (x - mean) + c per channel: in training the batch statistics depend
        // on x, so dx = gamma*invstd * (g - mean(g) - xhat * mean(g * xhat)).
        for c in 0..c_count {
            let gamma = self.weight.as_ref().map_or(1.0, |p| p.value.data()[c]);
            let a = gamma * self.invstd[c];
            let (b, c0) = if self.last_mode == Mode::Train {
                let b = -a * self.invstd[c] * self.invstd[c] * self.sum_gxm[c] / count;
                let c0 = -a as f64 * self.sum_g[c] as f64 / count as f64
                    - b as f64 * self.mean_residual[c];
                (b, c0 as f32)
            } else {
                (0.0, 0.0)
            };
            self.scale[c] = a;
            self.shift[c] = b;
            self.sum_g[c] = c0;
        }
        let (mean, a, b, c0) = (&self.mean, &self.scale, &self.shift, &self.sum_g);
        let dx = self.bufs.grad_for(x.shape());
        if hw > 0 {
            let item = c_count * hw;
            dx.data_mut()
                .par_chunks_mut(item)
                .zip(gs.par_chunks(item).zip(xs.par_chunks(item)))
                .for_each(|(o, (g, x))| {
                    simd_dispatch!(_s => {
                        let planes = o.chunks_exact_mut(hw).zip(g.chunks_exact(hw).zip(x.chunks_exact(hw)));
                        for (c, (o, (g, x))) in planes.enumerate() {
                            affine2(g, a[c], x, mean[c], b[c], c0[c], o);
                        }
                    })
                });
        }
        dx
    }

    crate::buffers::buffered_outputs!();

    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        if let Some(w) = &mut self.weight {
            f(&format!("{prefix}weight"), w);
        }
        if let Some(b) = &mut self.bias {
            f(&format!("{prefix}bias"), b);
        }
    }

    fn visit_buffers(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        f(&format!("{prefix}running_mean"), &mut self.running_mean);
        f(&format!("{prefix}running_var"), &mut self.running_var);
        f(
            &format!("{prefix}num_batches_tracked"),
            &mut self.num_batches_tracked,
        );
    }

    fn sync_batch_stats(&mut self, group: Option<&Arc<dyn ReplicaSum>>) {
        self.group = group.map(|g| Group(Arc::clone(g)));
    }

    /// Weight 1, bias 0 and fresh running statistics, as PyTorch's `reset_parameters`.
    fn reset_parameters(&mut self, _rng: &mut Rng) {
        if let Some(w) = &mut self.weight {
            w.value.fill(1.0);
        }
        if let Some(b) = &mut self.bias {
            b.value.fill(0.0);
        }
        self.running_mean.fill(0.0);
        self.running_var.fill(1.0);
        self.num_batches_tracked.fill(0.0);
    }

    fn output_shape(&self, input: Shape) -> Result<Shape, LayerError> {
        match input.nchw() {
            Ok((_, c, _, _)) if c == self.channels => Ok(input),
            _ => Err(LayerError(format!(
                "{} needs input [N, {}, H, W], got {input}",
                self.describe(),
                self.channels
            ))),
        }
    }

    fn flops(&self, input: Shape) -> u64 {
        2 * input.numel() as u64
    }

    fn describe(&self) -> String {
        format!(
            "BatchNorm2d({}{})",
            self.channels,
            if self.weight.is_some() {
                ""
            } else {
                ", affine=false"
            }
        )
    }
}

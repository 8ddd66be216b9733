//! Pooling plane kernels over slices and sizes: one `H x W` channel plane at a time.

use ember_tensor::simd::{self, Simd};
use ember_tensor::{simd_dispatch, simd_fn};

use crate::window::valid_range;
use crate::{LayerError, Pair};

/// The sizes of a pooling over an NCHW batch (dilation 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeometry {
    /// Images in the batch.
    pub batch: usize,
    /// Channels.
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Window `(kh, kw)`.
    pub kernel: Pair,
    /// Stride `(sh, sw)`.
    pub stride: Pair,
    /// Padding on each side `(ph, pw)`; `-inf` for max pooling, zero for average pooling.
    pub padding: Pair,
}

impl PoolGeometry {
    /// Checks the sizes as PyTorch does (positive window and stride, padding at most half
    /// the window, a window that fits the padded input), naming the problem if not.
    pub fn validate(&self, layer: &str) -> Result<(), LayerError> {
        let Pair(kh, kw) = self.kernel;
        if kh == 0 || kw == 0 || self.stride.0 == 0 || self.stride.1 == 0 {
            return Err(LayerError(format!(
                "{layer}: kernel {:?} and stride {:?} must be positive",
                self.kernel, self.stride
            )));
        }
        if self.padding.0 > kh / 2 || self.padding.1 > kw / 2 {
            return Err(LayerError(format!(
                "{layer}: padding {:?} must be at most half the kernel {:?}",
                self.padding, self.kernel
            )));
        }
        if self.height + 2 * self.padding.0 < kh || self.width + 2 * self.padding.1 < kw {
            return Err(LayerError(format!(
                "{layer}: input {}x{} with padding {:?} is smaller than the kernel {:?}",
                self.height, self.width, self.padding, self.kernel
            )));
        }
        Ok(())
    }

    /// Output height.
    pub fn out_h(&self) -> usize {
        crate::conv::out_len(self.height, self.kernel.0, self.stride.0, self.padding.0, 1)
            .unwrap_or(0)
    }

    /// Output width.
    pub fn out_w(&self) -> usize {
        crate::conv::out_len(self.width, self.kernel.1, self.stride.1, self.padding.1, 1)
            .unwrap_or(0)
    }

    /// Rows `[y0, y1)` of the input inside the window of output row `oy`, and the window's
    /// extent in the padded input (what `count_include_pad` divides by).
    fn rows(&self, oy: usize) -> (usize, usize, usize) {
        clip(
            oy,
            self.stride.0,
            self.padding.0,
            self.kernel.0,
            self.height,
        )
    }

    fn cols(&self, ox: usize) -> (usize, usize, usize) {
        clip(ox, self.stride.1, self.padding.1, self.kernel.1, self.width)
    }
}

/// `(lo, hi, padded_len)` of the window of output `o` along one side.
fn clip(o: usize, s: usize, p: usize, k: usize, n: usize) -> (usize, usize, usize) {
    let start = (o * s) as isize - p as isize;
    let end = (start + k as isize).min((n + p) as isize);
    let padded = (end - start) as usize;
    (
        start.max(0) as usize,
        end.clamp(0, n as isize) as usize,
        padded,
    )
}

/// Max pooling of one plane `x` (`height x width` from `g`) into `y` (`out_h x out_w`).
pub fn max_pool2d_plane(x: &[f32], g: &PoolGeometry, y: &mut [f32]) {
    let (w, ho, wo) = (g.width, g.out_h(), g.out_w());
    assert!(
        x.len() >= g.height * w && y.len() >= ho * wo,
        "max_pool2d_plane: slices too short"
    );
    simd_dispatch!(s => {
        if is_2x2_stride_2(g) {
            max_pool_2x2(s, x, w, ho, wo, y)
        } else {
            max_pool_windows(x, g, y)
        }
    })
}

/// The general window loops, inlined into each level's dispatch arm so that the runs of
/// stride-1 taps vectorise for it.
#[inline(always)]
fn max_pool_windows(x: &[f32], g: &PoolGeometry, y: &mut [f32]) {
    let wo = g.out_w();
    for oy in 0..g.out_h() {
        let out = &mut y[oy * wo..(oy + 1) * wo];
        out.fill(f32::NEG_INFINITY);
        fold_row_windows(
            x,
            g,
            oy,
            out,
            |out, src| {
                for (o, &v) in out.iter_mut().zip(src) {
                    *o = o.max(v);
                }
            },
            |o, v| *o = o.max(v),
        );
    }
}

/// Folds every input of each window of output row `oy` into `out` (one output row): per
/// input row and kernel column, `run(outputs, inputs)` on the contiguous inputs of a
/// stride-1 tap, `one(output, input)` on each input otherwise.
#[inline(always)]
fn fold_row_windows(
    x: &[f32],
    g: &PoolGeometry,
    oy: usize,
    out: &mut [f32],
    run: impl Fn(&mut [f32], &[f32]),
    one: impl Fn(&mut f32, f32),
) {
    let w = g.width;
    let (y0, y1, _) = g.rows(oy);
    for iy in y0..y1 {
        let src = &x[iy * w..(iy + 1) * w];
        for kx in 0..g.kernel.1 {
            let (lo, hi) = valid_range(w, out.len(), g.stride.1, kx, g.padding.1);
            if hi <= lo {
                continue;
            }
            let x0 = lo * g.stride.1 + kx - g.padding.1;
            if g.stride.1 == 1 {
                run(&mut out[lo..hi], &src[x0..x0 + hi - lo]);
            } else {
                for (j, o) in out[lo..hi].iter_mut().enumerate() {
                    one(o, src[x0 + j * g.stride.1]);
                }
            }
        }
    }
}

/// 2x2 stride-2 max pooling: the vertical max of two rows in vectors, then pairs.
#[inline(always)]
fn max_pool_2x2<S: Simd>(s: S, x: &[f32], w: usize, ho: usize, wo: usize, y: &mut [f32]) {
    let mut rowmax = [0.0f32; 64];
    for oy in 0..ho {
        let (r0, r1) = (&x[2 * oy * w..][..w], &x[(2 * oy + 1) * w..][..w]);
        let out = &mut y[oy * wo..(oy + 1) * wo];
        // Process the row in strips of 64 inputs (32 outputs).
        for (strip_at, strip) in out.chunks_mut(32).enumerate() {
            let base = strip_at * 64;
            let n = 2 * strip.len();
            let mut j = 0;
            while j + S::LANES <= n {
                let m = s.max(s.load(&r0[base + j..]), s.load(&r1[base + j..]));
                s.store(&mut rowmax[j..], m);
                j += S::LANES;
            }
            for k in j..n {
                rowmax[k] = r0[base + k].max(r1[base + k]);
            }
            for (o, pair) in strip.iter_mut().zip(rowmax[..n].chunks_exact(2)) {
                *o = pair[0].max(pair[1]);
            }
        }
    }
}

/// Max pooling backward for one plane: each output's gradient is added to the first
/// input of its window (row-major) equal to the output, i.e. its first maximum. `gx` is
/// accumulated into. With `relu` (a fused `relu(maxpool(x))`, whose `y` is clamped at 0)
/// outputs that are not positive pass no gradient, as ReLU's derivative is 0 there.
pub fn max_pool2d_backward_plane(
    x: &[f32],
    y: &[f32],
    gy: &[f32],
    g: &PoolGeometry,
    relu: bool,
    gx: &mut [f32],
) {
    let (w, ho, wo) = (g.width, g.out_h(), g.out_w());
    for oy in 0..ho {
        let (y0, y1, _) = g.rows(oy);
        for ox in 0..wo {
            let (x0, x1, _) = g.cols(ox);
            let m = y[oy * wo + ox];
            if relu && m <= 0.0 {
                continue;
            }
            'window: for iy in y0..y1 {
                for ix in x0..x1 {
                    if x[iy * w + ix] == m {
                        gx[iy * w + ix] += gy[oy * wo + ox];
                        break 'window;
                    }
                }
            }
        }
    }
}

/// Whether `g` is the 2x2 stride-2 unpadded window of [`max_pool2d_backward_2x2_plane`].
pub fn is_2x2_stride_2(g: &PoolGeometry) -> bool {
    g.kernel == Pair(2, 2) && g.stride == Pair(2, 2) && g.padding == Pair(0, 0)
}

simd_fn! {
    /// [`max_pool2d_backward_plane`] for a 2x2 stride-2 unpadded window, *overwriting* `gx`
    /// (`height x width`, every element written, so the caller need not zero it). Windows
    /// do not overlap, so each input gets its window's gradient or zero; the first maximum
    /// (row-major) wins ties, as in the general kernel. Branch-free per window, so the
    /// loop vectorises for the level.
    pub fn max_pool2d_backward_2x2_plane(
        x: &[f32],
        y: &[f32],
        gy: &[f32],
        height: usize,
        width: usize,
        relu: bool,
        gx: &mut [f32],
    ) {
        let (w, ho, wo) = (width, height / 2, width / 2);
        assert!(
            x.len() >= height * w
                && gx.len() >= height * w
                && y.len() >= ho * wo
                && gy.len() >= ho * wo,
            "max_pool2d_backward_2x2_plane: slices too short"
        );
        for oy in 0..ho {
            let (r0, r1) = (&x[2 * oy * w..][..2 * wo], &x[(2 * oy + 1) * w..][..2 * wo]);
            let (g0, g1) = gx[2 * oy * w..(2 * oy + 2) * w].split_at_mut(w);
            let (ys, gys) = (&y[oy * wo..][..wo], &gy[oy * wo..][..wo]);
            // An index loop over exact-length rows: the compiler proves every access in
            // bounds and vectorises the stride-2 loads and stores for the level.
            let (g0w, g1w) = (&mut g0[..2 * wo], &mut g1[..2 * wo]);
            for k in 0..wo {
                let (ga, gb, gc, gd) = backward_2x2_one(
                    [r0[2 * k], r0[2 * k + 1], r1[2 * k], r1[2 * k + 1]],
                    ys[k],
                    gys[k],
                    relu,
                );
                g0w[2 * k] = ga;
                g0w[2 * k + 1] = gb;
                g1w[2 * k] = gc;
                g1w[2 * k + 1] = gd;
            }
            // An odd last column is in no window.
            g0[2 * wo..].fill(0.0);
            g1[2 * wo..].fill(0.0);
        }
        gx[2 * ho * w..height * w].fill(0.0);
    }
}

/// The gradient of one 2x2 window `[a, b, c, d]` (row-major) with maximum `m`: `g` to the
/// first input equal to `m`, zero to the others. Branch-free (`&`, `|` on the tests).
#[inline(always)]
fn backward_2x2_one([a, b, c, d]: [f32; 4], m: f32, g: f32, relu: bool) -> (f32, f32, f32, f32) {
    // A fused ReLU clamps y at 0; its derivative is 0 there.
    let g = if relu & (m <= 0.0) { 0.0 } else { g };
    let (ta, tb, tc, td) = (a == m, b == m, c == m, d == m);
    let pick = |t: bool| if t { g } else { 0.0 };
    (
        pick(ta),
        pick(tb & !ta),
        pick(tc & !(ta | tb)),
        pick(td & !(ta | tb | tc)),
    )
}

fn avg_divisor(g: &PoolGeometry, count_include_pad: bool, oy: usize, ox: usize) -> f32 {
    let (y0, y1, ph) = g.rows(oy);
    let (x0, x1, pw) = g.cols(ox);
    let n = if count_include_pad {
        ph * pw
    } else {
        (y1 - y0) * (x1 - x0)
    };
    n.max(1) as f32
}

simd_fn! {
    /// Average pooling of one plane (PyTorch semantics for `count_include_pad`).
    pub fn avg_pool2d_plane(x: &[f32], g: &PoolGeometry, count_include_pad: bool, y: &mut [f32]) {
        let (w, ho, wo) = (g.width, g.out_h(), g.out_w());
        assert!(
            x.len() >= g.height * w && y.len() >= ho * wo,
            "avg_pool2d_plane: slices too short"
        );
        for oy in 0..ho {
            let out = &mut y[oy * wo..(oy + 1) * wo];
            out.fill(0.0);
            fold_row_windows(x, g, oy, out, simd::add_assign, |o, v| *o += v);
            for (ox, o) in out.iter_mut().enumerate() {
                *o /= avg_divisor(g, count_include_pad, oy, ox);
            }
        }
    }
}

simd_fn! {
    /// Average pooling backward for one plane; `gx` is accumulated into. `scaled` is a
    /// scratch row of at least `out_w` elements.
    pub fn avg_pool2d_backward_plane(
        gy: &[f32],
        g: &PoolGeometry,
        count_include_pad: bool,
        scaled: &mut [f32],
        gx: &mut [f32],
    ) {
        let (w, ho, wo) = (g.width, g.out_h(), g.out_w());
        for oy in 0..ho {
            let row = &mut scaled[..wo];
            for (ox, r) in row.iter_mut().enumerate() {
                *r = gy[oy * wo + ox] / avg_divisor(g, count_include_pad, oy, ox);
            }
            let (y0, y1, _) = g.rows(oy);
            for iy in y0..y1 {
                let dst = &mut gx[iy * w..(iy + 1) * w];
                for kx in 0..g.kernel.1 {
                    let (lo, hi) = valid_range(w, wo, g.stride.1, kx, g.padding.1);
                    if hi <= lo {
                        continue;
                    }
                    let x0 = lo * g.stride.1 + kx - g.padding.1;
                    if g.stride.1 == 1 {
                        simd::add_assign(&mut dst[x0..x0 + hi - lo], &row[lo..hi]);
                    } else {
                        for (j, &r) in row[lo..hi].iter().enumerate() {
                            dst[x0 + j * g.stride.1] += r;
                        }
                    }
                }
            }
        }
    }
}

//! Reference convolution forward and backward (f64): obvious loops, the tests' oracle.
//!
//! Layouts as in PyTorch: input NCHW, weight OIHW `[out, in/groups, kh, kw]`.

use crate::conv::ConvGeometry;

/// Gradients of `sum(output * grad_output)` with respect to the convolution's operands.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvGrads {
    /// dL/dinput, NCHW.
    pub input: Vec<f64>,
    /// dL/dweight, OIHW.
    pub weight: Vec<f64>,
    /// dL/dbias, one per output channel.
    pub bias: Vec<f64>,
}

/// Calls `f(out_index, in_index, weight_index)` for every product the convolution sums.
fn for_each_product(g: &ConvGeometry, mut f: impl FnMut(usize, usize, usize)) {
    let (ho, wo) = (g.out_h(), g.out_w());
    let (cig, cog) = (g.in_per_group(), g.out_per_group());
    let (kh, kw) = (g.kernel.0, g.kernel.1);
    for n in 0..g.batch {
        for co in 0..g.out_channels {
            let group = co / cog;
            for oy in 0..ho {
                for ox in 0..wo {
                    let o = ((n * g.out_channels + co) * ho + oy) * wo + ox;
                    for cl in 0..cig {
                        let ci = group * cig + cl;
                        for ky in 0..kh {
                            let iy = (oy * g.stride.0 + ky * g.dilation.0) as isize
                                - g.padding.0 as isize;
                            if iy < 0 || iy >= g.height as isize {
                                continue;
                            }
                            for kx in 0..kw {
                                let ix = (ox * g.stride.1 + kx * g.dilation.1) as isize
                                    - g.padding.1 as isize;
                                if ix < 0 || ix >= g.width as isize {
                                    continue;
                                }
                                let i = ((n * g.in_channels + ci) * g.height + iy as usize)
                                    * g.width
                                    + ix as usize;
                                let wi = ((co * cig + cl) * kh + ky) * kw + kx;
                                f(o, i, wi);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The convolution's output (NCHW) for input `x`, weight `w` and optional bias `b`.
pub fn conv2d_forward(g: &ConvGeometry, x: &[f64], w: &[f64], b: Option<&[f64]>) -> Vec<f64> {
    let (ho, wo) = (g.out_h(), g.out_w());
    let mut y = vec![0.0; g.batch * g.out_channels * ho * wo];
    if let Some(b) = b {
        for (k, v) in y.iter_mut().enumerate() {
            *v = b[(k / (ho * wo)) % g.out_channels];
        }
    }
    for_each_product(g, |o, i, wi| y[o] += x[i] * w[wi]);
    y
}

/// Gradients of `sum(conv(x, w) * gy)` with respect to input, weight and bias.
pub fn conv2d_backward(g: &ConvGeometry, x: &[f64], w: &[f64], gy: &[f64]) -> ConvGrads {
    let (ho, wo) = (g.out_h(), g.out_w());
    let mut gx = vec![0.0; x.len()];
    let mut gw = vec![0.0; w.len()];
    let mut gb = vec![0.0; g.out_channels];
    for_each_product(g, |o, i, wi| {
        gx[i] += gy[o] * w[wi];
        gw[wi] += gy[o] * x[i];
    });
    for (k, v) in gy.iter().enumerate() {
        gb[(k / (ho * wo)) % g.out_channels] += v;
    }
    ConvGrads {
        input: gx,
        weight: gw,
        bias: gb,
    }
}

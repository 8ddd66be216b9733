//! Reference pooling forward and backward (f64): obvious loops, the tests' oracle.

use crate::pool::PoolGeometry;

/// Calls `f(out_index, window)` for every output, where `window` lists the flat input
/// indices inside the window (padding excluded) and the padded window size.
fn for_each_window(g: &PoolGeometry, mut f: impl FnMut(usize, &[usize], usize)) {
    let (ho, wo) = (g.out_h(), g.out_w());
    let mut idx = Vec::new();
    for nc in 0..g.batch * g.channels {
        for oy in 0..ho {
            for ox in 0..wo {
                idx.clear();
                let y0 = (oy * g.stride.0) as isize - g.padding.0 as isize;
                let x0 = (ox * g.stride.1) as isize - g.padding.1 as isize;
                // PyTorch's padded window: clipped to the padded input, not to the kernel.
                let y1 = (y0 + g.kernel.0 as isize).min((g.height + g.padding.0) as isize);
                let x1 = (x0 + g.kernel.1 as isize).min((g.width + g.padding.1) as isize);
                let padded = ((y1 - y0) * (x1 - x0)) as usize;
                for iy in y0..y1 {
                    for ix in x0..x1 {
                        if iy >= 0 && ix >= 0 && iy < g.height as isize && ix < g.width as isize {
                            idx.push((nc * g.height + iy as usize) * g.width + ix as usize);
                        }
                    }
                }
                f((nc * ho + oy) * wo + ox, &idx, padded);
            }
        }
    }
}

/// The first largest input of a window (row-major order), or `None` if it has no input.
fn argmax(x: &[f64], window: &[usize]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for &i in window {
        if best.is_none_or(|b| x[i] > x[b]) {
            best = Some(i);
        }
    }
    best
}

/// Max pooling forward; padding counts as `-inf`.
pub fn max_pool2d_forward(g: &PoolGeometry, x: &[f64]) -> Vec<f64> {
    let mut y = vec![f64::NEG_INFINITY; g.batch * g.channels * g.out_h() * g.out_w()];
    for_each_window(g, |o, win, _| {
        if let Some(i) = argmax(x, win) {
            y[o] = x[i];
        }
    });
    y
}

/// Max pooling backward: each output's gradient goes to its window's (first) maximum.
pub fn max_pool2d_backward(g: &PoolGeometry, x: &[f64], gy: &[f64]) -> Vec<f64> {
    let mut gx = vec![0.0; x.len()];
    for_each_window(g, |o, win, _| {
        if let Some(i) = argmax(x, win) {
            gx[i] += gy[o];
        }
    });
    gx
}

fn divisor(win: &[usize], padded: usize, count_include_pad: bool) -> f64 {
    if count_include_pad {
        padded as f64
    } else {
        win.len().max(1) as f64
    }
}

/// Average pooling forward: divides by the window clipped to the padded input when
/// `count_include_pad`, else by the number of real inputs in it (PyTorch semantics).
pub fn avg_pool2d_forward(g: &PoolGeometry, count_include_pad: bool, x: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; g.batch * g.channels * g.out_h() * g.out_w()];
    for_each_window(g, |o, win, padded| {
        y[o] = win.iter().map(|&i| x[i]).sum::<f64>() / divisor(win, padded, count_include_pad);
    });
    y
}

/// Average pooling backward.
pub fn avg_pool2d_backward(g: &PoolGeometry, count_include_pad: bool, gy: &[f64]) -> Vec<f64> {
    let mut gx = vec![0.0; g.batch * g.channels * g.height * g.width];
    for_each_window(g, |o, win, padded| {
        let d = divisor(win, padded, count_include_pad);
        for &i in win {
            gx[i] += gy[o] / d;
        }
    });
    gx
}

/// Global average pooling forward: one mean per (image, channel) plane of `plane` elements.
pub fn global_avg_pool_forward(plane: usize, x: &[f64]) -> Vec<f64> {
    x.chunks(plane.max(1))
        .map(|p| p.iter().sum::<f64>() / plane as f64)
        .collect()
}

/// Global average pooling backward: each plane element gets its plane's gradient / plane.
pub fn global_avg_pool_backward(plane: usize, gy: &[f64]) -> Vec<f64> {
    gy.iter()
        .flat_map(|&d| std::iter::repeat_n(d / plane as f64, plane))
        .collect()
}

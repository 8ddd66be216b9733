//! `Conv2d` backward over a batch: parameter gradients as per-chunk partial sums reduced at
//! the end (no two threads write the same memory), input gradients per image.

use ember_tensor::gemm::Op;
use ember_tensor::{Shape, Tensor, simd};
use rayon::prelude::*;

use super::direct::{
    conv2d_direct_3x3, conv2d_direct_3x3_weight_grad, direct_3x3_scratch_len,
    direct_3x3_weight_grad_scratch_len, pack_3x3_weights_adjoint, packed_3x3_len,
    weight_grad_images,
};
use super::layer::{Scratch, for_positions, grow, is_pointwise, mm, winograd_images};
use super::panel_gemm::{gemm_nt_acc, pack_transposed, panel_gemm, panel_len, transposed_len};
use super::winograd::{
    WINOGRAD_POSITIONS, WinogradTiles, winograd_grad_output, winograd_input, winograd_input_grad,
    winograd_len, winograd_plane, winograd_weight_grad, winograd_weights, winograd_weights_len,
};
use super::{Conv2d, ConvAlgorithm, col2im, im2col};
use crate::{Layer, Pair};

/// Largest `cout * cin` for which the Winograd weight gradient uses the panel kernel;
/// above it each pass's read-modify-write of the 16 `cout x cin` sums costs more than
/// a general GEMM's packing. Measured (1 thread, CPU time, weight gradient alone): panel
/// 107-148 GFLOP/s against 74-134 up to 128 x 128 channels, 121 against 132-139 at 256 x 256.
const WGRAD_PANEL_MAX: usize = 128 * 128;

pub(super) fn backward(conv: &mut Conv2d, x: &Tensor, grad_out: &Tensor, need_input_grad: bool) {
    let g = conv.geometry_for(x.shape());
    let (n, ho, wo) = (g.batch, g.out_h(), g.out_w());
    let want = Shape::from([n, conv.out_channels, ho, wo]);
    assert!(
        grad_out.shape() == want,
        "{}: grad_out has shape {}, the output of input {} has shape {want}",
        conv.describe(),
        grad_out.shape(),
        x.shape()
    );
    if conv.relu {
        assert!(
            conv.out.shape() == want,
            "{}: backward with fused ReLU needs the forward output of the same input",
            conv.describe()
        );
    }
    if need_input_grad {
        conv.grad_in.resize_for(x.shape());
    } else {
        conv.grad_in.resize_for([0]);
    }
    if n == 0 {
        return;
    }
    // The input gradient follows the forward pass's algorithm; the weight gradient has its own.
    let gx_is = |a: ConvAlgorithm| need_input_grad && conv.algorithm.choose(&g) == a;
    let w_is = |a: ConvAlgorithm| conv.algorithm.choose_weight_grad(&g) == a;
    let (wino_gx, direct_gx, im2col_gx) = (
        gx_is(ConvAlgorithm::Winograd),
        gx_is(ConvAlgorithm::Direct3x3),
        gx_is(ConvAlgorithm::Im2colGemm),
    );
    let (wino_w, direct_w, im2col_w) = (
        w_is(ConvAlgorithm::Winograd),
        w_is(ConvAlgorithm::Direct3x3),
        w_is(ConvAlgorithm::Im2colGemm),
    );
    let ulen = winograd_len(g.out_channels * g.in_channels);
    let tiles = WinogradTiles::new(g.height, g.width, g.padding);
    if wino_gx {
        let (cout, cin) = (g.out_channels, g.in_channels);
        let u = grow(&mut conv.packed, winograd_weights_len(cout, cin, true));
        winograd_weights(conv.weight.value.data(), cout, cin, true, u);
    }
    if direct_gx {
        let len = packed_3x3_len(g.in_channels, g.out_channels);
        pack_3x3_weights_adjoint(
            conv.weight.value.data(),
            g.out_channels,
            g.in_channels,
            grow(&mut conv.packed, len),
        );
    }
    let (chunk, nchunks) = Conv2d::chunks(n);
    if conv.scratch.len() < nchunks {
        conv.scratch.resize_with(nchunks, Scratch::default);
    }
    let par = nchunks == 1 && rayon::current_num_threads() > 1;
    let (p, cig, cog, kl) = (ho * wo, g.in_per_group(), g.out_per_group(), g.kernel_len());
    let (in_item, out_item, plane) = (g.in_item(), g.out_item(), g.height * g.width);
    let (xs, gys, w) = (x.data(), grad_out.data(), conv.weight.value.data());
    let out = conv.out.data();
    let (relu, packed) = (conv.relu, &conv.packed[..]);
    let wlen = conv.weight.value.len();
    // Images per weight-gradient call (one unless the direct kernel takes several).
    let group_len = match tiles {
        _ if direct_w => weight_grad_images(g.height, g.width, g.padding),
        Some(t) if wino_w || wino_gx => winograd_images(&t),
        _ => 1,
    };
    let body = |c: usize, gx_part: &mut [f32], s: &mut Scratch| {
        let Scratch {
            cols,
            grad_cols,
            padded,
            masked,
            wgrad,
            grad_weight,
            grad_bias,
            packed_b,
        } = s;
        // The chunk's weight-gradient sums: transformed for Winograd, OIHW for the others.
        let (gw_len, du_len) = if wino_w { (0, ulen) } else { (wlen, 0) };
        let gw = grow(grad_weight, gw_len);
        gw.fill(0.0);
        grow(wgrad, du_len).fill(0.0);
        let gb = grow(grad_bias, g.out_channels);
        gb.fill(0.0);
        let first = c * chunk;
        let count = chunk.min(n - first);
        for group in (0..count).step_by(group_len) {
            let gn = group_len.min(count - group);
            let (img0, range) = (
                first + group,
                (first + group) * out_item..(first + group + gn) * out_item,
            );
            let mut gys_group = &gys[range.clone()];
            if relu {
                let m = grow(masked, gn * out_item);
                simd::relu_backward(&out[range], gys_group, m);
                gys_group = m;
            }
            if let Some(tiles) = tiles.filter(|_| wino_w || wino_gx) {
                let (cin, cout) = (g.in_channels, g.out_channels);
                let (t, cols_used) = (tiles.columns(gn), gn * tiles.per_image());
                let dm = grow(grad_cols, winograd_len(cout * t));
                let scratch = grow(padded, tiles.scratch_len());
                winograd_grad_output(gys_group, gn, cout, &tiles, scratch, dm);
                let v = grow(cols, winograd_len(cin * t));
                let (pm, pv) = (winograd_plane(cout * t), winograd_plane(cin * t));
                if wino_w {
                    winograd_input(&xs[img0 * in_item..], gn, cin, &tiles, v, scratch);
                    // dU[pos] += dM[pos] V[pos]^T, summed over this group's tiles.
                    let du = &mut wgrad[..ulen];
                    let du_plane = winograd_plane(cout * cin);
                    if cout * cin > WGRAD_PANEL_MAX {
                        for_positions(par, du, du_plane, |p, du| {
                            let (dmp, vp) = (&dm[p * pm..], &v[p * pv..]);
                            mm(
                                false,
                                Op::N,
                                Op::T,
                                cout,
                                cin,
                                cols_used,
                                dmp,
                                t,
                                vp,
                                t,
                                1.0,
                                du,
                                cin,
                            );
                        });
                    } else {
                        let btl = transposed_len(cin, cols_used);
                        let bt = grow(packed_b, WINOGRAD_POSITIONS * btl);
                        for (p, btp) in bt.chunks_exact_mut(btl).enumerate() {
                            pack_transposed(&v[p * pv..], cin, cols_used, t, btp);
                        }
                        for_positions(par, du, du_plane, |p, du| {
                            let (dmp, btp) = (&dm[p * pm..], &bt[p * btl..]);
                            gemm_nt_acc(cout, cin, cols_used, dmp, t, btp, du, cin);
                        });
                    }
                }
                if wino_gx {
                    // dV[pos] = U[pos]^T dM[pos] (into V: the weight gradient is done with it).
                    let pu = winograd_plane(panel_len(cin, cout));
                    for_positions(par, v, pv, |p, dvp| {
                        let (up, dmp) = (&packed[p * pu..], &dm[p * pm..]);
                        panel_gemm(cin, cols_used, cout, up, dmp, t, dvp, t);
                    });
                    let gxg = &mut gx_part[group * in_item..(group + gn) * in_item];
                    winograd_input_grad(v, gn, cin, &tiles, scratch, gxg);
                }
            }
            if direct_w {
                let (cin, cout) = (g.in_channels, g.out_channels);
                let sl =
                    direct_3x3_weight_grad_scratch_len(gn, cin, cout, g.height, g.width, g.padding);
                let ws = grow(wgrad, sl);
                let xg = &xs[img0 * in_item..(img0 + gn) * in_item];
                conv2d_direct_3x3_weight_grad(
                    xg, gn, cin, g.height, g.width, g.padding, gys_group, cout, ws, gw,
                );
            }
            for k in 0..gn {
                let (i, img) = (group + k, img0 + k);
                let xi = &xs[img * in_item..][..in_item];
                let gy = &gys_group[k * out_item..][..out_item];
                for (co, row) in gy.chunks_exact(p).enumerate() {
                    gb[co] += simd::sum(row);
                }
                for gi in (0..g.groups).filter(|_| im2col_w || im2col_gx) {
                    let gyg = &gy[gi * cog * p..(gi + 1) * cog * p];
                    if im2col_w {
                        let xg = &xi[gi * cig * plane..(gi + 1) * cig * plane];
                        let b: &[f32] = if is_pointwise(&g) {
                            xg
                        } else {
                            let cl = grow(cols, kl * p);
                            im2col(xg, cig, &g, cl);
                            cl
                        };
                        let gwg = &mut gw[gi * cog * kl..(gi + 1) * cog * kl];
                        mm(par, Op::N, Op::T, cog, kl, p, gyg, p, b, p, 1.0, gwg, kl);
                    }
                    if im2col_gx {
                        let gxi = &mut gx_part[i * in_item..(i + 1) * in_item];
                        let gxg = &mut gxi[gi * cig * plane..(gi + 1) * cig * plane];
                        let wg = &w[gi * cog * kl..];
                        if is_pointwise(&g) {
                            mm(par, Op::T, Op::N, cig, p, cog, wg, kl, gyg, p, 0.0, gxg, p);
                        } else {
                            let gc = grow(grad_cols, kl * p);
                            mm(par, Op::T, Op::N, kl, p, cog, wg, kl, gyg, p, 0.0, gc, p);
                            gxg.fill(0.0);
                            col2im(gc, cig, &g, gxg);
                        }
                    }
                }
                if direct_gx {
                    let gxi = &mut gx_part[i * in_item..(i + 1) * in_item];
                    let pad = Pair(2 - g.padding.0, 2 - g.padding.1);
                    let sl = direct_3x3_scratch_len(g.out_channels, ho, wo, pad);
                    let scratch = grow(padded, sl);
                    conv2d_direct_3x3(
                        gy,
                        g.out_channels,
                        ho,
                        wo,
                        pad,
                        packed,
                        g.in_channels,
                        None,
                        false,
                        scratch,
                        gxi,
                    );
                }
            }
        }
    };
    // Each chunk gets its slice of the input gradient (empty when it is not wanted).
    if need_input_grad {
        conv.grad_in
            .data_mut()
            .par_chunks_mut(chunk * in_item)
            .zip(conv.scratch.par_iter_mut())
            .enumerate()
            .for_each(|(c, (gx, s))| body(c, gx, s));
    } else {
        conv.scratch[..nchunks]
            .par_iter_mut()
            .enumerate()
            .for_each(|(c, s)| body(c, &mut [], s));
    }
    // Reduce the per-chunk partial sums: no two threads wrote the same memory. Winograd's
    // weight gradients are summed in the transformed domain and transformed back once.
    if wino_w {
        let (first, rest) = conv.scratch[..nchunks].split_at_mut(1);
        let du = &mut first[0].wgrad[..ulen];
        for s in rest.iter() {
            simd::add_assign(du, &s.wgrad[..ulen]);
        }
        let gw = conv.weight.grad.data_mut();
        winograd_weight_grad(du, g.out_channels, g.in_channels, gw);
    }
    for s in &conv.scratch[..nchunks] {
        if !wino_w {
            simd::add_assign(conv.weight.grad.data_mut(), &s.grad_weight[..wlen]);
        }
        if let Some(b) = conv.bias.as_mut() {
            simd::add_assign(b.grad.data_mut(), &s.grad_bias[..g.out_channels]);
        }
    }
}

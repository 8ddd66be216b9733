//! The Winograd transforms, each against its adjoint: `<T a, b> = <a, T* b>` for random
//! `a`, `b`, over odd sizes and paddings (the backward pass is only right if these pairs are
//! adjoint).

use super::*;
use crate::Pair;
use crate::conv::epilogue::Epilogue;
use crate::conv::panel_gemm::{panel_index, panel_len};
use proptest::prelude::*;

fn randv(n: usize, rng: &mut ember_tensor::Rng) -> Vec<f32> {
    (0..n).map(|_| rng.normal()).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// `v`'s entries for tile columns that hold no tile, zeroed (they are padding).
fn zero_unused(v: &mut [f32], rows: usize, tiles: &WinogradTiles, images: usize) {
    let t = tiles.columns(images);
    let ps = winograd_plane(rows * t);
    let used = images * tiles.per_image();
    for (i, x) in v.iter_mut().enumerate() {
        let in_plane = i % ps;
        if i / ps >= tiles.tile.positions() || in_plane >= rows * t || in_plane % t >= used {
            *x = 0.0;
        }
    }
}

fn any_tile() -> impl Strategy<Value = WinogradTile> {
    prop_oneof![Just(WinogradTile::F2), Just(WinogradTile::F4)]
}

/// The tiles of an odd-sized, padded plane (sizes 1 to 13, padding 0 to 3, where they tile)
/// for either variant, with 1 to 3 images and 1 to 3 channels.
fn tiled() -> impl Strategy<Value = (WinogradTiles, usize, usize)> {
    (
        any_tile(),
        1usize..=13,
        1usize..=13,
        0usize..=3,
        0usize..=3,
        1usize..=3,
        1usize..=3,
    )
        .prop_filter_map("no tiling", |(tile, h, w, ph, pw, images, channels)| {
            WinogradTiles::with_tile(tile, h, w, Pair(ph, pw)).map(|t| (t, images, channels))
        })
}

fn close(a: f64, b: f64, scale: f64) -> bool {
    (a - b).abs() <= 1e-4 * (1.0 + scale)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn input_transform_and_input_grad_are_adjoint((tiles, images, cin) in tiled(), seed in any::<u64>()) {
        let (h, w) = (tiles.h, tiles.w);
        let mut rng = ember_tensor::Rng::new(seed);
        let x = randv(images * cin * h * w, &mut rng);
        let len = tiles.buffer_len(cin, images);
        let mut dv = randv(len, &mut rng);
        zero_unused(&mut dv, cin, &tiles, images);
        let mut scratch = vec![0.0; tiles.scratch_len(images)];
        let mut v = vec![0.0; len];
        winograd_input(&x, images, cin, &tiles, &mut v, &mut scratch);
        let mut gx = vec![f32::NAN; x.len()];
        winograd_input_grad(&dv, images, cin, &tiles, &mut scratch, &mut gx);
        let (lhs, rhs) = (dot(&v, &dv), dot(&x, &gx));
        prop_assert!(close(lhs, rhs, dot(&v, &v).sqrt() * dot(&dv, &dv).sqrt()), "{lhs} vs {rhs}");
    }

    #[test]
    fn output_transform_and_grad_output_are_adjoint((tiles, images, cout) in tiled(), seed in any::<u64>()) {
        let mut rng = ember_tensor::Rng::new(seed);
        let len = tiles.buffer_len(cout, images);
        let mut m = randv(len, &mut rng);
        zero_unused(&mut m, cout, &tiles, images);
        let dy = randv(images * cout * tiles.ho * tiles.wo, &mut rng);
        let mut scratch = vec![0.0; tiles.scratch_len(images)];
        let mut y = vec![f32::NAN; dy.len()];
        winograd_output(&m, images, cout, &tiles, Epilogue::NONE, &mut scratch, &mut y);
        let mut dm = vec![0.0; len];
        winograd_grad_output(&dy, images, cout, &tiles, &mut scratch, &mut dm);
        zero_unused(&mut dm, cout, &tiles, images);
        let (lhs, rhs) = (dot(&y, &dy), dot(&m, &dm));
        prop_assert!(close(lhs, rhs, dot(&m, &m).sqrt() * dot(&dy, &dy).sqrt()), "{lhs} vs {rhs}");
    }

    #[test]
    fn weight_transform_and_weight_grad_are_adjoint(
        tile in any_tile(), cout in 1usize..=8, cin in 1usize..=8, seed in any::<u64>(),
    ) {
        let mut rng = ember_tensor::Rng::new(seed);
        let g = randv(cout * cin * 9, &mut rng);
        let du = randv(tile.buffer_len(cout * cin), &mut rng);
        let mut u = vec![0.0; winograd_weights_len(tile, cout, cin, false)];
        winograd_weights(tile, &g, cout, cin, false, &mut u);
        // U is packed in panels; read it back as [positions][cout][cin] like dU.
        let (pu, pd) = (winograd_plane(panel_len(cout, cin)), winograd_plane(cout * cin));
        let mut lhs = 0.0;
        for p in 0..tile.positions() {
            for co in 0..cout {
                for ci in 0..cin {
                    let at = panel_index(co, ci, cin);
                    lhs += u[p * pu + at] as f64 * du[p * pd + co * cin + ci] as f64;
                }
            }
        }
        let mut gw = vec![0.0; g.len()];
        winograd_weight_grad(tile, &du, cout, cin, &mut gw);
        let rhs = dot(&g, &gw);
        prop_assert!(close(lhs, rhs, dot(&g, &g).sqrt() * dot(&du, &du).sqrt()), "{lhs} vs {rhs}");
    }
}

//! Short copies the kernels make: rows of an image, the valid lanes of a vector.

/// `dst.copy_from_slice(src)` for the short rows of these kernels (a row of an image, the
/// valid lanes of a vector) in fixed-size pieces, which compile to plain moves: a `memcpy`
/// call per row of 6 to 28 floats cost more than the copy. Panics if the lengths differ.
#[inline(always)]
pub(crate) fn copy_short(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len(), "copy_short: lengths differ");
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d8, s8) in (&mut d).zip(&mut s) {
        <&mut [f32; 8]>::try_from(d8)
            .expect("chunk of 8")
            .copy_from_slice(s8);
    }
    let (mut d, mut s) = (d.into_remainder(), s.remainder());
    for piece in [4, 2, 1] {
        if d.len() >= piece {
            let (dh, dt) = d.split_at_mut(piece);
            let (sh, st) = s.split_at(piece);
            match piece {
                4 => <&mut [f32; 4]>::try_from(dh)
                    .expect("4")
                    .copy_from_slice(sh),
                2 => <&mut [f32; 2]>::try_from(dh)
                    .expect("2")
                    .copy_from_slice(sh),
                _ => dh[0] = sh[0],
            }
            (d, s) = (dt, st);
        }
    }
}

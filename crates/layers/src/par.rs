//! Splitting element-wise work over rayon's threads in cache-sized chunks.

use rayon::prelude::*;

/// Elements per task: large enough that scheduling costs nothing, small enough to stay
/// in L2 and to spread a mid-sized activation over both cores.
const CHUNK: usize = 1 << 14;

/// `f(x_chunk, out_chunk)` over matching chunks, in parallel when there is enough work.
pub(crate) fn unary(x: &[f32], out: &mut [f32], f: impl Fn(&[f32], &mut [f32]) + Sync) {
    assert_eq!(
        x.len(),
        out.len(),
        "element-wise input and output lengths differ"
    );
    if out.len() <= CHUNK {
        f(x, out);
    } else {
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(o, x)| f(x, o));
    }
}

/// `f(a_chunk, b_chunk, out_chunk)` over matching chunks, in parallel when there is enough work.
pub(crate) fn binary(
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    f: impl Fn(&[f32], &[f32], &mut [f32]) + Sync,
) {
    assert_eq!(
        a.len(),
        out.len(),
        "element-wise input and output lengths differ"
    );
    assert_eq!(
        b.len(),
        out.len(),
        "element-wise input and output lengths differ"
    );
    if out.len() <= CHUNK {
        f(a, b, out);
    } else {
        out.par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
            .for_each(|(o, (a, b))| f(a, b, o));
    }
}

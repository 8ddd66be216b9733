//! What every convolution algorithm does to its output last: add the bias, then the fused
//! ReLU if the layer has one. One definition, used per element, per vector and per row.

use ember_tensor::simd::Simd;

/// The bias and fused ReLU applied to a convolution's output: `relu(y + bias[co])`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    /// One value per output channel, or none.
    pub bias: Option<&'a [f32]>,
    /// Whether a ReLU follows.
    pub relu: bool,
}

/// The epilogue of one output channel.
#[derive(Clone, Copy, Debug)]
pub(super) struct ChannelEpilogue {
    add: f32,
    relu: bool,
}

impl Epilogue<'_> {
    /// Nothing: the plain convolution.
    pub const NONE: Epilogue<'static> = Epilogue {
        bias: None,
        relu: false,
    };

    /// The epilogue of output channel `co`.
    #[inline(always)]
    pub(super) fn channel(&self, co: usize) -> ChannelEpilogue {
        ChannelEpilogue {
            add: self.bias.map_or(0.0, |b| b[co]),
            relu: self.relu,
        }
    }

    /// Applies to an output image `[cout, plane]` in place.
    pub(super) fn apply_rows(&self, y: &mut [f32], plane: usize) {
        for (co, row) in y.chunks_exact_mut(plane.max(1)).enumerate() {
            let e = self.channel(co);
            if e.relu || e.add != 0.0 {
                row.iter_mut().for_each(|v| *v = e.apply(*v));
            }
        }
    }
}

impl ChannelEpilogue {
    /// `relu(v + bias)` (or `v + bias`).
    #[inline(always)]
    pub(super) fn apply(self, v: f32) -> f32 {
        let v = v + self.add;
        if self.relu { v.max(0.0) } else { v }
    }

    /// [`apply`](Self::apply) lane by lane.
    #[inline(always)]
    pub(super) fn apply_vec<S: Simd>(self, s: S, v: S::V) -> S::V {
        let v = s.add(v, s.splat(self.add));
        if self.relu { s.max(v, s.zero()) } else { v }
    }
}

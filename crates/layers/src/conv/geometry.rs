//! The sizes of one convolution: input, kernel, stride, padding, dilation, groups.

use crate::{LayerError, Pair};

/// Everything that fixes the shapes of a 2-D convolution over an NCHW batch.
///
/// Output size per side: `floor((in + 2p - d(k-1) - 1) / s) + 1` (PyTorch, no ceil mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels (all groups).
    pub in_channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Output channels (all groups).
    pub out_channels: usize,
    /// Kernel `(kh, kw)`.
    pub kernel: Pair,
    /// Stride `(sh, sw)`.
    pub stride: Pair,
    /// Zero padding on each side `(ph, pw)`.
    pub padding: Pair,
    /// Dilation `(dh, dw)`.
    pub dilation: Pair,
    /// Channel groups: `in_channels` and `out_channels` are both split into this many.
    pub groups: usize,
}

/// Output length of one side, or `None` when the (dilated) kernel does not fit.
pub fn out_len(
    input: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    dil: usize,
) -> Option<usize> {
    let span = dil.checked_mul(kernel.checked_sub(1)?)?.checked_add(1)?;
    let padded = input.checked_add(2usize.checked_mul(pad)?)?;
    if stride == 0 || padded < span {
        return None;
    }
    Some((padded - span) / stride + 1)
}

impl ConvGeometry {
    /// Checks that the sizes describe a convolution that can run, naming the problem if not.
    pub fn validate(&self) -> Result<(), LayerError> {
        let bad = |m: String| Err(LayerError(format!("Conv2d: {m}")));
        if self.groups == 0 {
            return bad("groups must be at least 1".into());
        }
        if self.in_channels == 0 || self.out_channels == 0 {
            return bad(format!(
                "channels must be positive (in {}, out {})",
                self.in_channels, self.out_channels
            ));
        }
        if !self.in_channels.is_multiple_of(self.groups)
            || !self.out_channels.is_multiple_of(self.groups)
        {
            return bad(format!(
                "groups {} must divide in_channels {} and out_channels {}",
                self.groups, self.in_channels, self.out_channels
            ));
        }
        let Pair(kh, kw) = self.kernel;
        let Pair(sh, sw) = self.stride;
        let Pair(dh, dw) = self.dilation;
        if kh == 0 || kw == 0 || sh == 0 || sw == 0 || dh == 0 || dw == 0 {
            return bad(format!(
                "kernel {:?}, stride {:?} and dilation {:?} must be positive",
                self.kernel, self.stride, self.dilation
            ));
        }
        if self.out_h_checked().is_none() || self.out_w_checked().is_none() {
            return bad(format!(
                "input {}x{} with padding {:?} is smaller than the kernel {:?} dilated by {:?}",
                self.height, self.width, self.padding, self.kernel, self.dilation
            ));
        }
        Ok(())
    }

    fn out_h_checked(&self) -> Option<usize> {
        out_len(
            self.height,
            self.kernel.0,
            self.stride.0,
            self.padding.0,
            self.dilation.0,
        )
    }

    fn out_w_checked(&self) -> Option<usize> {
        out_len(
            self.width,
            self.kernel.1,
            self.stride.1,
            self.padding.1,
            self.dilation.1,
        )
    }

    /// Output height (0 if the kernel does not fit; call [`validate`](Self::validate) first).
    pub fn out_h(&self) -> usize {
        self.out_h_checked().unwrap_or(0)
    }

    /// Output width (0 if the kernel does not fit).
    pub fn out_w(&self) -> usize {
        self.out_w_checked().unwrap_or(0)
    }

    /// Input channels per group.
    pub fn in_per_group(&self) -> usize {
        self.in_channels / self.groups.max(1)
    }

    /// Output channels per group.
    pub fn out_per_group(&self) -> usize {
        self.out_channels / self.groups.max(1)
    }

    /// Weight elements per output channel: `in_per_group * kh * kw`.
    pub fn kernel_len(&self) -> usize {
        self.in_per_group() * self.kernel.0 * self.kernel.1
    }

    /// Elements of one input image.
    pub fn in_item(&self) -> usize {
        self.in_channels * self.height * self.width
    }

    /// Elements of one output image.
    pub fn out_item(&self) -> usize {
        self.out_channels * self.out_h() * self.out_w()
    }

    /// Forward multiply-adds times two for the whole batch.
    pub fn flops(&self) -> u64 {
        2 * (self.batch * self.out_item()) as u64 * self.kernel_len() as u64
    }
}

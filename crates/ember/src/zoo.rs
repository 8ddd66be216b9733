//! The model zoo: the reference networks of the benchmarks, as [`ModelSpec`]s.
//!
//! Layer order (and so parameter names such as `0.weight`, `7.bias`) matches the PyTorch
//! `nn.Sequential` definitions of the reference script, so weights move between the two.

use crate::spec::{ConvInit, LayerSpec, ModelSpec, Size};

/// Names of the zoo models.
pub const NAMES: &[&str] = &["fmnist-cnn", "cifar-cnn", "resnet9", "cifar-fast"];

/// The zoo model called `name`, or `None`.
pub fn get(name: &str) -> Option<ModelSpec> {
    match name {
        "fmnist-cnn" => Some(fmnist_cnn()),
        "cifar-cnn" => Some(cifar_cnn()),
        "resnet9" => Some(resnet9(10)),
        "cifar-fast" => Some(cifar_fast(10)),
        _ => None,
    }
}

fn conv3(out: usize, bias: bool) -> LayerSpec {
    LayerSpec::Conv2d {
        out,
        kernel: Size::One(3),
        stride: Size::One(1),
        padding: Size::One(1),
        dilation: Size::One(1),
        groups: 1,
        bias,
        init: ConvInit::Default,
    }
}

fn pool(k: usize) -> LayerSpec {
    LayerSpec::MaxPool2d {
        kernel: Size::One(k),
        stride: None,
        padding: Size::One(0),
    }
}

fn linear(out: usize, bias: bool) -> LayerSpec {
    LayerSpec::Linear { out, bias }
}

/// `[conv3x3 -> relu -> maxpool2] * widths -> flatten -> linear(hidden) -> relu -> linear(10)`.
fn simple_cnn(name: &str, input: [usize; 3], widths: &[usize], hidden: usize) -> ModelSpec {
    let mut layers = Vec::new();
    for &w in widths {
        layers.extend([conv3(w, true), LayerSpec::Relu, pool(2)]);
    }
    layers.extend([
        LayerSpec::Flatten,
        linear(hidden, true),
        LayerSpec::Relu,
        linear(10, true),
    ]);
    ModelSpec {
        name: Some(name.into()),
        input,
        layers,
        fixed: Vec::new(),
    }
}

/// `fmnist-cnn` (input 1x28x28): conv(1->32) relu pool, conv(32->64) relu pool,
/// flatten(3136), linear(128), relu, linear(10).
pub fn fmnist_cnn() -> ModelSpec {
    simple_cnn("fmnist-cnn", [1, 28, 28], &[32, 64], 128)
}

/// `cifar-cnn` (input 3x32x32): three conv-relu-pool stages (32, 64, 128 channels),
/// flatten(2048), linear(256), relu, linear(10).
pub fn cifar_cnn() -> ModelSpec {
    simple_cnn("cifar-cnn", [3, 32, 32], &[32, 64, 128], 256)
}

fn conv_bn(out: usize) -> [LayerSpec; 3] {
    [
        conv3(out, false),
        LayerSpec::BatchNorm2d {
            eps: 1e-5,
            momentum: 0.1,
        },
        LayerSpec::Relu,
    ]
}

/// The DAWNBench ResNet-9 for 3x32x32 inputs: prep conv-bn-relu (64); layer1 conv-bn-relu
/// (128) + maxpool + residual of two conv-bn-relu; layer2 conv-bn-relu (256) + maxpool;
/// layer3 conv-bn-relu (512) + maxpool + residual; maxpool 4, flatten, linear (no bias),
/// scale 0.125.
pub fn resnet9(classes: usize) -> ModelSpec {
    let residual = |w: usize| LayerSpec::Residual {
        block: conv_bn(w).into_iter().chain(conv_bn(w)).collect(),
        shortcut: None,
    };
    let mut layers = Vec::new();
    layers.extend(conv_bn(64));
    layers.extend(conv_bn(128));
    layers.push(pool(2));
    layers.push(residual(128));
    layers.extend(conv_bn(256));
    layers.push(pool(2));
    layers.extend(conv_bn(512));
    layers.push(pool(2));
    layers.push(residual(512));
    layers.extend([
        pool(4),
        LayerSpec::Flatten,
        linear(classes, false),
        LayerSpec::Scale { factor: 0.125 },
    ]);
    ModelSpec {
        name: Some("resnet9".into()),
        input: [3, 32, 32],
        layers,
        fixed: Vec::new(),
    }
}

/// The fast CIFAR-10 network (the plain conv-net of the fast-training recipes, 94% in about
/// ten epochs): a 2x2 whitening convolution (24 filters from the training images' patch
/// statistics, held fixed) and GELU, then three groups of conv (no bias, identity-started
/// channels) -> maxpool 2 -> batch norm -> GELU -> conv -> batch norm -> GELU with 64, 256
/// and 256 channels, a 3x3 max pool, a linear layer without bias, and logits scaled by 1/9.
/// The batch norms have no learned scale (their weights are held at 1) and fast running
/// statistics (momentum 0.4, eps 1e-12).
pub fn cifar_fast(classes: usize) -> ModelSpec {
    let conv =
        |out: usize, kernel: usize, padding: usize, bias: bool, init: ConvInit| LayerSpec::Conv2d {
            out,
            kernel: Size::One(kernel),
            stride: Size::One(1),
            padding: Size::One(padding),
            dilation: Size::One(1),
            groups: 1,
            bias,
            init,
        };
    let norm = || LayerSpec::BatchNorm2d {
        eps: 1e-12,
        momentum: 0.4,
    };
    let mut layers = vec![conv(24, 2, 0, true, ConvInit::Whiten), LayerSpec::Gelu];
    let mut fixed = vec!["0.weight".to_string()];
    for width in [64, 256, 256] {
        let at = layers.len();
        layers.extend([
            conv(width, 3, 1, false, ConvInit::Dirac),
            pool(2),
            norm(),
            LayerSpec::Gelu,
            conv(width, 3, 1, false, ConvInit::Dirac),
            norm(),
            LayerSpec::Gelu,
        ]);
        fixed.extend([at + 2, at + 5].map(|i| format!("{i}.weight")));
    }
    layers.extend([
        pool(3),
        LayerSpec::Flatten,
        linear(classes, false),
        LayerSpec::Scale { factor: 1.0 / 9.0 },
    ]);
    ModelSpec {
        name: Some("cifar-fast".into()),
        input: [3, 32, 32],
        layers,
        fixed,
    }
}

/// The five convbench shapes `(N, Cin, H, W, Cout)`, kernel 3, stride 1, padding 1: the
/// criterion conv bench, the layers' `conv_speed` test and the downstream check include this
/// file (benches/torch/reference.py has the same list for PyTorch).
const CONV_SHAPES: [(usize, usize, usize, usize, usize); 5] = [
    (64, 3, 32, 32, 32),
    (64, 32, 16, 16, 64),
    (64, 64, 8, 8, 128),
    (64, 128, 16, 16, 128),
    (64, 256, 8, 8, 256),
];

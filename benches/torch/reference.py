#!/usr/bin/env python3
"""PyTorch side of Ember's speed comparisons: the zoo networks of docs/NETS.md and the five
CIFAR-sized convolutions, timed the way `ember bench` and the `conv` criterion bench time
Ember, so that the two are measured in one sitting and compared as ratios.

    reference.py info
    reference.py throughput --net fmnist-cnn|cifar-cnn|resnet9|cifar-fast --threads 2
        [--seconds 5] [--batch 128] [--channels-last]
    reference.py convbench --threads 2 [--seconds 3] [--channels-last]

Each mode prints JSON lines; the last line of `throughput` is
{"net", "threads", "channels_last", "train": {"images_per_s"}, "infer": {"images_per_s"}}.
Training steps are SGD (lr 0.01, momentum 0.9) on the mean cross-entropy of random images
and labels; inference runs batches twice the training batch, in eval mode, without
gradients. PyTorch's default NCHW layout is slow for first layers with 1 or 3 channels:
compare with the faster of NCHW and --channels-last.
"""

import argparse
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def simple_cnn(channels, widths, hidden, size):
    layers, cin = [], channels
    for w in widths:
        layers += [nn.Conv2d(cin, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        cin, size = w, size // 2
    layers += [nn.Flatten(), nn.Linear(cin * size * size, hidden), nn.ReLU(), nn.Linear(hidden, 10)]
    return nn.Sequential(*layers)


def conv_bn(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class Residual(nn.Module):
    def __init__(self, *layers):
        super().__init__()
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.block(x)


class Scale(nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


def resnet9():
    return nn.Sequential(
        *conv_bn(3, 64), *conv_bn(64, 128), nn.MaxPool2d(2),
        Residual(*conv_bn(128, 128), *conv_bn(128, 128)),
        *conv_bn(128, 256), nn.MaxPool2d(2), *conv_bn(256, 512), nn.MaxPool2d(2),
        Residual(*conv_bn(512, 512), *conv_bn(512, 512)),
        nn.MaxPool2d(4), nn.Flatten(), nn.Linear(512, 10, bias=False), Scale(0.125),
    )


def cifar_fast():
    layers, cin = [nn.Conv2d(3, 24, 2), nn.GELU()], 24
    for w in (64, 256, 256):
        layers += [nn.Conv2d(cin, w, 3, padding=1, bias=False), nn.MaxPool2d(2),
                   nn.BatchNorm2d(w, eps=1e-12, momentum=0.4), nn.GELU(),
                   nn.Conv2d(w, w, 3, padding=1, bias=False),
                   nn.BatchNorm2d(w, eps=1e-12, momentum=0.4), nn.GELU()]
        cin = w
    layers += [nn.MaxPool2d(3), nn.Flatten(), nn.Linear(256, 10, bias=False), Scale(1 / 9)]
    return nn.Sequential(*layers)


NETS = {
    "fmnist-cnn": (lambda: simple_cnn(1, (32, 64), 128, 28), (1, 28, 28)),
    "cifar-cnn": (lambda: simple_cnn(3, (32, 64, 128), 256, 32), (3, 32, 32)),
    "resnet9": (resnet9, (3, 32, 32)),
    "cifar-fast": (cifar_fast, (3, 32, 32)),
}

CONV_SHAPES = [(64, 3, 32, 32, 32), (64, 32, 16, 16, 64), (64, 64, 8, 8, 128),
               (64, 128, 16, 16, 128), (64, 256, 8, 8, 256)]


def timed(step, seconds):
    """Mean seconds per call over `seconds`, after a warm-up of a third of that."""
    end = time.perf_counter() + seconds / 3
    while time.perf_counter() < end:
        step()
    n, start = 0, time.perf_counter()
    while n < 3 or time.perf_counter() - start < seconds:
        step()
        n += 1
    return (time.perf_counter() - start) / n


def throughput(a):
    make, (c, h, w) = NETS[a.net]
    layout = torch.channels_last if a.channels_last else torch.contiguous_format
    model = make().to(memory_format=layout)
    x = torch.randn(a.batch, c, h, w).contiguous(memory_format=layout)
    y = torch.randint(0, 10, (a.batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def train_step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    train = timed(train_step, a.seconds)
    layers = layer_times(model, train_step, a.seconds) if a.layers else None
    xi = torch.randn(2 * a.batch, c, h, w).contiguous(memory_format=layout)
    model.eval()
    with torch.no_grad():
        infer = timed(lambda: model(xi), a.seconds)
    out = {
        "net": a.net, "threads": a.threads, "channels_last": a.channels_last, "batch": a.batch,
        "train": {"images_per_s": a.batch / train},
        "infer": {"images_per_s": 2 * a.batch / infer},
    }
    if layers is not None:
        out["layers"] = layers
    print(json.dumps(out), flush=True)


def layer_times(model, train_step, seconds):
    """Per top-level module: forward and backward milliseconds per training step (wall
    time between hooks; CPU kernels run synchronously), as `ember bench --layers` reports."""
    mods = list(model.children())
    sums = [[0.0, 0.0] for _ in mods]
    start = {}

    def hooks(i, m):
        def pre_fwd(_m, _x):
            start[("f", i)] = time.perf_counter()

        def post_fwd(_m, _x, _y):
            sums[i][0] += time.perf_counter() - start[("f", i)]

        def pre_bwd(_m, _gy):
            start[("b", i)] = time.perf_counter()

        def post_bwd(_m, _gx, _gy):
            sums[i][1] += time.perf_counter() - start[("b", i)]

        return [m.register_forward_pre_hook(pre_fwd), m.register_forward_hook(post_fwd),
                m.register_full_backward_pre_hook(pre_bwd),
                m.register_full_backward_hook(post_bwd)]

    handles = [h for i, m in enumerate(mods) for h in hooks(i, m)]
    steps, t0 = 0, time.perf_counter()
    while steps < 3 or time.perf_counter() - t0 < seconds:
        train_step()
        steps += 1
    for h in handles:
        h.remove()
    return [{"index": i, "layer": repr(m).split("\n")[0], "forward_ms": 1e3 * f / steps,
             "backward_ms": 1e3 * b / steps} for i, (m, (f, b)) in enumerate(zip(mods, sums))]


def convbench(a):
    layout = torch.channels_last if a.channels_last else torch.contiguous_format
    for n, cin, h, w, cout in CONV_SHAPES:
        conv = nn.Conv2d(cin, cout, 3, padding=1).to(memory_format=layout)
        x = torch.randn(n, cin, h, w).contiguous(memory_format=layout).requires_grad_()
        gy = torch.randn(n, cout, h, w).contiguous(memory_format=layout)
        flops = 2 * n * cout * h * w * cin * 9
        with torch.no_grad():
            fwd = timed(lambda: conv(x), a.seconds)

        def fwd_bwd():
            conv.zero_grad(set_to_none=True)
            x.grad = None
            conv(x).backward(gy)

        both = timed(fwd_bwd, a.seconds)
        print(json.dumps({
            "shape": f"n{n}_c{cin}_{h}x{w}_o{cout}", "channels_last": a.channels_last,
            "fwd_gflops": flops / fwd / 1e9, "fwd_bwd_gflops": 3 * flops / both / 1e9,
        }), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["info", "throughput", "convbench"])
    ap.add_argument("--net", choices=sorted(NETS), default="cifar-cnn")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--layers", action="store_true",
                    help="throughput: also time each top-level layer of the training step")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.mode == "info":
        print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                          "mkldnn": torch.backends.mkldnn.is_available(),
                          "cpu_capability": torch.backends.cpu.get_cpu_capability()}))
    elif a.mode == "throughput":
        throughput(a)
    else:
        convbench(a)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The fast CIFAR-10 recipe of Ember's zoo model `cifar-fast`, in PyTorch, on the same image
folders (train/<class>/*.jpg, test/<class>/*.jpg): the reference Ember's time per epoch and
accuracy are compared with (docs/CIFAR10.md).

Same network (2x2 whitening convolution from the training patches, GELU, three conv groups
with identity-started convolutions and batch norm of fixed scale, 3x3 max pool, linear,
logits / 9), same training (Nesterov SGD with momentum 0.85, mean loss with label smoothing
0.2, batch-norm parameters at 64 times the rate and 1/64 of the weight decay, linear warm-up
from 0.2 over 23% of the steps then linear decay to 0, lookahead every 5 steps, alternating
flips and 2-pixel reflected shifts) and the same test-time augmentation (flips and 1-pixel
shifts).

    pip install torch numpy pillow
    python benches/torch/cifar10_fast.py --data DIR [--epochs 10] [--threads 2]
        [--channels-last] [--time-epochs N] [--seed S]

Prints one JSON object per epoch (cumulative training seconds, test accuracy) and a final
one. With --time-epochs N it stops after N epochs (for the per-epoch time comparison).
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def load_folder(root, classes=None):
    """All images of root/<class>/* as uint8 [N, 3, 32, 32] and int64 labels."""
    from PIL import Image

    names = classes or sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    images, labels = [], []
    for label, name in enumerate(names):
        folder = os.path.join(root, name)
        for f in sorted(os.listdir(folder)):
            with Image.open(os.path.join(folder, f)) as im:
                images.append(np.asarray(im.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1))
            labels.append(label)
    return torch.from_numpy(np.stack(images)), torch.tensor(labels), names


def load_data(root, cache):
    if cache and os.path.exists(cache):
        z = np.load(cache)
        return [torch.from_numpy(z[k]) for k in ("xtr", "ytr", "xte", "yte")]
    xtr, ytr, names = load_folder(os.path.join(root, "train"))
    xte, yte, _ = load_folder(os.path.join(root, "test"), names)
    if cache:
        np.savez(cache, xtr=xtr.numpy(), ytr=ytr.numpy(), xte=xte.numpy(), yte=yte.numpy())
    return xtr, ytr, xte, yte


class BatchNorm(nn.BatchNorm2d):
    """Batch norm whose scale stays 1 (only the shift trains), fast running statistics."""

    def __init__(self, channels):
        super().__init__(channels, eps=1e-12, momentum=0.4)
        self.weight.requires_grad = False


def conv3(cin, cout):
    c = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
    with torch.no_grad():
        nn.init.dirac_(c.weight[:cin])
    return c


def network(classes=10):
    layers = [nn.Conv2d(3, 24, 2, padding=0, bias=True), nn.GELU()]
    cin = 24
    for width in (64, 256, 256):
        layers += [conv3(cin, width), nn.MaxPool2d(2), BatchNorm(width), nn.GELU(),
                   conv3(width, width), BatchNorm(width), nn.GELU()]
        cin = width
    layers += [nn.MaxPool2d(3), nn.Flatten(), nn.Linear(256, classes, bias=False)]
    return nn.Sequential(*layers)


def whiten(conv, images, eps=5e-4):
    """The 2x2 patches' covariance eigenvectors, scaled to whiten them, and their negatives."""
    patches = images.unfold(2, 2, 1).unfold(3, 2, 1)  # N, C, 31, 31, 2, 2
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, 12).double()
    cov = patches.T @ patches / len(patches)
    values, vectors = torch.linalg.eigh(cov)
    order = values.argsort(descending=True)
    filters = (vectors[:, order].T / (values[order] + eps).sqrt()[:, None]).float()
    with torch.no_grad():
        conv.weight.copy_(torch.cat([filters, -filters]).view(24, 3, 2, 2))
        conv.bias.zero_()
    conv.weight.requires_grad = False


def augment(x, epoch, flip_start, generator):
    """Alternating flips (each image every other epoch) and shifts of up to 2 pixels."""
    flip = flip_start ^ (epoch % 2 == 1)
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
    dy = torch.randint(0, 5, (len(x),), generator=generator)
    dx = torch.randint(0, 5, (len(x),), generator=generator)
    out = torch.empty_like(x)
    for oy in range(5):
        for ox in range(5):
            sel = (dy == oy) & (dx == ox)
            if sel.any():
                out[sel] = padded[sel, :, oy:oy + 32, ox:ox + 32]
    return out


def tta_logits(model, x):
    """Half the image and its mirror, half both shifted by one pixel (reflected edges)."""
    def mirrored(v):
        return 0.5 * (model(v) + model(v.flip(3)))

    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = 0.5 * (mirrored(padded[:, :, 0:32, 0:32]) + mirrored(padded[:, :, 2:34, 2:34]))
    return 0.5 * mirrored(x) + 0.5 * shifted


def evaluate(model, x, y, tta, layout):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            xb = x[i:i + 1000].contiguous(memory_format=layout)
            logits = tta_logits(model, xb) if tta else model(xb)
            correct += (logits.argmax(1) == y[i:i + 1000]).sum().item()
    model.train()
    return correct / len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--time-epochs", type=int, default=0)
    ap.add_argument("--cache", default="")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    layout = torch.channels_last if a.channels_last else torch.contiguous_format

    xtr, ytr, xte, yte = load_data(a.data, a.cache)
    mean = xtr.float().mean((0, 2, 3), keepdim=True) / 255
    std = (xtr.float() / 255).std((0, 2, 3), keepdim=True)
    norm = lambda v: ((v.float() / 255) - mean) / std
    xtr, xte = norm(xtr), norm(xte)

    model = network()
    whiten(model[0], xtr[torch.randperm(len(xtr), generator=gen)[:5000]])
    model = model.to(memory_format=layout)
    scale = 1.0 / 9.0

    lr, wd, momentum, norm_scale = 1.5, 0.00133, 0.85, 64.0
    bn = [p for m in model.modules() if isinstance(m, BatchNorm) for p in [m.bias]]
    bn_ids = {id(p) for p in bn}
    trainable = [p for p in model.parameters() if p.requires_grad]
    biases = [model[0].bias]
    weights = [p for p in trainable if id(p) not in bn_ids and p is not model[0].bias]
    opt = torch.optim.SGD(
        [
            dict(params=weights, lr=lr, weight_decay=wd),
            dict(params=biases, lr=lr, weight_decay=0.0),
            dict(params=bn, lr=lr * norm_scale, weight_decay=wd / norm_scale),
        ],
        lr=lr, momentum=momentum, nesterov=True,
    )
    base = [g["lr"] for g in opt.param_groups]
    steps_per_epoch = len(xtr) // a.batch_size + (len(xtr) % a.batch_size > 0)
    total = steps_per_epoch * a.epochs
    warm = round(0.23 * total)
    factor = lambda t: 0.2 + 0.8 * t / warm if t < warm else max(0.0, 1 - (t - warm) / (total - warm))
    slow = None
    flip_start = torch.rand(len(xtr), generator=gen) < 0.5

    step, seconds = 0, 0.0
    for epoch in range(a.epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(len(xtr), generator=gen)
        for i in range(0, len(xtr), a.batch_size):
            idx = perm[i:i + a.batch_size]
            xb = augment(xtr[idx], epoch, flip_start[idx], gen).contiguous(memory_format=layout)
            for g, b in zip(opt.param_groups, base):
                g["lr"] = b * factor(step)
            loss = F.cross_entropy(model(xb) * scale, ytr[idx], label_smoothing=0.2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % 5 == 0 or step == total:
                decay = 0.95 ** 5 * (step / total) ** 3
                state = [v for v in model.state_dict().values() if v.dtype == torch.float32]
                if slow is None:
                    slow = [v.clone() for v in state]
                with torch.no_grad():
                    for s, v in zip(slow, state):
                        s.lerp_(v, 1 - decay)
                        v.copy_(s)
        seconds += time.perf_counter() - t0
        print(json.dumps({"epoch": epoch + 1, "train_seconds": round(seconds, 2),
                          "epoch_seconds": round(time.perf_counter() - t0, 2)}), flush=True)
        if a.time_epochs and epoch + 1 >= a.time_epochs:
            break
    acc = evaluate(model, xte, yte, False, layout)
    acc_tta = evaluate(model, xte, yte, True, layout)
    print(json.dumps({"done": True, "epochs": epoch + 1, "train_seconds": round(seconds, 2),
                      "test_accuracy": acc, "test_accuracy_tta": acc_tta,
                      "threads": a.threads, "channels_last": a.channels_last,
                      "torch": torch.__version__}), flush=True)


if __name__ == "__main__":
    sys.exit(main())

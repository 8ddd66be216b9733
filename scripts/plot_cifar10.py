#!/usr/bin/env python3
"""Test accuracy against training wall time for docs/CIFAR10.md.

    python scripts/plot_cifar10.py --out docs/cifar10-accuracy.png \
        --ember LABEL=runs/cf/metrics.jsonl [--ember ...] [--torch LABEL=torch.jsonl ...]

An Ember run is the `metrics.jsonl` of its run folder (`train_seconds`, `test_accuracy`
per epoch, from `--test-every-epoch`); a PyTorch run is the JSON lines that
benches/torch/cifar10_fast.py prints. Also prints the Markdown table of the points.
"""

import argparse
import json


def read_points(path, seconds_key, accuracy_key):
    points = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            rec = json.loads(line)
            if rec.get(accuracy_key) is not None and seconds_key in rec and "epoch" in rec:
                points.append((rec["epoch"], rec[seconds_key], rec[accuracy_key]))
    return points


def labelled(spec):
    label, sep, path = spec.partition("=")
    if not sep:
        raise SystemExit(f"{spec}: expected LABEL=PATH")
    return label, path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--ember", action="append", default=[], type=labelled)
    ap.add_argument("--torch", action="append", default=[], type=labelled)
    ap.add_argument("--budget-minutes", type=float, default=45.0)
    a = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [(f"Ember {label}", read_points(p, "train_seconds", "test_accuracy")) for label, p in a.ember]
    runs += [(f"PyTorch {label}", read_points(p, "train_seconds", "test_accuracy")) for label, p in a.torch]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for name, pts in runs:
        if not pts:
            raise SystemExit(f"{name}: no epochs with a test accuracy")
        ax.plot([s / 60 for _, s, _ in pts], [100 * acc for _, _, acc in pts], marker="o", label=name)
    ax.axvline(a.budget_minutes, color="grey", linestyle="--", linewidth=1)
    ax.axhline(94.0, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("training wall time (minutes, 2 cores)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("CIFAR-10 (JPEG copy), cifar-fast recipe")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(a.out)

    print("| run | epoch | training minutes | test accuracy |")
    print("|---|---:|---:|---:|")
    for name, pts in runs:
        for epoch, seconds, acc in pts:
            print(f"| {name} | {epoch} | {seconds / 60:.1f} | {100 * acc:.2f}% |")


if __name__ == "__main__":
    main()

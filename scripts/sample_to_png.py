#!/usr/bin/env python3
"""Write the embedded Fashion-MNIST sample as image files: OUT/{train,test}/<class>/NNNNN.png.

A folder of images as a photo collection would be: what `spark.read.format("image")` and
`ember train --dataset OUT` read. Standard library only (the PNGs are written by hand).

    python3 scripts/sample_to_png.py /tmp/fashion-png [--per-class N]
"""

import argparse
import gzip
import os
import struct
import sys
import zlib

CLASSES = ["T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
           "Sneaker", "Bag", "Ankle_boot"]
SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "data",
                      "sample")


def read_idx(name):
    with gzip.open(os.path.join(SAMPLE, name)) as f:
        data = f.read()
    ndims = data[3]
    dims = struct.unpack(">" + "I" * ndims, data[4:4 + 4 * ndims])
    return dims, data[4 + 4 * ndims:]


def png_gray(width, height, pixels):
    """An 8-bit grayscale PNG of `pixels` (row-major bytes)."""
    def chunk(kind, body):
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + pixels[y * width:(y + 1) * width] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="the folder to write")
    p.add_argument("--per-class", type=int, default=0,
                   help="at most this many images per class and part (0: all)")
    args = p.parse_args(argv)
    written = 0
    for part, prefix in (("train", "train"), ("test", "t10k")):
        (n, h, w), images = read_idx(f"{prefix}-images-idx3-ubyte.gz")
        _, labels = read_idx(f"{prefix}-labels-idx1-ubyte.gz")
        seen = [0] * len(CLASSES)
        for i in range(n):
            label = labels[i]
            if args.per_class and seen[label] >= args.per_class:
                continue
            seen[label] += 1
            folder = os.path.join(args.out, part, CLASSES[label])
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, f"{i:05d}.png"), "wb") as f:
                f.write(png_gray(w, h, images[i * h * w:(i + 1) * h * w]))
            written += 1
    print(f"wrote {written} images to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

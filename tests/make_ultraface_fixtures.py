#!/usr/bin/python3
"""make_ultraface_fixtures.py — reference outputs of an UltraFace ONNX file
for the parity test (tests/test_ultraface_parity.c), made at test time with
OpenCV's cv2.dnn (Debian python3-opencv), never committed.

Usage: make_ultraface_fixtures.py ONNX W H IN.f32 OUT_PREFIX [IN.f32 OUT_PREFIX ...]
  IN.f32      raw little-endian float32 input [1, H, W, 3] (NHWC, already
              preprocessed to (rgb - 127) / 128 by the engine)
  OUT_PREFIX  writes OUT_PREFIX.scores.f32 [P, 2] and OUT_PREFIX.boxes.f32
              [P, 4] (raw offsets), atomically.
Exit 77 when cv2 is missing (the test then skips).
"""
import os
import sys

import numpy as np

try:
    import cv2
except ImportError:
    sys.stderr.write("make_ultraface_fixtures.py: python3-opencv (cv2) is not installed\n")
    sys.exit(77)


def write_atomic(path, arr):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(np.ascontiguousarray(arr, dtype="<f4").tobytes())
    os.replace(tmp, path)


def main(argv):
    if len(argv) < 6 or (len(argv) - 4) % 2:
        sys.stderr.write(__doc__)
        return 2
    onnx_path, w, h = argv[1], int(argv[2]), int(argv[3])
    net = cv2.dnn.readNetFromONNX(onnx_path)
    for i in range(4, len(argv), 2):
        x = np.fromfile(argv[i], dtype="<f4")
        if x.size != h * w * 3:
            sys.stderr.write("%s: %d floats, expected %d\n" % (argv[i], x.size, h * w * 3))
            return 1
        blob = np.ascontiguousarray(x.reshape(1, h, w, 3).transpose(0, 3, 1, 2))
        net.setInput(blob)
        scores, boxes = net.forward(["scores", "boxes"])
        write_atomic(argv[i + 1] + ".scores.f32", scores.reshape(-1, 2))
        write_atomic(argv[i + 1] + ".boxes.f32", boxes.reshape(-1, 4))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

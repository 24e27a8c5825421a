#!/usr/bin/env python3
"""Fits the mapping from BlazeFace's face box to the box dlib's HOG detector gives, which
is what dlib's 5-point shape predictor was trained on (models/src/pipeline.rs: BOX_*).

A developer tool, not run by CI. Needs dlib's own Python package and our `faces` binary:
    python3 -m venv /tmp/dlibref && /tmp/dlibref/bin/pip install dlib-bin numpy pillow
    cargo build -p faces-cli
    /tmp/dlibref/bin/python scripts/dev/fit_dlib_box.py ../shared/faces/lfw-A 600

Model: dlib_centre = blaze_centre + (sx, sy) * side', dlib_side = scale * blaze_side,
with side' = scale * blaze_side; least squares over faces both detectors found.
"""
import json, os, subprocess, sys
import dlib, numpy as np

root, count = sys.argv[1], int(sys.argv[2])
images = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".jpg"))
# Every k-th image across the whole set, so the sample spans many people.
images = images[:: max(1, len(images) // count)][:count]

det = dlib.get_frontal_face_detector()
out = subprocess.run(["target/debug/faces", "detect", "--json", "--main", *images],
                     check=True, capture_output=True, text=True).stdout
ours = {}
for line in out.splitlines():
    rec = json.loads(line)
    if rec.get("faces"):
        ours[rec["image"]] = rec["faces"][0]["box"]

rows = []
for path in images:
    if path not in ours:
        continue
    rects = det(dlib.load_rgb_image(path), 1)
    b = ours[path]
    bcx, bcy, bs = (b["left"] + b["right"]) / 2, (b["top"] + b["bottom"]) / 2, max(b["right"] - b["left"], b["bottom"] - b["top"])
    best = None
    for r in rects:
        # dlib's rectangle covers pixels left..=right: its float edges are +-0.5 outside.
        dcx, dcy, ds = (r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2, r.width()
        d = abs(dcx - bcx) + abs(dcy - bcy)
        if d < bs / 2 and (best is None or d < best[0]):
            best = (d, dcx, dcy, ds)
    if best:
        rows.append((bcx, bcy, bs, best[1], best[2], best[3]))

a = np.array(rows)
scale = float(np.sum(a[:, 5] * a[:, 2]) / np.sum(a[:, 2] ** 2))
side = scale * a[:, 2]
sx = float(np.mean((a[:, 3] - a[:, 0]) / side))
sy = float(np.mean((a[:, 4] - a[:, 1]) / side))
res_c = np.hypot(a[:, 3] - (a[:, 0] + sx * side), a[:, 4] - (a[:, 1] + sy * side)) / a[:, 5]
res_s = np.abs(side - a[:, 5]) / a[:, 5]
print(f"faces matched: {len(rows)} of {len(images)}")
print(f"BOX_SCALE = {scale:.4f}; BOX_SHIFT_X = {sx:.4f}; BOX_SHIFT_Y = {sy:.4f}")
print(f"residual centre / dlib side: median {np.median(res_c):.4f}, p95 {np.percentile(res_c, 95):.4f}; "
      f"side: median {np.median(res_s):.4f}, p95 {np.percentile(res_s, 95):.4f}")

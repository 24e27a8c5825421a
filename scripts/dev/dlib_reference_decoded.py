#!/usr/bin/env python3
"""dlib's outputs on exactly the pixels our pipeline decodes: the reference that the Rust
ports of dlib's 5-point shape predictor and face-chip extraction must match bit for bit
(`models/tests/landmarks_align.rs`). A developer tool; CI never runs it.

Why a second reference: `dlib_reference.json` (made by `dlib_reference.py`) runs dlib on
the photo files, which dlib decodes with its bundled IJG libjpeg 9; our decoder
(`models::image_io`, zune-jpeg) differs from it by up to tens of grey levels on JPEGs,
which moves landmarks by a pixel and changes every chip byte. Here dlib gets the very
pixels we decode, saved losslessly as PNG, so any difference left is the port's.

    cargo run -p model-setup --example decode_for_dlib -- /tmp/decoded
    python3 -m venv /tmp/dlibref && /tmp/dlibref/bin/pip install dlib-bin numpy pillow
    /tmp/dlibref/bin/python scripts/dev/dlib_reference_decoded.py \
        --decoded /tmp/decoded --models <dir with shape_predictor_5_face_landmarks.dat>

Per photo of `dlib_reference.json` it records the sha256 of our decoded RGB bytes (the
test refuses to compare if our decoder's output changed), dlib's 5 landmarks in that
fixture's detector box, the sha256 of dlib's 150x150 chip (padding 0.25) cut with those
landmarks and with the landmarks of `dlib_reference.json`, and landmarks in a few boxes
shifted across the image border. Synthetic cases (a deterministic pattern that the test
regenerates) add rotated, clipped, deeply down-sampled and up-sampled chips and other
chip sizes and paddings.
"""
import argparse
import hashlib
import json
import os

import dlib
import numpy as np


def sha(a):
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.uint8).tobytes()).hexdigest()


def pattern(width, height):
    """The synthetic test image; `pattern()` in landmarks_align.rs computes the same bytes."""
    y, x = np.mgrid[0:height, 0:width].astype(np.int64)
    r = (x * x // 7 + 3 * y) % 256
    g = (x * y // 11 + 5 * x + 50) % 256
    b = ((x ^ y) * 5 + (x // 16 + y // 16) % 2 * 100) % 256
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


TEMPLATE = [(0.8595674595992, 0.2134981538014), (0.6460604764104, 0.2289674387677),
            (0.1205750620789, 0.2137274526848), (0.3340850613712, 0.2290642403242),
            (0.4901123135679, 0.6277975316475)]


def template_landmarks(cx, cy, face, angle_deg):
    """Whole-pixel landmarks: dlib's template face, `face` pixels wide, rotated, centred."""
    a = np.deg2rad(angle_deg)
    pts = []
    for tx, ty in TEMPLATE:
        dx, dy = (tx - 0.5) * face, (ty - 0.4) * face
        pts.append([int(round(cx + np.cos(a) * dx - np.sin(a) * dy)),
                    int(round(cy + np.sin(a) * dx + np.cos(a) * dy))])
    return pts


def shape_of(box, pts):
    return dlib.full_object_detection(dlib.rectangle(*box), [dlib.point(x, y) for x, y in pts])


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    fixtures = os.path.join(here, '..', '..', 'models', 'tests', 'fixtures')
    ap = argparse.ArgumentParser()
    ap.add_argument('--decoded', required=True, help='output directory of the decode_for_dlib example')
    ap.add_argument('--models', required=True, help='directory holding shape_predictor_5_face_landmarks.dat')
    ap.add_argument('--out', default=os.path.join(fixtures, 'dlib_reference_decoded.json'))
    args = ap.parse_args()

    sp_path = os.path.join(args.models, 'shape_predictor_5_face_landmarks.dat')
    sp = dlib.shape_predictor(sp_path)
    ref = json.load(open(os.path.join(fixtures, 'dlib_reference.json')))
    decoded = {d['image']: d for d in json.load(open(os.path.join(args.decoded, 'decoded.json')))}

    faces = []
    for i, f in enumerate(ref['faces']):
        d = decoded[f['image']]
        img = dlib.load_rgb_image(os.path.join(args.decoded, d['png']))
        assert sha(img) == d['rgb_sha256'], f['image']
        h, w = img.shape[:2]
        l, t, r, b = f['box']
        s = sp(img, dlib.rectangle(l, t, r, b))
        lm = [[s.part(k).x, s.part(k).y] for k in range(5)]
        entry = {
            'image': f['image'],
            'rgb_sha256': d['rgb_sha256'],
            'box': f['box'],
            'landmarks': lm,
            'chip_sha256': sha(dlib.get_face_chip(img, s, size=150, padding=0.25)),
            'chip_sha256_from_reference_landmarks':
                sha(dlib.get_face_chip(img, shape_of(f['box'], f['landmarks']), size=150, padding=0.25)),
        }
        if i % 9 == 0:
            # Boxes pushed across each border: many feature pixels fall outside (value 0).
            bw, bh = r - l, b - t
            shifted = []
            for dx, dy in [(-l - bw // 2, 0), (w - 1 - r + bw // 2, 0), (0, -t - bh // 2), (0, h - 1 - b + bh // 2)]:
                box = [l + dx, t + dy, r + dx, b + dy]
                s2 = sp(img, dlib.rectangle(*box))
                shifted.append({'box': box, 'landmarks': [[s2.part(k).x, s2.part(k).y] for k in range(5)]})
            entry['shifted_boxes'] = shifted
        faces.append(entry)

    synthetic = []
    cases = [
        # name, image size, centre, face width, angle, chip size, padding
        ('upright', (640, 480), (320, 240), 120, 0, 150, 0.25),
        ('rotated', (640, 480), (300, 260), 140, 27, 150, 0.25),
        ('rotated_negative', (640, 480), (330, 220), 90, -41, 150, 0.25),
        ('clipped_top_left', (640, 480), (20, 15), 160, 12, 150, 0.25),
        ('clipped_bottom_right', (640, 480), (630, 470), 200, -8, 150, 0.25),
        ('outside', (640, 480), (-900, -700), 100, 5, 150, 0.25),
        ('one_pyramid_level', (1600, 1200), (800, 600), 330, 9, 150, 0.25),
        ('two_pyramid_levels', (1600, 1200), (790, 610), 700, -15, 150, 0.25),
        ('three_pyramid_levels_clipped', (1600, 1200), (700, 500), 1500, 3, 150, 0.25),
        ('upsampled', (640, 480), (100, 120), 30, 20, 150, 0.25),
        ('size200_padding0.2', (640, 480), (320, 240), 150, 14, 200, 0.2),
        ('size80_padding0', (640, 480), (320, 240), 150, -22, 80, 0.0),
    ]
    for name, (w, h), (cx, cy), face, angle, size, padding in cases:
        img = pattern(w, h)
        lm = template_landmarks(cx, cy, face, angle)
        box = [cx - face // 2, cy - face // 2, cx + face // 2, cy + face // 2]
        s = sp(img, dlib.rectangle(*box))
        synthetic.append({
            'name': name,
            'image_size': [w, h],
            'landmarks': lm,
            'chip_size': size,
            'padding': padding,
            'chip_sha256': sha(dlib.get_face_chip(img, shape_of(box, lm), size=size, padding=padding)),
            'box': box,
            'predicted_landmarks': [[s.part(k).x, s.part(k).y] for k in range(5)],
        })

    out = {
        'about': "dlib's outputs on the pixels our decoder produces (see scripts/dev/dlib_reference_decoded.py).",
        'dlib_version': dlib.__version__,
        'shape_predictor_sha256': hashlib.sha256(open(sp_path, 'rb').read()).hexdigest(),
        'decoder': 'models::image_io::decode_file, default limits (image crate + zune-jpeg)',
        'faces': faces,
        'synthetic': synthetic,
    }
    with open(args.out, 'w') as fh:
        json.dump(out, fh, indent=1)
        fh.write('\n')
    print(f'{len(faces)} photos, {len(synthetic)} synthetic cases -> {args.out}')


if __name__ == '__main__':
    main()

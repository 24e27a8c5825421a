#!/usr/bin/env python3
"""Writes the hand-made seed inputs of the fuzz targets into fuzz/corpus/<target>/.

Each seed is a small valid input of the format a target parses (a scale line, a wire JSON
body, a tiny .ert or dlib model, a tiny TF.js graph, an outbox database), so libFuzzer starts
inside the format instead of at its magic bytes. The image seeds (tiny JPEG/PNG/WebP files)
were made once with the `image` crate and are committed as they are. Run from the repository
root; files are named `seed-*` and are overwritten, nothing else is touched.
"""

import base64
import json
import os
import sqlite3
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def scale():
    lines = [
        b"ST,GS,+0001.234kg\r\n",
        b"US,GS,+0001.240kg\r\nST,GS,+0001.240kg\r\nST,GS,+0001.240kg\r\nST,GS,+0001.240kg\r\n",
        b"ST,NT,+   812 g\n",
        b"ST,TR,-0000.350kg\r",
        b"OL\r\nOL,GS,+9999.999kg\r\n",
        b"ST,+1.5lb\nST,G,+12oz\n",
        b"\x00\xffST,GS,+0001.234kg" + b"9" * 70 + b"\r\nST,GS,+0000.000kg\r\n",
    ]
    for i, l in enumerate(lines):
        put("scale_protocol", f"{i}", bytes([i * 5 % 32]) + l)


def paycode():
    for i, code in enumerate(
        [
            "CPPAY1.42.1767225600.abcdef",
            "wQx3N9vZk2_mHq8TtYp0aLrB6cD4eF7gJ1sU5iO-hK",
            "https://example.invalid/not-a-pay-code",
        ]
    ):
        put("paycode_qr", f"{i}", bytes([0]) + code.encode())
    # Two damaged modules (a smudge) on a short code.
    put("paycode_qr", "smudged", bytes([2, 10, 10, 11, 12]) + b"code-1")


T = "2026-01-05T12:10:00+08:00"
WIRE = {
    0: {"code": "abc123", "name": "entrance"},
    1: {"kiosk_id": 3, "device_token": "tok", "canteen_id": 1},
    2: {"idempotency_key": "k-1", "staff_id": 7, "kiosk_time": T, "offline": True, "amount": "12.50"},
    3: {
        "status": "accepted", "charge_id": 9, "reason": None, "meal": "lunch",
        "local_date": "2026-01-05", "amount": "15.00", "subsidy_used": "10.00",
        "cash_used": "5.00", "cash_balance": "95.00", "subsidy_balance": "290.00", "replayed": False,
    },
    4: {"charge_key": "k-1", "reason": "refused_offline_not_served"},
    5: {"charge_id": 9, "refund_id": 2, "amount": "15.00", "already_void": False},
    6: {
        "idempotency_key": "w-1", "staff_id": 7, "charge_id": None, "gross_grams": 812,
        "tare_grams": 350, "dish": "rice", "category": None, "measured_at": T,
    },
    7: {"id": 4, "net_grams": 462, "replayed": False},
    8: {
        "next_since": 5, "more": False,
        "changes": [
            {"template_id": 1, "staff_id": 7, "version": 5, "deleted": False,
             "embedding": base64.b64encode(struct.pack("<4f", 0.1, -0.2, 0.3, 1e-3)).decode()},
            {"template_id": 2, "staff_id": 8, "version": 6, "deleted": True, "embedding": None},
        ],
    },
    9: {"kiosk_id": 3, "name": "entrance", "canteen_id": 1},
    10: {"code": "wQx3N9vZk2_mHq8TtYp0aLrB6cD4eF7gJ1sU5iO-hK"},
    11: {"staff_id": 7},
    12: {"person_average_g": 381.5, "canteen_average_g": None},
    13: {"next_since": 2, "more": True, "balances": [
        {"staff_id": 7, "available": "12.34", "active": True, "category": "regular", "version": 3}]},
    14: {"error": {"code": "bad_json", "message": "expected value"}},
    15: "dinner",
    # 17-32: the desk's admin and canteen types (wire::admin, wire::canteen).
    17: {"username": "boss", "password": "a-long-password"},
    18: {"csrf_token": "c", "role": "manager", "user_id": 1, "staff_id": None},
    19: {"id": 7, "employee_no": "E0007", "name": "Wang", "department": "D", "category": "regular",
         "active": True, "meals_per_period": 1},
    20: {"granted": True},
    21: {"staff_id": 7, "granted": True, "changed_at_ms": 1767225600000},
    22: {"embedding": base64.b64encode(struct.pack("<4f", 0.1, -0.2, 0.3, 1e-3)).decode()},
    23: {"id": 1, "staff_id": 7, "version": 5, "deleted": False},
    24: {"canteen_id": 1, "valid_minutes": 60},
    25: {"code": "abc123", "expires_at_ms": 1767225600000},
    26: {"username": "u2", "password": "a-long-password", "role": "staff", "staff_id": 1},
    27: {"id": 2, "username": "u2", "role": "staff", "staff_id": 1},
    28: {"code": "wQx3N9vZk2", "expires_at_ms": 1767225600000},
    29: {"id": 1, "name": "C", "utc_offset_minutes": 480, "per_transaction_cap": "50.00",
         "daily_cap": None, "windows": [{"meal": "lunch", "start": "11:00", "end": "13:30"}],
         "prices": [{"category": "regular", "meal": "lunch", "price": "15.00"}]},
    30: {"meal": "breakfast", "start": "07:00", "end": "09:00"},
    31: {"start": "17:00", "end": "19:30"},
    32: {"category": "contractor", "meal": "dinner", "price": "18.50"},
}


def wire():
    for k, v in WIRE.items():
        put("wire_json", f"{k}", bytes([k]) + json.dumps(v).encode())
    put("wire_json", "16", bytes([16]) + base64.b64encode(struct.pack("<3f", 1.0, -0.5, 3e-8)))


HTTP = [
    ("/api/v1/kiosk/charges", 0, 0, None, WIRE[2]),
    ("/api/v1/kiosk/charges/void", 0, 0, None, WIRE[4]),
    ("/api/v1/kiosk/waste", 0, 0, None, WIRE[6]),
    ("/api/v1/kiosk/pay-codes/redeem", 0, 0, None, WIRE[10]),
    ("/api/v1/kiosk/enrol", 0, 0, None, WIRE[0]),
    ("/api/v1/auth/login", 1, 0, None, {"username": "boss", "password": "fuzz-password"}),
    ("/api/v1/canteens", 1, 0, None, {"name": "C2", "utc_offset_minutes": 480}),
    ("/api/v1/canteens/{id}", 1, 0, None, {"daily_cap": "100.00"}),
    ("/api/v1/canteens/{id}/meal-windows/{x}", 1, 0, "lunch", {"start": "11:00", "end": "13:30"}),
    ("/api/v1/canteens/{id}/prices", 1, 0, None, {"category": "regular", "meal": "lunch", "price": "15.00"}),
    ("/api/v1/subsidy-rules/{x}", 1, 0, "regular", {"monthly_amount": "300.00"}),
    ("/api/v1/subsidies/grant", 1, 0, None, {"month": "2026-01"}),
    ("/api/v1/staff", 1, 0, None, {"employee_no": "E9", "name": "N", "department": "D", "category": "regular"}),
    ("/api/v1/staff/{staff}", 1, 0, None, {"meals_per_period": 2}),
    ("/api/v1/staff/{staff}/offboard", 1, 0, None, {"reason": "left"}),
    ("/api/v1/users", 1, 0, None, {"username": "u2", "password": "a-long-password", "role": "staff", "staff_id": 1}),
    ("/api/v1/kiosks/enrolment-codes", 1, 0, None, {"canteen_id": 1}),
    ("/api/v1/charges/{x}/reverse", 1, 0, "1", {"reason": "wrong person"}),
    ("/api/v1/charges/{x}/resolve", 1, 0, "1", {"accept": True, "note": "ok"}),
    ("/api/v1/refunds/{x}/decide", 1, 0, "1", {"approve": True}),
    ("/api/v1/me/refunds", 2, 0, None, {"amount": "1.00", "reason": "leaving"}),
    ("/api/v1/me/topups", 2, 0, None, {"amount": "50.00"}),
    ("/api/v1/me/consent", 2, 0, None, {"granted": True}),
    ("/api/v1/staff/{staff}/consent", 1, 0, None, {"granted": True}),
    ("/api/v1/staff/{staff}/templates", 1, 0, None,
     {"embedding": base64.b64encode(struct.pack("<128f", *([0.088] * 128))).decode()}),
    ("/api/v1/payments/sandbox/notify", 1, 0, None, {"order_no": "X", "amount": "1.00", "signature": "00"}),
    ("/sandbox/pay/{x}", 1, 1, "X", "action=pay"),
    ("/api/v1/charges?{x}", 1, 2, "limit=10&staff_id=1&status=accepted", None),
    ("/api/v1/staff/{staff}/statement?{x}", 1, 2, "from=2026-01-01&to=2026-02-01", None),
    ("/api/v1/kiosk/gallery?{x}", 0, 2, "since=0&limit=5", None),
    ("/api/v1/kiosk/balances?{x}", 0, 2, "since=0", None),
    ("/api/v1/audit?{x}", 1, 2, "after=0&limit=3", None),
    ("/api/v1/waste?{x}", 1, 2, "limit=3", None),
    ("/api/v1/staff/{x}", 1, 2, "1", None),
]


def http():
    routes = [r[0] for r in HTTP]
    for i, (path, who, ctype, x, body) in enumerate(HTTP):
        assert routes.index(path) == i
        data = bytes([i, who + 3 * ctype])
        if x is not None:
            data += x.encode() + b"\n"
        if body is not None:
            data += (body if isinstance(body, str) else json.dumps(body)).encode()
        put("http_bodies", f"{i:02}", data)


def ert():
    # CPERT v1: parts, mean shape, cascades (anchors, deltas, trees of splits and leaves).
    b = b"CPERT\0\0\x01"
    parts = 2
    b += struct.pack("<I", parts) + struct.pack("<4f", 0.25, 0.375, 0.75, 0.375)
    b += struct.pack("<I", 1)  # cascades
    b += struct.pack("<I", 2) + struct.pack("<2I", 0, 1)  # features, anchors
    b += struct.pack("<4f", 0.0625, -0.03125, 0.0, 0.5)  # deltas
    b += struct.pack("<I", 1)  # trees
    b += struct.pack("<I", 1) + struct.pack("<2I", 0, 1) + struct.pack("<f", 12.5)
    b += struct.pack("<I", 2) + struct.pack("<8f", 0.5, -0.5, 1.0, -1.0, 0.125, 0.25, -0.125, -0.25)
    put("ert_model", "tiny", b"\0" + b)
    manifest = {
        "format": 1,
        "archives": [{"name": "x", "registry": "pypi", "version": "1", "sha256": "00"}],
        "files": [{"path": "detector.onnx", "bytes": 3, "sha256": "ab", "source": "x", "licence": "MIT"}],
    }
    put("ert_model", "manifest", b"\x01" + json.dumps(manifest).encode())


def dlib_int(v):
    neg = v < 0
    m = abs(v)
    out = bytearray()
    while True:
        out.append(m & 0xFF)
        m >>= 8
        if m == 0:
            break
    return bytes([len(out) | (0x80 if neg else 0)]) + bytes(out)


def dlib_float(v):
    """dlib's float_details of an f32: an integer mantissa and a power-of-two exponent."""
    if v == 0.0:
        return dlib_int(0) + dlib_int(64)
    bits = struct.unpack("<I", struct.pack("<f", v))[0]
    sign = -1 if bits >> 31 else 1
    exp = (bits >> 23) & 0xFF
    frac = bits & 0x7FFFFF
    m, e = (frac, -149) if exp == 0 else (frac | 0x800000, exp - 150)
    while m and m % 2 == 0:
        m //= 2
        e += 1
    return dlib_int(sign * m) + dlib_int(e)


def dlib():
    b = dlib_int(1) + dlib_int(-4) + dlib_int(-1)
    for v in [0.25, 0.375, 0.75, 0.375]:
        b += dlib_float(v)
    b += dlib_int(1) + dlib_int(1) + dlib_int(1)  # 1 cascade, 1 tree, 1 split
    b += dlib_int(0) + dlib_int(1) + dlib_float(12.5)
    b += dlib_int(2)
    for leaf in [[0.5, -0.5, 1.0, -1.0], [0.125, 0.25, -0.125, -0.25]]:
        b += dlib_int(-4) + dlib_int(-1)
        for v in leaf:
            b += dlib_float(v)
    b += dlib_int(1) + dlib_int(2) + dlib_int(0) + dlib_int(1)
    b += dlib_int(1) + dlib_int(2)
    for v in [0.0625, -0.03125, 0.0, 0.5]:
        b += dlib_float(v)
    put("dlib_models", "shape_predictor", b"\0" + b)
    # The ResNet reader's first fields: a version, then a string naming the network.
    put("dlib_models", "resnet_head", b"\x01" + dlib_int(4) + dlib_int(10) + b"input_rgb_")


def tfjs():
    b64 = lambda s: base64.b64encode(s.encode()).decode()
    graph = {
        "format": "graph-model",
        "modelTopology": {"node": [
            {"name": "w", "op": "Const", "attr": {"dtype": {"type": "DT_FLOAT"}}},
            {"name": "b", "op": "Const", "attr": {"dtype": {"type": "DT_FLOAT"}}},
            {"name": "shape", "op": "Const", "attr": {"dtype": {"type": "DT_INT32"}}},
            {"name": "d", "op": "Const", "attr": {"dtype": {"type": "DT_FLOAT"}}},
            {"name": "x", "op": "Placeholder", "attr": {"dtype": {"type": "DT_FLOAT"}, "shape": {"shape": {
                "dim": [{"size": "-1"}, {"size": "4"}, {"size": "4"}, {"size": "1"}]}}}},
            {"name": "conv", "op": "_FusedConv2D", "input": ["x", "w", "b"], "attr": {
                "padding": {"s": b64("SAME")}, "num_args": {"i": "1"},
                "strides": {"list": {"i": ["1", "1", "1", "1"]}}, "data_format": {"s": b64("NHWC")},
                "fused_ops": {"list": {"s": [b64("BiasAdd"), b64("Relu")]}}}},
            {"name": "pool", "op": "MaxPool", "input": ["conv"], "attr": {
                "ksize": {"list": {"i": ["1", "2", "2", "1"]}}, "strides": {"list": {"i": ["1", "2", "2", "1"]}},
                "padding": {"s": b64("VALID")}}},
            {"name": "flat", "op": "Reshape", "input": ["pool", "shape"]},
            {"name": "dense", "op": "_FusedMatMul", "input": ["flat", "d"], "attr": {
                "num_args": {"i": "0"}, "fused_ops": {"list": {}}}},
            {"name": "sm", "op": "Softmax", "input": ["dense"]},
            {"name": "Identity", "op": "Identity", "input": ["sm"]},
        ]},
        "weightsManifest": [{"paths": ["t.bin"], "weights": [
            {"name": "w", "shape": [3, 3, 1, 2], "dtype": "float32"},
            {"name": "b", "shape": [2], "dtype": "float32",
             "quantization": {"dtype": "float16", "original_dtype": "float32"}},
            {"name": "shape", "shape": [2], "dtype": "int32"},
            {"name": "d", "shape": [8, 2], "dtype": "float32"},
        ]}],
        "signature": {"outputs": {"o": {"name": "Identity:0"}}},
    }
    j = json.dumps(graph, separators=(",", ":")).encode()
    weights = b"".join(struct.pack("<f", i * 0.1 - 0.5) for i in range(18))
    weights += struct.pack("<2e", 0.5, -0.25)
    weights += struct.pack("<2i", -1, 8)
    weights += b"".join(struct.pack("<f", i * 0.05) for i in range(16))
    put("tfjs_graph", "tiny", struct.pack("<H", len(j)) + j + weights)


def local_store():
    path = "/tmp/cleanplate-fuzz-seed-outbox.db"
    for suffix in ["", "-wal", "-shm"]:
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    c = sqlite3.connect(path)
    c.executescript(
        """
        CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
          idempotency_key TEXT NOT NULL UNIQUE, body TEXT NOT NULL, created_ms INTEGER NOT NULL,
          state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
          maybe_sent INTEGER NOT NULL DEFAULT 0, last_error TEXT, response TEXT, done_ms INTEGER,
          served INTEGER NOT NULL DEFAULT 0, derived_from TEXT, refused INTEGER NOT NULL DEFAULT 0);
        CREATE INDEX outbox_pending ON outbox(state, seq);
        CREATE TABLE meals_charged (staff_id INTEGER NOT NULL, local_date TEXT NOT NULL,
          meal TEXT NOT NULL, idempotency_key TEXT NOT NULL, at_ms INTEGER NOT NULL, charge_id INTEGER,
          PRIMARY KEY (staff_id, local_date, meal));
        CREATE TABLE waste_log (staff_id INTEGER, net_g INTEGER NOT NULL, at_ms INTEGER NOT NULL);
        CREATE TABLE balances (staff_id INTEGER PRIMARY KEY, available_fen INTEGER NOT NULL,
          as_of_ms INTEGER NOT NULL, version INTEGER, active INTEGER NOT NULL DEFAULT 1, category TEXT);
        CREATE TABLE offline_spent (idempotency_key TEXT PRIMARY KEY, staff_id INTEGER NOT NULL,
          amount_fen INTEGER NOT NULL, settled INTEGER NOT NULL DEFAULT 0);
        PRAGMA user_version = 2;
        """
    )
    body = json.dumps(WIRE[2])
    c.execute("INSERT INTO outbox (kind, idempotency_key, body, created_ms, served, maybe_sent) "
              "VALUES ('charge', 'k-1', ?, 1, 1, 1)", (body,))
    c.execute("INSERT INTO outbox (kind, idempotency_key, body, created_ms) VALUES ('waste', 'w-1', ?, 2)",
              (json.dumps(WIRE[6]),))
    c.execute("INSERT INTO meals_charged VALUES (7, '2026-01-05', 'lunch', 'k-1', 1, NULL)")
    c.execute("INSERT INTO balances VALUES (7, 1000, 1, 3, 1, 'regular')")
    c.execute("INSERT INTO offline_spent VALUES ('k-1', 7, 1250, 0)")
    c.execute("INSERT INTO waste_log VALUES (7, 462, 1)")
    c.commit()
    c.execute("VACUUM")
    c.close()
    with open(path, "rb") as f:
        put("local_store", "outbox", b"\0" + f.read())
    os.remove(path)
    put("local_store", "gallery_json", b"\x01" + json.dumps(
        {"since": 3, "templates": [{"template_id": 1, "staff_id": 7, "embedding": [0.1] * 128}]}).encode())
    put("local_store", "gallery_file", b"\x01CPGC1" + bytes(12) + bytes(40))


if __name__ == "__main__":
    for f in [scale, paycode, wire, http, ert, dlib, tfjs, local_store]:
        f()
    print("seeds written under", CORPUS, file=sys.stderr)

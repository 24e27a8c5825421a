//! The bodies of CleanPlate's fuzz targets, one function per target, each taking the raw
//! bytes libFuzzer hands it. Every function feeds the bytes to a parser of untrusted input
//! exactly as the product does and checks what the product relies on afterwards (a decoded
//! image is within its limits, a framed scale line has no terminator, a parsed wire type
//! survives a round trip, an HTTP answer is never a 500 or a panic). A typed error is always
//! a pass; a panic, an abort, an allocation past libFuzzer's `-rss_limit_mb` or a failed
//! assertion is a finding. The `fuzz_targets/` binaries are one line each around these.
//!
//! Crash inputs, once fixed, are replayed by ordinary stable tests beside each parser (see
//! `RELIABILITY.md`), so CI guards them without nightly.

#[cfg(feature = "http")]
pub mod http;
pub mod local_store;

use std::io::Cursor;

/// `models::image_io::decode` on bytes from a kiosk frame or an uploaded enrolment photo,
/// under limits small enough that libFuzzer's memory cap is not what stops a decode.
pub fn image_decode(data: &[u8]) {
    let limits = models::image_io::DecodeLimits {
        max_width: 2048,
        max_height: 2048,
        max_pixels: 2_000_000,
        max_alloc_bytes: 64 * 1024 * 1024,
        max_input_bytes: 4 * 1024 * 1024,
    };
    if let Ok(img) = models::image_io::decode(data, &limits) {
        let (w, h) = img.dimensions();
        assert!(w > 0 && h > 0, "a decoded image has pixels");
        assert!(w <= limits.max_width && h <= limits.max_height, "{w}x{h}");
        assert!(u64::from(w) * u64::from(h) <= limits.max_pixels, "{w}x{h}");
        assert_eq!(img.as_raw().len(), w as usize * h as usize * 3);
    }
}

/// The plate scale's byte stream: framed into lines in arbitrary chunks, each line parsed,
/// each reading fed to the stability detector, as `kiosk::scale_io`'s reader thread does.
pub fn scale_protocol(data: &[u8]) {
    use kiosk::scale::{parse_line, LineFramer, StabilityConfig, StabilityDetector, MAX_LINE};
    // The first byte picks the chunk size the serial port hands over.
    let (chunk, bytes) = match data.split_first() {
        Some((c, rest)) => (usize::from(*c % 32) + 1, rest),
        None => return,
    };
    let mut framer = LineFramer::new();
    let mut detector = StabilityDetector::new(StabilityConfig::default());
    for piece in bytes.chunks(chunk) {
        for line in framer.push(piece) {
            assert!(line.len() <= MAX_LINE, "a framed line is at most MAX_LINE");
            assert!(!line.contains(&b'\n') && !line.contains(&b'\r'));
            if let Ok(reading) = parse_line(&line) {
                let _ = detector.feed(reading);
            }
        }
    }
    // And the whole input as one line, as a unit test would give it.
    let _ = parse_line(bytes);
}

/// The QR pay code path: the fuzz bytes are a payload drawn as a QR code the way a phone
/// shows it, with some modules flipped (a smudged screen, glare), then read back with
/// `kiosk::paycode::scan`. Whatever the damage, the scan must not panic; with no damage, a
/// payload the kiosk accepts must read back exactly.
pub fn paycode_qr(data: &[u8]) {
    let Some((&flips, rest)) = data.split_first() else {
        return;
    };
    let flips = usize::from(flips % 16);
    let (damage, payload) = rest.split_at((flips * 2).min(rest.len()));
    let Ok(code) = qrcode::QrCode::new(payload) else {
        return;
    };
    let n = code.width();
    let mut colors = code.to_colors();
    for pair in damage.chunks_exact(2) {
        let (x, y) = (usize::from(pair[0]) % n, usize::from(pair[1]) % n);
        let c = &mut colors[y * n + x];
        *c = if *c == qrcode::Color::Dark {
            qrcode::Color::Light
        } else {
            qrcode::Color::Dark
        };
    }
    // 3 px per module and a 4-module quiet zone, on a grey frame.
    let px = 3u32;
    let side = (n as u32 + 8) * px;
    let mut img = image::RgbImage::from_pixel(side + 20, side + 20, image::Rgb([128, 128, 128]));
    for y in 0..side {
        for x in 0..side {
            let (mx, my) = ((x / px) as i64 - 4, (y / px) as i64 - 4);
            let dark = mx >= 0
                && my >= 0
                && (mx as usize) < n
                && (my as usize) < n
                && colors[my as usize * n + mx as usize] == qrcode::Color::Dark;
            let v = if dark { 0 } else { 255 };
            img.put_pixel(10 + x, 10 + y, image::Rgb([v, v, v]));
        }
    }
    let found = kiosk::paycode::scan(&img);
    for code in &found {
        assert!(!code.is_empty() && code.len() <= kiosk::paycode::MAX_CODE_LEN);
    }
    if damage.is_empty() {
        if let Ok(text) = std::str::from_utf8(payload) {
            if !text.is_empty() && text.len() <= kiosk::paycode::MAX_CODE_LEN {
                assert_eq!(
                    found,
                    vec![text.to_string()],
                    "an undamaged code reads back"
                );
            }
        }
    }
}

/// Parses `T` from JSON; when it parses, serialising and parsing again gives the same value
/// (what the kiosk sends is what the backend reads, and the other way round).
fn round_trip<T>(data: &[u8])
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    if let Ok(v) = serde_json::from_slice::<T>(data) {
        let text = serde_json::to_vec(&v).expect("a parsed wire value serialises");
        let again: T = serde_json::from_slice(&text).expect("a serialised wire value parses");
        assert_eq!(v, again);
    }
}

/// For types without `Eq` (floats inside, where NaN is not equal to itself) or without
/// `PartialEq`: parsed, serialised, parsed again and serialised again gives the same bytes.
fn round_trip_bytes<T>(data: &[u8])
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    if let Ok(v) = serde_json::from_slice::<T>(data) {
        let text = serde_json::to_vec(&v).expect("a parsed wire value serialises");
        let again: T = serde_json::from_slice(&text).expect("a serialised wire value parses");
        let text_again = serde_json::to_vec(&again).expect("serialises again");
        assert!(text == text_again, "wire round trip changed the bytes");
    }
}

/// Every `wire` type, as either side deserialises it, and the embedding codec. Byte 0 picks
/// the type (0-16 as in the first seeds; 17-32 the desk's admin and canteen types).
pub fn wire_json(data: &[u8]) {
    let Some((&which, json)) = data.split_first() else {
        return;
    };
    match which % 33 {
        0 => round_trip::<wire::EnrolRequest>(json),
        1 => round_trip::<wire::EnrolResponse>(json),
        2 => round_trip::<wire::ChargeRequest>(json),
        3 => round_trip::<wire::ChargeResponse>(json),
        4 => round_trip::<wire::VoidChargeRequest>(json),
        5 => round_trip::<wire::VoidChargeResponse>(json),
        6 => round_trip::<wire::WasteRequest>(json),
        7 => round_trip::<wire::WasteResponse>(json),
        8 => round_trip::<wire::GalleryResponse>(json),
        9 => round_trip::<wire::KioskInfo>(json),
        10 => round_trip::<wire::PayCodeRedeemRequest>(json),
        11 => round_trip::<wire::PayCodeRedeemResponse>(json),
        12 => {
            // Averages are f64: serde_json may print and re-read a float one ulp apart, which
            // no one sees on a screen; they must still parse back.
            if let Ok(v) = serde_json::from_slice::<wire::WasteStatsResponse>(json) {
                let text = serde_json::to_vec(&v).expect("serialises");
                serde_json::from_slice::<wire::WasteStatsResponse>(&text).expect("parses back");
            }
        }
        13 => round_trip::<wire::BalancesResponse>(json),
        14 => round_trip::<wire::ErrorBody>(json),
        15 => round_trip::<wire::Meal>(json),
        17 => round_trip_bytes::<wire::LoginRequest>(json),
        18 => round_trip::<wire::LoginResponse>(json),
        19 => round_trip::<wire::Staff>(json),
        20 => round_trip::<wire::ConsentRequest>(json),
        21 => round_trip::<wire::Consent>(json),
        22 => round_trip_bytes::<wire::TemplateRequest>(json),
        23 => round_trip::<wire::Template>(json),
        24 => round_trip::<wire::EnrolmentCodeRequest>(json),
        25 => round_trip::<wire::EnrolmentCode>(json),
        26 => round_trip_bytes::<wire::UserRequest>(json),
        27 => round_trip::<wire::User>(json),
        28 => round_trip::<wire::PayCode>(json),
        29 => round_trip::<wire::Canteen>(json),
        30 => round_trip::<wire::MealWindow>(json),
        31 => round_trip::<wire::MealWindowRequest>(json),
        32 => round_trip::<wire::MealPrice>(json),
        _ => {
            if let Ok(text) = std::str::from_utf8(json) {
                if let Ok(v) = wire::decode_embedding(text) {
                    let again = wire::decode_embedding(&wire::encode_embedding(&v))
                        .expect("an encoded embedding decodes");
                    assert_eq!(
                        v.iter().map(|f| f.to_bits()).collect::<Vec<_>>(),
                        again.iter().map(|f| f.to_bits()).collect::<Vec<_>>()
                    );
                }
            }
        }
    }
}

/// The model files the pipeline loads at start: the `.ert` landmark model (read, then
/// checked for prediction) and `manifest.json`.
pub fn ert_model(data: &[u8]) {
    use models::landmarks::{DlibRect, ShapePredictor, ShapePredictorModel};
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    if which & 1 == 1 {
        let _ = serde_json::from_slice::<models::manifest::Manifest>(bytes);
        return;
    }
    // Seeds carry the magic; the fuzzer mutates what follows.
    let mut input = Cursor::new(bytes);
    let Ok(model) = ShapePredictorModel::read(&mut input) else {
        return;
    };
    let mut written = Vec::new();
    model.write(&mut written).expect("writing to memory");
    let again = ShapePredictorModel::read(&mut written.as_slice()).expect("re-reading");
    // Compared as bytes, not with `==`: a NaN read from the file is not equal to itself, and
    // the reader keeps it (`ShapePredictor::from_model` is what refuses non-finite values).
    let mut rewritten = Vec::new();
    again.write(&mut rewritten).expect("writing to memory");
    assert!(written == rewritten, ".ert round trip");
    // A model that passes the checks predicts without reading out of bounds.
    if let Ok(predictor) = ShapePredictor::from_model(model) {
        let img = image::GrayImage::from_fn(32, 32, |x, y| image::Luma([(x * 7 + y * 3) as u8]));
        let _ = predictor.predict(&img, DlibRect::new(4, 4, 27, 27));
    }
}

/// dlib's serialisation, as the model set-up reads the archives it fetched (the
/// ResNet embedder and the 5-point shape predictor).
pub fn dlib_models(data: &[u8]) {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    if which & 1 == 0 {
        let _ = model_setup::dlib::shape_predictor::parse(bytes);
    } else {
        let _ = model_setup::dlib::resnet::parse(bytes);
    }
}

/// A TF.js graph model (model.json + weights.bin), as the model set-up converts the liveness
/// models. Input: a little-endian u16 length of the JSON, the JSON, then the weights.
pub fn tfjs_graph(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let len = usize::from(u16::from_le_bytes([data[0], data[1]]));
    let rest = &data[2..];
    let (json, weights) = rest.split_at(len.min(rest.len()));
    let _ = model_setup::tfjs::convert_with_names(json, weights, "fuzz", "input", "output");
}

//! Tests of `models::image_io` on inputs generated here: every format and colour layout the
//! kiosk may meet, EXIF orientations, CMYK JPEGs, oversized headers (crafted, never
//! allocated), truncated and corrupted files. A counting allocator checks that refusing a
//! 30000x30000 header allocates next to nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Cursor;
use std::path::PathBuf;

use image::{
    ColorType, DynamicImage, ImageBuffer, ImageEncoder, ImageFormat, Luma, LumaA, Rgb, RgbImage,
    Rgba,
};
use models::image_io::{decode, decode_file, DecodeLimits, ImageError};

// ---------------------------------------------------------------------------------------
// Allocation accounting, per thread so parallel tests do not disturb each other.

struct CountingAlloc;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    // `try_with`: the allocator also runs while thread-locals are being torn down.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| {
            if now > peak.get() {
                peak.set(now)
            }
        });
    });
}

// A counting allocator: measures peak memory while decoding.
#[allow(unsafe_code)]
// SAFETY: every method forwards to `System` with the caller's own arguments.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) };
        track(-(layout.size() as isize));
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            track(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Runs `f` and returns its result with the peak number of bytes it had allocated at once.
fn peak_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let out = f();
    let peak = PEAK.with(Cell::get);
    (out, (peak - start).max(0) as usize)
}

// ---------------------------------------------------------------------------------------
// Encoders and byte surgery.

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format)
        .expect("encoding a test image");
    out.into_inner()
}

fn encode_jpeg(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            ColorType::Rgb8.into(),
        )
        .expect("encoding a test JPEG");
    out
}

fn encode_jpeg_grey(img: &ImageBuffer<Luma<u8>, Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 100)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            ColorType::L8.into(),
        )
        .expect("encoding a grey test JPEG");
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Rewrites the IHDR width/height of a PNG (and its CRC): a header that claims any size.
fn png_with_size(width: u32, height: u32) -> Vec<u8> {
    let mut png = encode(
        &DynamicImage::ImageRgb8(RgbImage::new(1, 1)),
        ImageFormat::Png,
    );
    assert_eq!(&png[12..16], b"IHDR", "IHDR must be the first chunk");
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

/// Offset of the first marker `m` (0xFF m) in a JPEG, walking segments by length.
fn find_jpeg_segment(jpeg: &[u8], m: u8) -> Option<usize> {
    let mut i = 2;
    while i + 4 <= jpeg.len() {
        if jpeg[i] != 0xFF {
            return None;
        }
        if jpeg[i + 1] == m {
            return Some(i);
        }
        if jpeg[i + 1] == 0xDA {
            return None;
        }
        i += 2 + usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
    }
    None
}

/// A real baseline JPEG header whose frame claims `width` x `height`, cut right after the
/// start-of-scan header: what a hostile upload needs to look huge.
fn jpeg_header_with_size(width: u16, height: u16) -> Vec<u8> {
    let mut jpeg = encode_jpeg(&RgbImage::from_pixel(16, 16, Rgb([90, 120, 200])), 90);
    let sof = find_jpeg_segment(&jpeg, 0xC0).expect("baseline JPEG has SOF0");
    jpeg[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    let sos = find_jpeg_segment(&jpeg, 0xDA).expect("JPEG has SOS");
    let sos_len = usize::from(u16::from_be_bytes([jpeg[sos + 2], jpeg[sos + 3]]));
    jpeg.truncate(sos + 2 + sos_len + 16);
    jpeg
}

/// Inserts an EXIF APP1 segment holding only an orientation tag right after SOI.
fn with_exif_orientation(jpeg: &[u8], orientation: u16, big_endian: bool) -> Vec<u8> {
    let mut tiff = Vec::new();
    let u16b = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u32b = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    tiff.extend_from_slice(if big_endian { b"MM" } else { b"II" });
    tiff.extend_from_slice(&u16b(42));
    tiff.extend_from_slice(&u32b(8)); // IFD0 right after the header
    tiff.extend_from_slice(&u16b(1)); // one entry
    tiff.extend_from_slice(&u16b(0x0112)); // Orientation
    tiff.extend_from_slice(&u16b(3)); // SHORT
    tiff.extend_from_slice(&u32b(1)); // count
    tiff.extend_from_slice(&u16b(orientation));
    tiff.extend_from_slice(&[0, 0]); // value padding to 4 bytes
    tiff.extend_from_slice(&u32b(0)); // no next IFD

    let mut app1 = vec![0xFF, 0xE1];
    app1.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
    app1.extend_from_slice(b"Exif\0\0");
    app1.extend_from_slice(&tiff);

    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

fn close(a: [u8; 3], b: [u8; 3], tol: u8) -> bool {
    a.iter().zip(b).all(|(&x, y)| x.abs_diff(y) <= tol)
}

/// Six distinct colours in 16x16 blocks, 3 columns x 2 rows: asymmetric under every flip
/// and rotation, and aligned to JPEG blocks so lossy coding keeps each block's colour.
const BLOCK_COLOURS: [[[u8; 3]; 3]; 2] = [
    [[220, 30, 30], [30, 200, 40], [40, 60, 220]],
    [[240, 230, 40], [30, 220, 230], [200, 40, 210]],
];

fn blocks_image() -> RgbImage {
    RgbImage::from_fn(48, 32, |x, y| {
        Rgb(BLOCK_COLOURS[(y / 16) as usize][(x / 16) as usize])
    })
}

fn block_centre(img: &RgbImage, bx: u32, by: u32) -> [u8; 3] {
    img.get_pixel(bx * 16 + 8, by * 16 + 8).0
}

// ---------------------------------------------------------------------------------------

#[test]
fn empty_unknown_and_unaccepted_formats() {
    assert!(matches!(decode(&[], &limits()), Err(ImageError::Empty)));
    match decode(b"hello, this is not an image", &limits()) {
        Err(ImageError::UnknownFormat { magic }) => assert_eq!(magic, "68 65 6c 6c 6f 2c 20 74"),
        other => panic!("expected UnknownFormat, got {other:?}"),
    }
    for magic in [
        &b"GIF89a\x01\x00\x01\x00\x00\x00\x00"[..],
        b"BM\x3a\x00\x00\x00\x00\x00\x00\x00\x36\x00",
    ] {
        assert!(
            matches!(
                decode(magic, &limits()),
                Err(ImageError::UnsupportedFormat { .. })
            ),
            "{:?} must be refused as an unaccepted format",
            &magic[..2]
        );
    }
    let png = encode(
        &DynamicImage::ImageRgb8(RgbImage::new(4, 4)),
        ImageFormat::Png,
    );
    let small = DecodeLimits {
        max_input_bytes: 10,
        ..limits()
    };
    assert!(matches!(
        decode(&png, &small),
        Err(ImageError::InputTooLarge { max: 10, .. })
    ));
}

#[test]
fn png_and_webp_rgb_are_exact_and_jpeg_close() {
    let img = RgbImage::from_fn(37, 23, |x, y| {
        Rgb([(x * 7) as u8, (y * 11) as u8, (x * y) as u8])
    });
    let dynimg = DynamicImage::ImageRgb8(img.clone());
    for format in [ImageFormat::Png, ImageFormat::WebP] {
        let out = decode(&encode(&dynimg, format), &limits())
            .unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert_eq!(out, img, "{format:?} is lossless here");
    }
    let blocks = blocks_image();
    let out = decode(&encode_jpeg(&blocks, 95), &limits()).expect("JPEG decodes");
    assert_eq!(out.dimensions(), (48, 32));
    for by in 0..2 {
        for bx in 0..3 {
            let want = BLOCK_COLOURS[by as usize][bx as usize];
            assert!(
                close(block_centre(&out, bx, by), want, 6),
                "block {bx},{by}"
            );
        }
    }
}

#[test]
fn grey_and_grey_alpha() {
    let grey = ImageBuffer::from_fn(20, 10, |x, y| Luma([(x * 12 + y) as u8]));
    let out = decode(
        &encode(&DynamicImage::ImageLuma8(grey.clone()), ImageFormat::Png),
        &limits(),
    )
    .expect("grey PNG");
    for (o, g) in out.pixels().zip(grey.pixels()) {
        assert_eq!(o.0, [g.0[0]; 3]);
    }

    let grey_jpeg = ImageBuffer::from_fn(32, 16, |x, _| Luma([if x < 16 { 40 } else { 200 }]));
    let out = decode(&encode_jpeg_grey(&grey_jpeg), &limits()).expect("grey JPEG");
    assert!(close(out.get_pixel(8, 8).0, [40; 3], 3));
    assert!(close(out.get_pixel(24, 8).0, [200; 3], 3));

    // Grey 100 at alpha 0, 128, 255: white, 100*128/255 + 127 = 177.2, 100.
    let la = ImageBuffer::from_fn(3, 1, |x, _| LumaA([100, [0, 128, 255][x as usize]]));
    let out = decode(
        &encode(&DynamicImage::ImageLumaA8(la), ImageFormat::Png),
        &limits(),
    )
    .expect("grey+alpha PNG");
    let px: Vec<_> = out.pixels().map(|p| p.0).collect();
    assert_eq!(px, vec![[255; 3], [177; 3], [100; 3]]);
}

#[test]
fn rgba_is_composited_over_white() {
    // Fully transparent black must come out white, not black.
    let rgba = ImageBuffer::from_fn(4, 1, |x, _| {
        Rgba(
            [
                [0, 0, 0, 0],
                [10, 20, 30, 255],
                [0, 0, 0, 128],
                [200, 100, 0, 64],
            ][x as usize],
        )
    });
    let want = vec![
        [255, 255, 255],
        [10, 20, 30],
        [127, 127, 127],
        [241, 216, 191],
    ];
    // 200*64/255 + 255*191/255 = 241.2; 100*64/255 + 191 = 216.1; 0 + 191.
    let dynimg = DynamicImage::ImageRgba8(rgba);
    for format in [ImageFormat::Png, ImageFormat::WebP] {
        let out = decode(&encode(&dynimg, format), &limits()).expect("RGBA decodes");
        let px: Vec<_> = out.pixels().map(|p| p.0).collect();
        assert_eq!(px, want, "{format:?}");
    }
}

#[test]
fn sixteen_bit_png() {
    let rgb16: ImageBuffer<Rgb<u16>, Vec<u16>> = ImageBuffer::from_fn(3, 1, |x, _| {
        Rgb([
            [0, 257 * 7, 65535],
            [0x1234, 0x8080, 0xFF7F],
            [65535, 0, 257 * 200],
        ][x as usize])
    });
    let out = decode(
        &encode(&DynamicImage::ImageRgb16(rgb16), ImageFormat::Png),
        &limits(),
    )
    .expect("16-bit RGB PNG");
    let px: Vec<_> = out.pixels().map(|p| p.0).collect();
    // 0x1234/257 = 18.1, 0x8080/257 = 128, 0xFF7F/257 = 254.5 -> 254 or 255 by rounding.
    assert_eq!(px[0], [0, 7, 255]);
    assert_eq!(&px[1][..2], &[18, 128]);
    assert!(px[1][2] == 254 || px[1][2] == 255);
    assert_eq!(px[2], [255, 0, 200]);

    let la16: ImageBuffer<LumaA<u16>, Vec<u16>> =
        ImageBuffer::from_fn(2, 1, |x, _| LumaA([[0, 0], [257 * 50, 65535]][x as usize]));
    let out = decode(
        &encode(&DynamicImage::ImageLumaA16(la16), ImageFormat::Png),
        &limits(),
    )
    .expect("16-bit grey+alpha PNG");
    assert_eq!(
        out.pixels().map(|p| p.0).collect::<Vec<_>>(),
        vec![[255; 3], [50; 3]]
    );

    let rgba16: ImageBuffer<Rgba<u16>, Vec<u16>> =
        ImageBuffer::from_pixel(1, 1, Rgba([0, 65535, 257 * 100, 257 * 128]));
    let out = decode(
        &encode(&DynamicImage::ImageRgba16(rgba16), ImageFormat::Png),
        &limits(),
    )
    .expect("16-bit RGBA PNG");
    assert_eq!(out.get_pixel(0, 0).0, [127, 255, 177]);
}

/// CMYK ink amounts (0 = no ink) and the RGB they should give: R = (255-C)(255-K)/255.
const CMYK_CASES: [([u8; 4], [u8; 3]); 8] = [
    ([0, 0, 0, 0], [255, 255, 255]),
    ([255, 0, 0, 0], [0, 255, 255]),
    ([0, 255, 0, 0], [255, 0, 255]),
    ([0, 0, 255, 0], [255, 255, 0]),
    ([0, 0, 0, 255], [0, 0, 0]),
    ([0, 255, 255, 0], [255, 0, 0]),
    ([0, 0, 0, 128], [127, 127, 127]),
    ([20, 60, 80, 10], [226, 187, 168]),
];

fn cmyk_jpeg(color: jpeg_encoder::ColorType) -> Vec<u8> {
    // One 16x16 block per case, in a row.
    let (w, h) = (16 * CMYK_CASES.len(), 16);
    let mut data = Vec::with_capacity(w * h * 4);
    for _ in 0..h {
        for x in 0..w {
            data.extend_from_slice(&CMYK_CASES[x / 16].0);
        }
    }
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 100)
        .encode(&data, w as u16, h as u16, color)
        .expect("encoding a CMYK JPEG");
    out
}

fn assert_cmyk_colours(out: &RgbImage, what: &str) {
    assert_eq!(out.dimensions(), (16 * CMYK_CASES.len() as u32, 16));
    for (i, (ink, want)) in CMYK_CASES.iter().enumerate() {
        let got = out.get_pixel(i as u32 * 16 + 8, 8).0;
        assert!(
            close(got, *want, 4),
            "{what}: ink {ink:?} gave {got:?}, expected about {want:?}"
        );
    }
}

#[test]
fn cmyk_and_ycck_jpeg_colours() {
    let cmyk = cmyk_jpeg(jpeg_encoder::ColorType::Cmyk);
    assert!(
        find_jpeg_segment(&cmyk, 0xEE).is_some(),
        "jpeg-encoder writes an Adobe APP14 marker"
    );
    assert_cmyk_colours(&decode(&cmyk, &limits()).expect("CMYK JPEG"), "Adobe CMYK");

    let ycck = cmyk_jpeg(jpeg_encoder::ColorType::CmykAsYcck);
    assert_cmyk_colours(&decode(&ycck, &limits()).expect("YCCK JPEG"), "Adobe YCCK");

    // Without the Adobe marker the stored values are still read as Adobe-inverted (the
    // documented choice); this pins that behaviour.
    let app14 = find_jpeg_segment(&cmyk, 0xEE).expect("APP14 present");
    let len = 2 + usize::from(u16::from_be_bytes([cmyk[app14 + 2], cmyk[app14 + 3]]));
    let mut stripped = cmyk[..app14].to_vec();
    stripped.extend_from_slice(&cmyk[app14 + len..]);
    assert!(find_jpeg_segment(&stripped, 0xEE).is_none());
    assert_cmyk_colours(
        &decode(&stripped, &limits()).expect("CMYK JPEG without APP14"),
        "CMYK without APP14",
    );
}

/// Where display pixel (x, y) comes from in the stored W x H image, per the EXIF spec's
/// meaning of each orientation value; written independently of the `image` crate.
fn exif_source(orientation: u16, x: u32, y: u32, w: u32, h: u32) -> (u32, u32) {
    match orientation {
        1 => (x, y),
        2 => (w - 1 - x, y),
        3 => (w - 1 - x, h - 1 - y),
        4 => (x, h - 1 - y),
        5 => (y, x),
        6 => (y, h - 1 - x),
        7 => (w - 1 - y, h - 1 - x),
        8 => (w - 1 - y, x),
        _ => unreachable!("orientation values are 1..=8"),
    }
}

#[test]
fn exif_orientation_all_eight() {
    let stored = blocks_image();
    let (w, h) = stored.dimensions();
    let jpeg = encode_jpeg(&stored, 95);
    for big_endian in [false, true] {
        for orientation in 1..=8u16 {
            let out = decode(
                &with_exif_orientation(&jpeg, orientation, big_endian),
                &limits(),
            )
            .unwrap_or_else(|e| panic!("orientation {orientation}: {e}"));
            let expect_dims = if orientation >= 5 { (h, w) } else { (w, h) };
            assert_eq!(out.dimensions(), expect_dims, "orientation {orientation}");
            // Sample the centre of every 16x16 block of the upright image.
            for y in (8..out.height()).step_by(16) {
                for x in (8..out.width()).step_by(16) {
                    let (sx, sy) = exif_source(orientation, x, y, w, h);
                    let want = BLOCK_COLOURS[(sy / 16) as usize][(sx / 16) as usize];
                    let got = out.get_pixel(x, y).0;
                    assert!(
                        close(got, want, 6),
                        "orientation {orientation} (big endian {big_endian}) at ({x},{y}): got {got:?}, want {want:?}"
                    );
                }
            }
        }
    }
    // An orientation value outside 1..=8 is ignored, not an error.
    let out = decode(&with_exif_orientation(&jpeg, 9, false), &limits())
        .expect("bad orientation ignored");
    assert_eq!(out.dimensions(), (w, h));
}

#[test]
fn png_exif_orientation() {
    let stored = blocks_image();
    let mut exif_jpeg = with_exif_orientation(&[0xFF, 0xD8], 6, false);
    let tiff = exif_jpeg.split_off(2 + 4 + 6); // SOI, APP1 marker+length, "Exif\0\0"
    let mut png = Vec::new();
    let mut encoder = image::codecs::png::PngEncoder::new(&mut png);
    encoder
        .set_exif_metadata(tiff)
        .expect("PNG encoder stores EXIF");
    encoder
        .write_image(
            stored.as_raw(),
            stored.width(),
            stored.height(),
            ColorType::Rgb8.into(),
        )
        .expect("PNG");
    let out = decode(&png, &limits()).expect("PNG with eXIf decodes");
    assert_eq!(out.dimensions(), (32, 48));
    // Rotated 90 degrees clockwise: the stored bottom-left block is now top-left.
    assert_eq!(out.get_pixel(8, 8).0, BLOCK_COLOURS[1][0]);
}

#[test]
fn huge_headers_are_refused_before_allocating() {
    for (what, bytes) in [
        ("PNG", png_with_size(30_000, 30_000)),
        ("JPEG", jpeg_header_with_size(30_000, 30_000)),
    ] {
        assert!(bytes.len() < 2000, "{what} test input is only a header");
        let (result, peak) = peak_allocation(|| decode(&bytes, &limits()));
        match result {
            Err(ImageError::TooLarge {
                width: 30_000,
                height: 30_000,
                ..
            }) => {}
            other => panic!("{what}: expected TooLarge 30000x30000, got {other:?}"),
        }
        // 30000x30000 RGB would be 2.7 GB; refusing must cost only header parsing.
        assert!(
            peak < 4 << 20,
            "{what}: refusing the header allocated {peak} bytes"
        );
    }

    // Within the side limit but over the pixel budget: 8000x8000 = 64 MP.
    match decode(&png_with_size(8000, 8000), &limits()) {
        Err(ImageError::TooLarge { reason, .. }) => assert!(reason.contains("pixels"), "{reason}"),
        other => panic!("expected TooLarge by pixels, got {other:?}"),
    }
    // A long thin strip fails on one side.
    match decode(&jpeg_header_with_size(10_000, 16), &limits()) {
        Err(ImageError::TooLarge {
            width: 10_000,
            height: 16,
            reason,
            ..
        }) => assert!(reason.contains("width")),
        other => panic!("expected TooLarge by width, got {other:?}"),
    }
    match decode(&png_with_size(16, 9000), &limits()) {
        Err(ImageError::TooLarge { reason, .. }) => assert!(reason.contains("height")),
        other => panic!("expected TooLarge by height, got {other:?}"),
    }
    // Zero-sized: the PNG decoder itself refuses a zero width in IHDR.
    assert!(decode(&png_with_size(0, 10), &limits()).is_err());
}

#[test]
fn allocation_limit_is_a_second_guard() {
    let png = encode(
        &DynamicImage::ImageRgb8(RgbImage::new(100, 100)),
        ImageFormat::Png,
    );
    let tight = DecodeLimits {
        max_alloc_bytes: 10_000,
        ..limits()
    };
    match decode(&png, &tight) {
        Err(ImageError::AllocationLimit { needed, max, .. }) => {
            assert_eq!((needed, max), (30_000, 10_000))
        }
        other => panic!("expected AllocationLimit, got {other:?}"),
    }
    assert!(decode(&png, &limits()).is_ok());
}

fn noisy_image(w: u32, h: u32) -> RgbImage {
    let mut s = 0x1234_5678u32;
    RgbImage::from_fn(w, h, |_, _| {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        Rgb([s as u8, (s >> 8) as u8, (s >> 16) as u8])
    })
}

#[test]
fn truncated_files_are_refused() {
    let img = noisy_image(64, 64);
    let jpeg = encode_jpeg(&img, 90);
    let png = encode(&DynamicImage::ImageRgb8(img.clone()), ImageFormat::Png);
    let webp = encode(&DynamicImage::ImageRgb8(img), ImageFormat::WebP);

    for (what, bytes) in [("JPEG", &jpeg), ("PNG", &png), ("WebP", &webp)] {
        assert!(decode(bytes, &limits()).is_ok(), "{what} intact");
        // Cut in the compressed data: must say "truncated", not hand back a grey half.
        let half = &bytes[..bytes.len() / 2];
        match decode(half, &limits()) {
            Err(ImageError::Truncated { .. }) => {}
            other => panic!("{what} cut in half: expected Truncated, got {other:?}"),
        }
        // Every cut point in the first 400 bytes (headers), then every 97th, up to the end
        // of the pixel data: an error, never a panic or a silently partial image. (A PNG
        // missing only its IEND trailer still has every pixel, so accepting it is fine.)
        let data_end = match what {
            "PNG" => {
                bytes
                    .windows(4)
                    .rposition(|w| w == b"IEND")
                    .expect("PNG has IEND")
                    - 4
            }
            _ => bytes.len(),
        };
        let cuts = (1..data_end.min(400))
            .chain((400..data_end).step_by(97))
            .chain([data_end - 1]);
        for cut in cuts {
            assert!(
                decode(&bytes[..cut], &limits()).is_err(),
                "{what} cut at {cut} of {} decoded",
                bytes.len()
            );
        }
    }
}

#[test]
fn corrupt_files_give_errors_not_panics() {
    let img = noisy_image(48, 40);
    let jpeg = encode_jpeg(&img, 90);
    let png = encode(&DynamicImage::ImageRgb8(img), ImageFormat::Png);

    // A flipped byte inside PNG image data breaks the chunk CRC.
    let mut bad_png = png.clone();
    let idat = bad_png
        .windows(4)
        .position(|w| w == b"IDAT")
        .expect("PNG has IDAT");
    bad_png[idat + 10] ^= 0x55;
    match decode(&bad_png, &limits()) {
        Err(ImageError::Corrupt { format: "PNG", .. }) => {}
        other => panic!("expected Corrupt PNG, got {other:?}"),
    }

    // A JPEG with its quantisation table segment length destroyed.
    let mut bad_jpeg = jpeg.clone();
    let dqt = find_jpeg_segment(&bad_jpeg, 0xDB).expect("JPEG has DQT");
    bad_jpeg[dqt + 2] = 0;
    bad_jpeg[dqt + 3] = 1;
    assert!(
        decode(&bad_jpeg, &limits()).is_err(),
        "JPEG with a bad DQT length decoded"
    );

    // Pseudo-random byte flips anywhere: any outcome but a panic is fine.
    let mut s = 0x9E37_79B9u32;
    for (what, original) in [("JPEG", &jpeg), ("PNG", &png)] {
        for round in 0..300 {
            let mut bytes = original.clone();
            for _ in 0..1 + round % 4 {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                let i = (s as usize) % bytes.len();
                bytes[i] ^= (s >> 24) as u8 | 1;
            }
            if let Ok(out) = decode(&bytes, &limits()) {
                assert!(
                    out.width() > 0 && out.height() > 0,
                    "{what}: decoded an empty image"
                );
            }
        }
    }
}

#[test]
fn decode_file_reads_and_reports_paths() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("face.png");
    let img = noisy_image(10, 8);
    std::fs::write(
        &path,
        encode(&DynamicImage::ImageRgb8(img.clone()), ImageFormat::Png),
    )
    .expect("write");
    assert_eq!(decode_file(&path, &limits()).expect("decode_file"), img);

    let small = DecodeLimits {
        max_input_bytes: 16,
        ..limits()
    };
    assert!(matches!(
        decode_file(&path, &small),
        Err(ImageError::InputTooLarge { .. })
    ));

    let missing = dir.path().join("missing.jpg");
    match decode_file(&missing, &limits()) {
        Err(e @ ImageError::Io { .. }) => assert!(e.to_string().contains("missing.jpg"), "{e}"),
        other => panic!("expected Io error, got {other:?}"),
    }
    // The crate-level error wraps it.
    let wrapped: models::Error = decode(&[], &limits()).expect_err("empty").into();
    assert!(matches!(wrapped, models::Error::Image(ImageError::Empty)));
}

fn faces_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/faces");
    dir.is_dir().then_some(dir)
}

#[test]
fn real_photos_decode() {
    let Some(faces) = faces_dir() else {
        eprintln!("skipped: ../shared/faces not found");
        return;
    };
    let mut decoded = 0;
    for set in [
        "facerec-A",
        "facerec_hard-A",
        "bbt-A",
        "misc_skimage-A/face_public_domain_Eileen_Collins",
    ] {
        let mut stack = vec![faces.join(set)];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let out = decode_file(&path, &limits())
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(
                    out.width() >= 16 && out.height() >= 16,
                    "{}",
                    path.display()
                );
                decoded += 1;
            }
        }
    }
    assert!(
        decoded >= 50,
        "expected the face photos of ../shared/faces, found {decoded}"
    );

    // The RGBA Obama PNG: composited on white, so no pixel under full transparency is black.
    let alpha = faces.join("facerec_hard-A/alpha_png");
    if let Some(Ok(entry)) = std::fs::read_dir(&alpha).ok().and_then(|mut d| d.next()) {
        let bytes = std::fs::read(entry.path()).expect("read alpha PNG");
        let raw = image::load_from_memory(&bytes).expect("reference decode");
        let out = decode(&bytes, &limits()).expect("alpha PNG");
        if let Some(rgba) = raw.as_rgba8() {
            for (o, r) in out.pixels().zip(rgba.pixels()) {
                if r.0[3] == 255 {
                    assert_eq!(o.0, [r.0[0], r.0[1], r.0[2]]);
                } else if r.0[3] == 0 {
                    assert_eq!(o.0, [255; 3]);
                }
            }
        }
    }
}

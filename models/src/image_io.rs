//! Decoding untrusted image bytes (kiosk frames, uploaded enrolment photos) into upright
//! 8-bit RGB, refusing anything dangerous or broken with a clear [`ImageError`] instead of a
//! panic or an unbounded allocation. Only JPEG, PNG and WebP are accepted, whatever other
//! formats the `image` crate happens to have compiled in; dimensions are checked from the
//! header before a single pixel buffer exists, and `image::Limits` caps allocations again
//! during decoding. EXIF orientation is applied, alpha is composited over white, grey and
//! 16-bit images are converted, and CMYK/YCCK JPEGs come out in RGB.
//!
//! Colour choices, stated once: CMYK JPEGs are read with the Adobe convention (stored values
//! inverted, 0 = full ink), which is what Photoshop and practically every CMYK JPEG writer
//! produces; zune-jpeg assumes it even when the Adobe APP14 marker is missing. The
//! conversion is the naive `R = (1-C)(1-K)` with no ICC colour management: faces come out
//! with plausible, not print-exact, colours. Transparent pixels are composited over white
//! because that is how a person saw the photo when choosing it (browsers and viewers show
//! transparency on white), whereas dropping alpha would expose whatever colour the encoder
//! left under transparent pixels (often black).

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

/// Formats this module accepts. WebP is included because Android phones and browsers hand it
/// out for saved or shared photos, and its decoder (`image-webp`) is pure safe Rust; GIF,
/// BMP, TIFF and the rest are refused: no camera or enrolment flow produces them and each
/// decoder is more code exposed to untrusted bytes.
pub const ACCEPTED_FORMATS: [ImageFormat; 3] =
    [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::WebP];

/// Resource limits for [`decode`]. Checked against the header before decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Maximum width in pixels.
    pub max_width: u32,
    /// Maximum height in pixels.
    pub max_height: u32,
    /// Maximum width x height.
    pub max_pixels: u64,
    /// Maximum bytes the decoder may allocate (second guard, passed to `image::Limits`).
    pub max_alloc_bytes: u64,
    /// Maximum size of the encoded input.
    pub max_input_bytes: u64,
}

impl Default for DecodeLimits {
    /// 8192 px per side and 50 megapixels: admits the full-resolution photos of current phone
    /// main cameras (8160x6120) while keeping the worst decode (16-bit RGBA) near 400 MB;
    /// 512 MiB allocation cap (the `image` crate's own default); 64 MiB of encoded input.
    fn default() -> Self {
        Self {
            max_width: 8192,
            max_height: 8192,
            max_pixels: 50_000_000,
            max_alloc_bytes: 512 * 1024 * 1024,
            max_input_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Why an image was refused.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("the image is empty (0 bytes)")]
    Empty,

    #[error("the image file is {bytes} bytes, more than the {max} allowed")]
    InputTooLarge { bytes: u64, max: u64 },

    #[error("not a recognised image format (first bytes: {magic})")]
    UnknownFormat { magic: String },

    #[error("{format} images are not accepted (use JPEG, PNG or WebP)")]
    UnsupportedFormat { format: String },

    #[error("the {format} image has no pixels ({width}x{height})")]
    NoPixels {
        format: &'static str,
        width: u32,
        height: u32,
    },

    #[error("the {format} image is {width}x{height}, too large: {reason}")]
    TooLarge {
        format: &'static str,
        width: u32,
        height: u32,
        reason: String,
    },

    #[error("decoding the {format} image would need {needed} bytes, more than the {max} allowed")]
    AllocationLimit {
        format: &'static str,
        needed: u64,
        max: u64,
    },

    #[error("the {format} image exceeds a decoder limit: {reason}")]
    DecoderLimit {
        format: &'static str,
        reason: String,
    },

    #[error("the {format} image is truncated: {reason}")]
    Truncated {
        format: &'static str,
        reason: String,
    },

    #[error("the {format} image is corrupt: {reason}")]
    Corrupt {
        format: &'static str,
        reason: String,
    },

    #[error("the {format} image uses a feature the decoder does not support: {reason}")]
    UnsupportedFeature {
        format: &'static str,
        reason: String,
    },

    #[error("cannot read image file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Decodes untrusted bytes into an upright 8-bit RGB image.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    let len = bytes.len() as u64;
    if len > limits.max_input_bytes {
        return Err(ImageError::InputTooLarge {
            bytes: len,
            max: limits.max_input_bytes,
        });
    }
    let format = image::guess_format(bytes).map_err(|_| ImageError::UnknownFormat {
        magic: bytes
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" "),
    })?;
    if !ACCEPTED_FORMATS.contains(&format) {
        return Err(ImageError::UnsupportedFormat {
            format: format!("{format:?}"),
        });
    }
    let name = format_name(format);

    // First pass reads only the header. No dimension limits yet, so that an oversized image
    // gets our explicit TooLarge error with its size rather than a generic one.
    let mut header_limits = Limits::default();
    header_limits.max_alloc = Some(limits.max_alloc_bytes);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(header_limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| map_image_error(name, e))?;

    let (width, height) = decoder.dimensions();
    check_dimensions(name, width, height, limits)?;

    // JPEG decoding in `image` is lenient: a file cut short decodes "successfully" with the
    // missing part filled in grey. Refuse that here (cheap: a walk over the markers).
    match format {
        ImageFormat::Jpeg => check_jpeg_complete(bytes)?,
        // image-webp reports a short file as a "corrupt bitstream"; say what it is.
        ImageFormat::WebP => check_webp_complete(bytes)?,
        _ => {}
    }

    let mut decode_limits = Limits::default();
    decode_limits.max_image_width = Some(limits.max_width);
    decode_limits.max_image_height = Some(limits.max_height);
    decode_limits.max_alloc = Some(limits.max_alloc_bytes);
    let needed = decoder.total_bytes();
    if needed > limits.max_alloc_bytes {
        return Err(ImageError::AllocationLimit {
            format: name,
            needed,
            max: limits.max_alloc_bytes,
        });
    }
    decoder
        .set_limits(decode_limits)
        .map_err(|e| map_image_error(name, e))?;

    // A broken EXIF block must not make an otherwise good photo unusable.
    let orientation = decoder.orientation().unwrap_or_else(|e| {
        tracing::warn!(format = name, error = %e, "ignoring unreadable EXIF orientation");
        image::metadata::Orientation::NoTransforms
    });

    let image = DynamicImage::from_decoder(decoder).map_err(|e| map_image_error(name, e))?;
    let mut upright = DynamicImage::ImageRgb8(to_rgb8(image));
    upright.apply_orientation(orientation);
    Ok(upright.into_rgb8())
}

/// Reads and decodes an image file, refusing files over `limits.max_input_bytes` before
/// reading them.
pub fn decode_file(path: impl AsRef<Path>, limits: &DecodeLimits) -> Result<RgbImage, ImageError> {
    let path = path.as_ref();
    let io = |source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size > limits.max_input_bytes {
        return Err(ImageError::InputTooLarge {
            bytes: size,
            max: limits.max_input_bytes,
        });
    }
    // `take` guards against a file that grows between the size check and the read.
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(limits.max_input_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    decode(&bytes, limits)
}

fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::Png => "PNG",
        ImageFormat::WebP => "WebP",
        _ => "image",
    }
}

fn check_dimensions(
    format: &'static str,
    width: u32,
    height: u32,
    limits: &DecodeLimits,
) -> Result<(), ImageError> {
    if width == 0 || height == 0 {
        return Err(ImageError::NoPixels {
            format,
            width,
            height,
        });
    }
    let too_large = |reason: String| {
        Err(ImageError::TooLarge {
            format,
            width,
            height,
            reason,
        })
    };
    if width > limits.max_width {
        return too_large(format!("width exceeds {}", limits.max_width));
    }
    if height > limits.max_height {
        return too_large(format!("height exceeds {}", limits.max_height));
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return too_large(format!("{pixels} pixels exceed {}", limits.max_pixels));
    }
    Ok(())
}

fn map_image_error(format: &'static str, e: image::ImageError) -> ImageError {
    match e {
        image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            ImageError::Truncated {
                format,
                reason: io.to_string(),
            }
        }
        image::ImageError::IoError(io) => ImageError::Corrupt {
            format,
            reason: io.to_string(),
        },
        image::ImageError::Unsupported(u) => ImageError::UnsupportedFeature {
            format,
            reason: u.to_string(),
        },
        // Our own checks run first, so this is the decoder's second guard speaking (e.g. a
        // PNG text chunk larger than the allocation budget).
        image::ImageError::Limits(l) => ImageError::DecoderLimit {
            format,
            reason: l.to_string(),
        },
        // The decoders report truncation as a decoding error with their own wording.
        other => {
            let reason = other.to_string();
            let lower = reason.to_ascii_lowercase();
            if lower.contains("eof")
                || lower.contains("end of file")
                || lower.contains("no more bytes")
            {
                ImageError::Truncated { format, reason }
            } else {
                ImageError::Corrupt { format, reason }
            }
        }
    }
}

/// Converts any decoded layout to 8-bit RGB: grey is replicated, 16-bit is rounded to 8-bit,
/// and alpha is composited over white (see the module doc for why).
fn to_rgb8(image: DynamicImage) -> RgbImage {
    match image {
        DynamicImage::ImageRgba8(img) => composite_over_white(
            img.width(),
            img.height(),
            img.pixels().map(|p| {
                let [r, g, b, a] = p.0;
                [r, g, b, a].map(|v| u32::from(v) * 257)
            }),
        ),
        DynamicImage::ImageLumaA8(img) => composite_over_white(
            img.width(),
            img.height(),
            img.pixels().map(|p| {
                let [l, a] = p.0.map(|v| u32::from(v) * 257);
                [l, l, l, a]
            }),
        ),
        DynamicImage::ImageRgba16(img) => composite_over_white(
            img.width(),
            img.height(),
            img.pixels().map(|p| p.0.map(u32::from)),
        ),
        DynamicImage::ImageLumaA16(img) => composite_over_white(
            img.width(),
            img.height(),
            img.pixels().map(|p| {
                let [l, a] = p.0.map(u32::from);
                [l, l, l, a]
            }),
        ),
        // Float RGBA only comes from formats this module does not accept; convert anyway
        // rather than fail, via 16 bits.
        other if other.color().has_alpha() => {
            let img = other.into_rgba16();
            composite_over_white(
                img.width(),
                img.height(),
                img.pixels().map(|p| p.0.map(u32::from)),
            )
        }
        // Rgb8 is moved without a copy; grey and 16-bit go through image's conversion, which
        // rounds 16-bit values to the nearest 8-bit one.
        other => other.into_rgb8(),
    }
}

/// `pixels` yields `[r, g, b, a]` on a 16-bit scale (0..=65535), row-major.
fn composite_over_white(
    width: u32,
    height: u32,
    pixels: impl Iterator<Item = [u32; 4]>,
) -> RgbImage {
    const MAX: u64 = 65535;
    let mut out = RgbImage::new(width, height);
    for (dst, [r, g, b, a]) in out.pixels_mut().zip(pixels) {
        let a = u64::from(a);
        // out8 = (c*a + MAX*(MAX-a)) / (MAX*257), rounded once, in exact integer arithmetic.
        let channel = |c: u32| {
            let num = u64::from(c) * a + MAX * (MAX - a);
            let den = MAX * 257;
            // At most 255 by construction (num <= MAX*MAX = den*255).
            ((num + den / 2) / den) as u8
        };
        dst.0 = [channel(r), channel(g), channel(b)];
    }
    out
}

/// A WebP file is one RIFF chunk whose header states its size.
fn check_webp_complete(b: &[u8]) -> Result<(), ImageError> {
    let declared = b
        .get(4..8)
        .map(|s| u64::from(u32::from_le_bytes([s[0], s[1], s[2], s[3]])) + 8);
    match declared {
        Some(declared) if declared <= b.len() as u64 => Ok(()),
        Some(declared) => Err(ImageError::Truncated {
            format: "WebP",
            reason: format!(
                "the RIFF header declares {declared} bytes but the file has {}",
                b.len()
            ),
        }),
        None => Err(ImageError::Truncated {
            format: "WebP",
            reason: "the file ends inside the RIFF header".into(),
        }),
    }
}

/// Walks a JPEG's marker segments and entropy-coded data up to the end-of-image marker,
/// refusing a file that ends first. Skips segments by their length (so EXIF thumbnails,
/// which contain an end-of-image marker of their own, are not mistaken for the real end)
/// and tolerates stray bytes between segments, as libjpeg does.
fn check_jpeg_complete(b: &[u8]) -> Result<(), ImageError> {
    const F: &str = "JPEG";
    let truncated = |what: &str| {
        Err(ImageError::Truncated {
            format: F,
            reason: format!("{what} (no end-of-image marker)"),
        })
    };
    if !b.starts_with(&[0xFF, 0xD8]) {
        return Err(ImageError::Corrupt {
            format: F,
            reason: "missing start-of-image marker".into(),
        });
    }
    let mut i = 2;
    loop {
        // Find the next marker: skip stray bytes, then any 0xFF fill bytes.
        match b
            .get(i..)
            .and_then(|rest| rest.iter().position(|&x| x == 0xFF))
        {
            Some(p) => i += p,
            None => return truncated("the file ends between segments"),
        }
        while b.get(i) == Some(&0xFF) {
            i += 1;
        }
        let Some(&marker) = b.get(i) else {
            return truncated("the file ends inside a marker");
        };
        i += 1;
        match marker {
            0xD9 => return Ok(()),
            // Standalone markers without a length (TEM, RST0-7); 0x00 is a stuffed byte that
            // does not belong here and is skipped like other stray bytes.
            0x00 | 0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let Some(len_bytes) = b.get(i..i + 2) else {
            return truncated("the file ends inside a segment header");
        };
        let seg_len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        if seg_len < 2 {
            return Err(ImageError::Corrupt {
                format: F,
                reason: format!(
                    "segment 0xFF{marker:02X} at byte {} has length {seg_len}",
                    i - 2
                ),
            });
        }
        if i + seg_len > b.len() {
            return truncated(&format!("the file ends inside segment 0xFF{marker:02X}"));
        }
        i += seg_len;
        if marker == 0xDA {
            // Entropy-coded data runs until a marker other than a stuffed 0xFF00 or RSTn.
            loop {
                match b
                    .get(i..)
                    .and_then(|rest| rest.iter().position(|&x| x == 0xFF))
                {
                    Some(p) => i += p,
                    None => return truncated("the file ends inside the compressed image data"),
                }
                let mut j = i + 1;
                while b.get(j) == Some(&0xFF) {
                    j += 1;
                }
                match b.get(j) {
                    None => return truncated("the file ends inside the compressed image data"),
                    Some(0x00 | 0xD0..=0xD7) => i = j + 1,
                    Some(_) => {
                        i = j - 1;
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_walker_finds_the_end_and_refuses_cuts() {
        // SOI, APP1 containing a fake "thumbnail" EOI, SOS with stuffed bytes and RST, EOI.
        let good: Vec<u8> = vec![
            0xFF, 0xD8, // SOI
            0xFF, 0xE1, 0x00, 0x06, 0xFF, 0xD9, 0x00, 0x00, // APP1 with an EOI inside
            0xFF, 0xDA, 0x00, 0x04, 0x01, 0x02, // SOS header
            0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF, 0xFF, 0x00, 0x78, // data
            0xFF, 0xD9, // EOI
        ];
        assert!(check_jpeg_complete(&good).is_ok());
        for cut in 2..good.len() {
            assert!(
                matches!(
                    check_jpeg_complete(&good[..cut]),
                    Err(ImageError::Truncated { .. })
                ),
                "cut at {cut} should be truncated"
            );
        }
        let mut trailing = good.clone();
        trailing.extend_from_slice(b"appended video or other trailer");
        assert!(check_jpeg_complete(&trailing).is_ok());
        assert!(matches!(
            check_jpeg_complete(b"\xFF\xD8\xFF\xE0\x00\x01"),
            Err(ImageError::Corrupt { .. })
        ));
        assert!(matches!(
            check_jpeg_complete(b"\x89PNG"),
            Err(ImageError::Corrupt { .. })
        ));
    }

    #[test]
    fn composite_rounds_exactly() {
        // Opaque keeps the colour, transparent gives white whatever the colour underneath;
        // black at 8-bit alpha 128 leaves 127/255 of the white, white at any alpha stays white,
        // and 16-bit alpha just above half rounds the other way.
        let img = composite_over_white(
            6,
            1,
            [
                [0, 65535, 257 * 10, 65535],
                [0, 0, 0, 0],
                [65535, 0, 65535, 0],
                [0, 257 * 100, 65535, 257 * 128],
                [65535, 65535, 65535, 12345],
                [0, 0, 0, 32766],
            ]
            .into_iter(),
        );
        let px: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
        // 100*128/255 + 127 = 177.2 -> 177; 255*128/255 + 127 = 255.
        // 65535-32766 = 32769 of 65535 white -> 127.51 -> 128.
        assert_eq!(
            px,
            vec![
                [0, 255, 10],
                [255, 255, 255],
                [255, 255, 255],
                [127, 177, 255],
                [255, 255, 255],
                [128, 128, 128]
            ]
        );
    }
}

//! One-time pay codes shown as QR codes (a staff member opens the mobile page and holds
//! the phone to the camera), read from the same frames the face pipeline sees, since a
//! face must not be the only way to pay. This module finds and de-duplicates the codes
//! (what a code means is the backend's business: `BackendApi::redeem_pay_code`), and draws
//! a phone showing one onto a frame for replays (`kiosk make-replay --qr`).

use std::time::{Duration, Instant};

use image::RgbImage;

/// Longest payload taken for a pay code; anything longer is some other QR code.
pub const MAX_CODE_LEN: usize = 512;

/// Every QR code payload found in `image` (usually none or one).
pub fn scan(image: &RgbImage) -> Vec<String> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    if w == 0 || h == 0 {
        return Vec::new();
    }
    let raw = image.as_raw();
    let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
        let i = (y * w + x) * 3;
        ((raw[i] as u32 * 77 + raw[i + 1] as u32 * 150 + raw[i + 2] as u32 * 29) >> 8) as u8
    });
    prepared
        .detect_grids()
        .into_iter()
        .filter_map(|g| g.decode().ok().map(|(_, text)| text))
        .filter(|t| !t.is_empty() && t.len() <= MAX_CODE_LEN)
        .collect()
}

/// A camera frame (`width` x `height`, grey background) with a phone screen showing `text`
/// as a QR code, `module_px` pixels per module, its top-left corner at (`x`, `y`) (clamped
/// into the frame). Errors when the text does not fit a QR code or the code not the frame.
pub fn qr_frame(
    text: &str,
    width: u32,
    height: u32,
    module_px: u32,
    x: u32,
    y: u32,
) -> Result<RgbImage, String> {
    let code = qrcode::QrCode::new(text.as_bytes()).map_err(|e| format!("QR code: {e}"))?;
    let n = code.width() as u32;
    let module_px = module_px.max(1);
    // Four modules of white quiet zone on each side, as a phone screen shows it.
    let side = (n + 8) * module_px;
    if side > width || side > height {
        return Err(format!(
            "a {n}-module QR code at {module_px} px per module needs {side} px; the frame is {width}x{height}"
        ));
    }
    let (x, y) = (x.min(width - side), y.min(height - side));
    let mut img = RgbImage::from_pixel(width, height, image::Rgb([128, 128, 128]));
    for py in 0..side {
        for px in 0..side {
            img.put_pixel(x + px, y + py, image::Rgb([255, 255, 255]));
        }
    }
    for (i, c) in code.to_colors().iter().enumerate() {
        if *c != qrcode::Color::Dark {
            continue;
        }
        let (mx, my) = (i as u32 % n + 4, i as u32 / n + 4);
        for dy in 0..module_px {
            for dx in 0..module_px {
                img.put_pixel(
                    x + mx * module_px + dx,
                    y + my * module_px + dy,
                    image::Rgb([0, 0, 0]),
                );
            }
        }
    }
    Ok(img)
}

/// Reports each code once while it stays in view (a phone held up for two seconds is
/// one payment, not twenty), and scans only every `every`-th frame to save CPU.
pub struct PayCodeReader {
    every: u64,
    frame: u64,
    recent: Vec<(String, Instant)>,
    forget_after: Duration,
}

impl PayCodeReader {
    pub fn new(every: u64, forget_after: Duration) -> Self {
        PayCodeReader {
            every: every.max(1),
            frame: 0,
            recent: Vec::new(),
            forget_after,
        }
    }

    /// New codes on this frame.
    pub fn feed(&mut self, image: &RgbImage, now: Instant) -> Vec<String> {
        self.frame += 1;
        if !self.frame.is_multiple_of(self.every) {
            return Vec::new();
        }
        self.recent
            .retain(|(_, t)| now.duration_since(*t) < self.forget_after);
        let mut out = Vec::new();
        for code in scan(image) {
            if let Some(r) = self.recent.iter_mut().find(|(c, _)| *c == code) {
                r.1 = now;
            } else {
                self.recent.push((code.clone(), now));
                out.push(code);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame with a QR code of `text` drawn at (ox, oy), 4 pixels per module.
    fn frame_with_qr(text: &str, ox: u32, oy: u32) -> RgbImage {
        let code = qrcode::QrCode::new(text.as_bytes()).unwrap();
        let n = code.width() as u32;
        let colors = code.to_colors();
        let mut img = RgbImage::from_pixel(640, 480, image::Rgb([200, 190, 180]));
        // A white quiet zone, then the modules.
        for y in 0..(n + 8) * 4 {
            for x in 0..(n + 8) * 4 {
                img.put_pixel(ox + x, oy + y, image::Rgb([255, 255, 255]));
            }
        }
        for (i, c) in colors.iter().enumerate() {
            if *c == qrcode::Color::Dark {
                let (mx, my) = (i as u32 % n, i as u32 / n);
                for dy in 0..4 {
                    for dx in 0..4 {
                        img.put_pixel(
                            ox + (mx + 4) * 4 + dx,
                            oy + (my + 4) * 4 + dy,
                            image::Rgb([0, 0, 0]),
                        );
                    }
                }
            }
        }
        img
    }

    #[test]
    fn finds_a_code_on_a_frame() {
        let img = frame_with_qr("CPPAY1.42.1767225600.abcdef", 200, 100);
        assert_eq!(scan(&img), vec!["CPPAY1.42.1767225600.abcdef".to_string()]);
        assert!(scan(&RgbImage::from_pixel(640, 480, image::Rgb([9, 9, 9]))).is_empty());
        assert!(scan(&RgbImage::new(0, 0)).is_empty());
    }

    #[test]
    fn drawn_frames_read_back() {
        let code = "wQx3N9vZk2_mHq8TtYp0aLrB6cD4eF7gJ1sU5iO-hK";
        let img = qr_frame(code, 640, 480, 5, 1000, 90).unwrap();
        assert_eq!(scan(&img), vec![code.to_string()]);
        assert!(qr_frame(code, 100, 100, 5, 0, 0).is_err());
    }

    #[test]
    fn a_code_in_view_is_reported_once() {
        let img = frame_with_qr("code-1", 100, 100);
        let mut r = PayCodeReader::new(1, Duration::from_secs(5));
        let t0 = Instant::now();
        assert_eq!(r.feed(&img, t0), vec!["code-1".to_string()]);
        assert!(r.feed(&img, t0 + Duration::from_secs(1)).is_empty());
        assert!(r.feed(&img, t0 + Duration::from_secs(4)).is_empty());
        // Gone for longer than `forget_after`: a new showing.
        assert_eq!(
            r.feed(&img, t0 + Duration::from_secs(10)),
            vec!["code-1".to_string()]
        );
    }
}

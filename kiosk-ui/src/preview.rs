//! The kiosk's preview frames as Slint images, and their face boxes as the model's.

use kiosk::frontend::PreviewFrame;
use slint::{Image, Rgb8Pixel, SharedPixelBuffer};

use crate::model::FaceView;

pub fn image(frame: &PreviewFrame) -> Image {
    let buffer = SharedPixelBuffer::<Rgb8Pixel>::clone_from_slice(
        frame.image.as_raw(),
        frame.image.width(),
        frame.image.height(),
    );
    Image::from_rgb8(buffer)
}

pub fn face(frame: &PreviewFrame) -> Option<FaceView> {
    frame.face.as_ref().map(|f| FaceView {
        x: f.x,
        y: f.y,
        w: f.w,
        h: f.h,
        hint: f.hint.map(|h| h.code()).unwrap_or("").to_string(),
    })
}

//! Shared by the UI's end-to-end tests: a kiosk configuration in a temporary directory, the
//! UI started headless over a real kiosk, and turning its event loop until a condition.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiosk::api::{BackendApi, HttpBackend};
use kiosk::config::KioskConfig;
use kiosk_ui::app::UiHandle;
use kiosk_ui::render::Headless;

/// The configuration `kiosk.toml` in `dir` (as `e2e::KioskCmd` writes it), for `backend_url`.
pub fn config(dir: &Path, backend_url: &str) -> KioskConfig {
    let mut cfg = KioskConfig::load(Some(&dir.join("kiosk.toml"))).expect("kiosk.toml");
    cfg.backend_url = backend_url.to_string();
    cfg.data_dir = dir.join("data");
    cfg.sync_interval_ms = 200;
    cfg
}

pub fn api(cfg: &KioskConfig) -> Arc<dyn BackendApi> {
    let token = std::fs::read_to_string(cfg.token_path())
        .ok()
        .map(|t| t.trim().to_string());
    Arc::new(HttpBackend::new(
        &cfg.backend_url,
        token,
        Duration::from_millis(500),
        Duration::from_secs(5),
    ))
}

/// Turns the headless event loop until `done` holds (drawing now and then, as a screen would).
pub fn pump_until(
    headless: &Headless,
    ui: &UiHandle,
    timeout: Duration,
    mut done: impl FnMut(&UiHandle) -> bool,
) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        headless.pump();
        let _ = headless.draw();
        if done(ui) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

pub fn screen(ui: &UiHandle) -> kiosk_ui::model::Screen {
    ui.model.borrow().screen
}

/// A replay of `n` empty frames (nobody at the counter) in `dir`.
pub fn blank_replay(dir: &Path, n: usize) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).expect("blank replay");
    for i in 0..n {
        image::RgbImage::from_pixel(320, 240, image::Rgb([120, 120, 120]))
            .save(dir.join(format!("{i:05}.png")))
            .expect("frame");
    }
    dir.to_path_buf()
}

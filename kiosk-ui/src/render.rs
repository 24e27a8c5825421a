//! Drawing the UI without a display: a Slint platform whose window is a software-rendered
//! pixel buffer, with an event loop the caller turns by hand ([`Headless::pump`]) so that
//! `slint::invoke_from_event_loop` works as in a real window. The screenshot tests, the
//! end-to-end UI tests and the UI benchmark use it; `set_platform` is process-wide, so one
//! process renders through one [`Headless`] window.

use std::rc::Rc;
use std::sync::{Arc, Mutex};

use image::RgbImage;
use slint::platform::software_renderer::{MinimalSoftwareWindow, RepaintBufferType};
use slint::platform::{EventLoopProxy, Platform, WindowAdapter};
use slint::{EventLoopError, PhysicalSize, PlatformError, Rgb8Pixel};

type Job = Box<dyn FnOnce() + Send>;

struct HeadlessPlatform {
    window: Rc<MinimalSoftwareWindow>,
    start: std::time::Instant,
    jobs: Arc<Mutex<Vec<Job>>>,
}

struct Proxy {
    jobs: Arc<Mutex<Vec<Job>>>,
}

impl EventLoopProxy for Proxy {
    fn quit_event_loop(&self) -> Result<(), EventLoopError> {
        Ok(())
    }

    fn invoke_from_event_loop(&self, event: Job) -> Result<(), EventLoopError> {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
        Ok(())
    }
}

impl Platform for HeadlessPlatform {
    fn create_window_adapter(&self) -> Result<Rc<dyn WindowAdapter>, PlatformError> {
        Ok(self.window.clone())
    }

    fn duration_since_start(&self) -> std::time::Duration {
        self.start.elapsed()
    }

    fn new_event_loop_proxy(&self) -> Option<Box<dyn EventLoopProxy>> {
        Some(Box::new(Proxy {
            jobs: self.jobs.clone(),
        }))
    }
}

/// The one headless window of this process.
pub struct Headless {
    window: Rc<MinimalSoftwareWindow>,
    jobs: Arc<Mutex<Vec<Job>>>,
}

impl Headless {
    /// Installs the headless platform (once per process).
    pub fn install() -> Result<Headless, PlatformError> {
        let window = MinimalSoftwareWindow::new(RepaintBufferType::NewBuffer);
        let jobs: Arc<Mutex<Vec<Job>>> = Arc::default();
        slint::platform::set_platform(Box::new(HeadlessPlatform {
            window: window.clone(),
            start: std::time::Instant::now(),
            jobs: jobs.clone(),
        }))
        .map_err(|e| PlatformError::Other(e.to_string()))?;
        Ok(Headless { window, jobs })
    }

    /// One turn of the event loop: runs what other threads sent with
    /// `invoke_from_event_loop`, then the timers. Returns how many jobs ran.
    pub fn pump(&self) -> usize {
        let jobs: Vec<Job> =
            std::mem::take(&mut *self.jobs.lock().unwrap_or_else(|p| p.into_inner()));
        let n = jobs.len();
        for job in jobs {
            job();
        }
        slint::platform::update_timers_and_animations();
        n
    }

    pub fn set_size(&self, width: u32, height: u32) {
        self.window.set_size(PhysicalSize::new(width, height));
    }

    /// Draws the window as it is now; None when nothing changed since the last frame.
    pub fn draw(&self) -> Option<RgbImage> {
        slint::platform::update_timers_and_animations();
        let size = self.window.size();
        let (w, h) = (size.width, size.height);
        let mut pixels = vec![Rgb8Pixel::new(0, 0, 0); (w * h) as usize];
        let drawn = self.window.draw_if_needed(|renderer| {
            renderer.render(&mut pixels, w as usize);
        });
        if !drawn {
            return None;
        }
        let bytes: Vec<u8> = pixels.iter().flat_map(|p| [p.r, p.g, p.b]).collect();
        RgbImage::from_raw(w, h, bytes)
    }

    /// Draws the whole window, changed or not.
    pub fn snapshot(&self) -> Option<RgbImage> {
        self.window.request_redraw();
        self.draw()
    }
}

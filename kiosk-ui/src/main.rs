//! `kiosk-ui`: the kiosk with its touch screen. Takes the same configuration as the headless
//! `kiosk run` (file, `CLEANPLATE_KIOSK_*` variables, flags), opens a full-screen window
//! (winit on X11) and runs the kiosk behind it.
//!
//! ```sh
//! kiosk-ui --config kiosk.toml --camera --scale /dev/ttyUSB0           # a real terminal
//! kiosk-ui --config kiosk.toml --replay FRAMES_DIR --lang en --portrait # a demo
//! ```

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use kiosk::api::{BackendApi, HttpBackend};
use kiosk::config::{KioskConfig, Mode, SourceKind};
use slint::ComponentHandle;

#[derive(Parser)]
#[command(
    name = "kiosk-ui",
    version,
    about = "CleanPlate kiosk with its touch screen"
)]
struct Cli {
    #[arg(long, env = "CLEANPLATE_KIOSK_CONFIG")]
    config: Option<PathBuf>,
    #[arg(long)]
    backend_url: Option<String>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// pay, return or desk.
    #[arg(long)]
    mode: Option<String>,
    /// Replay frames instead of a camera (a folder, a numbered pattern or an image).
    #[arg(long)]
    replay: Option<PathBuf>,
    #[arg(long)]
    looped: bool,
    #[arg(long)]
    fps: Option<f32>,
    /// The camera (a build with `--features camera` of the kiosk library).
    #[arg(long, conflicts_with = "replay")]
    camera: bool,
    /// The plate scale: tcp://HOST:PORT or a serial device.
    #[arg(long)]
    scale: Option<String>,
    /// zh_CN (the default) or en; default: as saved on the settings screen.
    #[arg(long)]
    lang: Option<String>,
    /// 800x1280 instead of 1280x800.
    #[arg(long)]
    portrait: bool,
    /// Stop after this many seconds (demos).
    #[arg(long)]
    max_runtime_s: Option<f64>,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = real_main() {
        eprintln!("kiosk-ui: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        bail!("no display (DISPLAY is not set): run the headless kiosk (`kiosk run`) instead, or start an X server");
    }
    let mut cfg = KioskConfig::load(cli.config.as_deref())?;
    if let Some(d) = cli.data_dir {
        cfg.data_dir = d;
    }
    // What a manager saved on the settings screen, then this command line.
    cfg.apply_local_settings()?;
    if let Some(u) = cli.backend_url {
        cfg.backend_url = u;
    }
    if let Some(l) = cli.lang {
        cfg.language = l;
    }
    if let Some(m) = cli.mode.as_deref() {
        cfg.mode = match m {
            "pay" => Mode::Pay,
            "return" => Mode::Return,
            "both" => Mode::Both,
            "desk" => Mode::Desk,
            other => bail!("--mode {other}: expected pay, return, both or desk"),
        };
    }
    if let Some(r) = cli.replay {
        cfg.source.kind = SourceKind::Replay;
        cfg.source.replay = Some(r);
    }
    if cli.camera {
        cfg.source.kind = SourceKind::Camera;
    }
    if let Some(f) = cli.fps {
        cfg.source.fps = f;
    }
    cfg.source.looped |= cli.looped;
    if cli.scale.is_some() {
        cfg.scale.port = cli.scale;
    }
    cfg.validate()?;
    let token = kiosk::gallery_cache::read_private(&cfg.token_path())?
        .map(|b| String::from_utf8_lossy(&b).trim().to_string());
    if token.is_none() {
        tracing::warn!(
            "no device token at {}: register the kiosk first (kiosk register --code CODE)",
            cfg.token_path().display()
        );
    }
    let api: Arc<dyn BackendApi> = Arc::new(HttpBackend::new(
        &cfg.backend_url,
        token,
        Duration::from_millis(cfg.connect_timeout_ms),
        Duration::from_millis(cfg.request_timeout_ms),
    ));
    let opts = kiosk::run::RunOptions {
        max_runtime: cli
            .max_runtime_s
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64),
        ..Default::default()
    };
    let mut ui = kiosk_ui::app::start(cfg.clone(), api, &cfg.language, cli.portrait, opts)
        .context("starting the UI")?;
    let (w, h) = if cli.portrait {
        (800, 1280)
    } else {
        (1280, 800)
    };
    ui.app.window().set_size(slint::PhysicalSize::new(w, h));
    ui.app.window().set_fullscreen(true);
    ui.app.run().context("the UI's event loop")?;
    ui.stop.store(true, Ordering::Relaxed);
    if let Some(k) = ui.kiosk.take() {
        match k.join() {
            Ok(r) => r?,
            Err(_) => bail!("the kiosk thread panicked"),
        }
    }
    Ok(())
}

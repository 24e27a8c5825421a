//! The headless kiosk: `run` (frames → decisions → charges and waste records, printing
//! every event), `register` (one-time code → device token), `outbox` (what is queued),
//! and the tools the demo and tests use: `desk` (a manager's enrolment desk), `scale-sim`
//! (a simulated plate scale on TCP) and `make-replay` (a replay sequence from photos and
//! QR pay codes).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use kiosk::api::{BackendApi, DropChargeAnswers, HttpBackend, TEST_DROP_CHARGE_ANSWERS};
use kiosk::config::{KioskConfig, Mode, SourceKind};
use kiosk::event::KioskEvent;
use kiosk::gallery_cache::{read_private, write_private};

#[derive(Parser)]
#[command(name = "kiosk", version, about = "CleanPlate kiosk (headless)")]
struct Cli {
    /// TOML configuration file (see kiosk/README.md); CLEANPLATE_KIOSK_* variables override it.
    #[arg(long, global = true, env = "CLEANPLATE_KIOSK_CONFIG")]
    config: Option<PathBuf>,
    /// The backend's base URL.
    #[arg(long, global = true)]
    backend_url: Option<String>,
    /// Local state directory.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the kiosk.
    Run {
        #[arg(long, value_parser = parse_mode)]
        mode: Option<Mode>,
        /// Replay source: a folder of images, a numbered pattern (frames/%04d.jpg) or one image.
        #[arg(long)]
        replay: Option<PathBuf>,
        /// Use the camera (needs a build with `--features camera`).
        #[arg(long, conflicts_with = "replay")]
        camera: bool,
        #[arg(long)]
        fps: Option<f32>,
        /// Loop the replay.
        #[arg(long)]
        looped: bool,
        /// Scale: tcp://HOST:PORT or a serial device.
        #[arg(long)]
        scale: Option<String>,
        /// Empty tray weight in grams.
        #[arg(long)]
        tare_g: Option<i64>,
        /// After a replay played once, wait until the outbox is empty and exit.
        #[arg(long)]
        exit_after_replay: bool,
        /// Stop after this many seconds.
        #[arg(long)]
        max_runtime_s: Option<f64>,
        /// Print every event as one JSON line on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Exchange a one-time enrolment code for a device token (kept 0600 in the data dir).
    Register {
        #[arg(long)]
        code: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// Show the outbox's counts.
    Outbox,
    /// Set the PIN that opens the kiosk's settings screen (4-12 digits, read from standard
    /// input; only its argon2 hash is kept, 0600, in the data dir).
    SettingsPin,
    /// The enrolment desk (a manager's login): enrol faces, set meal windows, make codes.
    Desk {
        /// Manager username.
        #[arg(long)]
        username: String,
        /// The password is read from this environment variable.
        #[arg(long, default_value = "CLEANPLATE_DESK_PASSWORD")]
        password_env: String,
        #[command(subcommand)]
        cmd: DeskCmd,
    },
    /// A simulated plate scale streaming `ST,GS,+0000.000kg` lines on TCP.
    ScaleSim {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// Gross tray weights in grams, played in order.
        #[arg(long, value_delimiter = ',', default_value = "812,655,730")]
        trays: Vec<i64>,
        #[arg(long, default_value_t = 10.0)]
        hz: f32,
        #[arg(long, default_value_t = 3.0)]
        off_s: f32,
        #[arg(long, default_value_t = 3.0)]
        on_s: f32,
        /// Mix in garbage, partial and overload lines.
        #[arg(long)]
        noise: bool,
        /// Play the trays once, then report an empty scale.
        #[arg(long)]
        once: bool,
    },
    /// Writes a replay sequence: for each photo, `frames` frames with a slow camera drift
    /// (or the same still frame with --still), then `gap` empty frames; then for each --qr
    /// code, `frames` frames of a phone showing it as a QR code, then `gap` empty frames.
    MakeReplay {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 640)]
        width: u32,
        #[arg(long, default_value_t = 12)]
        frames: usize,
        #[arg(long, default_value_t = 6)]
        gap: usize,
        #[arg(long)]
        still: bool,
        /// A pay code to show as a QR code (repeatable).
        #[arg(long)]
        qr: Vec<String>,
        photos: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DeskCmd {
    /// Record consent and enrol one template per photo for the staff member.
    EnrolFaces {
        #[arg(long)]
        employee_no: String,
        photos: Vec<PathBuf>,
    },
    /// Stretch the canteen's meal windows over the whole day (demos and tests).
    AllDayMeals {
        #[arg(long)]
        canteen_id: Option<i64>,
    },
    /// Give a staff member a login (as the manager), log in as them and print a one-time
    /// pay code, as their phone would show it. The staff password is read from
    /// CLEANPLATE_STAFF_PASSWORD; unset, a random one is made for a new login.
    PayCode {
        #[arg(long)]
        employee_no: String,
        /// Username of the staff login (default: pay-<employee number>).
        #[arg(long)]
        staff_username: Option<String>,
    },
    /// Print a new kiosk enrolment code.
    EnrolmentCode {
        #[arg(long)]
        canteen_id: Option<i64>,
    },
    /// GET an API path and print the JSON (e.g. /api/v1/charges).
    Get { path: String },
    /// Print the latest charges and plate-waste records as a table.
    Ledger {
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    match s {
        "pay" => Ok(Mode::Pay),
        "return" => Ok(Mode::Return),
        "both" => Ok(Mode::Both),
        "desk" => Ok(Mode::Desk),
        _ => Err(format!("{s:?}: expected pay, return, both or desk")),
    }
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = real_main() {
        eprintln!("kiosk: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    let mut cfg = KioskConfig::load(cli.config.as_deref())?;
    if let Some(d) = cli.data_dir {
        cfg.data_dir = d;
    }
    // What a manager saved on the kiosk's own settings screen, then this command line.
    cfg.apply_local_settings()?;
    if let Some(u) = cli.backend_url {
        cfg.backend_url = u;
    }
    match cli.cmd {
        Cmd::Run {
            mode,
            replay,
            camera,
            fps,
            looped,
            scale,
            tare_g,
            exit_after_replay,
            max_runtime_s,
            json,
        } => {
            if let Some(m) = mode {
                cfg.mode = m;
            }
            if let Some(r) = replay {
                cfg.source.kind = SourceKind::Replay;
                cfg.source.replay = Some(r);
            }
            if camera {
                cfg.source.kind = SourceKind::Camera;
            }
            if let Some(f) = fps {
                cfg.source.fps = f;
            }
            cfg.source.looped |= looped;
            if scale.is_some() {
                cfg.scale.port = scale;
            }
            if let Some(t) = tare_g {
                cfg.scale.tare_g = t;
            }
            cfg.validate()?;
            run(cfg, exit_after_replay, max_runtime_s, json)
        }
        Cmd::Register { code, name } => register(&cfg, &code, name),
        Cmd::SettingsPin => {
            let mut pin = String::new();
            std::io::stdin().read_line(&mut pin)?;
            kiosk::settings::SettingsPin::new(&cfg.data_dir).set(&pin)?;
            println!("settings PIN set in {}", cfg.data_dir.display());
            Ok(())
        }
        Cmd::Outbox => {
            let store = kiosk::local_store::LocalStore::open(&cfg.data_dir.join("kiosk.db"))?;
            println!("{}", serde_json::to_string(&store.counts()?)?);
            Ok(())
        }
        Cmd::Desk {
            username,
            password_env,
            cmd,
        } => desk(&cfg, &username, &password_env, cmd),
        Cmd::ScaleSim {
            listen,
            trays,
            hz,
            off_s,
            on_s,
            noise,
            once,
        } => {
            let sim = kiosk::scale_io::simulator::SimConfig {
                trays,
                off_s,
                on_s,
                hz,
                noise,
                once,
            };
            let stop = Arc::new(AtomicBool::new(false));
            kiosk::scale_io::simulator::serve(&listen, sim, stop, |addr| {
                // On stdout so scripts can read the port.
                println!("scale simulator listening on tcp://{addr}");
                let _ = std::io::stdout().flush();
            })?;
            Ok(())
        }
        Cmd::MakeReplay {
            out,
            width,
            frames,
            gap,
            still,
            qr,
            photos,
        } => make_replay(&out, width, frames, gap, still, &photos, &qr),
    }
}

fn load_token(cfg: &KioskConfig) -> Result<String> {
    let path = cfg.token_path();
    match read_private(&path)? {
        Some(b) => Ok(String::from_utf8_lossy(&b).trim().to_string()),
        None => bail!(
            "no device token at {}: register first (kiosk register --code CODE)",
            path.display()
        ),
    }
}

fn backend(cfg: &KioskConfig, token: Option<String>) -> HttpBackend {
    HttpBackend::new(
        &cfg.backend_url,
        token,
        Duration::from_millis(cfg.connect_timeout_ms),
        Duration::from_millis(cfg.request_timeout_ms),
    )
}

fn register(cfg: &KioskConfig, code: &str, name: Option<String>) -> Result<()> {
    let api = backend(cfg, None);
    let resp = api
        .enrol(&wire::EnrolRequest {
            code: code.trim().to_string(),
            name: name.unwrap_or_else(|| cfg.name.clone()),
        })
        .context("registering with the backend")?;
    let path = cfg.token_path();
    write_private(&path, resp.device_token.as_bytes())?;
    println!(
        "registered as kiosk {} of canteen {}; device token saved to {} (mode 0600)",
        resp.kiosk_id,
        resp.canteen_id,
        path.display()
    );
    Ok(())
}

fn run(
    cfg: KioskConfig,
    exit_after_replay: bool,
    max_runtime_s: Option<f64>,
    json: bool,
) -> Result<()> {
    let token = load_token(&cfg)?;
    let http = backend(&cfg, Some(token));
    let api: Arc<dyn BackendApi> = match std::env::var(TEST_DROP_CHARGE_ANSWERS) {
        Ok(n) => {
            let n: u32 = n
                .trim()
                .parse()
                .with_context(|| format!("{TEST_DROP_CHARGE_ANSWERS} must be a count"))?;
            tracing::warn!("{TEST_DROP_CHARGE_ANSWERS}={n}: losing the answers of {n} online charges (test hook)");
            Arc::new(DropChargeAnswers::new(http, n))
        }
        Err(_) => Arc::new(http),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let sink: kiosk::event::EventSink = Box::new(move |e: KioskEvent| {
        if json {
            if let Ok(line) = serde_json::to_string(&e) {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
        } else {
            tracing::info!("{}", serde_json::to_string(&e).unwrap_or_default());
        }
    });
    let opts = kiosk::run::RunOptions {
        exit_after_replay,
        max_runtime: max_runtime_s
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64),
        lockstep: false,
    };
    kiosk::run::run(cfg, api, sink, stop, opts)?;
    Ok(())
}

fn desk(cfg: &KioskConfig, username: &str, password_env: &str, cmd: DeskCmd) -> Result<()> {
    let password = std::env::var(password_env)
        .with_context(|| format!("set the manager's password in {password_env}"))?;
    let d =
        kiosk::desk::Desk::login(&cfg.backend_url, username, &password).context("logging in")?;
    let canteen = |id: Option<i64>| -> Result<i64> {
        match id {
            Some(i) => Ok(i),
            None => d
                .canteens()?
                .first()
                .map(|c| c.id)
                .context("the backend has no canteen"),
        }
    };
    match cmd {
        DeskCmd::EnrolFaces {
            employee_no,
            photos,
        } => {
            if photos.is_empty() {
                bail!("give at least one photo");
            }
            let staff = d.staff_by_employee_no(&employee_no)?;
            let mut analyzer = kiosk::run::FaceAnalyzer::load(cfg)?;
            d.grant_consent(staff.id)?;
            for p in &photos {
                let img =
                    models::image_io::decode_file(p, &models::image_io::DecodeLimits::default())
                        .with_context(|| format!("reading {}", p.display()))?;
                let Some((emb, quality)) = analyzer.embed_photo(&img)? else {
                    bail!("{}: no face found", p.display());
                };
                let t = d.add_template(staff.id, &emb)?;
                println!(
                    "enrolled {} ({}, staff {}) from {}: template {} (quality {:.2})",
                    staff.name,
                    staff.employee_no,
                    staff.id,
                    p.display(),
                    t.id,
                    quality.score
                );
            }
            Ok(())
        }
        DeskCmd::AllDayMeals { canteen_id } => {
            let c = canteen(canteen_id)?;
            d.all_day_meals(c)?;
            println!("canteen {c}: meal windows now cover the whole day");
            Ok(())
        }
        DeskCmd::PayCode {
            employee_no,
            staff_username,
        } => {
            let staff = d.staff_by_employee_no(&employee_no)?;
            let username =
                staff_username.unwrap_or_else(|| format!("pay-{}", employee_no.to_lowercase()));
            let given = std::env::var("CLEANPLATE_STAFF_PASSWORD").ok();
            let password = given.clone().unwrap_or_else(|| {
                use rand::Rng;
                let bytes: [u8; 12] = rand::thread_rng().gen();
                hex::encode(bytes)
            });
            match d.create_staff_login(staff.id, &username, &password) {
                Ok(_) => {}
                // The login exists already: usable only with its password.
                Err(kiosk::api::ApiError::Status { status: 409, .. }) if given.is_some() => {}
                Err(e) => {
                    let hint = "if it exists, set CLEANPLATE_STAFF_PASSWORD";
                    return Err(e).with_context(|| format!("making the login {username} ({hint})"));
                }
            }
            let me = kiosk::desk::Desk::login(&cfg.backend_url, &username, &password)
                .with_context(|| format!("logging in as {username}"))?;
            let code = me.create_pay_code()?;
            eprintln!(
                "pay code for {} ({}, staff {}), valid until {} ms:",
                staff.name, staff.employee_no, staff.id, code.expires_at_ms
            );
            println!("{}", code.code);
            Ok(())
        }
        DeskCmd::EnrolmentCode { canteen_id } => {
            println!("{}", d.enrolment_code(canteen(canteen_id)?)?);
            Ok(())
        }
        DeskCmd::Get { path } => {
            println!("{}", serde_json::to_string_pretty(&d.get_json(&path)?)?);
            Ok(())
        }
        DeskCmd::Ledger { limit } => {
            let names: std::collections::HashMap<i64, String> =
                d.staff()?.into_iter().map(|s| (s.id, s.name)).collect();
            let name = |v: &serde_json::Value| {
                v.as_i64()
                    .and_then(|id| names.get(&id).cloned())
                    .unwrap_or_else(|| "-".into())
            };
            let charges = d.get_json(&format!("/api/v1/charges?limit={limit}"))?;
            println!("charges (newest first):");
            for c in charges.as_array().into_iter().flatten() {
                println!(
                    "  #{:<4} kiosk {:<3} {:<12} {:<10} {:>7} yuan  {:<9} {}{}",
                    c["id"],
                    c["kiosk_id"],
                    name(&c["staff_id"]),
                    c["meal"].as_str().unwrap_or("-"),
                    c["amount"].as_str().unwrap_or("?"),
                    c["status"].as_str().unwrap_or("?"),
                    if c["offline"].as_bool() == Some(true) {
                        "offline "
                    } else {
                        ""
                    },
                    c["reason"].as_str().unwrap_or("")
                );
            }
            let waste = d.get_json(&format!("/api/v1/waste?limit={limit}"))?;
            println!("plate waste (newest first):");
            for w in waste.as_array().into_iter().flatten() {
                println!(
                    "  #{:<4} kiosk {:<3} {:<12} gross {:>5} g  tare {:>4} g  net {:>5} g  charge {}",
                    w["id"], w["kiosk_id"], name(&w["staff_id"]), w["gross_grams"], w["tare_grams"], w["net_grams"],
                    w["charge_id"]
                );
            }
            Ok(())
        }
    }
}

fn make_replay(
    out: &std::path::Path,
    width: u32,
    frames: usize,
    gap: usize,
    still: bool,
    photos: &[PathBuf],
    qr: &[String],
) -> Result<()> {
    if photos.is_empty() && qr.is_empty() {
        bail!("give at least one photo or --qr code");
    }
    std::fs::create_dir_all(out)?;
    let height = (width as f32 * 3.0 / 4.0).round() as u32;
    let mut n = 0usize;
    let tmp = out.join(".tmp");
    for p in photos {
        let img = models::image_io::decode_file(p, &models::image_io::DecodeLimits::default())
            .with_context(|| format!("reading {}", p.display()))?;
        let made = kiosk::frames::synthesize_motion(&img, frames, width, still, &tmp)
            .map_err(anyhow::Error::msg)?;
        for f in made {
            n += 1;
            std::fs::rename(&f, out.join(format!("{n:05}.jpg")))?;
        }
        let blank = image::RgbImage::from_pixel(width, height, image::Rgb([128, 128, 128]));
        for _ in 0..gap {
            n += 1;
            blank.save(out.join(format!("{n:05}.jpg")))?;
        }
    }
    for code in qr {
        // The phone drifts a little, as a hand holds it.
        for i in 0..frames {
            let img = kiosk::paycode::qr_frame(
                code,
                width,
                height,
                (width / 128).max(2),
                width / 5 + 3 * i as u32,
                height / 8 + 2 * i as u32,
            )
            .map_err(anyhow::Error::msg)?;
            n += 1;
            // PNG: JPEG artefacts would blur the modules for no benefit.
            img.save(out.join(format!("{n:05}.png")))?;
        }
        let blank = image::RgbImage::from_pixel(width, height, image::Rgb([128, 128, 128]));
        for _ in 0..gap {
            n += 1;
            blank.save(out.join(format!("{n:05}.jpg")))?;
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    println!("wrote {n} frames to {}", out.display());
    Ok(())
}

//! `faces`: the face pipeline from the command line. `detect` shows what the pipeline sees
//! in photos; `verify-pairs` and `identify` measure accuracy on the LFW-style protocols in
//! `../shared/faces/protocols` (and on any data laid out the same way).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use faces_cli::eval;
use models::gallery::MatchPolicy;
use models::image_io::{decode_file, DecodeLimits};
use models::pipeline::{Faces, Pipeline, PipelineConfig};
use models::runtime::RuntimeOptions;

#[derive(Debug, Parser)]
#[command(
    name = "faces",
    about = "CleanPlate's face pipeline: detect, verify, identify"
)]
struct Cli {
    /// The model directory (default: models/dist found from the current directory).
    #[arg(long, global = true, env = "CLEANPLATE_MODELS_DIR")]
    models: Option<PathBuf>,
    /// ONNX Runtime threads per model run.
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Detect and analyse the faces of each image: boxes, landmarks, quality, liveness, timings.
    Detect {
        images: Vec<PathBuf>,
        /// One JSON object per image instead of text.
        #[arg(long)]
        json: bool,
        /// Analyse only the main face (largest, central) instead of every face.
        #[arg(long)]
        main: bool,
        /// Smallest face to search for, in pixels (smaller is slower on big photos).
        #[arg(long, default_value_t = 40.0)]
        min_face: f32,
    },
    /// Verification accuracy on an LFW-format pairs file.
    VerifyPairs {
        #[arg(long)]
        pairs: PathBuf,
        /// The folder holding `<name>/<i>.jpg` (or `lfw-A/<name>/<i>.jpg`).
        #[arg(long)]
        root: PathBuf,
        /// The fixed threshold for `accuracy_fixed` (default: the operating threshold).
        #[arg(long)]
        threshold: Option<f32>,
        /// Worker threads, each with its own pipeline.
        #[arg(long, default_value_t = 2)]
        jobs: usize,
    },
    /// 1:N identification on a list of `role<TAB>identity<TAB>path` rows.
    Identify {
        #[arg(long)]
        list: PathBuf,
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        threshold: Option<f32>,
        #[arg(long)]
        margin: Option<f32>,
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        /// Also print false accepts/rejects over a grid of thresholds and margins.
        #[arg(long)]
        sweep: bool,
    },
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("faces: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let config = PipelineConfig {
        model_dir: cli.models.clone(),
        runtime: RuntimeOptions {
            intra_threads: cli.threads,
            ..Default::default()
        },
        ..Default::default()
    };
    match cli.command {
        Command::Detect {
            images,
            json,
            main,
            min_face,
        } => {
            let mut config = config;
            config.detector.min_face_px = min_face;
            detect(
                config,
                &images,
                json,
                if main { Faces::Main } else { Faces::All },
            )
        }
        Command::VerifyPairs {
            pairs,
            root,
            threshold,
            jobs,
        } => {
            println!(
                "{}",
                eval::verify_pairs(&config, &pairs, &root, threshold, jobs)?
            );
            Ok(())
        }
        Command::Identify {
            list,
            root,
            threshold,
            margin,
            jobs,
            sweep,
        } => {
            let set = eval::load_identification(&config, &list, &root, jobs)?;
            if sweep {
                println!("threshold margin false_accepts false_rejects");
                for t in [
                    0.40f32, 0.42, 0.44, 0.46, 0.48, 0.50, 0.52, 0.54, 0.56, 0.58, 0.60,
                ] {
                    for m in [0.0f32, 0.02, 0.04, 0.06] {
                        let r = set.score(&MatchPolicy::new(t, m)?)?;
                        println!("{t:.2} {m:.2} {} {}", r.false_accepts, r.false_rejects);
                    }
                }
            }
            let defaults = MatchPolicy::default();
            let policy = MatchPolicy::new(
                threshold.unwrap_or(defaults.threshold),
                margin.unwrap_or(defaults.margin),
            )?;
            println!("{}", set.score(&policy)?);
            Ok(())
        }
    }
}

fn detect(config: PipelineConfig, images: &[PathBuf], json: bool, which: Faces) -> Result<()> {
    anyhow::ensure!(!images.is_empty(), "give at least one image");
    let mut pipeline = Pipeline::load(config).context("loading the face pipeline")?;
    let limits = DecodeLimits::default();
    let mut failures = 0;
    for path in images {
        let image = match decode_file(path, &limits) {
            Ok(i) => i,
            Err(e) => {
                failures += 1;
                if json {
                    println!(
                        "{}",
                        serde_json::json!({ "image": path, "error": e.to_string() })
                    );
                } else {
                    println!("{}: error: {e}", path.display());
                }
                continue;
            }
        };
        let analysis = pipeline.analyze(&image, which)?;
        if json {
            let faces: Vec<_> = analysis
                .faces
                .iter()
                .map(|f| {
                    serde_json::json!({
                        "box": f.detection.rect,
                        "score": f.detection.score,
                        "keypoints": f.detection.keypoints,
                        "landmarks": f.landmarks,
                        "quality": f.quality,
                        "liveness": f.liveness,
                        "embedding": f.embedding.to_vec(),
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::json!({
                    "image": path, "width": analysis.width, "height": analysis.height,
                    "faces": faces, "timings_us": analysis.timings,
                })
            );
        } else {
            let t = &analysis.timings;
            println!(
                "{} ({}x{}): {} face(s)",
                path.display(),
                analysis.width,
                analysis.height,
                analysis.faces.len()
            );
            for (i, f) in analysis.faces.iter().enumerate() {
                let r = &f.detection.rect;
                println!(
                    "  face {i}: box ({:.0},{:.0})-({:.0},{:.0}) score {:.3}  quality {:.2}{}  liveness {}",
                    r.left,
                    r.top,
                    r.right,
                    r.bottom,
                    f.detection.score,
                    f.quality.score,
                    if f.quality.problems.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", f.quality.problems.iter().map(|p| p.hint()).collect::<Vec<_>>().join("; "))
                    },
                    f.liveness.map(|l| format!("real {:.2} live {:.2}", l.real, l.live)).unwrap_or_else(|| "-".into()),
                );
                let lm: Vec<String> = f
                    .landmarks
                    .iter()
                    .map(|p| format!("({:.0},{:.0})", p.x, p.y))
                    .collect();
                println!("          landmarks {}", lm.join(" "));
            }
            println!(
                "  timings: detect {:.1} ms, landmarks {:.2} ms, align {:.2} ms, quality {:.2} ms, liveness {:.1} ms, embed {:.1} ms, total {:.1} ms",
                t.detect_us as f64 / 1e3,
                t.landmarks_us as f64 / 1e3,
                t.align_us as f64 / 1e3,
                t.quality_us as f64 / 1e3,
                t.liveness_us as f64 / 1e3,
                t.embed_us as f64 / 1e3,
                t.total_us as f64 / 1e3
            );
        }
    }
    anyhow::ensure!(failures == 0, "{failures} image(s) could not be read");
    Ok(())
}

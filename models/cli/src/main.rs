//! `faces`: the face pipeline from the command line. `detect` shows what the pipeline sees
//! in photos; `verify-pairs` and `identify` measure accuracy on the LFW-style protocols in
//! `../shared/faces/protocols` (and on any data laid out the same way).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use faces_cli::{eval, identify, stats};
use models::gallery::MatchPolicy;
use models::image_io::{decode_file, DecodeLimits};
use models::pipeline::{EmbeddingMode, Faces, Pipeline, PipelineConfig};
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
    /// How descriptors are made: `single` (the chip) or `mirrored` (the chip and its
    /// mirror image, averaged). Default: the pipeline's.
    #[arg(long, global = true)]
    embedding: Option<String>,
    /// Keep the embeddings in this file and reuse them when the photos and settings match
    /// (for re-scoring the same photos many times).
    #[arg(long, global = true)]
    cache: Option<PathBuf>,
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
        /// Cross-validate the choice of policy by people (folds by a hash of the name).
        #[arg(long)]
        calibrate: bool,
        /// Draw the DET curve (false rejects against false accepts) to this SVG file,
        /// with the operating point marked.
        #[arg(long)]
        det: Option<PathBuf>,
        /// Search with the mean embedding of groups of this many photos of one person
        /// (a proxy for the kiosk's fusion of several frames).
        #[arg(long)]
        fuse: Option<usize>,
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
    let mut config = PipelineConfig {
        model_dir: cli.models.clone(),
        runtime: RuntimeOptions {
            intra_threads: cli.threads,
            ..Default::default()
        },
        ..Default::default()
    };
    match cli.embedding.as_deref() {
        None => {}
        Some("single") => config.embedding = EmbeddingMode::Single,
        Some("mirrored") => config.embedding = EmbeddingMode::Mirrored,
        Some(other) => anyhow::bail!("--embedding must be `single` or `mirrored`, not {other:?}"),
    }
    let cache = cli.cache.as_deref();
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
                eval::verify_pairs(&config, &pairs, &root, threshold, jobs, cache)?
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
            calibrate,
            det,
            fuse,
        } => {
            let mut set = identify::load(&config, &list, &root, jobs, cache)?;
            if let Some(k) = fuse {
                set = set.fused(k)?;
                println!("fused: each search is the mean of {k} photos of one person");
            }
            let defaults = MatchPolicy::default();
            let policy = MatchPolicy::new(
                threshold.unwrap_or(defaults.threshold),
                margin.unwrap_or(defaults.margin),
            )?;
            identify_report(&set, &policy, sweep, calibrate, det.as_deref())
        }
    }
}

fn identify_report(
    set: &identify::IdentificationSet,
    policy: &MatchPolicy,
    sweep: bool,
    calibrate: bool,
    det: Option<&std::path::Path>,
) -> Result<()> {
    if sweep {
        println!(
            "threshold margin false_accepts(protocol) false_rejects(protocol) strangers_accepted"
        );
        for t in [
            0.40f32, 0.42, 0.44, 0.46, 0.48, 0.50, 0.52, 0.54, 0.56, 0.58, 0.60,
        ] {
            for m in [0.0f32, 0.02, 0.04, 0.06, 0.08, 0.10] {
                let r = set.score(&MatchPolicy::new(t, m)?);
                println!(
                    "{t:.2} {m:.2} {} {} {}",
                    r.protocol.false_accepts(),
                    r.protocol.false_rejects(),
                    r.strangers.strangers_accepted
                );
            }
        }
    }
    let comparisons = set.comparisons();
    let (g, i) = (
        comparisons.genuine.len() as u64,
        comparisons.impostor.len() as u64,
    );
    let fm = comparisons.false_matches(policy.threshold);
    let fnm = comparisons.false_non_matches(policy.threshold);
    println!("comparisons (every pair of photos with a face): {g} genuine, {i} impostor");
    println!(
        "  at threshold {:.3}: false match rate {fm} / {i} = {:.2e} (95 % upper bound {:.2e}); false non-match rate {fnm} / {g} = {:.4}",
        policy.threshold,
        stats::rate(fm, i),
        stats::upper_bound(fm, i, identify::CONFIDENCE),
        stats::rate(fnm, g),
    );
    let people = set.enrolled_people as f64;
    for target in [1e-3, 1e-4, 1e-5] {
        // A stranger is falsely accepted only if some enrolled person matches: at most
        // people x FMR per attempt (the margin only lowers it).
        match comparisons.threshold_for_fmr(target / people) {
            Some(t) => println!(
                "  per-attempt FAR <= {target:.0e} with {} people enrolled (union bound, 95 %): threshold <= {t:.3} ({} false rejects of {} at margin 0)",
                set.enrolled_people,
                set.score(&MatchPolicy { threshold: t, margin: 0.0 }).protocol.false_rejects(),
                set.probes()
            ),
            None => println!(
                "  per-attempt FAR <= {target:.0e} with {} people enrolled: not demonstrable from {i} impostor comparisons (the least bound, 0 false matches, is {:.1e} per attempt)",
                set.enrolled_people,
                stats::upper_bound(0, i, identify::CONFIDENCE) * people
            ),
        }
    }
    if calibrate {
        println!("{}", set.cross_validate(&identify::policy_grid(), 5));
    }
    let report = set.score(policy);
    if let Some(path) = det {
        let mut margins = vec![0.0, 0.04, 0.08];
        if !margins.contains(&policy.margin) {
            margins.push(policy.margin);
        }
        let svg = identify::det_svg(
            &format!(
                "DET, {} people enrolled, {} attempts",
                set.enrolled_people,
                report.attempts()
            ),
            &set.det_curves(&margins),
            (report.far(), report.frr()),
            &format!(
                "operating point: {:.2} / {:.2} ({} FA, FRR {:.1} %)",
                policy.threshold,
                policy.margin,
                report.false_accepts(),
                100.0 * report.frr()
            ),
        );
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
        println!("DET curve written to {}", path.display());
    }
    println!(
        "gallery: {} people enrolled ({} photos without a face)",
        set.enrolled_people, set.gallery_failures
    );
    println!("outcomes: {:?}", set.outcomes(policy));
    println!("{report}");
    println!(
        "probes={} rank1={:.4} false_accepts={} false_rejects={} threshold={:.3} margin={:.3}",
        set.probes(),
        set.rank1(),
        report.protocol.false_accepts(),
        report.protocol.false_rejects(),
        policy.threshold,
        policy.margin
    );
    Ok(())
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

//! Face pipeline latency on a kiosk frame: each stage, the whole `analyze`, and the bare
//! ONNX Runtime runs of the same three models on the same tensors, so that the pipeline's
//! own cost (resampling, landmarks, chip, quality, tensor layout, output decoding) can be
//! stated as a ratio: whole / (detector raw + liveness raw + embedder raw), goal ≤ 1.10.
//!
//! The frame is built here, deterministically, from `models/dist/demo/obama.jpg` (public
//! domain): the photo is scaled so the face is about 200 px wide and cut to 640x480 around
//! it, like a diner in front of a kiosk camera. Every measurement is repeated for ONNX
//! Runtime intra-op thread counts 1 and 2 (the same count for the pipeline and the raw
//! runs). The raw runs get exactly the pipeline's tensors and shapes (batch 1; the
//! embedder's raw output is checked against the pipeline's embedding).
//!
//! After criterion's runs, two summaries: the pipeline's own stages (input tensors,
//! landmarks, chip, quality) timed alternately, and an interleaved pass that times the
//! whole pipeline and the raw runs alternately, round after round, printing medians, the
//! ratio, and the per-stage times `analyze` itself reports. On a shared machine that is
//! steadier than comparing benchmarks measured minutes apart.
//!
//! Run with `cargo bench -p models --bench pipeline`; `PIPELINE_BENCH_THREADS=1` limits the
//! thread counts, `PIPELINE_BENCH_ROUNDS` sets the interleaved rounds (default 400) and
//! `PIPELINE_BENCH_ONLY=own` or `=interleaved` runs only that summary, without criterion;
//! `PIPELINE_BENCH_EMBEDDING=single|mirrored` overrides the pipeline's descriptor mode (the
//! raw embedder run then gets the same batch: one chip, or the chip and its mirror).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use image::{imageops, Rgb, RgbImage};
use models::align::{chip_transform, extract_chip, CHIP_PADDING, CHIP_SIZE};
use models::detect::{Detection, DetectorConfig, INPUT_SIZE};
use models::image_io::{decode_file, DecodeLimits};
use models::pipeline::{EmbeddingMode, Faces, Pipeline, PipelineConfig};
use models::quality::assess;
use models::resample::{sample_square, Resampler};
use models::runtime::RuntimeOptions;

const FRAME_W: u32 = 640;
const FRAME_H: u32 = 480;
/// The detector box width the frame is built for (a diner about 60 cm from the camera).
const FACE_WIDTH: f32 = 200.0;

fn die(msg: impl std::fmt::Display) -> ! {
    eprintln!("pipeline bench: {msg}");
    std::process::exit(1)
}

fn pipeline(threads: usize) -> Pipeline {
    let mut config = PipelineConfig {
        runtime: RuntimeOptions {
            intra_threads: threads,
            ..Default::default()
        },
        detector: DetectorConfig::kiosk(),
        ..Default::default()
    };
    match std::env::var("PIPELINE_BENCH_EMBEDDING").as_deref() {
        Err(_) => {}
        Ok("single") => config.embedding = EmbeddingMode::Single,
        Ok("mirrored") => config.embedding = EmbeddingMode::Mirrored,
        Ok(other) => die(format_args!(
            "PIPELINE_BENCH_EMBEDDING must be single or mirrored, not {other:?}"
        )),
    }
    Pipeline::load(config).unwrap_or_else(|e| {
        die(format_args!(
            "{e}\nthe models are missing or stale: run scripts/setup-models.sh"
        ))
    })
}

/// The 640x480 kiosk frame with one face about `FACE_WIDTH` wide, slightly above centre.
fn kiosk_frame(p: &mut Pipeline) -> RgbImage {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dist/demo/obama.jpg");
    let photo = decode_file(&path, &DecodeLimits::default()).unwrap_or_else(|e| {
        die(format_args!(
            "{}: {e}; run scripts/setup-models.sh (it copies the demo photos)",
            path.display()
        ))
    });
    let found = p.analyze(&photo, Faces::Main).unwrap_or_else(|e| die(e));
    let Some(face) = found.faces.first() else {
        die(format_args!("no face found in {}", path.display()))
    };
    let scale = FACE_WIDTH / face.detection.rect.width();
    let (w, h) = (
        (photo.width() as f32 * scale).round() as u32,
        (photo.height() as f32 * scale).round() as u32,
    );
    let scaled = imageops::resize(&photo, w, h, imageops::FilterType::Triangle);
    let c = face.detection.rect.center();
    let (cx, cy) = ((c.x * scale).round() as i64, (c.y * scale).round() as i64);
    let (left, top) = (
        cx - i64::from(FRAME_W) / 2,
        cy - i64::from(FRAME_H) * 45 / 100,
    );
    // Outside the photo (if the crop reaches past it): a dull grey wall.
    RgbImage::from_fn(FRAME_W, FRAME_H, |x, y| {
        let (sx, sy) = (left + i64::from(x), top + i64::from(y));
        if sx >= 0 && sy >= 0 && sx < i64::from(w) && sy < i64::from(h) {
            *scaled.get_pixel(sx as u32, sy as u32)
        } else {
            Rgb([96, 96, 96])
        }
    })
}

/// Everything the stages and raw runs need, prepared once from the frame.
struct Prepared {
    frame: RgbImage,
    det: Detection,
    landmarks: [models::Point; 5],
    chip: RgbImage,
    /// The detector's input exactly as `Detector::detect` builds it for this frame.
    det_input: Vec<f32>,
    /// The chip planar (NCHW), as `Embedder::embed_batch` builds it.
    emb_input: Vec<f32>,
}

fn prepare(p: &mut Pipeline, frame: RgbImage) -> Prepared {
    let a = p.analyze(&frame, Faces::Main).unwrap_or_else(|e| die(e));
    if a.detections.len() != 1 || a.faces.len() != 1 {
        die(format_args!(
            "the kiosk frame should hold exactly one face, found {} detections",
            a.detections.len()
        ));
    }
    let det = a.faces[0].detection;
    let width = det.rect.width();
    if !(180.0..=220.0).contains(&width) {
        die(format_args!(
            "the face in the kiosk frame is {width:.0} px wide, not 180-220"
        ));
    }
    let landmarks = a.faces[0].landmarks;
    let t = chip_transform(&landmarks, CHIP_SIZE, CHIP_PADDING).unwrap_or_else(|e| die(e));
    let chip = extract_chip(&frame, &t);

    // The kiosk config runs one letterboxed whole-frame tile: a 640x640 square at y = -80.
    let long = FRAME_W.max(FRAME_H) as f32;
    let (left, top) = ((FRAME_W as f32 - long) / 2.0, (FRAME_H as f32 - long) / 2.0);
    let mut det_input = vec![0f32; INPUT_SIZE * INPUT_SIZE * 3];
    sample_square(&frame, left, top, long, INPUT_SIZE, &mut det_input);
    for v in &mut det_input {
        *v = *v * (1.0 / 127.5) - 1.0;
    }

    // The embedder's input as the pipeline builds it: the chip, and its mirror image when
    // descriptors are mirrored (one batch of two, averaged).
    let plane = (CHIP_SIZE * CHIP_SIZE) as usize;
    let mirrored = p.config().embedding == EmbeddingMode::Mirrored;
    let mut batch = vec![chip.clone()];
    if mirrored {
        batch.push(imageops::flip_horizontal(&chip));
    }
    let mut emb_input = vec![0f32; 3 * plane * batch.len()];
    for (c, dst) in batch.iter().zip(emb_input.chunks_exact_mut(3 * plane)) {
        for (i, px) in c.as_raw().chunks_exact(3).enumerate() {
            for k in 0..3 {
                dst[k * plane + i] = f32::from(px[k]);
            }
        }
    }
    // The raw runs must be the pipeline's runs: same chip, same embedding.
    let (_, _, embedder, _) = p.stages();
    let raw = embedder.run_raw(&emb_input).unwrap_or_else(|e| die(e));
    let n = raw.len() as f32;
    let diff = (0..raw[0].len())
        .map(|i| (raw.iter().map(|r| r[i]).sum::<f32>() / n - a.faces[0].embedding[i]).abs())
        .fold(0f32, f32::max);
    if diff > 1e-5 {
        die(format_args!(
            "the raw embedder input does not reproduce the pipeline's embedding (max diff {diff})"
        ));
    }
    Prepared {
        frame,
        det,
        landmarks,
        chip,
        det_input,
        emb_input,
    }
}

fn bench_threads(c: &mut Criterion, threads: usize) {
    let mut p = pipeline(threads);
    let frame = kiosk_frame(&mut p);
    let pr = prepare(&mut p, frame);
    let policy = p.config().quality.clone();
    let mut group = c.benchmark_group(format!("pipeline_t{threads}"));
    group
        .sample_size(100)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(6));

    group.bench_function("whole", |b| {
        b.iter(|| {
            black_box(
                p.analyze(black_box(&pr.frame), Faces::Main)
                    .expect("analyze"),
            )
        })
    });
    group.bench_function("detect", |b| {
        let (det, _, _, _) = p.stages();
        b.iter(|| black_box(det.detect(black_box(&pr.frame)).expect("detect")))
    });
    group.bench_function("landmarks", |b| {
        b.iter(|| black_box(p.landmarks_for(black_box(&pr.frame), &pr.det)))
    });
    group.bench_function("align", |b| {
        b.iter(|| {
            let t = chip_transform(black_box(&pr.landmarks), CHIP_SIZE, CHIP_PADDING)
                .expect("transform");
            black_box(extract_chip(black_box(&pr.frame), &t))
        })
    });
    group.bench_function("quality", |b| {
        b.iter(|| {
            black_box(assess(
                black_box(&pr.landmarks),
                black_box(&pr.chip),
                &policy,
            ))
        })
    });
    group.bench_function("liveness", |b| {
        let (_, _, _, live) = p.stages();
        let live = live.expect("liveness is on by default");
        b.iter(|| {
            black_box(
                live.score(black_box(&pr.frame), &pr.det.rect)
                    .expect("liveness"),
            )
        })
    });
    group.bench_function("embed", |b| {
        let (_, _, emb, _) = p.stages();
        b.iter(|| black_box(emb.embed(black_box(&pr.chip)).expect("embed")))
    });
    group.bench_function(BenchmarkId::new("raw", "detector"), |b| {
        let (det, _, _, _) = p.stages();
        b.iter(|| det.run_raw(black_box(&pr.det_input)).expect("detector"))
    });
    group.bench_function(BenchmarkId::new("raw", "liveness"), |b| {
        let (_, _, _, live) = p.stages();
        let live = live.expect("liveness is on by default");
        // Fill its input buffers with this face's crops, then time the bare runs.
        live.score(&pr.frame, &pr.det.rect).expect("liveness");
        b.iter(|| black_box(live.run_raw().expect("liveness")))
    });
    group.bench_function(BenchmarkId::new("raw", "embedder"), |b| {
        let (_, _, emb, _) = p.stages();
        b.iter(|| black_box(emb.run_raw(black_box(&pr.emb_input)).expect("embedder")))
    });
    group.finish();
}

/// The pipeline's own per-frame work that the stage benchmarks do not isolate: building
/// the three models' input tensors (independent of the thread count, so measured once).
fn bench_own(c: &mut Criterion) {
    let mut p = pipeline(1);
    let frame = kiosk_frame(&mut p);
    let pr = prepare(&mut p, frame);
    let mut group = c.benchmark_group("own");
    group
        .sample_size(100)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let long = FRAME_W.max(FRAME_H) as f32;
    let mut det_input = vec![0f32; INPUT_SIZE * INPUT_SIZE * 3];
    let mut resampler = Resampler::new();
    group.bench_function("detector_input", |b| {
        b.iter(|| {
            resampler.sample_square(
                black_box(&pr.frame),
                0.0,
                (FRAME_H as f32 - long) / 2.0,
                long,
                INPUT_SIZE,
                &mut det_input,
            );
            for v in &mut det_input {
                *v = *v * (1.0 / 127.5) - 1.0;
            }
            black_box(&det_input);
        })
    });
    let (mut big, mut small) = (vec![0f32; 128 * 128 * 3], vec![0f32; 32 * 32 * 3]);
    let mut resamplers = [Resampler::new(), Resampler::new()];
    group.bench_function("liveness_inputs", |b| {
        let r = pr.det.rect;
        let side = r.width().max(r.height());
        let c = r.center();
        b.iter(|| {
            resamplers[0].sample_square(
                black_box(&pr.frame),
                c.x - side / 2.0,
                c.y - side / 2.0,
                side,
                128,
                &mut big,
            );
            resamplers[1].sample_square(
                black_box(&pr.frame),
                c.x - side / 2.0,
                c.y - side / 2.0,
                side,
                32,
                &mut small,
            );
            black_box((&big, &small));
        })
    });
    let mut planar = pr.emb_input[..3 * (CHIP_SIZE * CHIP_SIZE) as usize].to_vec();
    group.bench_function("embedder_input", |b| {
        let plane = (CHIP_SIZE * CHIP_SIZE) as usize;
        b.iter(|| {
            let (r, rest) = planar.split_at_mut(plane);
            let (g, bl) = rest.split_at_mut(plane);
            for (((px, r), g), bl) in black_box(&pr.chip)
                .as_raw()
                .chunks_exact(3)
                .zip(r)
                .zip(g)
                .zip(bl)
            {
                *r = f32::from(px[0]);
                *g = f32::from(px[1]);
                *bl = f32::from(px[2]);
            }
            black_box(&planar);
        })
    });
    group.finish();
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Whole pipeline and raw runs timed alternately, `rounds` times; prints medians (ms) and
/// the ratio. Also times the three raw runs back to back as one chain, which shares the
/// caches the way the pipeline does (a model alone in a loop keeps its weights warmer).
fn interleaved(threads: usize, rounds: usize) {
    let mut p = pipeline(threads);
    let frame = kiosk_frame(&mut p);
    let pr = prepare(&mut p, frame);
    let r = pr.det.rect;
    println!(
        "embedding {:?}; frame {FRAME_W}x{FRAME_H}, one face: detector box {:.0}x{:.0} px at ({:.0}, {:.0}), score {:.2}",
        p.config().embedding,
        r.width(),
        r.height(),
        r.left,
        r.top,
        pr.det.score
    );
    let mut t = [
        Vec::with_capacity(rounds),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    ];
    // The pipeline's own per-stage timings (`Analysis::timings`) of every round.
    let mut stage_times: Vec<[u64; 6]> = Vec::with_capacity(rounds + 20);
    for round in 0..rounds + 20 {
        let mut times = [0f64; 6];
        // Rotate the order so no measurement always follows the same one.
        for k in 0..3 {
            match (round + k) % 3 {
                0 => {
                    let s = Instant::now();
                    let a = black_box(p.analyze(&pr.frame, Faces::Main).expect("analyze"));
                    times[0] = s.elapsed().as_secs_f64();
                    let tm = a.timings;
                    stage_times.push([
                        tm.detect_us,
                        tm.landmarks_us,
                        tm.align_us,
                        tm.quality_us,
                        tm.liveness_us,
                        tm.embed_us,
                    ]);
                }
                1 => {
                    let (det, _, emb, live) = p.stages();
                    let live = live.expect("liveness is on by default");
                    let s = Instant::now();
                    det.run_raw(&pr.det_input).expect("detector");
                    times[1] = s.elapsed().as_secs_f64();
                    let s = Instant::now();
                    black_box(live.run_raw().expect("liveness"));
                    times[2] = s.elapsed().as_secs_f64();
                    let s = Instant::now();
                    black_box(emb.run_raw(&pr.emb_input).expect("embedder"));
                    times[3] = s.elapsed().as_secs_f64();
                }
                _ => {
                    let (det, _, emb, live) = p.stages();
                    let live = live.expect("liveness is on by default");
                    let s = Instant::now();
                    det.run_raw(&pr.det_input).expect("detector");
                    black_box(live.run_raw().expect("liveness"));
                    black_box(emb.run_raw(&pr.emb_input).expect("embedder"));
                    times[4] = s.elapsed().as_secs_f64();
                }
            }
        }
        times[5] = times[0] / (times[1] + times[2] + times[3]);
        // The first rounds warm up the sessions and caches.
        if round >= 20 {
            for (v, x) in t.iter_mut().zip(times) {
                v.push(x);
            }
        }
    }
    let mins: Vec<f64> = t
        .iter()
        .map(|v| v.iter().copied().fold(f64::INFINITY, f64::min))
        .collect();
    let [whole, det, live, emb, chain, per_round] = t.map(|mut v| median(&mut v));
    let raw_sum = det + live + emb;
    println!(
        "interleaved, intra_threads={threads}, median of {rounds} rounds: whole {:.3} ms | raw detector {:.3} + liveness {:.3} + embedder {:.3} = {:.3} ms | raw chain {:.3} ms",
        whole * 1e3,
        det * 1e3,
        live * 1e3,
        emb * 1e3,
        raw_sum * 1e3,
        chain * 1e3
    );
    println!(
        "  ratio whole / sum of raw medians = {:.3}; median per-round ratio = {per_round:.3}; whole / raw chain = {:.3} (goal <= 1.10)",
        whole / raw_sum,
        whole / chain
    );
    let stages: Vec<String> = [
        "detect",
        "landmarks",
        "align",
        "quality",
        "liveness",
        "embed",
    ]
    .iter()
    .enumerate()
    .map(|(i, name)| {
        let mut v: Vec<f64> = stage_times[20..]
            .iter()
            .map(|s| s[i] as f64 / 1e3)
            .collect();
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        format!("{name} {:.3}/{min:.3}", median(&mut v))
    })
    .collect();
    println!(
        "  inside analyze (Analysis::timings, median/min ms): {}",
        stages.join(", ")
    );
    println!(
        "  minima: whole {:.3} ms | raw {:.3} + {:.3} + {:.3} = {:.3} ms | ratio of minima {:.3}",
        mins[0] * 1e3,
        mins[1] * 1e3,
        mins[2] * 1e3,
        mins[3] * 1e3,
        (mins[1] + mins[2] + mins[3]) * 1e3,
        mins[0] / (mins[1] + mins[2] + mins[3])
    );
}

/// The pipeline's own stages timed alternately, round after round: medians and minima
/// (the minimum is the least disturbed by other processes on a shared machine).
fn own_work(rounds: usize) {
    let mut p = pipeline(1);
    let frame = kiosk_frame(&mut p);
    let pr = prepare(&mut p, frame);
    let policy = p.config().quality.clone();
    let long = FRAME_W.max(FRAME_H) as f32;
    let mut det_input = vec![0f32; INPUT_SIZE * INPUT_SIZE * 3];
    let (mut big, mut small) = (vec![0f32; 128 * 128 * 3], vec![0f32; 32 * 32 * 3]);
    let mut resamplers = [Resampler::new(), Resampler::new(), Resampler::new()];
    let r = pr.det.rect;
    let side = r.width().max(r.height());
    let c = r.center();
    const NAMES: [&str; 5] = [
        "detector_input",
        "liveness_inputs",
        "landmarks",
        "align",
        "quality",
    ];
    let mut t: [Vec<f64>; 5] = Default::default();
    for round in 0..rounds + 10 {
        let mut times = [0f64; 5];
        let s = Instant::now();
        resamplers[0].sample_square(
            &pr.frame,
            0.0,
            (FRAME_H as f32 - long) / 2.0,
            long,
            INPUT_SIZE,
            &mut det_input,
        );
        for v in &mut det_input {
            *v = *v * (1.0 / 127.5) - 1.0;
        }
        black_box(&det_input);
        times[0] = s.elapsed().as_secs_f64();
        let s = Instant::now();
        resamplers[1].sample_square(
            &pr.frame,
            c.x - side / 2.0,
            c.y - side / 2.0,
            side,
            128,
            &mut big,
        );
        resamplers[2].sample_square(
            &pr.frame,
            c.x - side / 2.0,
            c.y - side / 2.0,
            side,
            32,
            &mut small,
        );
        black_box((&big, &small));
        times[1] = s.elapsed().as_secs_f64();
        let s = Instant::now();
        black_box(p.landmarks_for(black_box(&pr.frame), &pr.det));
        times[2] = s.elapsed().as_secs_f64();
        let s = Instant::now();
        let tf =
            chip_transform(black_box(&pr.landmarks), CHIP_SIZE, CHIP_PADDING).expect("transform");
        black_box(extract_chip(black_box(&pr.frame), &tf));
        times[3] = s.elapsed().as_secs_f64();
        let s = Instant::now();
        black_box(assess(
            black_box(&pr.landmarks),
            black_box(&pr.chip),
            &policy,
        ));
        times[4] = s.elapsed().as_secs_f64();
        if round >= 10 {
            for (v, x) in t.iter_mut().zip(times) {
                v.push(x);
            }
        }
    }
    print!("own work, {rounds} rounds, median / min (us):");
    for (name, mut v) in NAMES.iter().zip(t) {
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        print!(" {name} {:.0} / {:.0};", median(&mut v) * 1e6, min * 1e6);
    }
    println!();
}

fn main() {
    let threads: Vec<usize> = match std::env::var("PIPELINE_BENCH_THREADS") {
        Ok(s) => s
            .split(',')
            .map(|t| {
                t.trim()
                    .parse()
                    .unwrap_or_else(|_| die(format_args!("bad thread count {t:?}")))
            })
            .collect(),
        Err(_) => vec![1, 2],
    };
    let rounds = match std::env::var("PIPELINE_BENCH_ROUNDS") {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| die(format_args!("bad round count {s:?}"))),
        Err(_) => 400,
    };
    // `cargo test --benches` runs each benchmark once without `--bench`: keep it short.
    let benching = std::env::args().any(|a| a == "--bench");
    match std::env::var("PIPELINE_BENCH_ONLY").as_deref() {
        Ok("own") => return own_work(if benching { rounds } else { 3 }),
        Ok("interleaved") => {
            for &n in &threads {
                interleaved(n, if benching { rounds } else { 3 });
            }
            return;
        }
        _ => {}
    }
    let mut c = Criterion::default().configure_from_args();
    bench_own(&mut c);
    for &n in &threads {
        bench_threads(&mut c, n);
    }
    c.final_summary();
    own_work(if benching { rounds } else { 3 });
    for &n in &threads {
        interleaved(n, if benching { rounds } else { 3 });
    }
}

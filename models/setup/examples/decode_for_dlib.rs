//! Developer tool for `models/tests/fixtures/dlib_reference_decoded.json`: decodes every
//! photo of `dlib_reference.json` with our own decoder (`models::image_io`) and saves the
//! pixels as PNG, so that dlib can be run on exactly the pixels our pipeline sees.
//!
//! dlib decodes JPEGs with its bundled IJG libjpeg 9, whose chroma upsampling differs from
//! zune-jpeg's (the `image` crate's) by up to tens of grey levels, so dlib's outputs on the
//! JPEG files themselves cannot be matched bit for bit by any port; on the same pixels they
//! can. Second step: `scripts/dev/dlib_reference_decoded.py`.
//!
//! ```sh
//! cargo run -p model-setup --example decode_for_dlib -- OUT_DIR [FACES_DIR]
//! ```
//!
//! Writes `OUT_DIR/<image path with '/' replaced by "__">.png` and `OUT_DIR/decoded.json`
//! (each image's path, size and the sha256 of its decoded RGB bytes).

use std::path::PathBuf;

use anyhow::Context;
use sha2::{Digest, Sha256};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let out = PathBuf::from(
        args.next()
            .context("usage: decode_for_dlib OUT_DIR [FACES_DIR]")?,
    );
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let faces = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir.join("../../../shared/faces"));
    let fixture = manifest_dir.join("../tests/fixtures/dlib_reference.json");
    let text = std::fs::read_to_string(&fixture)
        .with_context(|| format!("reading {}", fixture.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    let list = json["faces"]
        .as_array()
        .context("no faces in the fixture")?;
    std::fs::create_dir_all(&out)?;
    let mut decoded = Vec::new();
    for face in list {
        let rel = face["image"]
            .as_str()
            .context("a face without an image path")?;
        let path = faces.join(rel);
        let img = models::image_io::decode_file(&path, &Default::default())
            .with_context(|| format!("decoding {}", path.display()))?;
        let png = out.join(format!("{}.png", rel.replace('/', "__")));
        img.save(&png)
            .with_context(|| format!("writing {}", png.display()))?;
        decoded.push(serde_json::json!({
            "image": rel,
            "png": png.file_name().map(|n| n.to_string_lossy().into_owned()),
            "size": [img.width(), img.height()],
            "rgb_sha256": hex::encode(Sha256::digest(img.as_raw())),
        }));
    }
    std::fs::write(
        out.join("decoded.json"),
        serde_json::to_string_pretty(&decoded)?,
    )?;
    println!("{} images decoded into {}", decoded.len(), out.display());
    Ok(())
}

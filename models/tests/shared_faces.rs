//! The pipeline on real photos from `../shared/faces` (see its README): photos without
//! faces give none, group photos give every face, and photos of one person embed closer
//! together than photos of different people. Skipped, saying so, when the shared folder
//! is absent; fails when the models are missing (run scripts/setup-models.sh).

use std::path::{Path, PathBuf};

use models::embed::distance;
use models::image_io::{decode_file, DecodeLimits};
use models::pipeline::{Faces, Pipeline, PipelineConfig};

fn shared_faces() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/faces");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: {} not found", dir.display());
        None
    }
}

fn pipeline() -> Pipeline {
    Pipeline::load(PipelineConfig::default())
        .expect("the face pipeline loads (run scripts/setup-models.sh)")
}

fn images_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    v.sort();
    v
}

#[test]
fn photos_without_faces_give_none() {
    let Some(root) = shared_faces() else { return };
    let mut pipeline = pipeline();
    let mut photos = Vec::new();
    for cat in [
        "lfw_subset_nonface_25px",
        "natural_nonface",
        "synthetic_nonface",
        "texture_nonface",
        "animal_face_nonhuman",
    ] {
        photos.extend(images_in(&root.join("misc_skimage-A").join(cat)));
    }
    photos.extend(images_in(&root.join("bbt_hard-A/blank_nonface")));
    assert!(
        photos.len() >= 110,
        "expected the non-face sets, found {} photos",
        photos.len()
    );
    let mut false_faces = Vec::new();
    for path in &photos {
        let image = decode_file(path, &DecodeLimits::default()).expect("decodes");
        let analysis = pipeline.analyze(&image, Faces::All).expect("analyses");
        if !analysis.detections.is_empty() {
            false_faces.push((
                path.clone(),
                analysis
                    .detections
                    .iter()
                    .map(|d| d.score)
                    .collect::<Vec<_>>(),
            ));
        }
    }
    assert!(
        false_faces.is_empty(),
        "faces found in non-face photos: {false_faces:?}"
    );
}

#[test]
fn every_face_of_the_group_photos_is_found() {
    let Some(root) = shared_faces() else { return };
    let mut pipeline = pipeline();
    // Counted by eye: the faces turned towards the camera (bbt_hard-A/multi_face/2.jpg also
    // has people in the background, turned away or cut off by the frame).
    let expected = [
        ("bbt_hard-A/multi_face/1.jpg", 4),
        ("bbt_hard-A/multi_face/2.jpg", 2),
        ("bbt_hard-A/multi_face/3.jpg", 5),
        ("bbt_hard-A/multi_face/4.jpg", 6),
        ("bbt_hard-A/multi_face/5.jpg", 5),
        ("facerec_hard-A/multi_face/1.jpg", 2),
        ("misc_skimage-A/face_public_domain_Eileen_Collins/1.png", 1),
        ("misc_skimage-A/person_small_face/1.png", 1),
    ];
    for (rel, n) in expected {
        let image = decode_file(root.join(rel), &DecodeLimits::default()).expect("decodes");
        let analysis = pipeline.analyze(&image, Faces::All).expect("analyses");
        assert!(
            analysis.faces.len() >= n && analysis.faces.len() <= n + 1,
            "{rel}: expected {n} faces, found {} ({:?})",
            analysis.faces.len(),
            analysis.detections
        );
        for face in &analysis.faces {
            // The landmarks of each face lie in (a slightly grown) box of that face.
            let r = face.detection.rect;
            let grow = r.width() * 0.25;
            for p in face.landmarks {
                assert!(
                    p.x > r.left - grow
                        && p.x < r.right + grow
                        && p.y > r.top - grow
                        && p.y < r.bottom + grow,
                    "{rel}: landmark {p:?} outside {r:?}"
                );
            }
        }
    }
}

#[test]
fn photos_of_one_person_are_closer_than_photos_of_others() {
    let Some(root) = shared_faces() else { return };
    let mut pipeline = pipeline();
    let mut embed = |rel: &str| {
        let image = decode_file(root.join(rel), &DecodeLimits::default()).expect("decodes");
        let a = pipeline.analyze(&image, Faces::Main).expect("analyses");
        a.faces
            .first()
            .unwrap_or_else(|| panic!("{rel}: no face"))
            .embedding
    };
    let obama: Vec<_> = (1..=4)
        .map(|i| embed(&format!("facerec-A/Barack_Obama/{i}.jpg")))
        .collect();
    let others = [
        embed("facerec-A/Kit_Harington/1.jpg"),
        embed("facerec-A/Rose_Leslie/1.jpg"),
        embed("facerec-A/Alex_Lacamoire/2.jpg"),
    ];
    for (i, a) in obama.iter().enumerate() {
        for b in &obama[i + 1..] {
            assert!(distance(a, b) < 0.5, "Obama vs Obama: {}", distance(a, b));
        }
        for o in &others {
            assert!(
                distance(a, o) > 0.6,
                "Obama vs someone else: {}",
                distance(a, o)
            );
        }
    }
}

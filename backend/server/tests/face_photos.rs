//! Photo enrolment over HTTP on both databases: the backend runs the face pipeline on an
//! uploaded photo and stores the embedding like `POST /staff/{id}/templates` (consent first,
//! encrypted, gallery version for kiosks, audit). Needs the face models in `models/dist`
//! (`scripts/setup-models.sh`; CI runs it before the tests): without them these tests FAIL and
//! say so, they are never skipped. The portraits are the public-domain ones in
//! `models/dist/demo/`. The last test checks a backend without models still serves.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{Caller, Db, TestApp};
use serde_json::{json, Value};
use std::io::Cursor;
use std::path::PathBuf;

/// The model directory the tests use: `$CLEANPLATE_MODELS_DIR`, else the workspace's
/// `models/dist`. Panics (fails the test) when it has no manifest.
fn models_dir() -> PathBuf {
    let dir = match std::env::var_os("CLEANPLATE_MODELS_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/dist"),
    };
    assert!(
        dir.join("manifest.json").is_file(),
        "the face models are missing from {}: run `scripts/setup-models.sh` (from the workspace \
         root) before these tests",
        dir.display()
    );
    dir
}

fn demo_photo(name: &str) -> Vec<u8> {
    let path = models_dir().join("demo").join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `scripts/setup-models.sh` to install the demo photos",
            path.display()
        )
    })
}

async fn with_models(db: Db) -> Option<(TestApp, ())> {
    let dir = models_dir();
    let app = TestApp::with_config(db, |c| c.models_dir = Some(dir)).await?;
    Some((app, ()))
}

/// An app whose `models_dir` is an empty directory (kept alive as long as the app).
async fn without_models(db: Db) -> Option<(TestApp, tempfile::TempDir)> {
    let empty = tempfile::tempdir().expect("temp dir");
    let path = empty.path().to_path_buf();
    let app = TestApp::with_config(db, |c| c.models_dir = Some(path)).await?;
    Some((app, empty))
}

/// Runs `$body` once per database, the app made by `$make` (with whatever it must keep alive).
macro_rules! on_both_dbs {
    ($name:ident, $make:ident, |$app:ident| $body:block) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let Some(($app, _keep)) = $make(Db::Sqlite).await else {
                    return;
                };
                $body
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let Some(($app, _keep)) = $make(Db::Postgres).await else {
                    return;
                };
                $body
            }
        }
    };
}

/// POSTs `bytes` as a photo for `staff_id`.
async fn post_photo(
    app: &TestApp,
    who: &Caller,
    staff_id: i64,
    content_type: &str,
    bytes: Vec<u8>,
) -> (StatusCode, Value) {
    let b = who.authorize(
        Request::builder()
            .method(Method::POST)
            .uri(format!("/api/v1/staff/{staff_id}/face-photos"))
            .header("content-type", content_type),
    );
    let (s, _, body) = app.raw(b.body(Body::from(bytes)).expect("request")).await;
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    (s, v)
}

fn code(v: &Value) -> Option<&str> {
    v["error"]["code"].as_str()
}

fn png(img: &image::RgbImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encode png");
    out.into_inner()
}

async fn grant_consent(app: &TestApp, staff_id: i64) {
    let (s, v) = app
        .call(
            &app.manager,
            Method::PUT,
            &format!("/api/v1/staff/{staff_id}/consent"),
            Some(json!({"granted": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

fn euclidean(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

on_both_dbs!(photo_enrolment, with_models, |app| {
    let obama = demo_photo("obama.jpg");
    let id = app.staff_id;

    // Only managers.
    for (who, want) in [
        (Caller::Anonymous, StatusCode::UNAUTHORIZED),
        (app.kiosk.clone(), StatusCode::FORBIDDEN),
        (app.staff.clone(), StatusCode::FORBIDDEN),
        (app.auditor.clone(), StatusCode::FORBIDDEN),
    ] {
        let (s, v) = post_photo(&app, &who, id, "image/jpeg", obama.clone()).await;
        assert_eq!(s, want, "{who:?}: {v}");
        assert!(code(&v).is_some(), "{v}");
    }

    // Nobody to enrol, then no consent: refused before the photo is looked at.
    let (s, v) = post_photo(&app, &app.manager, 999_999, "image/jpeg", obama.clone()).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::NOT_FOUND, Some("not_found")),
        "{v}"
    );
    let (s, v) = post_photo(&app, &app.manager, id, "image/jpeg", obama.clone()).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("consent_required")),
        "{v}"
    );
    grant_consent(&app, id).await;

    // A good portrait: stored, listed, synced to kiosks.
    let (s, t) = post_photo(&app, &app.manager, id, "image/jpeg", obama.clone()).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(t["staff_id"], id);
    assert_eq!(t["deleted"], false);
    assert!(t["version"].as_i64().is_some_and(|v| v > 0), "{t}");
    assert!(t["quality_score"].as_f64().is_some_and(|q| q > 0.5), "{t}");
    assert!(
        t["detection_score"].as_f64().is_some_and(|d| d > 0.75),
        "{t}"
    );
    assert_eq!(t["faces_detected"], 1);
    let (s, list) = app
        .call(
            &app.manager,
            Method::GET,
            &format!("/api/v1/staff/{id}/templates"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        list.as_array()
            .expect("list")
            .iter()
            .any(|x| x["id"] == t["id"] && x["deleted"] == false),
        "{list}"
    );

    // Same person from another photo (sent as octet-stream), another person for a second staff.
    let (s, t2) = post_photo(
        &app,
        &app.manager,
        id,
        "application/octet-stream",
        demo_photo("obama2.jpg"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{t2}");
    let other = app
        .store
        .create_staff(
            store::NewStaff {
                employee_no: "S2".into(),
                name: "Staff Two".into(),
                department: "D".into(),
                category: "regular".into(),
            },
            &store::Actor::System("test"),
        )
        .await
        .expect("staff");
    grant_consent(&app, other.id).await;
    let (s, t3) = post_photo(
        &app,
        &app.manager,
        other.id,
        "image/jpeg",
        demo_photo("biden.jpg"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{t3}");

    // Enrolment's guard: Obama's face offered as the second person's would let a kiosk charge
    // one for the other (409), and Biden's offered as Obama's is unlike his own templates (422).
    // Nothing is stored either way.
    let before = app
        .store
        .gallery_changes(0, 100)
        .await
        .expect("page")
        .current_version;
    let (s, v) = post_photo(
        &app,
        &app.manager,
        other.id,
        "image/jpeg",
        demo_photo("obama3.jpg"),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, Some("face_matches_other")),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("S1") || m.contains(&format!("#{id}"))),
        "the refusal names who the face belongs to: {v}"
    );
    // A face like nobody enrolled (Obama's own embedding turned around) offered as Obama's:
    // unlike his own templates.
    let (_, g0) = app
        .call(
            &app.kiosk,
            Method::GET,
            "/api/v1/kiosk/gallery?since=0",
            None,
        )
        .await;
    assert_eq!(g0["changes"][0]["staff_id"], id, "{g0}");
    let own = wire::decode_embedding(g0["changes"][0]["embedding"].as_str().expect("embedding"))
        .expect("decode");
    let turned: Vec<f32> = own.iter().map(|x| -x).collect();
    let (s, v) = app
        .call(
            &app.manager,
            Method::POST,
            &format!("/api/v1/staff/{id}/templates"),
            Some(json!({ "embedding": turned })),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("face_unlike_own")),
        "{v}"
    );
    let after = app
        .store
        .gallery_changes(0, 100)
        .await
        .expect("page")
        .current_version;
    assert_eq!(before, after, "a refused template changes nothing");

    let (s, g) = app
        .call(
            &app.kiosk,
            Method::GET,
            "/api/v1/kiosk/gallery?since=0",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{g}");
    let embedding_of = |t: &Value| -> Vec<f32> {
        let change = g["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .find(|c| c["template_id"] == t["id"])
            .unwrap_or_else(|| panic!("template {} not in the kiosk gallery: {g}", t["id"]));
        assert_eq!(change["version"], t["version"]);
        wire::decode_embedding(change["embedding"].as_str().expect("embedding")).expect("decode")
    };
    let (e1, e2, e3) = (embedding_of(&t), embedding_of(&t2), embedding_of(&t3));
    assert_eq!(e1.len(), 128);
    // dlib's descriptor: the same person within 0.6, different people beyond it.
    assert!(euclidean(&e1, &e2) < 0.6, "{}", euclidean(&e1, &e2));
    assert!(euclidean(&e1, &e3) > 0.6, "{}", euclidean(&e1, &e3));
    // Encrypted at rest like any template: the plaintext floats appear nowhere in the row.
    let page = app.store.gallery_changes(0, 10).await.expect("page");
    let row = page
        .changes
        .iter()
        .find(|c| t["id"].as_i64() == Some(c.template_id))
        .expect("row");
    let sealed = row.sealed.clone().expect("sealed");
    let plain: Vec<u8> = e1.iter().flat_map(|x| x.to_le_bytes()).collect();
    assert!(!sealed
        .ciphertext
        .windows(16)
        .any(|w| plain.windows(16).any(|p| p == w)));

    // Refusals, each with its code and a message.
    let mut truncated = obama.clone();
    truncated.truncate(obama.len() / 2);
    let (s, v) = post_photo(&app, &app.manager, id, "image/jpeg", truncated).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("bad_image")),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("truncated")),
        "{v}"
    );

    let grey = image::RgbImage::from_pixel(640, 480, image::Rgb([128, 128, 128]));
    let (s, v) = post_photo(&app, &app.manager, id, "image/png", png(&grey)).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("no_face")),
        "{v}"
    );

    let portrait = image::load_from_memory(&obama).expect("decode portrait");
    let tiny = portrait
        .resize_exact(60, 60, image::imageops::FilterType::Triangle)
        .to_rgb8();
    let (s, v) = post_photo(&app, &app.manager, id, "image/png", png(&tiny)).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("poor_quality")),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("too_small")),
        "{v}"
    );

    // Two people side by side, faces of about one size: which one is meant? Refused.
    let biden = image::load_from_memory(&demo_photo("biden.jpg"))
        .expect("decode portrait")
        .to_rgb8();
    let obama_rgb = portrait.to_rgb8();
    let mut pair = image::RgbImage::from_pixel(
        obama_rgb.width() + biden.width(),
        obama_rgb.height().max(biden.height()),
        image::Rgb([255, 255, 255]),
    );
    image::imageops::replace(&mut pair, &obama_rgb, 0, 0);
    image::imageops::replace(&mut pair, &biden, i64::from(obama_rgb.width()), 0);
    let (s, v) = post_photo(&app, &app.manager, id, "image/png", png(&pair)).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("several_faces")),
        "{v}"
    );

    // JSON is not a photo; a photo over 1 MB (every other route's limit) is read, one over
    // 10 MB is not.
    let (s, v) = app
        .call(
            &app.manager,
            Method::POST,
            &format!("/api/v1/staff/{id}/face-photos"),
            Some(json!({"embedding": [1.0]})),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_media_type")
        ),
        "{v}"
    );
    let (s, v) = post_photo(
        &app,
        &app.manager,
        id,
        "image/jpeg",
        vec![0xFF; 3 * 1024 * 1024],
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("bad_image")),
        "3 MB are read and refused as an image, not as a body: {v}"
    );
    let (s, v) = post_photo(
        &app,
        &app.manager,
        id,
        "image/jpeg",
        vec![0xFF; 11 * 1024 * 1024],
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("photo_too_large")),
        "{v}"
    );

    // Three templates stored, each audited; the books still check.
    let (_, audit) = app
        .call(&app.auditor, Method::GET, "/api/v1/audit?limit=1000", None)
        .await;
    let added = audit
        .as_array()
        .expect("audit")
        .iter()
        .filter(|a| a["action"] == "face.template_added")
        .count();
    assert_eq!(added, 3, "{audit}");
    app.check_ok().await;
});

on_both_dbs!(missing_models_answer_503, without_models, |app| {
    grant_consent(&app, app.staff_id).await;
    // Any bytes: the pipeline is needed before the photo is decoded.
    let photo = png(&image::RgbImage::from_pixel(
        64,
        64,
        image::Rgb([90, 90, 90]),
    ));
    let (s, v) = post_photo(&app, &app.manager, app.staff_id, "image/png", photo).await;
    assert_eq!(
        (s, code(&v)),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("face_pipeline_unavailable")
        ),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("scripts/setup-models.sh")),
        "{v}"
    );
    // Everything else serves as usual.
    let (s, staff) = app
        .call(&app.manager, Method::GET, "/api/v1/staff", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{staff}");
    assert!(staff.as_array().is_some_and(|a| !a.is_empty()), "{staff}");
    let (s, _) = app
        .call(
            &app.kiosk,
            Method::GET,
            "/api/v1/kiosk/gallery?since=0",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
});

on_both_dbs!(
    a_manager_enrols_a_photo_on_the_person_page,
    with_models,
    |app| {
        use common::pages::{cookies, csrf, get, location, post_form, text, upload};
        let boss = cookies(&app.manager);
        let token = csrf(&app.manager);
        let id = app.staff_id;
        let page = format!("/manage/staff/{id}/photos");
        // Without consent: the page offers to record it, and a photo is refused in words.
        let (_, _, body) = app.raw(get(&format!("/manage/staff/{id}"), &boss)).await;
        assert!(text(&body).contains("id=\"consent-record\""));
        let (s, _, body) = app
            .raw(upload(
                &page,
                &boss,
                &token,
                "obama.jpg",
                &demo_photo("obama.jpg"),
            ))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            text(&body).contains("本人尚未同意人脸识别"),
            "{}",
            text(&body)
        );
        let (s, _, _) = app
            .raw(post_form(
                &format!("/manage/staff/{id}/consent"),
                &boss,
                &[("csrf", &token), ("granted", "true")],
            ))
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        // A picture without a face: said next to the form, nothing stored.
        let blank = png(&image::RgbImage::from_pixel(
            320,
            240,
            image::Rgb([200, 200, 200]),
        ));
        let (s, _, body) = app
            .raw(upload(&page, &boss, &token, "blank.png", &blank))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(text(&body).contains("id=\"photo-error\""));
        assert!(text(&body).contains("没有找到人脸"), "{}", text(&body));
        assert!(app.store.list_templates(id).await.unwrap().is_empty());
        // A good photo: enrolled.
        let (s, h, _) = app
            .raw(upload(
                &page,
                &boss,
                &token,
                "obama.jpg",
                &demo_photo("obama.jpg"),
            ))
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert!(location(&h).contains("enrolled=1"));
        assert_eq!(app.store.list_templates(id).await.unwrap().len(), 1);
        // The same face for someone else: the warning names the look-alike, nothing stored.
        let other = app
            .store
            .create_staff(
                store::NewStaff {
                    employee_no: "T2".into(),
                    name: "Twin".into(),
                    department: String::new(),
                    category: "regular".into(),
                },
                &store::Actor::System("test"),
            )
            .await
            .unwrap();
        grant_consent(&app, other.id).await;
        let (s, _, body) = app
            .raw(upload(
                &format!("/manage/staff/{}/photos", other.id),
                &boss,
                &token,
                "obama2.jpg",
                &demo_photo("obama2.jpg"),
            ))
            .await;
        assert_eq!(s, StatusCode::CONFLICT);
        assert!(text(&body).contains("过于相似"), "{}", text(&body));
        assert!(app.store.list_templates(other.id).await.unwrap().is_empty());
        // A forged token stores nothing; staff cannot upload.
        let (s, _, _) = app
            .raw(upload(
                &page,
                &boss,
                "forged",
                "obama3.jpg",
                &demo_photo("obama3.jpg"),
            ))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _, _) = app
            .raw(upload(
                &page,
                &cookies(&app.staff),
                &csrf(&app.staff),
                "obama3.jpg",
                &demo_photo("obama3.jpg"),
            ))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert_eq!(app.store.list_templates(id).await.unwrap().len(), 1);
    }
);

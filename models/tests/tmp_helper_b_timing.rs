use models::landmarks::{DlibRect, ShapePredictor};
#[test]
fn timing() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let sp = ShapePredictor::load(root.join("dist/landmarks5.ert")).unwrap();
    let name = "facerec-A/Barack_Obama/3.jpg";
    let img = models::image_io::decode_file(root.join("../../shared/faces").join(name), &Default::default()).unwrap();
    let rect = DlibRect::new(620, 290, 940, 610);
    let n: u32 = std::env::var("N").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let mode = std::env::var("MODE").unwrap_or_default();
    let lm = sp.predict5(&img, rect).unwrap();
    let t = models::align::chip_transform(&lm, 150, 0.25).unwrap();
    let t0 = std::time::Instant::now();
    for _ in 0..n {
        if mode == "chip" { std::hint::black_box(models::align::extract_chip(&img, &t)); }
        else if mode == "none" {} else { std::hint::black_box(sp.predict(&img, rect)); }
    }
    println!("{mode} per call {:?}", t0.elapsed() / n);
}

//! Renders every screen in Chinese and English, landscape 1280x800 and portrait 800x1280,
//! with Slint's software renderer into a buffer, writes
//! `target/screenshots/kiosk-<screen>-<lang>-<orientation>.png`, and checks that none is
//! blank and that each shows its expected texts (found through the accessibility labels).
//!
//! One test renders them all: the Slint platform is process-wide.

use std::path::PathBuf;
use std::time::Instant;

use i_slint_backend_testing::ElementHandle;
use image::RgbImage;
use kiosk_ui::model::{Diner, FaceView, Fault, Mode, Screen, UiModel};
use kiosk_ui::render::Headless;
use kiosk_ui::{view, AppWindow, Ui};
use slint::ComponentHandle;

fn screenshots_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    target.join("screenshots")
}

/// A camera picture for the preview: a demo portrait when the models are set up, else a
/// drawn stand-in (a face-coloured oval on a wall).
fn preview_picture() -> slint::Image {
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/dist/demo/obama.jpg");
    let img: RgbImage = match image::open(&demo) {
        Ok(i) => image::imageops::resize(
            &i.to_rgb8(),
            320,
            240,
            image::imageops::FilterType::Triangle,
        ),
        Err(_) => RgbImage::from_fn(320, 240, |x, y| {
            let (dx, dy) = (x as f32 - 160.0, (y as f32 - 110.0) * 0.8);
            if dx * dx + dy * dy < 70.0 * 70.0 {
                image::Rgb([224, 180, 150])
            } else {
                image::Rgb([90, 100, 110])
            }
        }),
    };
    let flipped = image::imageops::flip_horizontal(&img);
    let buffer = slint::SharedPixelBuffer::<slint::Rgb8Pixel>::clone_from_slice(
        flipped.as_raw(),
        flipped.width(),
        flipped.height(),
    );
    slint::Image::from_rgb8(buffer)
}

struct Scene {
    name: &'static str,
    set: fn(&mut UiModel, &AppWindow),
    /// Texts that must be on the screen: (Chinese, English).
    expect: &'static [(&'static str, &'static str)],
}

fn base(mode: Mode) -> UiModel {
    let mut m = UiModel::new(mode);
    m.canteen_name = "北区食堂 North Canteen".into();
    m.clock = "12:05".into();
    m.meal = "lunch".into();
    m.meal_price = "15.00".into();
    m
}

fn diner() -> Diner {
    Diner {
        staff_id: 7,
        name: "王小明".into(),
        department: "研发部 R&D".into(),
        amount: "15.00".into(),
        subsidy_used: "5.00".into(),
        balance: "85.00".into(),
        offline: false,
        via_pay_code: false,
        charge_key: "k".into(),
    }
}

fn scenes() -> Vec<Scene> {
    vec![
        Scene {
            name: "attract",
            set: |m, app| {
                m.screen = Screen::Attract;
                m.face = Some(FaceView {
                    x: 0.3,
                    y: 0.15,
                    w: 0.38,
                    h: 0.5,
                    hint: "look".into(),
                });
                app.global::<Ui>().set_has_preview(true);
            },
            expect: &[
                ("请正对摄像头", "Please look straight at the camera"),
                ("使用付款码", "Pay with a pay code"),
                ("午餐", "Lunch"),
            ],
        },
        Scene {
            name: "attract-offline",
            set: |m, app| {
                m.screen = Screen::Attract;
                m.online = false;
                app.global::<Ui>().set_has_preview(true);
            },
            expect: &[
                ("请看摄像头，刷脸就餐", "Look at the camera to pay"),
                (
                    "离线：终端在离线额度内继续扣款，网络恢复后更新余额。",
                    "Offline: the kiosk keeps charging within its offline limits; balances update when the network is back.",
                ),
            ],
        },
        Scene {
            name: "paid",
            set: |m, _| {
                m.screen = Screen::Paid;
                m.diner = diner();
            },
            expect: &[
                ("支付成功，祝您用餐愉快！", "Paid — enjoy your meal!"),
                ("王小明", "王小明"),
                ("不是我", "Not me"),
                ("余额", "Balance after"),
            ],
        },
        Scene {
            name: "paid-offline",
            set: |m, _| {
                m.screen = Screen::Paid;
                m.online = false;
                m.diner = Diner {
                    offline: true,
                    subsidy_used: String::new(),
                    ..diner()
                };
            },
            expect: &[("离线支付，余额稍后更新", "Offline: balance updates later")],
        },
        Scene {
            name: "declined",
            set: |m, _| {
                m.screen = Screen::Declined;
                m.decline_reason = "insufficient_funds".into();
                m.diner = diner();
            },
            expect: &[
                ("余额不足", "Not enough balance"),
                (
                    "请在手机员工应用中充值后重试，或到收银台付款。",
                    "Top up in the staff app on your phone, then try again — or pay at the cashier.",
                ),
            ],
        },
        Scene {
            name: "declined-unknown",
            set: |m, _| {
                m.screen = Screen::Declined;
                m.decline_reason = "unknown".into();
                m.diner = Diner::default();
            },
            expect: &[
                ("未能识别您的身份", "We could not recognise you"),
                ("使用付款码", "Pay with a pay code"),
            ],
        },
        Scene {
            name: "paycode",
            set: |m, _| {
                m.screen = Screen::PayCode;
            },
            expect: &[("请将付款码对准摄像头", "Show your pay code to the camera")],
        },
        Scene {
            name: "return",
            set: |m, _| {
                m.mode = Mode::Return;
                m.screen = Screen::Return;
                m.ret.has_result = true;
                m.ret.weight_g = 365;
                m.ret.tare_g = 350;
                m.ret.net_g = 15;
                m.ret.person_average_g = Some(42.0);
                m.ret.canteen_average_g = Some(87.5);
                m.diner = diner();
            },
            expect: &[
                ("光盘！谢谢您", "Clean plate! Thank you"),
                ("15 g", "15 g"),
                ("食堂平均", "Canteen average"),
            ],
        },
        Scene {
            name: "return-weighing",
            set: |m, _| {
                m.mode = Mode::Return;
                m.screen = Screen::Return;
                m.ret.weight_g = 812;
                m.ret.tare_g = 350;
            },
            expect: &[("812 g", "812 g"), ("餐盘（皮重）", "Tray (tare)")],
        },
        Scene {
            name: "desk",
            set: |m, app| {
                m.mode = Mode::Desk;
                m.screen = Screen::Desk;
                m.face = Some(FaceView {
                    x: 0.3,
                    y: 0.15,
                    w: 0.38,
                    h: 0.5,
                    hint: String::new(),
                });
                let ui = app.global::<Ui>();
                ui.set_has_preview(true);
                ui.set_desk_step("capture".into());
                ui.set_desk_person("李华".into());
                ui.set_desk_captured(2);
                ui.set_desk_duplicate("张伟 (E0012)".into());
            },
            expect: &[
                ("良好，可以采集", "Good: ready to capture"),
                ("采集", "Capture"),
            ],
        },
        Scene {
            name: "desk-consent",
            set: |m, app| {
                m.mode = Mode::Desk;
                m.screen = Screen::Desk;
                let ui = app.global::<Ui>();
                ui.set_desk_step("consent".into());
                ui.set_desk_person("李华".into());
                ui.set_desk_duplicate("".into());
            },
            expect: &[("同意并记录", "Agrees: record consent")],
        },
        Scene {
            name: "settings",
            set: |m, app| {
                m.screen = Screen::Settings;
                let ui = app.global::<Ui>();
                ui.set_backend_url("http://10.0.0.2:8080".into());
                ui.set_camera_name("USB Camera (/dev/video0)".into());
                ui.set_scale_port("/dev/ttyUSB0".into());
                ui.set_settings_tare_text("350".into());
                ui.set_registration("kiosk 3 / canteen 1".into());
                ui.set_settings_locked(false);
                ui.set_settings_pin_set(true);
                ui.set_settings_message("tare-set".into());
                ui.set_settings_detail("412".into());
            },
            expect: &[
                ("设置", "Settings"),
                ("人脸录入台", "Enrolment desk"),
                (
                    "皮重已设为 412 克，之后的称重将扣除此重量。",
                    "Tare set to 412 g: the next plates subtract it.",
                ),
            ],
        },
        Scene {
            name: "settings-locked",
            set: |m, app| {
                m.screen = Screen::Settings;
                let ui = app.global::<Ui>();
                ui.set_settings_locked(true);
                ui.set_settings_pin_entry("12".into());
                ui.set_settings_message("pin-wrong".into());
            },
            expect: &[("请输入设置密码", "Enter the settings PIN"), ("密码错误。", "Wrong PIN.")],
        },
        Scene {
            name: "fault",
            set: |m, _| {
                m.fault = Some(Fault::Models);
                m.fault_detail = "models/dist/manifest.json: not found".into();
                m.screen = Screen::Fault;
            },
            expect: &[("人脸识别暂不可用", "Face recognition is not available")],
        },
    ]
}

/// Distinct colours in a sample of pixels: a blank render has one or two.
fn colours(img: &RgbImage) -> usize {
    let mut seen = std::collections::HashSet::new();
    for (i, p) in img.pixels().enumerate() {
        if i % 7 == 0 {
            seen.insert(p.0);
        }
    }
    seen.len()
}

#[test]
fn every_screen_in_both_languages_and_orientations() {
    let headless = Headless::install().expect("headless platform");
    let app = AppWindow::new().expect("the window");
    app.global::<Ui>().set_preview(preview_picture());
    app.show().expect("show");
    let dir = screenshots_dir();
    std::fs::create_dir_all(&dir).expect("screenshots dir");
    let mut written = 0;
    for lang in ["zh_CN", "en"] {
        slint::select_bundled_translation(lang).expect("bundled translation");
        for (orientation, w, h) in [("landscape", 1280, 800), ("portrait", 800, 1280)] {
            headless.set_size(w, h);
            for scene in scenes() {
                let mode = if scene.name.starts_with("return") {
                    Mode::Return
                } else {
                    Mode::Pay
                };
                let mut m = base(mode);
                m.language = lang.into();
                m.portrait = orientation == "portrait";
                (scene.set)(&mut m, &app);
                view::apply(&app, &m, Instant::now());
                let img = headless.snapshot().expect("a frame");
                assert_eq!((img.width(), img.height()), (w, h));
                let n = colours(&img);
                assert!(
                    n > 20,
                    "{} {lang} {orientation}: looks blank ({n} colours)",
                    scene.name
                );
                let name = format!(
                    "kiosk-{}-{}-{orientation}.png",
                    scene.name,
                    if lang == "en" { "en" } else { "zh" }
                );
                img.save(dir.join(&name)).expect("saving the PNG");
                written += 1;
                for (zh, en) in scene.expect {
                    let text = if lang == "en" { en } else { zh };
                    assert!(
                        ElementHandle::find_by_accessible_label(&app, text)
                            .next()
                            .is_some(),
                        "{name}: {text:?} is not on the screen"
                    );
                }
            }
        }
    }
    assert!(written >= 16);
}

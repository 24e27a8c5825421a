//! The web pages in a real headless Chromium (Debian's `chromium` + `chromium-driver`, driven
//! through WebDriver by fantoccini) against a real `backend serve` filled by `backend seed-demo`
//! (`--history-days 29`: meals and waste before today): a manager signs in and sees the dashboard's charts; a member
//! of staff on a 390x844 phone tops up through the sandbox gateway and sees the new balance,
//! shows a pay code, and withdraws consent, after which a kiosk's gallery no longer has them.
//! Screenshots land in `target/screenshots/web-*.png`.
//!
//! Every page of ours they visit is checked by axe-core (npm, installed by
//! `scripts/test-tools.sh` into `tests/contract-client/node_modules`; the folder that script
//! prints must be in `CLEANPLATE_TEST_TOOLS`): no serious or critical violation.
//!
//! Without chromium and chromedriver these tests fail with instructions, unless
//! `CLEANPLATE_SKIP_BROWSER=1` skips them explicitly; without the test tools likewise, unless
//! `CLEANPLATE_SKIP_AXE=1` skips only the accessibility checks.

mod common;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Whether to run: true when the browser is installed; false (skip) only when asked.
fn browser_available() -> bool {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return true;
    }
    if std::env::var("CLEANPLATE_SKIP_BROWSER").as_deref() == Ok("1") {
        eprintln!("CLEANPLATE_SKIP_BROWSER=1: browser tests skipped");
        return false;
    }
    panic!(
        "chromium and chromedriver are missing: run `scripts/system-packages.sh` (it installs \
         chromium chromium-driver fonts-wqy-microhei) or set CLEANPLATE_SKIP_BROWSER=1"
    );
}

/// chromedriver on a free port, stopped on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start_driver() -> Driver {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let d = Driver { child, port };
    let until = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    d
}

async fn browser(driver: &Driver, phone: bool) -> Client {
    let mut opts = json!({
        "binary": CHROMIUM,
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1360,1000", "--lang=zh-CN"],
    });
    if phone {
        opts["mobileEmulation"] =
            json!({"deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 1.0}});
    }
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert("goog:chromeOptions".into(), opts);
    let c = ClientBuilder::native()
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a browser session");
    if !phone {
        c.set_window_size(1360, 1000).await.expect("window size");
    }
    c
}

/// A seeded demo server: the backend, its data folder, the manager's and staff's passwords and
/// the kiosk enrolment code `seed-demo` printed.
struct Demo {
    server: common::Server,
    _dir: tempfile::TempDir,
    staff_password: String,
    enrolment_code: String,
}

const MANAGER_PASSWORD: &str = "manager-password-1";

fn backend_cmd(dir: &Path, url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_backend"));
    cmd.env("CLEANPLATE_DEV_MODE", "true")
        .env("CLEANPLATE_DATA_DIR", dir)
        .env("RUST_LOG", "warn")
        .arg("--database-url")
        .arg(url);
    cmd
}

fn seeded_demo() -> Demo {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("demo.db").display());
    let out = backend_cmd(dir.path(), &url)
        .args(["seed-demo", "--history-days", "29"])
        .output()
        .expect("seed-demo");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "seed-demo failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = |marker: &str| {
        text.lines()
            .find_map(|l| l.split_once(marker).map(|(_, v)| v.trim().to_string()))
            .unwrap_or_else(|| panic!("seed-demo printed no {marker:?}: {text}"))
    };
    let staff_password = after(" / ");
    let enrolment_code = after("(valid 24 h):");
    let out = backend_cmd(dir.path(), &url)
        .args(["create-manager", "--username", "manager"])
        .env("CLEANPLATE_NEW_PASSWORD", MANAGER_PASSWORD)
        .output()
        .expect("create-manager");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = common::spawn_server(&url, dir.path());
    Demo {
        server,
        _dir: dir,
        staff_password,
        enrolment_code,
    }
}

fn screenshots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshots folder");
    dir
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(screenshots_dir().join(format!("web-{name}.png")), png).expect("write png");
}

/// axe-core's source, or `None` when its checks are explicitly skipped.
fn axe_source() -> Option<String> {
    if std::env::var("CLEANPLATE_TEST_TOOLS").is_err() {
        if std::env::var("CLEANPLATE_SKIP_AXE").as_deref() == Ok("1") {
            return None;
        }
        panic!(
            "CLEANPLATE_TEST_TOOLS is not set: run `scripts/test-tools.sh` and export the folder \
             it prints (or set CLEANPLATE_SKIP_AXE=1 to skip the accessibility checks)"
        );
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/contract-client/node_modules/axe-core/axe.min.js");
    Some(
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run scripts/test-tools.sh)", path.display())),
    )
}

/// Runs axe-core on the current page: no serious or critical violation.
async fn check_accessibility(c: &Client, page: &str) {
    let Some(axe) = axe_source() else { return };
    c.execute(&format!("{axe}\nreturn true;"), vec![])
        .await
        .expect("inject axe-core");
    let found = c
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations\
               .filter(v => v.impact === 'serious' || v.impact === 'critical')\
               .map(v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => n.target.join(' ')).slice(0, 5).join(' | '))))\
               .catch(e => done(['axe failed: ' + e]));",
            vec![],
        )
        .await
        .expect("run axe-core");
    let found = found.as_array().cloned().unwrap_or_default();
    assert!(
        found.is_empty(),
        "accessibility violations on {page}: {found:#?}"
    );
}

async fn text_of(c: &Client, css: &str) -> String {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .text()
        .await
        .expect("text")
}

/// Clicks what `css` finds and waits until the browser has left the current document. Reading
/// the next page straight after a click could otherwise find the old page's element (both pages
/// have a `main h1`) and fail with a stale reference once the new one arrives.
async fn click_and_load(c: &Client, css: &str) {
    let old_page = c.find(Locator::Css("html")).await.expect("the page");
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .expect("click");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match old_page.tag_name().await {
            Err(fantoccini::error::CmdError::Standard(e))
                if e.error == fantoccini::error::ErrorStatus::StaleElementReference =>
            {
                return;
            }
            _ if Instant::now() > deadline => panic!("clicking {css} did not load a page"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn sign_in(c: &Client, base: &str, path: &str, user: &str, password: &str) {
    c.goto(&format!("{base}{path}")).await.expect("goto");
    c.wait()
        .for_element(Locator::Css("#username"))
        .await
        .expect("sign-in form")
        .send_keys(user)
        .await
        .expect("type");
    c.find(Locator::Css("#password"))
        .await
        .expect("password field")
        .send_keys(password)
        .await
        .expect("type");
    click_and_load(c, "form[action='/login'] button[type=submit]").await;
}

/// Parses `¥1,234.50` into fen.
fn fen_of(s: &str) -> i64 {
    let digits: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
    let v: i64 = digits.parse().unwrap_or_else(|_| panic!("not money: {s}"));
    if s.trim_start().starts_with('-') {
        -v
    } else {
        v
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_signs_in_and_sees_the_dashboard() {
    if !browser_available() {
        return;
    }
    let demo = seeded_demo();
    let base = demo.server.url();
    let driver = start_driver();
    let c = browser(&driver, false).await;
    c.goto(&format!("{base}/manage")).await.expect("goto");
    // Sent to the sign-in form first (zh-CN by default).
    c.wait()
        .for_element(Locator::Css("#username"))
        .await
        .expect("sign-in form");
    assert!(c
        .current_url()
        .await
        .expect("url")
        .as_str()
        .contains("/login?next=/manage"));
    screenshot(&c, "login").await;
    check_accessibility(&c, "sign-in").await;
    sign_in(&c, &base, "/login?next=/manage", "wrong", "nope").await;
    assert!(text_of(&c, ".alert").await.contains("用户名或密码不正确"));
    sign_in(
        &c,
        &base,
        "/login?next=/manage",
        "manager",
        MANAGER_PASSWORD,
    )
    .await;
    assert_eq!(text_of(&c, "main h1").await, "经营概览");
    let charts = c
        .find_all(Locator::Css("figure.chart-card svg[role=img] > title"))
        .await
        .expect("charts");
    assert_eq!(charts.len(), 6, "six charts, each with a title");
    // The month is not empty: meals were served and bars drawn.
    let bars = c
        .find_all(Locator::Css("#chart-meals svg rect[fill]"))
        .await
        .expect("bars");
    assert!(bars.len() > 30, "only {} bars", bars.len());
    let meals = text_of(&c, ".kpi:first-child .muted").await;
    assert!(meals.contains("近 30 天"), "{meals}");
    screenshot(&c, "dashboard").await;
    check_accessibility(&c, "dashboard").await;
    // The demo's month has plates of every department: bars drawn, and their view below.
    let departments = c
        .find_all(Locator::Css("#chart-departments svg rect[fill]"))
        .await
        .expect("department bars");
    assert!(departments.len() > 2, "only {} bars", departments.len());
    c.execute(
        "document.getElementById('chart-waste').scrollIntoView()",
        vec![],
    )
    .await
    .expect("scroll");
    screenshot(&c, "dashboard-waste").await;
    c.execute("window.scrollTo(0, 0)", vec![])
        .await
        .expect("scroll");
    // Switch to English: remembered on the next page.
    click_and_load(&c, "a.lang").await;
    assert_eq!(text_of(&c, "main h1").await, "Dashboard");
    c.goto(&format!("{base}/manage")).await.expect("goto");
    assert_eq!(text_of(&c, "main h1").await, "Dashboard");
    screenshot(&c, "dashboard-en").await;
    check_accessibility(&c, "dashboard (en)").await;

    // The journal: filter by kind with the form, then export exactly what it shows.
    click_and_load(&c, "a[href='/manage/journal']").await;
    c.wait()
        .for_element(Locator::Css("#kind"))
        .await
        .expect("filter form")
        .select_by_value("top_up")
        .await
        .expect("pick top-ups");
    click_and_load(&c, "#filter-go").await;
    c.wait()
        .for_element(Locator::Css("#kind option[value=top_up][selected]"))
        .await
        .expect("filtered page");
    let shown: Vec<String> = {
        let mut ids = Vec::new();
        for row in c
            .find_all(Locator::Css("#journal tbody tr td:first-child"))
            .await
            .expect("rows")
        {
            ids.push(row.text().await.expect("text"));
        }
        ids
    };
    assert_eq!(shown.len(), 10, "the demo's ten top-ups: {shown:?}");
    screenshot(&c, "journal").await;
    check_accessibility(&c, "journal").await;
    let csv = c
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             fetch(document.getElementById('export-csv').href).then(r => r.text()).then(done);",
            vec![],
        )
        .await
        .expect("export");
    let csv = csv.as_str().expect("csv text").to_string();
    let exported: Vec<String> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap_or("").to_string())
        .collect();
    assert_eq!(exported, shown, "the export holds exactly the page's lines");

    // The audit page: verify the chain on demand.
    c.find(Locator::Css("a[href='/manage/audit']"))
        .await
        .expect("audit link")
        .click()
        .await
        .expect("click");
    c.wait()
        .for_element(Locator::Css("#verify-now"))
        .await
        .expect("verify button")
        .click()
        .await
        .expect("click");
    c.wait()
        .for_element(Locator::Css("#verdict-ok"))
        .await
        .expect("the demo's chain is intact");
    screenshot(&c, "audit").await;
    check_accessibility(&c, "audit").await;
    c.close().await.expect("close");
}

/// Signs in to the API as the manager; answers the session cookie and CSRF token.
async fn api_login(http: &reqwest::Client, base: &str) -> (String, String) {
    let r = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "manager", "password": MANAGER_PASSWORD}))
        .send()
        .await
        .expect("login");
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("session cookie")
        .to_string();
    let body: Value = r.json().await.expect("login body");
    (
        cookie,
        body["csrf_token"].as_str().expect("csrf").to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_tops_up_shows_a_pay_code_asks_a_refund_and_withdraws_consent_on_a_phone() {
    if !browser_available() {
        return;
    }
    let demo = seeded_demo();
    let base = demo.server.url();
    let driver = start_driver();
    let c = browser(&driver, true).await;
    sign_in(&c, &base, "/login", "E0001", &demo.staff_password).await;
    let before = fen_of(&text_of(&c, "#balance").await);
    let width: Value = c
        .execute("return window.innerWidth", vec![])
        .await
        .expect("width");
    assert_eq!(width, json!(390), "a phone viewport");
    screenshot(&c, "staff-home").await;
    check_accessibility(&c, "staff home").await;

    // Top up ¥100 through the sandbox gateway and come back.
    c.find(Locator::Css("input[name=amount][value='100'] + span"))
        .await
        .expect("¥100 choice")
        .click()
        .await
        .expect("click");
    c.find(Locator::Css("#topup-go"))
        .await
        .expect("pay button")
        .click()
        .await
        .expect("click");
    c.wait()
        .for_element(Locator::Css("#pay"))
        .await
        .expect("sandbox pay page")
        .click()
        .await
        .expect("pay");
    c.wait()
        .for_element(Locator::Css("#return"))
        .await
        .expect("back link")
        .click()
        .await
        .expect("back");
    // The page refreshes itself until the gateway's notification has credited the order.
    let done = c
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("#topup-done"))
        .await
        .expect("top-up credited");
    assert!(done.text().await.expect("text").contains("¥100.00"));
    let after = fen_of(&text_of(&c, "#balance").await);
    assert_eq!(after, before + 10_000, "the new balance");
    screenshot(&c, "staff-topup").await;
    check_accessibility(&c, "staff home after a top-up").await;

    // A pay code as a QR code, with its expiry.
    click_and_load(&c, "#paycode-go").await;
    c.wait()
        .for_element(Locator::Css("#qr svg"))
        .await
        .expect("QR code");
    assert!(!text_of(&c, "#expires").await.is_empty());
    screenshot(&c, "staff-paycode").await;
    check_accessibility(&c, "pay code").await;

    // A refund asked for on the phone, approved by a manager at a desk, seen on the phone.
    c.goto(&format!("{base}/me")).await.expect("goto");
    c.find(Locator::Css("details.refund summary"))
        .await
        .expect("a meal that may be refunded")
        .click()
        .await
        .expect("open");
    c.find(Locator::Css("details.refund input[name=reason]"))
        .await
        .expect("reason field")
        .send_keys("汤是凉的")
        .await
        .expect("type");
    click_and_load(&c, "details.refund button").await;
    assert!(text_of(&c, "p.ok").await.contains("退款申请已提交"));
    assert_eq!(text_of(&c, "li.meal .tag").await, "退款审核中");
    let desk = browser(&driver, false).await;
    sign_in(
        &desk,
        &base,
        "/login?next=/manage/refunds",
        "manager",
        MANAGER_PASSWORD,
    )
    .await;
    assert!(text_of(&desk, "#refunds tbody tr")
        .await
        .contains("汤是凉的"));
    screenshot(&desk, "refunds").await;
    check_accessibility(&desk, "refunds").await;
    desk.find(Locator::Css("#refunds button.primary"))
        .await
        .expect("approve button")
        .click()
        .await
        .expect("approve");
    desk.wait()
        .for_element(Locator::Css("#no-refunds"))
        .await
        .expect("nothing left to decide");
    desk.close().await.expect("close");
    let before_refund = fen_of(&text_of(&c, "#balance").await);
    c.refresh().await.expect("reload");
    assert_eq!(text_of(&c, "li.meal .tag").await, "已退款");
    assert!(
        fen_of(&text_of(&c, "#balance").await) > before_refund,
        "the money is back"
    );

    // Face data: consent given on the page, a template enrolled by a manager, then withdrawn.
    c.goto(&format!("{base}/me")).await.expect("goto");
    c.find(Locator::Css("form[action='/me/consent'] button"))
        .await
        .expect("consent button")
        .click()
        .await
        .expect("click");
    c.wait()
        .for_element(Locator::Css("#consent-withdraw"))
        .await
        .expect("consent given");
    let http = reqwest::Client::new();
    let (cookie, csrf) = api_login(&http, &base).await;
    let r = http
        .post(format!("{base}/api/v1/staff/1/templates"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({"embedding": vec![0.088_388_35f32; 128]}))
        .send()
        .await
        .expect("enrol template");
    assert!(r.status().is_success(), "{:?}", r.text().await);
    let kiosk: Value = http
        .post(format!("{base}/api/v1/kiosk/enrol"))
        .json(&json!({"code": demo.enrolment_code, "name": "Test kiosk"}))
        .send()
        .await
        .expect("enrol kiosk")
        .json()
        .await
        .expect("kiosk body");
    let token = kiosk["device_token"]
        .as_str()
        .expect("device token")
        .to_string();
    let gallery = |token: String| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let g: Value = http
                .get(format!("{base}/api/v1/kiosk/gallery?since=0"))
                .bearer_auth(token)
                .send()
                .await
                .expect("gallery")
                .json()
                .await
                .expect("gallery body");
            g["changes"]
                .as_array()
                .expect("changes")
                .iter()
                .filter(|ch| ch["staff_id"] == 1 && ch["deleted"] == false)
                .count()
        }
    };
    assert_eq!(gallery(token.clone()).await, 1, "the kiosks know the face");
    c.refresh().await.expect("reload");
    c.wait()
        .for_element(Locator::Css("form[action^='/me/templates/']"))
        .await
        .expect("the template is listed");
    c.execute("document.getElementById('face').scrollIntoView()", vec![])
        .await
        .expect("scroll");
    screenshot(&c, "staff-face").await;
    check_accessibility(&c, "face data").await;
    click_and_load(&c, "#consent-withdraw").await;
    let note = text_of(&c, "p.ok").await;
    assert!(note.contains("已撤回同意"), "{note}");
    assert!(c
        .find_all(Locator::Css("form[action^='/me/templates/']"))
        .await
        .expect("templates")
        .is_empty());
    assert_eq!(gallery(token).await, 0, "the kiosks drop the face");
    c.close().await.expect("close");
}

/// Writes an XLSX workbook of these rows (the first is the header) for the file input.
fn workbook(path: &Path, rows: &[[&str; 4]]) {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            sheet.write_string(r as u32, c as u16, *cell).expect("cell");
        }
    }
    book.save(path).expect("xlsx");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_imports_staff_and_hands_out_a_first_sign_in_code() {
    if !browser_available() {
        return;
    }
    let demo = seeded_demo();
    let base = demo.server.url();
    let driver = start_driver();
    let c = browser(&driver, false).await;
    sign_in(
        &c,
        &base,
        "/login?next=/manage/staff",
        "manager",
        MANAGER_PASSWORD,
    )
    .await;
    assert_eq!(text_of(&c, "main h1").await, "人员管理");
    assert!(text_of(&c, "#people tbody").await.contains("E0001"));
    screenshot(&c, "staff").await;
    check_accessibility(&c, "staff list").await;

    // An XLSX with one bad row: the report names it, and nobody is imported.
    let files = tempfile::tempdir().expect("temp dir");
    let header = ["工号", "姓名", "部门", "类别"];
    let bad = files.path().join("new-staff.xlsx");
    workbook(
        &bad,
        &[
            header,
            ["N2001", "周晓明", "办公室", "regular"],
            ["N 2002", "吴丽", "信息中心", "regular"],
            ["N2003", "郑强", "后勤处", "contractor"],
        ],
    );
    click_and_load(&c, "#import-link").await;
    screenshot(&c, "import").await;
    c.find(Locator::Css("#file"))
        .await
        .expect("file input")
        .send_keys(&bad.display().to_string())
        .await
        .expect("choose the file");
    click_and_load(&c, "#import-go").await;
    let problems = c
        .find_all(Locator::Css("#problems tbody tr"))
        .await
        .expect("problem rows");
    assert_eq!(problems.len(), 1, "one bad row");
    let row = problems[0].text().await.expect("text");
    assert!(row.starts_with("3 工号 N 2002"), "{row}");
    screenshot(&c, "import-report").await;
    check_accessibility(&c, "import report").await;

    // Fixed: all three imported.
    let good = files.path().join("new-staff-fixed.xlsx");
    workbook(
        &good,
        &[
            header,
            ["N2001", "周晓明", "办公室", "regular"],
            ["N2002", "吴丽", "信息中心", "regular"],
            ["N2003", "郑强", "后勤处", "contractor"],
        ],
    );
    c.find(Locator::Css("#file"))
        .await
        .expect("file input")
        .send_keys(&good.display().to_string())
        .await
        .expect("choose the file");
    click_and_load(&c, "#import-go").await;
    assert_eq!(
        c.find_all(Locator::Css("#imported tbody tr"))
            .await
            .expect("imported rows")
            .len(),
        3
    );

    // Wu Li's page: a one-time code, shown once, for her first sign-in.
    click_and_load(&c, "#imported tbody tr:nth-child(2) a").await;
    click_and_load(&c, "#issue-code").await;
    let code = text_of(&c, "#code").await;
    assert_eq!(code.len(), 12, "{code}");
    let employee_no = c
        .find(Locator::Css("h1 .muted"))
        .await
        .expect("employee number")
        .text()
        .await
        .expect("text");
    screenshot(&c, "person").await;
    check_accessibility(&c, "person").await;
    // The money desk, over the demo's month of meals and top-ups.
    click_and_load(&c, "a[href='/manage/money']").await;
    assert_eq!(text_of(&c, "main h1").await, "资金台");
    assert!(!c
        .find_all(Locator::Css("#charges tbody tr"))
        .await
        .expect("charges")
        .is_empty());
    screenshot(&c, "money").await;
    check_accessibility(&c, "money desk").await;
    // The settings: the demo canteen with its meal periods, prices, subsidies and kiosks.
    click_and_load(&c, "a[href='/manage/settings']").await;
    assert_eq!(text_of(&c, "main h1").await, "设置");
    click_and_load(&c, "#kiosk-code-go").await;
    assert_eq!(text_of(&c, "#kiosk-code").await.len(), 12);
    screenshot(&c, "settings").await;
    check_accessibility(&c, "settings").await;
    c.close().await.expect("close");

    // On her phone: the code opens only the password form; then her own page.
    let phone = browser(&driver, true).await;
    sign_in(&phone, &base, "/login", &employee_no, &code).await;
    assert_eq!(text_of(&phone, "main h1").await, "设置密码");
    screenshot(&phone, "staff-password").await;
    check_accessibility(&phone, "choose a password").await;
    for (css, value) in [
        ("#new-password", "correct horse 42"),
        ("#repeat-password", "correct horse 42"),
    ] {
        phone
            .find(Locator::Css(css))
            .await
            .expect("password field")
            .send_keys(value)
            .await
            .expect("type");
    }
    click_and_load(&phone, "#password-go").await;
    assert_eq!(fen_of(&text_of(&phone, "#balance").await), 0);
    phone.close().await.expect("close");
}

//! The API's contract, checked with third-party tools against a real `backend serve`:
//! - the served OpenAPI document passes `openapi-spec-validator` and every `$ref` resolves;
//! - `schemathesis` (all checks: status codes, content types, response schemas, negative data
//!   rejected, positive data accepted, auth ignored or not, ...) passes as anonymous, kiosk,
//!   staff and manager, with a bounded number of generated cases and a fixed seed;
//! - a TypeScript client generated from the document (`openapi-typescript`) type-checks with
//!   `tsc --strict` and makes one real charge;
//! - `backend check` is clean afterwards.
//!
//! The tools come from `scripts/test-tools.sh` (run by the README's test command), which prints
//! the folder to put in `CLEANPLATE_TEST_TOOLS`. Without it the test fails and says so, unless
//! `CLEANPLATE_SKIP_CONTRACT=1` skips it explicitly.

mod common;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Generated cases per operation and role: enough to walk every operation's coverage,
/// fuzzing and stateful phases, small enough for CI (~1 minute per role on 2 cores).
const MAX_EXAMPLES: &str = "12";
const SEED: &str = "20261203";

fn tools_or_skip() -> Option<PathBuf> {
    match std::env::var("CLEANPLATE_TEST_TOOLS") {
        Ok(t) if !t.is_empty() => Some(PathBuf::from(t)),
        _ if std::env::var("CLEANPLATE_SKIP_CONTRACT").as_deref() == Ok("1") => {
            eprintln!("skipped: the API contract test, because CLEANPLATE_SKIP_CONTRACT=1");
            None
        }
        _ => panic!(
            "CLEANPLATE_TEST_TOOLS is not set: run `scripts/test-tools.sh` and export the folder it \
             prints (or set CLEANPLATE_SKIP_CONTRACT=1 to skip the contract test explicitly)"
        ),
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("repository root")
        .to_path_buf()
}

struct Api {
    base: String,
    http: reqwest::Client,
}

/// A person's credentials: the session cookie and the CSRF token.
struct Session {
    token: String,
    csrf: String,
}

impl Api {
    async fn login(&self, username: &str, password: &str) -> Session {
        let r = self
            .http
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .expect("login");
        assert!(r.status().is_success(), "login {username}: {}", r.status());
        let cookie = r
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .expect("cookie")
            .to_string();
        let token = cookie
            .split(';')
            .next()
            .and_then(|kv| kv.split_once('='))
            .map(|(_, v)| v.to_string())
            .expect("session token");
        let body: Value = r.json().await.expect("login body");
        Session {
            token,
            csrf: body["csrf_token"].as_str().expect("csrf").to_string(),
        }
    }

    async fn post(&self, who: &Session, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", format!("cp_session={}", who.token))
            .header("x-csrf-token", &who.csrf)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status();
        let v: Value = r.json().await.expect("json");
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    async fn new_kiosk(&self, manager: &Session, canteen: i64, name: &str) -> String {
        let code = self
            .post(
                manager,
                "/api/v1/kiosks/enrolment-codes",
                json!({"canteen_id": canteen}),
            )
            .await;
        let r = self
            .http
            .post(format!("{}/api/v1/kiosk/enrol", self.base))
            .json(&json!({"code": code["code"], "name": name}))
            .send()
            .await
            .expect("enrol");
        let v: Value = r.json().await.expect("enrol body");
        v["device_token"].as_str().expect("token").to_string()
    }
}

fn backend_cli(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_backend"))
        .args(args)
        .env("CLEANPLATE_DEV_MODE", "true")
        .env("CLEANPLATE_DATA_DIR", data)
        .env("CLEANPLATE_NEW_PASSWORD", "manager-password-1")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run backend")
}

/// Every `$ref` in the document points at something in it.
fn unresolved_refs(doc: &Value) -> Vec<String> {
    fn walk(v: &Value, doc: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    let found = r.strip_prefix('#').and_then(|p| doc.pointer(p)).is_some();
                    if !found {
                        out.push(r.clone());
                    }
                }
                m.values().for_each(|x| walk(x, doc, out));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, doc, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, doc, &mut out);
    out
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_keeps_to_its_document() {
    let Some(tools) = tools_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path();
    let url = format!("sqlite://{}", data.join("contract.db").display());
    let seeded = backend_cli(data, &["--database-url", &url, "seed-demo"]);
    assert!(seeded.status.success(), "{seeded:?}");
    let made = backend_cli(
        data,
        &[
            "--database-url",
            &url,
            "create-manager",
            "--username",
            "boss",
        ],
    );
    assert!(made.status.success(), "{made:?}");
    let server = common::spawn_server(&url, data);
    let api = Api {
        base: format!("http://{}", server.addr),
        http: reqwest::Client::new(),
    };

    // Callers: a manager, a staff member with a login, kiosks.
    let manager = api.login("boss", "manager-password-1").await;
    let staff_list: Value = api
        .http
        .get(format!("{}/api/v1/staff", api.base))
        .header("cookie", format!("cp_session={}", manager.token))
        .send()
        .await
        .expect("staff")
        .json()
        .await
        .expect("staff json");
    assert!(staff_list[0]["id"].is_i64(), "the demo people");
    // A person of our own (each demo person has their login already; one login per person).
    let person = api
        .post(
            &manager,
            "/api/v1/staff",
            json!({"employee_no": "C0001", "name": "Contract Diner", "department": "", "category": "regular"}),
        )
        .await;
    let staff_id = person["id"].as_i64().expect("the new person");
    api.post(
        &manager,
        "/api/v1/users",
        json!({"username": "diner", "password": "diner-password-1", "role": "staff", "staff_id": staff_id}),
    )
    .await;
    let staff = api.login("diner", "diner-password-1").await;
    let canteens: Value = api
        .http
        .get(format!("{}/api/v1/canteens", api.base))
        .header("cookie", format!("cp_session={}", manager.token))
        .send()
        .await
        .expect("canteens")
        .json()
        .await
        .expect("canteens json");
    let canteen = canteens[0]["id"].as_i64().expect("canteen");
    let fuzz_kiosk = api.new_kiosk(&manager, canteen, "fuzzed").await;
    let client_kiosk = api.new_kiosk(&manager, canteen, "generated client").await;

    // The document.
    let doc: Value = api
        .http
        .get(format!("{}/api/openapi.json", api.base))
        .send()
        .await
        .expect("document")
        .json()
        .await
        .expect("document json");
    assert_eq!(
        unresolved_refs(&doc),
        Vec::<String>::new(),
        "unresolved $refs"
    );
    let doc_path = data.join("openapi.json");
    std::fs::write(&doc_path, serde_json::to_vec_pretty(&doc).expect("json")).expect("write");
    let venv = tools.join("venv/bin");
    run(
        Command::new(venv.join("openapi-spec-validator")).arg(&doc_path),
        "openapi-spec-validator",
    );

    // The generated client: type-checked against the document, then one real charge.
    let client = repo_root().join("tests/contract-client");
    let gen = data.join("client");
    std::fs::create_dir_all(gen.join("src")).expect("client dir");
    std::fs::copy(client.join("src/charge.ts"), gen.join("src/charge.ts")).expect("copy");
    std::fs::copy(client.join("tsconfig.json"), gen.join("tsconfig.json")).expect("copy");
    std::os::unix::fs::symlink(client.join("node_modules"), gen.join("node_modules"))
        .expect("link node_modules");
    let bin = client.join("node_modules/.bin");
    run(
        Command::new(bin.join("openapi-typescript"))
            .arg(&doc_path)
            .arg("-o")
            .arg(gen.join("src/api.d.ts"))
            .current_dir(&gen),
        "openapi-typescript",
    );
    run(
        Command::new(bin.join("tsc"))
            .args(["-p", "."])
            .current_dir(&gen),
        "tsc --strict on the generated client",
    );
    // The canteen serves all day and the diner tops up through the sandbox, so the charge is
    // accepted whenever the test runs.
    for (meal, start, end) in [
        ("breakfast", "00:00", "08:00"),
        ("lunch", "08:00", "16:00"),
        ("dinner", "16:00", "24:00"),
    ] {
        let r = api
            .http
            .put(format!(
                "{}/api/v1/canteens/{canteen}/meal-windows/{meal}",
                api.base
            ))
            .header("cookie", format!("cp_session={}", manager.token))
            .header("x-csrf-token", &manager.csrf)
            .json(&json!({"start": start, "end": end}))
            .send()
            .await
            .expect("meal window");
        assert!(r.status().is_success(), "{meal}: {}", r.status());
    }
    let order = api
        .post(&staff, "/api/v1/me/topups", json!({"amount": "100.00"}))
        .await;
    let pay = api
        .http
        .post(order["pay_url"].as_str().expect("pay url"))
        .send()
        .await
        .expect("sandbox pay");
    assert!(pay.status().is_success(), "sandbox pay: {}", pay.status());
    let mut credited = false;
    for _ in 0..100 {
        let b: Value = api
            .http
            .get(format!("{}/api/v1/me/balance", api.base))
            .header("cookie", format!("cp_session={}", staff.token))
            .send()
            .await
            .expect("balance")
            .json()
            .await
            .expect("balance json");
        if b["cash"] != "0.00" {
            credited = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(credited, "the sandbox top-up was credited");
    let printed = run(
        Command::new("node")
            .arg("dist/charge.js")
            .arg(&api.base)
            .arg(&client_kiosk)
            .arg(staff_id.to_string())
            .arg("generated-client-charge")
            .current_dir(&gen),
        "the generated client's charge",
    );
    let answer: Value = serde_json::from_str(printed.trim()).expect("client output");
    assert_eq!(answer["status"], "accepted", "{answer}");

    // schemathesis as each kind of caller. Positive data may still break a business rule the
    // schema cannot state (an unknown enrolment code, a window that ends before it starts): 422
    // and 410 (a used pay code) are accepted for schema-valid requests, nothing else is relaxed.
    // Links between operations are not inferred from field names: schemathesis 4.32 then
    // feeds a nullable id (a waste record's `charge_id: null`) into a path as the text "None"
    // and calls the integer path's 400 a valid request refused.
    let common = "[checks.positive_data_acceptance]\n\
                  expected-statuses = [\"2xx\", \"401\", \"403\", \"404\", \"409\", \"410\", \"422\", \"429\", \"5xx\"]\n\
                  [phases.stateful.inference]\n\
                  algorithms = [\"location-headers\"]\n";
    let roles = [
        ("anonymous", String::new()),
        (
            "kiosk",
            format!("[auth.openapi.kioskToken]\nbearer = \"{fuzz_kiosk}\"\n"),
        ),
        (
            "staff",
            format!(
                "[auth.openapi.session]\napi_key = \"{}\"\n[auth.openapi.csrf]\napi_key = \"{}\"\n",
                staff.token, staff.csrf
            ),
        ),
        // Last: a manager's run revokes kiosks and deactivates people.
        (
            "manager",
            format!(
                "[auth.openapi.session]\napi_key = \"{}\"\n[auth.openapi.csrf]\napi_key = \"{}\"\n",
                manager.token, manager.csrf
            ),
        ),
    ];
    for (role, auth) in roles {
        let config = data.join(format!("schemathesis-{role}.toml"));
        std::fs::write(&config, format!("{common}{auth}")).expect("config");
        let out = Command::new(venv.join("schemathesis"))
            .arg("--config-file")
            .arg(&config)
            .args(["run", &format!("{}/api/openapi.json", api.base)])
            .args([
                "--checks",
                "all",
                "--max-examples",
                MAX_EXAMPLES,
                "--seed",
                SEED,
            ])
            // A slow answer on a loaded machine (a photo through the face models, argon2
            // sign-ins beside the whole workspace's tests) is not a broken contract.
            .args(["--workers", "2", "--no-color", "--request-timeout", "60"])
            // Logging out would end the session the rest of the run uses.
            .args(["--exclude-path", "/api/v1/auth/logout"])
            .current_dir(data)
            .output()
            .expect("run schemathesis");
        let text = String::from_utf8_lossy(&out.stdout);
        let summary: String = text
            .lines()
            .skip_while(|l| !l.contains("SUMMARY"))
            .collect::<Vec<_>>()
            .join("\n");
        eprintln!("schemathesis as {role}:\n{summary}");
        assert!(
            out.status.success(),
            "schemathesis as {role} failed:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The ledger is sound after all of it.
    let check = backend_cli(data, &["--database-url", &url, "check", "--seal"]);
    assert!(
        check.status.success(),
        "backend check after the contract run:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    drop(server);
}

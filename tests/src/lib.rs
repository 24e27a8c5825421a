//! Helpers for the end-to-end tests: the real `backend` and `kiosk` binaries as child
//! processes, talking HTTP on loopback, each test in its own temporary directory with its
//! own database and port. The binaries are built on first use (`cargo build -p backend
//! -p kiosk`), since a workspace test run builds other packages' binaries only in test
//! form.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use kiosk::api::{ApiError, BackendApi, HttpBackend};
pub use kiosk::desk::Desk;

pub const MANAGER: &str = "manager";
pub const PASSWORD: &str = "e2e-manager-password";

/// The repository root. cargo and nextest tell a running test its package directory; that is
/// preferred over the one compiled in, because checkouts sharing one `target/` share these test
/// binaries too, and one compiled in another checkout would build and run that checkout's code.
pub fn root() -> PathBuf {
    let package = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .filter(|p| p.join("Cargo.toml").is_file())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    package.parent().expect("tests/ has a parent").to_path_buf()
}

/// The public-domain demo portraits (from `scripts/setup-models.sh`).
pub fn demo_photo(name: &str) -> PathBuf {
    let p = root().join("models/dist/demo").join(name);
    assert!(
        p.is_file(),
        "{} is missing: run scripts/setup-models.sh first",
        p.display()
    );
    p
}

/// `../shared/faces` next to the repository, if present.
pub fn shared_faces() -> Option<PathBuf> {
    let p = root().parent()?.join("shared/faces");
    p.is_dir().then_some(p)
}

/// A demo staff member a benchmark enrols and replays: the employee number (E0001, E0002, ...
/// in the demo's order), the photos enrolled and the photo the camera sees.
pub struct Diner {
    pub employee_no: String,
    pub enrol: Vec<PathBuf>,
    pub probe: PathBuf,
}

/// The benchmarks' diners: the two demo faces, then the given LFW people from `../shared`
/// when it is there (photo `1.jpg` enrolled, `probe` seen; people lacking either are skipped).
pub fn bench_diners(lfw_people: &[&str], probe: &str) -> Vec<Diner> {
    let mut diners = vec![
        Diner {
            employee_no: "E0001".into(),
            enrol: vec![demo_photo("obama.jpg"), demo_photo("obama2.jpg")],
            probe: demo_photo("obama3.jpg"),
        },
        Diner {
            employee_no: "E0002".into(),
            enrol: vec![demo_photo("biden.jpg")],
            probe: demo_photo("biden.jpg"),
        },
    ];
    if let Some(faces) = shared_faces() {
        for (i, n) in lfw_people.iter().enumerate() {
            let dir = faces.join("lfw-A").join(n);
            let (enrol, seen) = (dir.join("1.jpg"), dir.join(probe));
            if enrol.is_file() && seen.is_file() {
                diners.push(Diner {
                    employee_no: format!("E{:04}", i + 3),
                    enrol: vec![enrol],
                    probe: seen,
                });
            }
        }
    }
    diners
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// The path of a workspace binary, building both binaries once per test process.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build", "--quiet", "-p", "backend", "--bin", "backend", "-p", "kiosk", "--bin",
                "kiosk",
            ])
            .current_dir(root())
            .status()
            .map_err(|e| format!("running cargo: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("cargo build -p backend -p kiosk failed: {status}"))
        }
    });
    let p = target_dir().join("debug").join(name);
    match built {
        Ok(()) => {}
        // Another package may be mid-edit; an existing binary still lets the tests run.
        Err(e) if p.is_file() => eprintln!("warning: {e}; using the existing {}", p.display()),
        Err(e) => panic!("{e}"),
    }
    assert!(p.is_file(), "{} was not built", p.display());
    p
}

/// Lines a child printed on stdout, collected by a thread.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn collect(child: &mut Child) -> Lines {
        let lines = Lines::default();
        if let Some(out) = child.stdout.take() {
            let l = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    l.0.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                }
            });
        }
        lines
    }

    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until a line satisfies `f`; returns it.
    pub fn wait_for(&self, timeout: Duration, f: impl Fn(&str) -> bool) -> Option<String> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(l) = self.all().into_iter().find(|l| f(l)) {
                return Some(l);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The JSON events (kiosk `--json` output).
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.all()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// A backend on embedded SQLite in `dir`, seeded with the demo canteen and a manager.
pub struct Backend {
    pub dir: PathBuf,
    pub addr: String,
    /// The one-time kiosk enrolment code printed by `seed-demo`.
    pub code: String,
    /// The demo staff's shared web sign-in password printed by `seed-demo` (each signs in
    /// with their employee number).
    pub staff_password: String,
    child: Option<backend_harness::Served>,
    /// Extra environment for every `backend` command (a database URL, sealer settings).
    env: Vec<(String, String)>,
}

impl Backend {
    /// The `backend` command with this instance's directory and extra environment.
    fn cmd(&self) -> Command {
        let mut c = Self::command(&self.dir);
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    fn command(dir: &Path) -> Command {
        let mut c = Command::new(bin("backend"));
        c.env("CLEANPLATE_DATA_DIR", dir.join("backend"))
            .env("CLEANPLATE_DEV_MODE", "true")
            // The tests' tools log in often (each `kiosk desk` call is a login).
            .env("CLEANPLATE_LOGIN_ATTEMPTS_PER_MINUTE", "10000")
            .env("RUST_LOG", "warn")
            .env_remove("CLEANPLATE_DATABASE_URL")
            .env_remove("CLEANPLATE_CONFIG");
        c
    }

    pub fn start(dir: &Path) -> Backend {
        Self::start_with_env(dir, &[])
    }

    /// As [`Backend::start`], every `backend` command run with `env` added (e.g.
    /// `CLEANPLATE_DATABASE_URL` for PostgreSQL).
    pub fn start_with_env(dir: &Path, env: &[(&str, &str)]) -> Backend {
        std::fs::create_dir_all(dir.join("backend")).expect("making the backend's directory");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let out = Self::command(dir)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .arg("seed-demo")
            .output()
            .expect("running backend seed-demo");
        assert!(
            out.status.success(),
            "seed-demo failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let code = text
            .lines()
            .find_map(|l| {
                l.split_once("enrolment code")
                    .and_then(|(_, rest)| rest.rsplit(':').next())
            })
            .map(|c| c.trim().to_string())
            .expect("seed-demo printed no enrolment code");
        let staff_password = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("staff sign-in")
                    .and_then(|rest| rest.rsplit(" / ").next())
            })
            .map(|p| p.trim().to_string())
            .expect("seed-demo printed no staff sign-in");
        let out = Self::command(dir)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args(["create-manager", "--username", MANAGER])
            .env("CLEANPLATE_NEW_PASSWORD", PASSWORD)
            .output()
            .expect("running backend create-manager");
        assert!(
            out.status.success(),
            "create-manager failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut b = Backend {
            dir: dir.to_path_buf(),
            addr: "127.0.0.1:0".into(),
            code,
            staff_password,
            child: None,
            env,
        };
        b.serve();
        b
    }

    /// A second `backend serve` process on the same database and data directory (a scaled
    /// out deployment: PostgreSQL behind both), on a port of its own.
    pub fn another_instance(&self) -> Backend {
        let mut b = Backend {
            dir: self.dir.clone(),
            addr: "127.0.0.1:0".into(),
            code: self.code.clone(),
            staff_password: self.staff_password.clone(),
            child: None,
            env: self.env.clone(),
        };
        b.serve();
        b
    }

    /// The process id of the running `backend serve`.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|s| s.child.id())
    }

    /// Starts serving (again) on the same address.
    pub fn serve(&mut self) {
        assert!(self.child.is_none(), "the backend is already running");
        let mut last = String::new();
        // The port of a stopped backend may linger in TIME_WAIT for a moment.
        for _ in 0..50 {
            let mut cmd = self.cmd();
            cmd.args(["serve", "--listen", &self.addr])
                .stderr(Stdio::null());
            match backend_harness::start(cmd, Duration::from_secs(10)) {
                Ok(served) => {
                    self.addr = served.addr.clone();
                    self.child = Some(served);
                    return;
                }
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("the backend did not start on {}: {last}", self.addr);
    }

    /// Stops the backend abruptly (SIGKILL).
    pub fn stop(&mut self) {
        if let Some(mut served) = self.child.take() {
            served.kill();
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn desk(&self) -> Desk {
        Desk::login(&self.url(), MANAGER, PASSWORD).expect("manager login")
    }

    /// `backend check --seal`: the ledger's invariants and the audit chain.
    pub fn check(&self) -> (bool, String) {
        let out = self
            .cmd()
            .args(["check", "--seal"])
            .output()
            .expect("running backend check");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// Every charge in the ledger.
    pub fn charges(&self) -> Vec<serde_json::Value> {
        let v = self
            .desk()
            .get_json("/api/v1/charges?limit=1000")
            .expect("listing charges");
        v.as_array().cloned().unwrap_or_default()
    }

    pub fn waste(&self) -> Vec<serde_json::Value> {
        let v = self
            .desk()
            .get_json("/api/v1/waste?limit=1000")
            .expect("listing waste");
        v.as_array().cloned().unwrap_or_default()
    }

    /// Staff id of an employee number of the demo canteen.
    pub fn staff_id(&self, employee_no: &str) -> i64 {
        self.desk()
            .staff_by_employee_no(employee_no)
            .expect("staff lookup")
            .id
    }

    /// Another kiosk of the demo canteen, registered through the API (a second pay kiosk
    /// or return station the test drives directly).
    pub fn other_kiosk(&self, name: &str) -> HttpBackend {
        let timeout = Duration::from_secs(10);
        HttpBackend::new(&self.url(), Some(self.kiosk_token(name)), timeout, timeout)
    }

    /// Registers another kiosk of the demo canteen; returns its device token.
    pub fn kiosk_token(&self, name: &str) -> String {
        let code = self
            .desk()
            .enrolment_code(1)
            .expect("making an enrolment code");
        let timeout = Duration::from_secs(10);
        let anon = HttpBackend::new(&self.url(), None, timeout, timeout);
        let enrolled = anon
            .enrol(&wire::EnrolRequest {
                code,
                name: name.into(),
            })
            .expect("registering another kiosk");
        enrolled.device_token
    }

    /// `PATCH /api/v1/staff/{id}` as the manager (the desk client has no PATCH); panics
    /// unless the backend answers 200.
    pub fn patch_staff(&self, staff_id: i64, body: &serde_json::Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut login = agent
            .post(&format!("{}/api/v1/auth/login", self.url()))
            .send_json(serde_json::json!({"username": MANAGER, "password": PASSWORD}))
            .expect("manager login");
        let cookie = login
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.split(';').next().filter(|c| c.starts_with("cp_session=")))
            .expect("a session cookie")
            .to_string();
        let who: serde_json::Value = login.body_mut().read_json().expect("login answer");
        let csrf = who["csrf_token"]
            .as_str()
            .expect("a CSRF token")
            .to_string();
        let mut resp = agent
            .patch(&format!("{}/api/v1/staff/{staff_id}", self.url()))
            .header("Cookie", &cookie)
            .header("X-CSRF-Token", &csrf)
            .send_json(body)
            .expect("PATCH staff");
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(status, 200, "PATCH /api/v1/staff/{staff_id}: {text}");
    }

    /// A staff member's own session (the mobile page's). The demo's staff sign in with their
    /// employee number and the demo password; anyone else is given a login first, as a
    /// manager does it (`POST /api/v1/users`; a person has at most one login).
    pub fn staff_session(&self, employee_no: &str) -> Desk {
        let staff_id = self.staff_id(employee_no);
        let username = format!("e2e-{}", employee_no.to_lowercase());
        let password = format!("{PASSWORD}-{employee_no}");
        match self
            .desk()
            .create_staff_login(staff_id, &username, &password)
        {
            Ok(_) => Desk::login(&self.url(), &username, &password).expect("staff login"),
            Err(ApiError::Status { code, .. }) if code == "login_exists" => {
                Desk::login(&self.url(), employee_no, &self.staff_password)
                    .expect("demo staff login")
            }
            Err(e) => panic!("making a staff login: {e}"),
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `kiosk` with the test's data directory, manager password and config.
pub struct KioskCmd {
    pub dir: PathBuf,
    pub backend_url: String,
}

impl KioskCmd {
    /// A kiosk whose config puts every minute of the day in a meal period (matching
    /// [`Desk::all_day_meals`]), so tests pass at any hour.
    pub fn new(dir: &Path, backend_url: &str, mode: &str, extra_toml: &str) -> KioskCmd {
        std::fs::create_dir_all(dir).expect("making the kiosk's directory");
        let cfg = format!(
            "name = \"e2e\"\nmode = \"{mode}\"\n{extra_toml}\n\
             [[meal_windows]]\nmeal = \"breakfast\"\nstart = \"00:00\"\nend = \"08:00\"\n\
             [[meal_windows]]\nmeal = \"lunch\"\nstart = \"08:00\"\nend = \"16:00\"\n\
             [[meal_windows]]\nmeal = \"dinner\"\nstart = \"16:00\"\nend = \"24:00\"\n"
        );
        std::fs::write(dir.join("kiosk.toml"), cfg).expect("writing kiosk.toml");
        KioskCmd {
            dir: dir.to_path_buf(),
            backend_url: backend_url.to_string(),
        }
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(bin("kiosk"));
        c.arg("--config")
            .arg(self.dir.join("kiosk.toml"))
            .arg("--backend-url")
            .arg(&self.backend_url)
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .env("CLEANPLATE_DESK_PASSWORD", PASSWORD)
            .env("RUST_LOG", "warn")
            .current_dir(root());
        c
    }

    /// Runs a kiosk subcommand to completion; panics with its output on failure.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.command().args(args).output().expect("running kiosk");
        assert!(
            out.status.success(),
            "kiosk {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn register(&self, code: &str) {
        self.ok(&["register", "--code", code]);
    }

    pub fn enrol(&self, employee_no: &str, photos: &[&Path]) {
        let mut args = vec![
            "desk",
            "--username",
            MANAGER,
            "enrol-faces",
            "--employee-no",
            employee_no,
        ];
        let p: Vec<String> = photos.iter().map(|p| p.display().to_string()).collect();
        args.extend(p.iter().map(String::as_str));
        self.ok(&args);
    }

    /// Writes a replay folder: for each (photo, still) a diner's frames and a gap.
    pub fn make_replay(
        &self,
        name: &str,
        diners: &[(&Path, bool)],
        frames: usize,
        gap: usize,
        width: u32,
    ) -> PathBuf {
        let out = self.dir.join(name);
        let tmp = self.dir.join(format!("{name}.parts"));
        let mut n = 0;
        std::fs::create_dir_all(&out).expect("making the replay folder");
        for (i, (photo, still)) in diners.iter().enumerate() {
            let part = tmp.join(i.to_string());
            let mut args = vec![
                "make-replay".to_string(),
                "--out".into(),
                part.display().to_string(),
                "--frames".into(),
                frames.to_string(),
                "--gap".into(),
                gap.to_string(),
                "--width".into(),
                width.to_string(),
            ];
            if *still {
                args.push("--still".into());
            }
            args.push(photo.display().to_string());
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            self.ok(&a);
            let mut files: Vec<PathBuf> = std::fs::read_dir(&part)
                .expect("reading a replay part")
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            files.sort();
            for f in files {
                n += 1;
                let ext = f.extension().and_then(|e| e.to_str()).unwrap_or("jpg");
                std::fs::rename(&f, out.join(format!("{n:05}.{ext}"))).expect("moving a frame");
            }
        }
        let _ = std::fs::remove_dir_all(&tmp);
        out
    }

    /// Starts `kiosk run --json --replay REPLAY --fps FPS --exit-after-replay`: one pass over a
    /// replay, then the kiosk drains its outbox and exits.
    pub fn spawn_replay(&self, replay: &Path, fps: u32, env: &[(&str, &str)]) -> RunningKiosk {
        let fps = fps.to_string();
        let replay = replay.to_str().expect("replay paths are UTF-8");
        self.spawn_run(
            &["--replay", replay, "--fps", &fps, "--exit-after-replay"],
            env,
        )
    }

    /// Starts `kiosk run --json ...` in the background.
    pub fn spawn_run(&self, args: &[&str], env: &[(&str, &str)]) -> RunningKiosk {
        let mut c = self.command();
        c.arg("run")
            .arg("--json")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("starting kiosk run");
        let stderr = child.stderr.take();
        let log = Lines::default();
        if let Some(err) = stderr {
            let l = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    l.0.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                }
            });
        }
        let events = Lines::collect(&mut child);
        RunningKiosk { child, events, log }
    }
}

pub struct RunningKiosk {
    pub child: Child,
    pub events: Lines,
    pub log: Lines,
}

impl RunningKiosk {
    /// Waits for the kiosk to exit on its own.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let end = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                // Let the output threads catch up.
                std::thread::sleep(Duration::from_millis(200));
                return s;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                panic!(
                    "the kiosk did not finish in {timeout:?}; stderr:\n{}",
                    self.log.all().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Events of one kind (`paid`, `declined`, ...; face events by their inner kind).
    pub fn events_of(&self, kind: &str) -> Vec<serde_json::Value> {
        self.events
            .events()
            .into_iter()
            .filter(|e| e["event"] == kind)
            .collect()
    }

    pub fn describe(&self) -> String {
        format!(
            "events:\n{}\nstderr:\n{}",
            self.events.all().join("\n"),
            self.log.all().join("\n")
        )
    }
}

impl Drop for RunningKiosk {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What [`FlakyProxy`] does with connections right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forwards bytes both ways.
    Pass,
    /// Forwards, holding each chunk of bytes this long first (a slow, congested link).
    Delay(Duration),
    /// Closes new connections at once and cuts the open ones (a pulled cable, a dead
    /// Wi-Fi access point).
    Cut,
}

/// A small TCP proxy on loopback between kiosks and a backend, for tests of network
/// trouble: it forwards to `target` and, on command, delays traffic or cuts every
/// connection. Bounded: it serves until dropped, one thread pair per connection.
pub struct FlakyProxy {
    pub addr: String,
    mode: Arc<Mutex<(ProxyMode, u64)>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl FlakyProxy {
    pub fn start(target: &str) -> FlakyProxy {
        use std::net::{TcpListener, TcpStream};
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let addr = listener.local_addr().expect("proxy address").to_string();
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        // The mode and a generation counter: a cut bumps the generation, and every
        // connection opened in an earlier generation closes itself.
        let mode = Arc::new(Mutex::new((ProxyMode::Pass, 0u64)));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, st, target) = (mode.clone(), stop.clone(), target.to_string());
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                let (now, generation) = *m.lock().unwrap_or_else(|p| p.into_inner());
                if now == ProxyMode::Cut {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue; // the backend is down: the client sees the connection close
                };
                let _ = client.set_nonblocking(false);
                for (from, to) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ] {
                    let (Ok(from), Ok(to)) = (from, to) else {
                        continue;
                    };
                    let (m, st) = (m.clone(), st.clone());
                    std::thread::spawn(move || pipe(from, to, m, st, generation));
                }
            }
        });
        FlakyProxy { addr, mode, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, mode: ProxyMode) {
        let mut m = self.mode.lock().unwrap_or_else(|p| p.into_inner());
        if mode == ProxyMode::Cut {
            m.1 += 1;
        }
        m.0 = mode;
    }
}

impl Drop for FlakyProxy {
    fn drop(&mut self) {
        self.set(ProxyMode::Cut);
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Copies `from` to `to` until either side closes, the proxy cuts this connection's
/// generation, or the proxy stops; delays each chunk while the mode says so.
fn pipe(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    mode: Arc<Mutex<(ProxyMode, u64)>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    generation: u64,
) {
    use std::io::{Read, Write};
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = [0u8; 16 * 1024];
    loop {
        let (now, current) = *mode.lock().unwrap_or_else(|p| p.into_inner());
        if current != generation || stop.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if let ProxyMode::Delay(d) = now {
                    std::thread::sleep(d);
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(std::net::Shutdown::Both);
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// A process's resident memory (VmRSS) in KiB, from `/proc/<pid>/status`.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

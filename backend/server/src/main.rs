//! The `backend` command: `serve`, `migrate`, `check`, `create-manager`, `seed-demo`, `export`,
//! `verify-export`.
//! Configuration comes from defaults, an optional TOML file (`--config`), `CLEANPLATE_*`
//! environment variables and these flags, in that order of precedence (flags win).

use anyhow::{bail, Context, Result};
use backend::config::Config;
use clap::{Parser, Subcommand};
use ledger::{Fen, MealKind};
use std::path::PathBuf;
use std::time::Duration;
use store::{
    Actor, CanteenUpdate, MealWindow, NewCanteen, NewStaff, NewUser, Price, Role, SubsidyRule,
};

#[derive(Parser)]
#[command(
    name = "backend",
    version,
    about = "CleanPlate backend: the canteen's book of record"
)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "CLEANPLATE_CONFIG")]
    config: Option<PathBuf>,
    /// Database URL: sqlite://PATH (default: a file in the data directory) or postgres://...
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the HTTP server (migrates first).
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Apply database migrations.
    Migrate,
    /// Verify the ledger's invariants and the audit chain; exits 1 with a report on failure.
    Check {
        /// Seal pending audit entries first (as a running server would).
        #[arg(long)]
        seal: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create a manager (or auditor) login. The password comes from CLEANPLATE_NEW_PASSWORD or stdin.
    CreateManager {
        #[arg(long)]
        username: String,
        /// manager or auditor.
        #[arg(long, default_value = "manager")]
        role: String,
    },
    /// Fill an empty database with a demo canteen, prices, subsidies and staff (with web
    /// sign-ins), optionally with a history of meals and plate waste.
    SeedDemo {
        /// Days of meals, top-ups and plate waste to write before today (0: none), so the
        /// managers' dashboard has something to show. Today is left to the kiosks.
        #[arg(long, default_value_t = 0)]
        history_days: i64,
    },
    /// Write the inspection export: charges, refunds, top-ups and plate waste of a range of
    /// canteen-local dates as CSV files with manifest.json (SHA-256, row counts, the audit
    /// chain head), in one zip.
    Export {
        /// First date, YYYY-MM-DD (canteen local).
        #[arg(long)]
        from: String,
        /// Last date, YYYY-MM-DD (included).
        #[arg(long)]
        to: String,
        /// The zip to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Re-check an inspection export: every file's SHA-256 and row count against its manifest,
    /// then the manifest's audit chain head against the database's chain (when one is
    /// reachable). Exits 1 naming the first file that does not match.
    VerifyExport {
        file: PathBuf,
        /// Check the files only, not the chain head against a database.
        #[arg(long)]
        no_database: bool,
    },
}

fn now_ms() -> i64 {
    backend::state::now_ms()
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let mut cfg = Config::load(cli.config.as_deref())?;
    if let Some(u) = cli.database_url {
        cfg.database_url = u;
    }
    match cli.cmd {
        Cmd::Serve { listen } => {
            if let Some(l) = listen {
                cfg.listen = l;
            }
            serve(cfg).await
        }
        Cmd::Migrate => {
            let store = backend::open_store(&cfg).await?;
            store.migrate().await?;
            println!("migrations applied ({})", store.backend_name());
            Ok(())
        }
        Cmd::Check { seal, json } => check(cfg, seal, json).await,
        Cmd::CreateManager { username, role } => create_manager(cfg, username, role).await,
        Cmd::SeedDemo { history_days } => seed_demo(cfg, history_days).await,
        Cmd::Export { from, to, out } => export(cfg, &from, &to, &out).await,
        Cmd::VerifyExport { file, no_database } => verify_export(cfg, &file, no_database).await,
    }
}

async fn serve(mut cfg: Config) -> Result<()> {
    cfg.validate_for_serving()?;
    let store = backend::open_store(&cfg).await?;
    store.migrate().await.context("migrating the database")?;
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    // Pay-page links need an address payers can reach: the one actually bound (a configured
    // port 0 means "any free port") unless a public URL is set.
    if cfg.public_base_url.is_empty() {
        cfg.public_base_url = format!("http://{addr}");
    }
    let sealer_interval = Duration::from_millis(cfg.sealer_interval_ms.max(10));
    tokio::spawn(backend::run_sealer(
        store.clone(),
        sealer_interval,
        Some(backend::Anchoring {
            path: cfg.audit_anchor_path(),
            key: cfg.audit_key()?,
            every: Duration::from_secs(cfg.audit_anchor_seconds.max(1)),
        }),
    ));
    tokio::spawn(log_batch_stats(store.clone()));
    let state = backend::build_state(store.clone(), cfg)?;
    tokio::spawn(backend::payments::run_payment_returns(
        state.clone(),
        Duration::from_secs(60),
    ));
    // The models are loaded on the first photo; say now if they are missing, since only the
    // photo route needs them and everything else serves as usual.
    match state.faces.probe() {
        Ok(dir) => tracing::info!(dir = %dir.display(), "face models found for photo enrolment"),
        // The error already says to run scripts/setup-models.sh.
        Err(e) => {
            tracing::warn!("photo enrolment unavailable until the face models are installed: {e}")
        }
    }
    if state.sandbox.is_some() {
        // Loud on purpose: with the sandbox on, anyone can credit a balance without paying.
        let why = if state.cfg.dev_mode {
            "dev_mode"
        } else {
            "sandbox_payments"
        };
        tracing::warn!(
            why,
            "SANDBOX PAYMENTS ARE ON: /sandbox/pay credits balances without real money. \
             Never run this way in production."
        );
        eprintln!(
            "*** WARNING: sandbox payment gateway enabled ({why}); top-ups are not real money ***"
        );
    } else {
        tracing::info!("no payment provider configured: staff top-ups answer 503");
    }
    tracing::info!(%addr, db = store.backend_name(), "serving");
    // Printed on stdout so scripts and tests can wait for readiness and learn the port.
    println!("listening on {addr}");
    axum::serve(
        listener,
        backend::api::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

/// Logs the charge group-commit counters (debug level, target `backend::batch`) when they
/// changed, every 5 s: how many charges a transaction carries under the current load.
async fn log_batch_stats(store: std::sync::Arc<dyn store::Store>) {
    let mut last = store::ChargeBatchStats::default();
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let Some(s) = store.charge_batch_stats() else {
            return;
        };
        if s != last {
            tracing::debug!(
                target: "backend::batch",
                batches = s.batches,
                charges = s.charges,
                largest = s.largest,
                failed = s.failed,
                "charge batches"
            );
            last = s;
        }
    }
}

async fn check(cfg: Config, seal: bool, json: bool) -> Result<()> {
    let store = backend::open_store(&cfg).await?;
    if seal {
        while store.seal_audit(10_000).await? == 10_000 {}
    }
    let r = backend::full_check(&store, &cfg, now_ms()).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "backend check ({}): {} entries, {} postings, {} charges, audit {} sealed / {} unsealed",
            store.backend_name(),
            r.entries,
            r.postings,
            r.charges,
            r.audit_sealed,
            r.audit_unsealed
        );
        for p in &r.problems {
            println!("PROBLEM: {p}");
        }
        println!("{}", if r.ok() { "OK" } else { "FAILED" });
    }
    if !r.ok() {
        std::process::exit(1);
    }
    Ok(())
}

async fn create_manager(cfg: Config, username: String, role: String) -> Result<()> {
    let role = match Role::parse(&role) {
        Some(r @ (Role::Manager | Role::Auditor)) => r,
        _ => bail!("--role must be manager or auditor (staff logins are made through the API)"),
    };
    let password = match std::env::var("CLEANPLATE_NEW_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            eprintln!("password for {username}:");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    if password.chars().count() < 10 {
        bail!("passwords need at least 10 characters");
    }
    let store = backend::open_store(&cfg).await?;
    store.migrate().await?;
    let hash = backend::crypto::hash_password(&password)?;
    let u = store
        .create_user(
            NewUser {
                username,
                password_hash: hash,
                role,
                staff_id: None,
            },
            &Actor::System("create-manager"),
        )
        .await?;
    while store.seal_audit(10_000).await? == 10_000 {}
    println!("created {} {} (id {})", u.role.as_str(), u.username, u.id);
    Ok(())
}

async fn seed_demo(cfg: Config, history_days: i64) -> Result<()> {
    let store = backend::open_store(&cfg).await?;
    store.migrate().await?;
    if !store.list_canteens().await?.is_empty() {
        bail!("the database already has canteens; seed-demo only fills an empty database");
    }
    let actor = Actor::System("seed-demo");
    let c = store
        .create_canteen(
            NewCanteen {
                name: "Demo canteen".into(),
                utc_offset_minutes: 480,
                per_transaction_cap: Some(Fen(5000)),
                daily_cap: Some(Fen(10000)),
            },
            &actor,
        )
        .await?;
    // The clean-plate campaign's aim, drawn across the dashboard's waste chart.
    store
        .update_canteen(
            c.id,
            CanteenUpdate {
                waste_target_grams: Some(Some(40)),
                ..Default::default()
            },
            &actor,
        )
        .await?;
    for (meal, s, e) in [
        (MealKind::Breakfast, 390, 570),
        (MealKind::Lunch, 660, 810),
        (MealKind::Dinner, 1020, 1170),
    ] {
        store
            .set_meal_window(
                MealWindow {
                    canteen_id: c.id,
                    meal,
                    start_minute: s,
                    end_minute: e,
                },
                &actor,
            )
            .await?;
    }
    for (cat, prices) in [
        ("regular", [500, 1500, 1200]),
        ("contractor", [800, 2000, 1600]),
        ("intern", [300, 1000, 800]),
    ] {
        for (meal, p) in MealKind::ALL.into_iter().zip(prices) {
            store
                .set_price(
                    Price {
                        canteen_id: c.id,
                        category: cat.into(),
                        meal,
                        price: Fen(p),
                    },
                    &actor,
                )
                .await?;
        }
    }
    store
        .set_subsidy_rule(
            SubsidyRule {
                category: "regular".into(),
                amount: Fen(30000),
                expires: true,
            },
            &actor,
        )
        .await?;
    store
        .set_subsidy_rule(
            SubsidyRule {
                category: "intern".into(),
                amount: Fen(20000),
                expires: true,
            },
            &actor,
        )
        .await?;
    let names = [
        "Wang Fang",
        "Li Na",
        "Zhang Wei",
        "Liu Yang",
        "Chen Jing",
        "Yang Li",
        "Zhao Lei",
        "Huang Min",
        "Zhou Jie",
        "Wu Xia",
    ];
    // A few departments, so the dashboard's waste per department has something to compare.
    let departments = ["办公室", "财务处", "信息中心"];
    let mut staff = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let cat = ["regular", "regular", "contractor", "intern"][i % 4];
        let s = store
            .create_staff(
                NewStaff {
                    employee_no: format!("E{:04}", i + 1),
                    name: (*n).into(),
                    department: departments[i % departments.len()].into(),
                    category: cat.into(),
                },
                &actor,
            )
            .await?;
        staff.push(s);
    }
    // Every demo staff member can sign in to the staff page with their employee number and
    // one shared demo password (printed below; a real canteen hands out one-time codes).
    let staff_password = backend::crypto::random_token()[..10].to_string();
    let staff_hash = backend::crypto::hash_password(&staff_password)?;
    for s in &staff {
        store
            .create_user(
                NewUser {
                    username: s.employee_no.clone(),
                    password_hash: staff_hash.clone(),
                    role: Role::Staff,
                    staff_id: Some(s.id),
                },
                &actor,
            )
            .await?;
    }
    let period = ledger::subsidy::period_of(
        time::OffsetDateTime::now_utc()
            .to_offset(
                time::UtcOffset::from_whole_seconds(8 * 3600).unwrap_or(time::UtcOffset::UTC),
            )
            .date(),
    );
    let g = store.grant_subsidies(&period, now_ms(), &actor).await?;
    let code = backend::crypto::random_token()[..12].to_uppercase();
    store
        .create_enrolment_code(
            c.id,
            &backend::crypto::token_hash(&code),
            now_ms() + 24 * 3600 * 1000,
            &actor,
        )
        .await?;
    // A history of meals and plate waste at a kiosk of its own, so the dashboard has a story.
    if history_days > 0 {
        let history_code = backend::crypto::random_token();
        store
            .create_enrolment_code(
                c.id,
                &backend::crypto::token_hash(&history_code),
                now_ms() + 60_000,
                &actor,
            )
            .await?;
        let history_kiosk = store
            .redeem_enrolment_code(
                &backend::crypto::token_hash(&history_code),
                "Demo history",
                &backend::crypto::token_hash(&backend::crypto::random_token()),
                now_ms(),
            )
            .await?;
        let h = backend::demo::seed_history(
            store.as_ref(),
            history_kiosk.id,
            c.id,
            c.utc_offset_minutes,
            &staff,
            now_ms(),
            history_days,
        )
        .await?;
        // Its token was never kept: retire it so the kiosk list shows only real devices.
        store
            .revoke_kiosk(history_kiosk.id, now_ms(), &actor)
            .await?;
        println!(
            "demo history: {} meals, {} plate weighings, {} top-ups over the {history_days} days before today",
            h.charges, h.waste, h.top_ups
        );
    }
    while store.seal_audit(10_000).await? == 10_000 {}
    println!(
        "seeded canteen {} with {} staff; subsidies for {}: {} people",
        c.id,
        names.len(),
        g.period,
        g.people
    );
    println!(
        "staff sign-in (web page /me): {} .. {} / {staff_password}",
        staff[0].employee_no,
        staff[staff.len() - 1].employee_no
    );
    println!("kiosk enrolment code (valid 24 h): {code}");
    Ok(())
}

async fn export(cfg: Config, from: &str, to: &str, out: &std::path::Path) -> Result<()> {
    let period = inspection::Period::parse(from, to)?;
    let store = backend::open_store(&cfg).await?;
    let m = backend::inspect::export_to_file(&store, period, out, now_ms()).await?;
    for f in &m.files {
        println!("{}: {} rows, sha256 {}", f.name, f.rows, f.sha256);
    }
    match &m.audit_chain_head {
        Some(h) => println!("audit chain head: seq {} hash {}", h.seq, h.hash),
        None => println!("audit chain head: none (nothing sealed yet)"),
    }
    println!("wrote {} ({} to {})", out.display(), m.from, m.to);
    Ok(())
}

async fn verify_export(cfg: Config, file: &std::path::Path, no_database: bool) -> Result<()> {
    let m = match backend::inspect::verify_file(file) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("verify-export {}: FAILED: {e}", file.display());
            std::process::exit(1);
        }
    };
    for f in &m.files {
        println!("{}: {} rows, sha256 matches", f.name, f.rows);
    }
    if no_database {
        println!("audit chain head: not checked (--no-database)");
    } else if let Some(why) = unreachable_database(&cfg) {
        println!("audit chain head: not checked ({why})");
    } else {
        match backend::open_store(&cfg).await {
            Err(e) => println!("audit chain head: not checked (database not reachable: {e})"),
            Ok(store) => {
                if let Err(e) = backend::inspect::check_chain_head(store.as_ref(), &m).await {
                    eprintln!("verify-export {}: FAILED: {e}", file.display());
                    std::process::exit(1);
                }
                match &m.audit_chain_head {
                    Some(h) => println!(
                        "audit chain head: seq {} is in the database's chain with the same hash",
                        h.seq
                    ),
                    None => println!("audit chain head: none in the manifest"),
                }
            }
        }
    }
    println!("OK: {} ({} to {})", file.display(), m.from, m.to);
    Ok(())
}

/// Why there is no database to ask, when the configured one is a SQLite file that does not
/// exist (opening it would create an empty one).
fn unreachable_database(cfg: &Config) -> Option<String> {
    let url = cfg.database_url();
    let path = url.strip_prefix("sqlite://")?;
    let path = path.split('?').next().unwrap_or(path);
    (!std::path::Path::new(path).exists()).then(|| format!("no database at {path}"))
}

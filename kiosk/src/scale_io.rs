//! The plate scale's link: a serial port (`serialport`, no libudev needed) or a TCP
//! peer (a networked scale, or [`simulator`] in tests and the demo). A reader thread turns
//! the byte stream into settled weighings with [`crate::scale`] and sends them on a
//! channel, with the link's state ([`ScaleMsg::Connected`], [`ScaleMsg::Disconnected`]) so a
//! screen can say the scale is unplugged; it reconnects when the link drops and never lets
//! bad input stop it.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::scale::{parse_line, LineFramer, ScaleEvent, StabilityConfig, StabilityDetector};

#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    #[error("scale {port}: {reason}")]
    Open { port: String, reason: String },
}

fn open(port: &str, baud: u32) -> Result<Box<dyn Read + Send>, ScaleError> {
    let err = |reason: String| ScaleError::Open {
        port: port.to_string(),
        reason,
    };
    if let Some(addr) = port.strip_prefix("tcp://") {
        let s = TcpStream::connect(addr).map_err(|e| err(e.to_string()))?;
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .map_err(|e| err(e.to_string()))?;
        return Ok(Box::new(s));
    }
    let p = serialport::new(port, baud)
        .timeout(Duration::from_millis(500))
        .open()
        .map_err(|e| err(e.to_string()))?;
    Ok(Box::new(p))
}

/// What the reader thread reports.
#[derive(Debug, Clone, PartialEq)]
pub enum ScaleMsg {
    Reading(ScaleEvent),
    /// The link is up (first time, or again).
    Connected,
    /// The link cannot be opened or dropped; the reader keeps trying.
    Disconnected(String),
}

/// Reads the scale on a thread until `stop`, sending settled weighings and the link's state
/// changes to `tx`.
pub fn spawn_reader(
    port: String,
    baud: u32,
    stability: StabilityConfig,
    tx: Sender<ScaleMsg>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("scale".into())
        .spawn(move || {
            let mut detector = StabilityDetector::new(stability);
            let mut last_complaint = Instant::now() - Duration::from_secs(60);
            // None until the first attempt: every change of state is reported once.
            let mut connected: Option<bool> = None;
            while !stop.load(Ordering::Relaxed) {
                let mut link = match open(&port, baud) {
                    Ok(l) => l,
                    Err(e) => {
                        if connected != Some(false) {
                            connected = Some(false);
                            if tx.send(ScaleMsg::Disconnected(e.to_string())).is_err() {
                                return;
                            }
                        }
                        if last_complaint.elapsed() > Duration::from_secs(30) {
                            tracing::warn!("{e}; retrying");
                            last_complaint = Instant::now();
                        }
                        std::thread::sleep(Duration::from_millis(500));
                        continue;
                    }
                };
                tracing::info!(%port, "scale connected");
                if connected != Some(true) {
                    connected = Some(true);
                    if tx.send(ScaleMsg::Connected).is_err() {
                        return;
                    }
                }
                let mut framer = LineFramer::new();
                let mut buf = [0u8; 256];
                let mut bad_lines = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let n = match link.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::TimedOut
                                    | std::io::ErrorKind::WouldBlock
                                    | std::io::ErrorKind::Interrupted
                            ) =>
                        {
                            continue
                        }
                        Err(e) => {
                            tracing::warn!(%port, "scale link: {e}");
                            connected = Some(false);
                            let _ = tx.send(ScaleMsg::Disconnected(format!("scale {port}: {e}")));
                            break;
                        }
                    };
                    for line in framer.push(&buf[..n]) {
                        match parse_line(&line) {
                            Ok(r) => {
                                if let Some(ev) = detector.feed(r) {
                                    if tx.send(ScaleMsg::Reading(ev)).is_err() {
                                        return;
                                    }
                                }
                            }
                            Err(e) => {
                                bad_lines += 1;
                                // Noise is normal on a serial line; say so now and then.
                                if bad_lines.is_power_of_two() {
                                    tracing::debug!(%port, bad_lines, "unreadable scale line: {e}");
                                }
                            }
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
}

/// A simulated canteen scale on TCP: each client gets a continuous stream of readings at
/// `hz` lines per second following `trays` (gross grams; each tray sits on the scale for
/// `on_s` seconds after `off_s` empty seconds, with a few unstable readings while it
/// settles). With `noise`, garbage and partial lines are mixed in as a real serial line
/// produces them. `once` plays the trays once and then reports an empty scale.
pub mod simulator {
    use super::*;
    use std::io::Write;

    #[derive(Debug, Clone)]
    pub struct SimConfig {
        pub trays: Vec<i64>,
        pub off_s: f32,
        pub on_s: f32,
        pub hz: f32,
        pub noise: bool,
        pub once: bool,
    }

    /// The lines a scale sends during tray `gross_g`'s visit, then the empty scale.
    pub fn script(cfg: &SimConfig) -> Vec<String> {
        let per = |s: f32| (s * cfg.hz).round().max(1.0) as usize;
        let mut lines = Vec::new();
        for (i, &g) in cfg.trays.iter().enumerate() {
            for _ in 0..per(cfg.off_s) {
                lines.push("ST,GS,+0000.000kg".to_string());
            }
            if cfg.noise && i % 2 == 0 {
                lines.push("\u{1}@@#ST,G".to_string());
                lines.push("OL".to_string());
                lines.push("ST,GS,-0000.012kg".to_string());
            }
            // Settling: the tray lands and rocks for a moment.
            for k in [0.6, 1.15, 0.95, 1.02] {
                lines.push(format!("US,GS,{}", fmt_kg((g as f64 * k).round() as i64)));
            }
            for k in 0..per(cfg.on_s) {
                if cfg.noise && k == 3 {
                    lines.push("ST,GS,+00garbage".to_string());
                }
                lines.push(format!("ST,GS,{}", fmt_kg(g)));
            }
        }
        lines
    }

    fn fmt_kg(grams: i64) -> String {
        let sign = if grams < 0 { '-' } else { '+' };
        let g = grams.abs();
        format!("{sign}{:04}.{:03}kg", g / 1000, g % 1000)
    }

    /// Serves clients until `stop`; returns the bound address through `on_bound`.
    pub fn serve(
        listen: &str,
        cfg: SimConfig,
        stop: Arc<AtomicBool>,
        on_bound: impl FnOnce(std::net::SocketAddr),
    ) -> std::io::Result<()> {
        let listener = TcpListener::bind(listen)?;
        on_bound(listener.local_addr()?);
        listener.set_nonblocking(true)?;
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut s, peer)) => {
                    let cfg = cfg.clone();
                    let stop = stop.clone();
                    std::thread::spawn(move || {
                        tracing::info!(%peer, "scale simulator: client connected");
                        let _ = s.set_nonblocking(false);
                        let period = Duration::from_secs_f32(1.0 / cfg.hz.max(0.1));
                        let lines = script(&cfg);
                        loop {
                            for l in &lines {
                                if stop.load(Ordering::Relaxed)
                                    || s.write_all(format!("{l}\r\n").as_bytes()).is_err()
                                {
                                    return;
                                }
                                std::thread::sleep(period);
                            }
                            if cfg.once {
                                break;
                            }
                        }
                        while !stop.load(Ordering::Relaxed) {
                            if s.write_all(b"ST,GS,+0000.000kg\r\n").is_err() {
                                return;
                            }
                            std::thread::sleep(period);
                        }
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::simulator::*;
    use super::*;

    #[test]
    fn the_simulated_script_settles_each_tray_once_despite_noise() {
        let cfg = SimConfig {
            trays: vec![812, 640],
            off_s: 1.0,
            on_s: 1.0,
            hz: 10.0,
            noise: true,
            once: true,
        };
        let mut d = StabilityDetector::new(StabilityConfig::default());
        let mut f = LineFramer::new();
        let mut settled = Vec::new();
        for l in script(&cfg) {
            for line in f.push(format!("{l}\r\n").as_bytes()) {
                if let Ok(r) = parse_line(&line) {
                    if let Some(ScaleEvent::Settled { gross_g }) = d.feed(r) {
                        settled.push(gross_g);
                    }
                }
            }
        }
        assert_eq!(settled, vec![812, 640]);
    }

    #[test]
    fn reader_gets_weighings_from_the_tcp_simulator() {
        let stop = Arc::new(AtomicBool::new(false));
        let (atx, arx) = std::sync::mpsc::channel();
        let cfg = SimConfig {
            trays: vec![730],
            off_s: 0.3,
            on_s: 1.0,
            hz: 50.0,
            noise: true,
            once: true,
        };
        let s2 = stop.clone();
        let sim =
            std::thread::spawn(move || serve("127.0.0.1:0", cfg, s2, |a| atx.send(a).unwrap()));
        let addr = arx.recv().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = spawn_reader(
            format!("tcp://{addr}"),
            9600,
            StabilityConfig::default(),
            tx,
            stop.clone(),
        )
        .unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)).unwrap(),
            ScaleMsg::Connected
        );
        // The noisy script includes an overload line first; the tray settles after it.
        let settled = loop {
            match rx.recv_timeout(Duration::from_secs(10)).unwrap() {
                ScaleMsg::Reading(ScaleEvent::Overload | ScaleEvent::Emptied) => continue,
                other => break other,
            }
        };
        assert_eq!(
            settled,
            ScaleMsg::Reading(ScaleEvent::Settled { gross_g: 730 })
        );
        stop.store(true, Ordering::Relaxed);
        reader.join().unwrap();
        sim.join().unwrap().unwrap();
    }

    #[test]
    fn an_unplugged_scale_is_reported_once_while_the_reader_retries() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = spawn_reader(
            format!("tcp://127.0.0.1:{port}"),
            9600,
            StabilityConfig::default(),
            tx,
            stop.clone(),
        )
        .unwrap();
        match rx.recv_timeout(Duration::from_secs(10)).unwrap() {
            ScaleMsg::Disconnected(m) => assert!(m.contains(&port.to_string()), "{m}"),
            other => panic!("expected a disconnection, got {other:?}"),
        }
        assert!(
            rx.recv_timeout(Duration::from_millis(1500)).is_err(),
            "said once, not at every retry"
        );
        stop.store(true, Ordering::Relaxed);
        reader.join().unwrap();
    }

    #[test]
    fn a_missing_serial_port_is_a_clear_error() {
        let e = open("/dev/ttyDOES_NOT_EXIST", 9600).err().unwrap();
        assert!(e.to_string().contains("/dev/ttyDOES_NOT_EXIST"));
    }
}

//! Open-set 1:N identification on a `role<TAB>identity<TAB>path` list, reported the way a
//! biometric vendor reports to an auditor (ISO/IEC 19795-1 terms): every rate with the
//! number of attempts it was measured on and its 95 % upper confidence bound, failures to
//! acquire (no face found) counted against the system, false accepts split into "another
//! enrolled person" and "a stranger".
//!
//! Three kinds of evidence, all from the same embeddings:
//! - the **protocol searches**: each probe row searched against the gallery rows, as listed;
//! - **stranger searches**: every photo (gallery and probe rows) searched against the gallery
//!   with its own person left out, so each is a search by someone who is not enrolled
//!   (`lfw-A`'s list has no stranger probes of its own);
//! - **comparisons**: every pair of photos, same person (genuine) or not (impostor), which
//!   gives the per-comparison false match rate from millions of impostor pairs.
//!
//! A policy is judged by [`models::gallery::MatchPolicy::judge`], the very rule the kiosk
//! applies. Searches are done once (each keeps its three nearest persons), so sweeping
//! thousands of policies, cross-validating by people and drawing the DET curve are cheap.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use models::embed::{distance, Embedding};
use models::gallery::{Gallery, MatchPolicy, Verdict};
use models::pipeline::PipelineConfig;

use crate::eval::embed_all_cached;
use crate::stats::{probit, rate, upper_bound};

/// The confidence of every bound printed.
pub const CONFIDENCE: f64 = 0.95;

/// One search: whose photo it was and the nearest persons found.
#[derive(Debug, Clone)]
struct Search {
    person: u32,
    /// Whether the person is enrolled (for stranger searches: never).
    enrolled: bool,
    /// Nearest persons first (up to three), `None` when no face was found in the photo.
    ranked: Option<Vec<(u32, f32)>>,
}

/// How one search ended under a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    NoFace,
    Correct,
    /// Accepted as somebody it is not: the wrong person would be charged.
    FalseAccept,
    Unknown,
    Ambiguous,
}

impl Search {
    fn outcome(&self, policy: &MatchPolicy) -> Outcome {
        let Some(ranked) = &self.ranked else {
            return Outcome::NoFace;
        };
        let Some(&(best, d)) = ranked.first() else {
            return Outcome::Unknown;
        };
        match policy.judge(d, ranked.get(1).map(|r| r.1)) {
            Verdict::Accept if self.enrolled && best == self.person => Outcome::Correct,
            Verdict::Accept => Outcome::FalseAccept,
            Verdict::Unknown => Outcome::Unknown,
            Verdict::Ambiguous => Outcome::Ambiguous,
        }
    }
}

/// Counts of one kind of search under one policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub searches: u64,
    /// Searches by enrolled people (the rest are strangers).
    pub enrolled: u64,
    pub no_face: u64,
    pub correct: u64,
    /// Enrolled people accepted as somebody else.
    pub misidentified: u64,
    /// Strangers accepted as somebody.
    pub strangers_accepted: u64,
    /// Enrolled people refused: nobody within the threshold...
    pub unknown: u64,
    /// ...or another person too close behind.
    pub ambiguous: u64,
}

impl Counts {
    fn add(&mut self, s: &Search, o: Outcome) {
        self.searches += 1;
        self.enrolled += u64::from(s.enrolled);
        match o {
            Outcome::NoFace => self.no_face += 1,
            Outcome::Correct => self.correct += 1,
            Outcome::FalseAccept if s.enrolled => self.misidentified += 1,
            Outcome::FalseAccept => self.strangers_accepted += 1,
            Outcome::Unknown if s.enrolled => self.unknown += 1,
            Outcome::Ambiguous if s.enrolled => self.ambiguous += 1,
            Outcome::Unknown | Outcome::Ambiguous => {}
        }
    }

    pub fn false_accepts(&self) -> u64 {
        self.misidentified + self.strangers_accepted
    }

    /// Enrolled people not accepted as themselves (no face, unknown, ambiguous, or taken
    /// for someone else).
    pub fn false_rejects(&self) -> u64 {
        self.enrolled - self.correct
    }
}

/// The outcome of a policy on the protocol searches and on the stranger searches.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyReport {
    pub policy: MatchPolicy,
    pub protocol: Counts,
    pub strangers: Counts,
}

impl PolicyReport {
    /// False accepts per attempt, over both kinds of search.
    pub fn false_accepts(&self) -> u64 {
        self.protocol.false_accepts() + self.strangers.false_accepts()
    }
    pub fn attempts(&self) -> u64 {
        self.protocol.searches + self.strangers.searches
    }
    pub fn far(&self) -> f64 {
        rate(self.false_accepts(), self.attempts())
    }
    pub fn frr(&self) -> f64 {
        rate(self.protocol.false_rejects(), self.protocol.enrolled)
    }
}

fn pct(k: u64, n: u64) -> String {
    format!(
        "{k} / {n} = {:.3} % (95 % upper bound {:.3} %)",
        100.0 * rate(k, n),
        100.0 * upper_bound(k, n, CONFIDENCE)
    )
}

impl std::fmt::Display for PolicyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (p, s) = (&self.protocol, &self.strangers);
        writeln!(
            f,
            "policy: threshold {:.3}, margin {:.3}",
            self.policy.threshold, self.policy.margin
        )?;
        writeln!(
            f,
            "protocol searches: {} ({} by enrolled people, {} by strangers)",
            p.searches,
            p.enrolled,
            p.searches - p.enrolled
        )?;
        writeln!(
            f,
            "  failure to acquire (no face): {}",
            pct(p.no_face, p.searches)
        )?;
        writeln!(
            f,
            "  false accepts: {} [{} enrolled people taken for another, {} strangers accepted]",
            pct(p.false_accepts(), p.searches),
            p.misidentified,
            p.strangers_accepted
        )?;
        writeln!(
            f,
            "  false rejects (enrolled, not accepted as themselves): {} [{} unknown, {} ambiguous, {} no face, {} taken for another]",
            pct(p.false_rejects(), p.enrolled),
            p.unknown,
            p.ambiguous,
            p.enrolled - p.correct - p.misidentified - p.unknown - p.ambiguous,
            p.misidentified
        )?;
        writeln!(
            f,
            "stranger searches (each photo, its own person left out of the gallery): {}",
            s.searches
        )?;
        writeln!(f, "  failure to acquire: {}", s.no_face)?;
        writeln!(
            f,
            "  strangers accepted: {}",
            pct(s.strangers_accepted, s.searches - s.no_face)
        )?;
        write!(
            f,
            "per attempt, both kinds: false accepts {}",
            pct(self.false_accepts(), self.attempts())
        )
    }
}

/// Every pair of photos' distance: genuine (same person) and impostor, sorted.
pub struct Comparisons {
    pub genuine: Vec<f32>,
    pub impostor: Vec<f32>,
}

impl Comparisons {
    /// Impostor comparisons at or below `threshold` (a match of two different people).
    pub fn false_matches(&self, threshold: f32) -> u64 {
        self.impostor.partition_point(|&d| d <= threshold) as u64
    }
    /// Genuine comparisons above `threshold`.
    pub fn false_non_matches(&self, threshold: f32) -> u64 {
        (self.genuine.len() - self.genuine.partition_point(|&d| d <= threshold)) as u64
    }
    /// The largest threshold whose false match rate's upper bound stays at or below
    /// `fmr`, or `None` when even zero false matches could not show it (too few impostor
    /// comparisons).
    pub fn threshold_for_fmr(&self, fmr: f64) -> Option<f32> {
        let n = self.impostor.len() as u64;
        if upper_bound(0, n, CONFIDENCE) > fmr {
            return None;
        }
        // The bound grows with the count: find the largest count that passes.
        let (mut lo, mut hi) = (0u64, n);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if upper_bound(mid, n, CONFIDENCE) <= fmr {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        // Just below the (lo+1)-th smallest impostor distance.
        Some(match self.impostor.get(lo as usize) {
            Some(&d) => f32::from_bits(d.to_bits() - 1).max(0.0),
            None => f32::INFINITY,
        })
    }
}

/// The embedded photos of an identification list and their searches.
pub struct IdentificationSet {
    names: Vec<String>,
    /// Every photo's person and embedding, gallery rows first.
    photos: Vec<(u32, Option<Embedding>)>,
    pub enrolled_people: usize,
    /// Gallery photos in which no face was found (failure to enrol).
    pub gallery_failures: usize,
    gallery_rows: usize,
    gallery: Gallery<u32>,
    protocol: Vec<Search>,
    strangers: Vec<Search>,
}

/// Reads a list of `role<TAB>identity<TAB>path` rows (paths relative to `root`), embeds
/// every photo (or reads them from `cache`), enrols the gallery rows and runs the searches.
pub fn load(
    config: &PipelineConfig,
    list: &Path,
    root: &Path,
    jobs: usize,
    cache: Option<&Path>,
) -> Result<IdentificationSet> {
    let text =
        std::fs::read_to_string(list).with_context(|| format!("reading {}", list.display()))?;
    let mut names: Vec<String> = Vec::new();
    let mut index: HashMap<String, u32> = HashMap::new();
    let mut rows: Vec<(bool, u32, PathBuf)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split('\t').collect();
        let (gallery, id, path) = match f[..] {
            ["role", ..] | [""] => continue,
            ["gallery", id, path] => (true, id, path),
            ["probe", id, path] => (false, id, path),
            _ => bail!(
                "{}:{}: expected `gallery|probe<TAB>identity<TAB>path`, got {line:?}",
                list.display(),
                n + 1
            ),
        };
        let person = *index.entry(id.to_string()).or_insert_with(|| {
            names.push(id.to_string());
            (names.len() - 1) as u32
        });
        rows.push((gallery, person, root.join(path)));
    }
    // Gallery rows first, so templates get the lowest ids.
    rows.sort_by_key(|r| !r.0);
    let gallery_rows = rows.iter().filter(|r| r.0).count();
    eprintln!(
        "identify: {} gallery photos, {} probes",
        gallery_rows,
        rows.len() - gallery_rows
    );
    let paths: Vec<PathBuf> = rows.iter().map(|r| r.2.clone()).collect();
    let embeddings = embed_all_cached(config, &paths, jobs, cache)?;
    let photos: Vec<(u32, Option<Embedding>)> = rows.iter().map(|r| r.1).zip(embeddings).collect();
    IdentificationSet::new(names, photos, gallery_rows)
}

impl IdentificationSet {
    /// `photos[..gallery_rows]` are enrolled, the rest are probes.
    fn new(
        names: Vec<String>,
        photos: Vec<(u32, Option<Embedding>)>,
        gallery_rows: usize,
    ) -> Result<IdentificationSet> {
        let mut gallery: Gallery<u32> = Gallery::new();
        let mut gallery_failures = 0;
        for (i, (person, e)) in photos[..gallery_rows].iter().enumerate() {
            match e {
                Some(e) => gallery.insert(*person, i as u64, e)?,
                None => gallery_failures += 1,
            }
        }
        let search = |e: &Option<Embedding>, leave_out: Option<u32>| -> Result<_> {
            let Some(e) = e else { return Ok(None) };
            let found = gallery.search(e, 3)?;
            Ok(Some(
                found
                    .into_iter()
                    .filter(|m| Some(m.key) != leave_out)
                    .map(|m| (m.key, m.distance))
                    .take(2)
                    .collect::<Vec<_>>(),
            ))
        };
        let mut protocol = Vec::new();
        for (person, e) in &photos[gallery_rows..] {
            protocol.push(Search {
                person: *person,
                enrolled: !gallery.templates_of(person).is_empty(),
                ranked: search(e, None)?,
            });
        }
        let mut strangers = Vec::new();
        for (person, e) in &photos {
            strangers.push(Search {
                person: *person,
                enrolled: false,
                ranked: search(e, Some(*person))?,
            });
        }
        Ok(IdentificationSet {
            enrolled_people: gallery.person_count(),
            names,
            photos,
            gallery_failures,
            gallery_rows,
            gallery,
            protocol,
            strangers,
        })
    }

    /// The same evaluation with each search made from `k` photos of one person, their
    /// embeddings averaged (as the kiosk fuses its frames): the probes of each enrolled
    /// person in groups of `k` (protocol), and every person's photos in groups of `k`
    /// searched with that person left out (strangers). Photos without a face are left out
    /// of the groups; leftovers smaller than `k` are dropped. Several photos of a person
    /// vary more than a kiosk's consecutive frames do, so this is a proxy, not a kiosk
    /// measurement.
    pub fn fused(&self, k: usize) -> Result<IdentificationSet> {
        let k = k.max(1);
        let mean = |group: &[&Embedding]| -> Embedding {
            let mut m = [0f32; 128];
            for e in group {
                for (a, v) in m.iter_mut().zip(e.iter()) {
                    *a += v / group.len() as f32;
                }
            }
            m
        };
        let mut by_person_probes: std::collections::BTreeMap<u32, Vec<&Embedding>> =
            Default::default();
        for (p, e) in &self.photos[self.gallery_rows..] {
            if let Some(e) = e {
                by_person_probes.entry(*p).or_default().push(e);
            }
        }
        let mut by_person_all: std::collections::BTreeMap<u32, Vec<&Embedding>> =
            Default::default();
        for (p, e) in &self.photos {
            if let Some(e) = e {
                by_person_all.entry(*p).or_default().push(e);
            }
        }
        let search = |e: &Embedding, leave_out: Option<u32>| -> Result<Vec<(u32, f32)>> {
            Ok(self
                .gallery
                .search(e, 3)?
                .into_iter()
                .filter(|m| Some(m.key) != leave_out)
                .map(|m| (m.key, m.distance))
                .take(2)
                .collect())
        };
        let mut protocol = Vec::new();
        for (p, es) in &by_person_probes {
            for group in es.chunks_exact(k) {
                protocol.push(Search {
                    person: *p,
                    enrolled: !self.gallery.templates_of(p).is_empty(),
                    ranked: Some(search(&mean(group), None)?),
                });
            }
        }
        let mut strangers = Vec::new();
        for (p, es) in &by_person_all {
            for group in es.chunks_exact(k) {
                strangers.push(Search {
                    person: *p,
                    enrolled: false,
                    ranked: Some(search(&mean(group), Some(*p))?),
                });
            }
        }
        Ok(IdentificationSet {
            names: self.names.clone(),
            photos: Vec::new(),
            enrolled_people: self.enrolled_people,
            gallery_failures: self.gallery_failures,
            gallery_rows: 0,
            gallery: Gallery::new(),
            protocol,
            strangers,
        })
    }

    pub fn probes(&self) -> usize {
        self.protocol.len()
    }

    /// Rank-1 over the protocol searches of enrolled people.
    pub fn rank1(&self) -> f64 {
        let enrolled = self.protocol.iter().filter(|s| s.enrolled);
        let (mut n, mut right) = (0u64, 0u64);
        for s in enrolled {
            n += 1;
            right += u64::from(
                s.ranked
                    .as_ref()
                    .and_then(|r| r.first())
                    .is_some_and(|b| b.0 == s.person),
            );
        }
        rate(right, n)
    }

    /// The outcome of `policy`, on the searches of the people `keep` admits.
    fn score_people(&self, policy: &MatchPolicy, keep: impl Fn(u32) -> bool) -> PolicyReport {
        let mut protocol = Counts::default();
        for s in self.protocol.iter().filter(|s| keep(s.person)) {
            protocol.add(s, s.outcome(policy));
        }
        let mut strangers = Counts::default();
        for s in self.strangers.iter().filter(|s| keep(s.person)) {
            strangers.add(s, s.outcome(policy));
        }
        PolicyReport {
            policy: *policy,
            protocol,
            strangers,
        }
    }

    pub fn score(&self, policy: &MatchPolicy) -> PolicyReport {
        self.score_people(policy, |_| true)
    }

    /// How the protocol searches ended, by kind (for the compact summary line).
    pub fn outcomes(&self, policy: &MatchPolicy) -> BTreeMap<&'static str, usize> {
        let mut out = BTreeMap::new();
        for s in &self.protocol {
            let kind = match s.outcome(policy) {
                Outcome::NoFace => "no face",
                Outcome::Correct => "accepted",
                Outcome::FalseAccept => "accepted as someone else",
                Outcome::Unknown => "unknown",
                Outcome::Ambiguous => "ambiguous",
            };
            *out.entry(kind).or_default() += 1;
        }
        out
    }

    /// Every pair of photos in which a face was found.
    pub fn comparisons(&self) -> Comparisons {
        let faces: Vec<(u32, &Embedding)> = self
            .photos
            .iter()
            .filter_map(|(p, e)| e.as_ref().map(|e| (*p, e)))
            .collect();
        let (mut genuine, mut impostor) = (Vec::new(), Vec::with_capacity(faces.len().pow(2) / 2));
        for (i, (pa, a)) in faces.iter().enumerate() {
            for (pb, b) in &faces[i + 1..] {
                let d = distance(a.as_slice(), b.as_slice());
                if pa == pb {
                    genuine.push(d);
                } else {
                    impostor.push(d);
                }
            }
        }
        genuine.sort_by(f32::total_cmp);
        impostor.sort_by(f32::total_cmp);
        Comparisons { genuine, impostor }
    }

    /// The policy a vendor would ship from this evidence: among `grid`, the fewest false
    /// rejects with no false accept on any search, preferring the larger margin and then
    /// the smaller threshold on ties (the safer of equals).
    fn choose(&self, grid: &[MatchPolicy], keep: impl Fn(u32) -> bool + Copy) -> PolicyReport {
        let mut best: Option<PolicyReport> = None;
        for p in grid {
            let r = self.score_people(p, keep);
            if r.false_accepts() > 0 {
                continue;
            }
            let better = match &best {
                None => true,
                Some(b) => {
                    let (fr, bfr) = (r.protocol.false_rejects(), b.protocol.false_rejects());
                    fr < bfr
                        || (fr == bfr
                            && (p.margin > b.policy.margin
                                || (p.margin == b.policy.margin
                                    && p.threshold < b.policy.threshold)))
                }
            };
            if better {
                best = Some(r);
            }
        }
        best.unwrap_or_else(|| {
            self.score_people(
                &MatchPolicy {
                    threshold: 0.0,
                    margin: 0.0,
                },
                keep,
            )
        })
    }

    /// Cross-validation by people: the people are split into `folds` by a hash of their
    /// name; for each fold the policy is chosen (as [`Self::choose`]) on the other folds'
    /// searches only and then scored on this fold's, whose people it never saw. The sum
    /// over folds estimates what the choice does on new people.
    pub fn cross_validate(&self, grid: &[MatchPolicy], folds: u32) -> CrossValidation {
        let fold_of: Vec<u32> = self.names.iter().map(|n| fnv1a(n) % folds).collect();
        let mut per_fold = Vec::new();
        let mut total = PolicyReport {
            policy: MatchPolicy {
                threshold: f32::NAN,
                margin: f32::NAN,
            },
            protocol: Counts::default(),
            strangers: Counts::default(),
        };
        for k in 0..folds {
            let chosen = self.choose(grid, |p| fold_of[p as usize] != k);
            let held_out = self.score_people(&chosen.policy, |p| fold_of[p as usize] == k);
            for (t, h) in [
                (&mut total.protocol, &held_out.protocol),
                (&mut total.strangers, &held_out.strangers),
            ] {
                t.searches += h.searches;
                t.enrolled += h.enrolled;
                t.no_face += h.no_face;
                t.correct += h.correct;
                t.misidentified += h.misidentified;
                t.strangers_accepted += h.strangers_accepted;
                t.unknown += h.unknown;
                t.ambiguous += h.ambiguous;
            }
            per_fold.push((chosen, held_out));
        }
        CrossValidation {
            chosen_on_all: self.choose(grid, |_| true),
            per_fold,
            total,
        }
    }
}

/// What [`IdentificationSet::cross_validate`] found.
pub struct CrossValidation {
    /// The policy chosen on every person (what the evidence as a whole suggests).
    pub chosen_on_all: PolicyReport,
    /// Per fold: the policy chosen on the other folds (with its score there), and its
    /// score on this fold.
    pub per_fold: Vec<(PolicyReport, PolicyReport)>,
    /// The held-out scores summed over folds.
    pub total: PolicyReport,
}

impl std::fmt::Display for CrossValidation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "cross-validation by people ({} folds; policy: fewest false rejects with no false accept on the other folds)",
            self.per_fold.len()
        )?;
        for (k, (chosen, held)) in self.per_fold.iter().enumerate() {
            writeln!(
                f,
                "  fold {}: chose threshold {:.3} margin {:.3} (there: {} false rejects / {}); on this fold's people: false accepts {} / {} searches, false rejects {} / {}",
                k + 1,
                chosen.policy.threshold,
                chosen.policy.margin,
                chosen.protocol.false_rejects(),
                chosen.protocol.enrolled,
                held.false_accepts(),
                held.attempts(),
                held.protocol.false_rejects(),
                held.protocol.enrolled
            )?;
        }
        let t = &self.total;
        writeln!(
            f,
            "  held out, all folds: false accepts {}; false rejects {}",
            pct(t.false_accepts(), t.attempts()),
            pct(t.protocol.false_rejects(), t.protocol.enrolled)
        )?;
        write!(
            f,
            "chosen on all people: threshold {:.3} margin {:.3}: false accepts {} / {}, false rejects {} / {}",
            self.chosen_on_all.policy.threshold,
            self.chosen_on_all.policy.margin,
            self.chosen_on_all.false_accepts(),
            self.chosen_on_all.attempts(),
            self.chosen_on_all.protocol.false_rejects(),
            self.chosen_on_all.protocol.enrolled
        )
    }
}

/// A stable hash (FNV-1a), so folds do not change between runs or Rust versions.
fn fnv1a(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Thresholds × margins to search: 0.30-0.65 by 0.005 and 0-0.15 by 0.005.
pub fn policy_grid() -> Vec<MatchPolicy> {
    let mut grid = Vec::new();
    for t in 0..=70 {
        for m in 0..=30 {
            grid.push(MatchPolicy {
                threshold: 0.30 + t as f32 * 0.005,
                margin: m as f32 * 0.005,
            });
        }
    }
    grid
}

/// One curve of a DET plot: the label and its (false accept rate, false reject rate)
/// points.
pub struct DetCurve {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

impl IdentificationSet {
    /// The trade-off at each margin in `margins`, thresholds 0.30-0.70: false accepts per
    /// attempt (both kinds of search) against false rejects of enrolled people.
    pub fn det_curves(&self, margins: &[f32]) -> Vec<DetCurve> {
        margins
            .iter()
            .map(|&m| DetCurve {
                label: format!("margin {m:.2}"),
                points: (0..=160)
                    .map(|t| {
                        let r = self.score(&MatchPolicy {
                            threshold: 0.30 + t as f32 * 0.0025,
                            margin: m,
                        });
                        (r.far(), r.frr())
                    })
                    .collect(),
            })
            .collect()
    }
}

/// A DET plot (both axes on the normal-deviate scale, as ISO/IEC 19795-1 draws them) as
/// SVG: the curves, and the operating point marked with its label. Rates of zero are drawn
/// on the axis' lowest line (the plot says so).
pub fn det_svg(
    title: &str,
    curves: &[DetCurve],
    operating: (f64, f64),
    operating_label: &str,
) -> String {
    const W: f64 = 640.0;
    const H: f64 = 520.0;
    const L: f64 = 70.0;
    const R: f64 = 20.0;
    const T: f64 = 40.0;
    const B: f64 = 70.0;
    let (x_min, x_max) = (1e-4, 0.2);
    let (y_min, y_max) = (0.01, 0.8);
    let px = |r: f64| {
        let r = r.clamp(x_min, x_max);
        L + (probit(r) - probit(x_min)) / (probit(x_max) - probit(x_min)) * (W - L - R)
    };
    let py = |r: f64| {
        let r = r.clamp(y_min, y_max);
        H - B - (probit(r) - probit(y_min)) / (probit(y_max) - probit(y_min)) * (H - T - B)
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
        W / 2.0,
        xml_escape(title)
    );
    for &t in &[1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.2] {
        let x = px(t);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{T}" x2="{x:.1}" y2="{}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
            H - B,
            H - B + 16.0,
            pct_label(t)
        );
    }
    for &t in &[0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8] {
        let y = py(t);
        let _ = writeln!(
            s,
            r##"<line x1="{L}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - R,
            L - 6.0,
            y + 4.0,
            pct_label(t)
        );
    }
    let _ = writeln!(
        s,
        r#"<rect x="{L}" y="{T}" width="{}" height="{}" fill="none" stroke="black"/>"#,
        W - L - R,
        H - T - B
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">false accepts per attempt (wrong person or stranger accepted); 0 drawn at {}</text>"#,
        (L + W - R) / 2.0,
        H - B + 36.0,
        pct_label(x_min)
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(18,{}) rotate(-90)" text-anchor="middle">false rejects (enrolled person not accepted)</text>"#,
        (T + H - B) / 2.0
    );
    const COLOURS: [&str; 6] = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    ];
    for (i, c) in curves.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = c
            .points
            .iter()
            .map(|&(far, frr)| format!("{:.1},{:.1}", px(far), py(frr)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
            path.join(" ")
        );
        let ly = T + 16.0 + 16.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
            W - R - 150.0,
            W - R - 130.0,
            W - R - 125.0,
            ly + 4.0,
            xml_escape(&c.label)
        );
    }
    let (ox, oy) = (px(operating.0), py(operating.1));
    let _ = writeln!(
        s,
        r#"<circle cx="{ox:.1}" cy="{oy:.1}" r="5" fill="none" stroke="black" stroke-width="2"/><text x="{:.1}" y="{:.1}">{}</text>"#,
        ox + 8.0,
        oy - 8.0,
        xml_escape(operating_label)
    );
    s.push_str("</svg>\n");
    s
}

fn pct_label(r: f64) -> String {
    let p = r * 100.0;
    if p >= 1.0 {
        format!("{p:.0}%")
    } else {
        format!("{p}%")
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(x: f32) -> Option<Embedding> {
        let mut v = [0f32; 128];
        v[0] = x;
        Some(v)
    }

    /// Three people enrolled at 0, 1 and 1.2 on one axis; probes near each, one probe
    /// without a face.
    fn toy() -> IdentificationSet {
        let names = vec!["a".into(), "b".into(), "c".into()];
        let photos = vec![
            (0, e(0.0)),
            (1, e(1.0)),
            (2, e(1.2)),
            (0, e(0.1)),  // a: clear
            (1, e(1.08)), // b: 0.08 from b, 0.12 from c: margin 0.04
            (2, e(1.5)),  // c: 0.3 from c
            (0, None),    // a: no face
        ];
        IdentificationSet::new(names, photos, 3).unwrap()
    }

    #[test]
    fn outcomes_follow_the_policy_and_count_failures_to_acquire() {
        let set = toy();
        let r = set.score(&MatchPolicy {
            threshold: 0.25,
            margin: 0.05,
        });
        let p = r.protocol;
        assert_eq!((p.searches, p.enrolled, p.no_face), (4, 4, 1));
        assert_eq!((p.correct, p.ambiguous, p.unknown), (1, 1, 1));
        assert_eq!(p.false_rejects(), 3);
        assert_eq!(p.false_accepts(), 0);
        // Stranger searches: b's probe at 1.08 without b is 0.12 from c (margin to a
        // 0.96): accepted as c at threshold 0.25. c's gallery photo without c is 0.2 from
        // b: accepted too.
        assert_eq!(r.strangers.searches, 7);
        assert_eq!(r.strangers.no_face, 1);
        assert!(r.strangers.strangers_accepted >= 2, "{r}");
        // A looser margin accepts b's probe; a threshold of 0 accepts nobody.
        let loose = set.score(&MatchPolicy {
            threshold: 0.25,
            margin: 0.0,
        });
        assert_eq!(loose.protocol.correct, 2);
        let none = set.score(&MatchPolicy {
            threshold: 0.0,
            margin: 0.0,
        });
        assert_eq!(none.false_accepts(), 0);
        assert_eq!(none.protocol.false_rejects(), 4);
    }

    #[test]
    fn comparisons_split_genuine_from_impostor() {
        let set = toy();
        let c = set.comparisons();
        // 6 photos with a face: a×2, b×2, c×2 → 3 genuine, 12 impostor pairs.
        assert_eq!((c.genuine.len(), c.impostor.len()), (3, 12));
        assert_eq!(c.false_matches(0.13), 1); // b's probe at 1.08 and c at 1.2
        assert!(
            c.threshold_for_fmr(1e-3).is_none(),
            "12 comparisons cannot show 1e-3"
        );
        assert_eq!(c.false_non_matches(0.0), 3);
    }

    #[test]
    fn the_chosen_policy_never_accepts_wrongly_on_its_own_evidence() {
        let set = toy();
        let grid = policy_grid();
        let cv = set.cross_validate(&grid, 2);
        assert_eq!(cv.chosen_on_all.false_accepts(), 0);
        assert_eq!(cv.per_fold.len(), 2);
        assert_eq!(cv.total.attempts(), set.score(&grid[0]).attempts());
    }

    #[test]
    fn fused_searches_average_groups_of_photos() {
        let names = vec!["a".into(), "b".into()];
        let photos = vec![
            (0, e(0.0)),
            (1, e(1.0)),
            (0, e(0.5)), // a's probes: 0.5 and -0.3 average to 0.1
            (0, e(-0.3)),
            (0, e(0.45)), // a leftover: dropped
            (1, e(1.4)),
        ];
        let set = IdentificationSet::new(names, photos, 2).unwrap();
        let fused = set.fused(2).unwrap();
        assert_eq!(fused.probes(), 1);
        let policy = MatchPolicy {
            threshold: 0.2,
            margin: 0.1,
        };
        // Neither of a's probes alone passes 0.2; their mean (0.1) does.
        assert_eq!(set.score(&policy).protocol.correct, 0);
        assert_eq!(fused.score(&policy).protocol.correct, 1);
        // Strangers: a's photos in pairs (0.0+0.5, -0.3+0.45) and b's (1.0+1.4).
        assert_eq!(fused.score(&policy).strangers.searches, 3);
    }

    #[test]
    fn det_svg_marks_the_operating_point() {
        let set = toy();
        let svg = det_svg(
            "toy",
            &set.det_curves(&[0.0, 0.05]),
            (0.0, 0.5),
            "shipped <0.5>",
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("shipped &lt;0.5&gt;"));
    }
}

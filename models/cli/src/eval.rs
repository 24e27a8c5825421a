//! Accuracy measurement: LFW-style verification pairs (cross-validated accuracy, fixed
//! threshold accuracy, TAR at a fixed FAR) and 1:N identification lists (rank-1, false
//! accepts, false rejects under the operating policy).
//!
//! A photo in which no face is found is a failure and counts against the pipeline: its
//! pairs are wrong, its probes are rejected.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use models::embed::{distance, Embedding};
use models::gallery::MatchPolicy;
use models::image_io::{decode_file, DecodeLimits};
use models::pipeline::{Faces, Pipeline, PipelineConfig};

/// The embedding of the main face of each image (`None`: unreadable or no face), computed
/// by `jobs` threads, each with its own pipeline.
pub fn embed_all(
    config: &PipelineConfig,
    paths: &[PathBuf],
    jobs: usize,
) -> Result<Vec<Option<Embedding>>> {
    let mut config = config.clone();
    config.liveness = false;
    let next = AtomicUsize::new(0);
    let results = Mutex::new(vec![None; paths.len()]);
    let limits = DecodeLimits::default();
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..jobs.max(1))
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    let mut pipeline =
                        Pipeline::load(config.clone()).context("loading the face pipeline")?;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = paths.get(i) else {
                            return Ok(());
                        };
                        let embedding = match decode_file(path, &limits) {
                            Ok(image) => pipeline
                                .analyze(&image, Faces::Main)?
                                .faces
                                .first()
                                .map(|f| f.embedding),
                            Err(e) => {
                                eprintln!("{}: {e}", path.display());
                                None
                            }
                        };
                        if let Ok(mut r) = results.lock() {
                            r[i] = embedding;
                        }
                        if (i + 1).is_multiple_of(500) {
                            eprintln!("  {} / {} images", i + 1, paths.len());
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("a worker thread panicked"))??;
        }
        Ok(())
    })?;
    results
        .into_inner()
        .map_err(|_| anyhow::anyhow!("results lock poisoned"))
}

/// [`embed_all`], or the embeddings a previous run stored in `cache` for the very same
/// photos and pipeline settings (experiments re-score the same photos many times; a
/// mismatch or an unreadable cache recomputes and rewrites it).
pub fn embed_all_cached(
    config: &PipelineConfig,
    paths: &[PathBuf],
    jobs: usize,
    cache: Option<&Path>,
) -> Result<Vec<Option<Embedding>>> {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Cached {
        settings: String,
        paths: Vec<PathBuf>,
        embeddings: Vec<Option<Vec<f32>>>,
    }
    let settings = format!("{:?} {:?}", config.detector, config.embedding);
    if let Some(file) = cache {
        let stored = std::fs::read(file)
            .ok()
            .and_then(|b| serde_json::from_slice::<Cached>(&b).ok());
        if let Some(c) = stored.filter(|c| c.settings == settings && c.paths == paths) {
            eprintln!("embeddings read from {}", file.display());
            return c
                .embeddings
                .into_iter()
                .map(|e| match e {
                    None => Ok(None),
                    Some(v) => {
                        Ok(Some(v.try_into().map_err(|_| {
                            anyhow::anyhow!("cached embedding of a wrong length")
                        })?))
                    }
                })
                .collect();
        }
    }
    let embeddings = embed_all(config, paths, jobs)?;
    if let Some(file) = cache {
        let c = Cached {
            settings,
            paths: paths.to_vec(),
            embeddings: embeddings.iter().map(|e| e.map(|e| e.to_vec())).collect(),
        };
        std::fs::write(file, serde_json::to_vec(&c)?)
            .with_context(|| format!("writing {}", file.display()))?;
    }
    Ok(embeddings)
}

/// One verification pair: two image paths and whether they show the same person.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub a: PathBuf,
    pub b: PathBuf,
    pub same: bool,
    pub fold: usize,
}

/// Parses LFW's `pairs.txt`: a header `folds<TAB>n`, then per fold `n` same-person rows
/// (`name i j`) and `n` different-person rows (`name1 i name2 j`).
pub fn parse_pairs(text: &str, root: &Path) -> Result<Vec<Pair>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().context("empty pairs file")?;
    let h: Vec<usize> = header
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .context("pairs header")?;
    let [folds, per_fold] = h[..] else {
        bail!("pairs header must be `folds<TAB>n`, got {header:?}")
    };
    let image = |name: &str, i: &str| -> Result<PathBuf> {
        let n: usize = i.parse().with_context(|| format!("image number {i:?}"))?;
        let direct = root.join(name).join(format!("{n}.jpg"));
        Ok(if direct.exists() {
            direct
        } else {
            root.join("lfw-A").join(name).join(format!("{n}.jpg"))
        })
    };
    let mut pairs = Vec::new();
    for (k, line) in lines.enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let fold = k / (2 * per_fold);
        let pair = match f[..] {
            [name, i, j] => Pair {
                a: image(name, i)?,
                b: image(name, j)?,
                same: true,
                fold,
            },
            [n1, i, n2, j] => Pair {
                a: image(n1, i)?,
                b: image(n2, j)?,
                same: false,
                fold,
            },
            _ => bail!("line {}: not a pair: {line:?}", k + 2),
        };
        pairs.push(pair);
    }
    if pairs.len() != folds * 2 * per_fold {
        bail!(
            "expected {} pairs ({folds} folds of {per_fold}+{per_fold}), found {}",
            folds * 2 * per_fold,
            pairs.len()
        );
    }
    Ok(pairs)
}

/// Accuracy of `scored` at `threshold` (same person when distance ≤ threshold); a pair
/// without a distance is wrong.
fn accuracy(scored: &[(Option<f32>, bool)], threshold: f32) -> f64 {
    let right = scored
        .iter()
        .filter(|(d, same)| matches!(d, Some(d) if (*d <= threshold) == *same))
        .count();
    right as f64 / scored.len().max(1) as f64
}

/// The threshold maximising accuracy on `scored` (midpoints between sorted distances).
fn best_threshold(scored: &[(Option<f32>, bool)]) -> f32 {
    let mut ds: Vec<(f32, bool)> = scored
        .iter()
        .filter_map(|(d, s)| d.map(|d| (d, *s)))
        .collect();
    ds.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Sweep: at threshold below everything, all "different" pairs are right.
    let mut right = ds.iter().filter(|(_, s)| !s).count() as i64;
    let (mut best, mut best_t) = (right, ds.first().map(|d| d.0 - 1e-3).unwrap_or(0.6));
    for i in 0..ds.len() {
        right += if ds[i].1 { 1 } else { -1 };
        let t = if i + 1 < ds.len() {
            (ds[i].0 + ds[i + 1].0) / 2.0
        } else {
            ds[i].0 + 1e-3
        };
        if right > best {
            best = right;
            best_t = t;
        }
    }
    best_t
}

/// TAR at the largest threshold whose false accepts stay within `far` of the impostor
/// pairs.
fn tar_at_far(scored: &[(Option<f32>, bool)], far: f64) -> f64 {
    let impostors = scored.iter().filter(|(_, s)| !s).count();
    let allowed = (far * impostors as f64).floor() as usize;
    let mut imp: Vec<f32> = scored
        .iter()
        .filter(|(_, s)| !s)
        .filter_map(|(d, _)| *d)
        .collect();
    imp.sort_by(f32::total_cmp);
    // Accept when distance < cut: exactly `allowed` impostors are below the cut.
    let cut = imp.get(allowed).copied().unwrap_or(f32::INFINITY);
    let genuine = scored.iter().filter(|(_, s)| *s).count();
    let accepted = scored
        .iter()
        .filter(|(d, s)| *s && matches!(d, Some(d) if *d < cut))
        .count();
    accepted as f64 / genuine.max(1) as f64
}

/// What `verify-pairs` measured.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyReport {
    pub pairs: usize,
    /// Per fold: (threshold chosen on the other folds, accuracy on this fold).
    pub folds: Vec<(f32, f64)>,
    pub accuracy_cv: f64,
    pub accuracy_fixed: f64,
    pub threshold: f32,
    pub tar_at_far_0_001: f64,
    /// Images in which no face was found (or that could not be read).
    pub failures: usize,
}

impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (k, (t, acc)) in self.folds.iter().enumerate() {
            writeln!(
                f,
                "fold {}: accuracy {acc:.4} at threshold {t:.3} (chosen on the other folds)",
                k + 1
            )?;
        }
        write!(
            f,
            "pairs={} accuracy_cv={:.4} accuracy_fixed={:.4} threshold={:.3} tar_at_far_0.001={:.4} failures={}",
            self.pairs, self.accuracy_cv, self.accuracy_fixed, self.threshold, self.tar_at_far_0_001, self.failures
        )
    }
}

pub fn verify_pairs(
    config: &PipelineConfig,
    pairs_file: &Path,
    root: &Path,
    threshold: Option<f32>,
    jobs: usize,
    cache: Option<&Path>,
) -> Result<VerifyReport> {
    let text = std::fs::read_to_string(pairs_file)
        .with_context(|| format!("reading {}", pairs_file.display()))?;
    let pairs = parse_pairs(&text, root)?;
    let mut unique: Vec<PathBuf> = pairs
        .iter()
        .flat_map(|p| [p.a.clone(), p.b.clone()])
        .collect();
    unique.sort();
    unique.dedup();
    eprintln!(
        "verify-pairs: {} pairs, {} images",
        pairs.len(),
        unique.len()
    );
    let embeddings = embed_all_cached(config, &unique, jobs, cache)?;
    let by_path: HashMap<&PathBuf, Option<Embedding>> = unique.iter().zip(embeddings).collect();
    let failures = by_path.values().filter(|e| e.is_none()).count();
    let scored: Vec<(Option<f32>, bool)> = pairs
        .iter()
        .map(|p| match (by_path[&p.a], by_path[&p.b]) {
            (Some(a), Some(b)) => (Some(distance(&a, &b)), p.same),
            _ => (None, p.same),
        })
        .collect();

    let folds = pairs.iter().map(|p| p.fold).max().map_or(0, |m| m + 1);
    let mut fold_acc = Vec::new();
    for k in 0..folds {
        let train: Vec<_> = scored
            .iter()
            .zip(&pairs)
            .filter(|(_, p)| p.fold != k)
            .map(|(s, _)| *s)
            .collect();
        let test: Vec<_> = scored
            .iter()
            .zip(&pairs)
            .filter(|(_, p)| p.fold == k)
            .map(|(s, _)| *s)
            .collect();
        let t = best_threshold(&train);
        fold_acc.push((t, accuracy(&test, t)));
    }
    let accuracy_cv = fold_acc.iter().map(|f| f.1).sum::<f64>() / fold_acc.len().max(1) as f64;
    let fixed = threshold.unwrap_or(MatchPolicy::default().threshold);
    Ok(VerifyReport {
        pairs: pairs.len(),
        folds: fold_acc,
        accuracy_cv,
        accuracy_fixed: accuracy(&scored, fixed),
        threshold: fixed,
        tar_at_far_0_001: tar_at_far(&scored, 0.001),
        failures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_parse_in_lfw_format() {
        let text = "1\t2\nA\t1\t2\nB\t1\t3\nA\t1\tC\t2\nB\t2\tD\t1\n";
        let pairs = parse_pairs(text, Path::new("/r")).unwrap();
        assert_eq!(pairs.len(), 4);
        assert!(pairs[0].same && !pairs[2].same);
        assert_eq!(pairs[2].b, Path::new("/r/lfw-A/C/2.jpg"));
        assert!(parse_pairs("1\t2\nA\t1\t2\n", Path::new("/r")).is_err());
    }

    #[test]
    fn failures_count_as_wrong_and_thresholds_separate() {
        let scored = vec![
            (Some(0.3), true),
            (Some(0.4), true),
            (Some(0.7), false),
            (Some(0.8), false),
            (None, true),
        ];
        let t = best_threshold(&scored);
        assert!(t > 0.4 && t < 0.7, "{t}");
        assert!((accuracy(&scored, t) - 0.8).abs() < 1e-9);
        // With no impostor allowed below the cut, TAR counts genuine pairs under 0.7.
        assert!((tar_at_far(&scored, 0.001) - 2.0 / 3.0).abs() < 1e-9);
    }
}

//! Gallery search speed against the floor set by memory: `search` top-1 over 10,000 and
//! 100,000 random templates (10 per person), next to a plain sequential read of the very same
//! buffer, so the ratio search / read can be reported (goal: at most 1.5).
//!
//! Two baselines are measured: `read_sum_lanes` sums the buffer with 16 independent
//! accumulators (vectorised, the fastest a plain read gets, so the honest floor) and
//! `read_sum_naive` with one accumulator (what a "simple loop" gives: latency-bound on the
//! float adds, hence slower than memory on small buffers). Run with
//! `cargo bench -p models --bench gallery`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use models::gallery::{Gallery, EMBEDDING_LEN};

struct SplitMix(u64);
impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Roughly the scale of dlib descriptors (norm about 1.45 over 128 values).
    fn embedding(&mut self) -> Vec<f32> {
        (0..EMBEDDING_LEN)
            .map(|_| ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * 0.22)
            .collect()
    }
}

fn build(templates: usize) -> Gallery<u32> {
    let mut rng = SplitMix(templates as u64);
    let mut g = Gallery::with_capacity(templates);
    for id in 0..templates {
        g.insert((id / 10) as u32, id as u64, &rng.embedding())
            .expect("valid embedding");
    }
    g
}

fn sum_lanes(xs: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    for chunk in xs.chunks_exact(16) {
        for i in 0..16 {
            acc[i] += chunk[i];
        }
    }
    acc.iter().sum()
}

fn sum_naive(xs: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for &x in xs {
        s += x;
    }
    s
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("gallery");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for templates in [10_000usize, 100_000] {
        let g = build(templates);
        let probe = SplitMix(42).embedding();
        group.throughput(Throughput::Bytes((g.embeddings().len() * 4) as u64));
        group.bench_with_input(BenchmarkId::new("search_top1", templates), &g, |b, g| {
            b.iter(|| black_box(g.search(black_box(&probe), 1).expect("valid probe")))
        });
        group.bench_with_input(BenchmarkId::new("read_sum_lanes", templates), &g, |b, g| {
            b.iter(|| black_box(sum_lanes(black_box(g.embeddings()))))
        });
        group.bench_with_input(BenchmarkId::new("read_sum_naive", templates), &g, |b, g| {
            b.iter(|| black_box(sum_naive(black_box(g.embeddings()))))
        });
    }
    group.finish();
    interleaved_ratio();
}

/// Criterion measures each benchmark in its own time window, so on a shared machine a
/// burst of other work can land on one and not the other. This also times search and the
/// plain read alternately, round after round, and prints the ratio of their best times
/// (the best time is the least disturbed one).
fn interleaved_ratio() {
    for templates in [10_000usize, 100_000] {
        let g = build(templates);
        let probe = SplitMix(42).embedding();
        let (mut search, mut read) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..60 {
            let t = Instant::now();
            black_box(g.search(black_box(&probe), 1).expect("valid probe"));
            search = search.min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            black_box(sum_lanes(black_box(g.embeddings())));
            read = read.min(t.elapsed().as_secs_f64());
        }
        println!(
            "interleaved best of 60, {templates} templates: search_top1 {:.1} us, read_sum_lanes {:.1} us, ratio {:.2}",
            search * 1e6,
            read * 1e6,
            search / read
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

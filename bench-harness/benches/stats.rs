//! Benchmarks of the statistics: a summary of a large run must stay instant.
#![allow(missing_docs, clippy::unwrap_used)]

use bench_harness::stats::{median_ci, ratio_ci, SplitMix64};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| 100.0 + (rng.next_u64() % 1000) as f64 / 10.0)
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("stats");
    for n in [10usize, 100, 1000] {
        let a = values(n, 1);
        let b = values(n, 2);
        group.bench_with_input(BenchmarkId::new("median_ci", n), &a, |bench, a| {
            bench.iter(|| median_ci(std::hint::black_box(a), 0.95).unwrap())
        });
        group.bench_with_input(
            BenchmarkId::new("ratio_ci_bootstrap", n),
            &(a, b),
            |bench, (a, b)| {
                bench.iter(|| {
                    ratio_ci(std::hint::black_box(a), std::hint::black_box(b), 0.95).unwrap()
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

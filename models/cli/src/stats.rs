//! Error rates with confidence bounds, as a biometric test report states them (ISO/IEC
//! 19795-1 style): a rate measured on `n` attempts with `k` errors is only known to lie
//! below an upper bound, and with `k = 0` that bound is about `3 / n` at 95 % ("rule of
//! three"), never zero. Exact (Clopper-Pearson) bounds through the regularised incomplete
//! beta function, and the normal quantile that DET plots use for their axes.

/// One-sided upper confidence bound (Clopper-Pearson, exact) of an error rate observed as
/// `errors` out of `trials`: the largest rate under which seeing at most `errors` errors
/// still has probability `1 - confidence`. `trials == 0` gives 1 (nothing is known).
pub fn upper_bound(errors: u64, trials: u64, confidence: f64) -> f64 {
    if trials == 0 || errors >= trials {
        return 1.0;
    }
    let alpha = 1.0 - confidence;
    if errors == 0 {
        // P(X = 0) = (1 - p)^n = alpha, in closed form.
        return -(alpha.ln() / trials as f64).exp_m1();
    }
    // P(X <= k; n, p) = 1 - I_p(k + 1, n - k), decreasing in p: bisect for alpha.
    let (a, b) = ((errors + 1) as f64, (trials - errors) as f64);
    let (mut lo, mut hi) = (errors as f64 / trials as f64, 1.0);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if 1.0 - inc_beta(a, b, mid) > alpha {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-12 * hi {
            break;
        }
    }
    hi
}

/// `errors / trials` (0 when there were no trials).
pub fn rate(errors: u64, trials: u64) -> f64 {
    if trials == 0 {
        0.0
    } else {
        errors as f64 / trials as f64
    }
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7; about 15 significant digits).
fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection keeps the series in its accurate range.
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut s = C[0];
    for (i, c) in C.iter().enumerate().skip(1) {
        s += c / (x + i as f64);
    }
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + s.ln()
}

/// The regularised incomplete beta function I_x(a, b) (continued fraction, modified
/// Lentz; the symmetry I_x(a, b) = 1 - I_{1-x}(b, a) keeps it in its fast range).
pub fn inc_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front.exp() * beta_fraction(a, b, x) / a
    } else {
        1.0 - ln_front.exp() * beta_fraction(b, a, 1.0 - x) / b
    }
}

fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..100_000 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// The standard normal quantile Φ⁻¹(p) (Acklam's rational approximation, relative error
/// below 1.2e-9), the axis scale of a DET plot. Clamped to ±8.3 outside (0, 1).
pub fn probit(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    if p.is_nan() || p <= 0.0 {
        return -8.3;
    }
    if p >= 1.0 {
        return 8.3;
    }
    let low = 0.02425;
    if p < low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -probit(1.0 - p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// P(X <= k) for a binomial, summed term by term in log space (the slow reference).
    fn binomial_cdf(k: u64, n: u64, p: f64) -> f64 {
        (0..=k)
            .map(|i| {
                let (i, nf) = (i as f64, n as f64);
                (ln_gamma(nf + 1.0) - ln_gamma(i + 1.0) - ln_gamma(nf - i + 1.0)
                    + i * p.ln()
                    + (nf - i) * (1.0 - p).ln())
                .exp()
            })
            .sum()
    }

    #[test]
    fn gamma_and_beta_match_known_values() {
        assert!((ln_gamma(1.0)).abs() < 1e-13);
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
        // I_x(1, 1) = x; I_x(2, 1) = x²; symmetry.
        assert!((inc_beta(1.0, 1.0, 0.3) - 0.3).abs() < 1e-12);
        assert!((inc_beta(2.0, 1.0, 0.3) - 0.09).abs() < 1e-12);
        assert!((inc_beta(3.5, 2.0, 0.4) + inc_beta(2.0, 3.5, 0.6) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn zero_errors_give_the_rule_of_three() {
        let u = upper_bound(0, 3000, 0.95);
        assert!((u - (1.0 - 0.05f64.powf(1.0 / 3000.0))).abs() < 1e-15);
        assert!((u * 3000.0 - 3.0).abs() < 0.01, "{u}");
        assert_eq!(upper_bound(5, 0, 0.95), 1.0);
        assert_eq!(upper_bound(7, 7, 0.95), 1.0);
    }

    #[test]
    fn the_bound_leaves_exactly_alpha_below_it() {
        for &(k, n) in &[
            (1u64, 10u64),
            (3, 100),
            (6, 2416),
            (37, 2227),
            (12, 8_800_000),
        ] {
            let u = upper_bound(k, n, 0.95);
            assert!(u > k as f64 / n as f64);
            let tail = binomial_cdf(k, n, u);
            assert!(
                (tail - 0.05).abs() < 1e-6,
                "k={k} n={n}: P(X<=k; u={u}) = {tail}"
            );
        }
        // Known value: 1 error in 10 trials, 95 % one-sided: 0.3942.
        assert!((upper_bound(1, 10, 0.95) - 0.394_163).abs() < 1e-5);
    }

    #[test]
    fn probit_is_the_normal_quantile() {
        assert!(probit(0.5).abs() < 1e-9);
        assert!((probit(0.975) - 1.959_964).abs() < 1e-5);
        assert!((probit(0.001) + 3.090_232).abs() < 1e-5);
        assert_eq!(probit(0.0), -8.3);
        assert_eq!(probit(1.0), 8.3);
    }
}

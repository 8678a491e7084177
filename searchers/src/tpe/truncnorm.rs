//! The standard normal's error function, log-CDF and truncated-normal helpers TPE needs.
//!
//! `erf`/`erfc` follow the classic Sun fdlibm rational approximations (the ones C libraries and
//! therefore Python's `math.erf` use), so values agree with Optuna's to the last bit or two.
//! `log_ndtr`, `log_gauss_mass` and `ppf` follow the case splits Optuna 5.0.0's `_truncnorm`
//! makes (left tail by symmetry, an asymptotic series below -20, a Newton inversion of the
//! log-CDF for quantiles), so that they stay finite and accurate far in the tails.

// fdlibm's published coefficients, kept digit for digit.
#![allow(clippy::excessive_precision)]

use std::f64::consts::{PI, SQRT_2};

const ERX: f64 = 8.450_629_115_104_675_292_97e-1;
const EFX: f64 = 1.283_791_670_955_125_863_16e-1;
const EFX8: f64 = 1.027_033_336_764_100_690_53;
const PP: [f64; 5] = [
    1.283_791_670_955_125_585_61e-1,
    -3.250_421_072_470_014_993_70e-1,
    -2.848_174_957_559_851_047_66e-2,
    -5.770_270_296_489_441_591_57e-3,
    -2.376_301_665_665_016_260_84e-5,
];
const QQ: [f64; 5] = [
    3.979_172_239_591_553_528_19e-1,
    6.502_224_998_876_729_444_85e-2,
    5.081_306_281_875_766_627_76e-3,
    1.324_947_380_043_216_445_26e-4,
    -3.960_228_278_775_368_123_20e-6,
];
const PA: [f64; 7] = [
    -2.362_118_560_752_659_440_77e-3,
    4.148_561_186_837_483_316_66e-1,
    -3.722_078_760_357_013_238_47e-1,
    3.183_466_199_011_617_536_74e-1,
    -1.108_946_942_823_966_774_76e-1,
    3.547_830_432_561_823_593_71e-2,
    -2.166_375_594_868_790_843_00e-3,
];
const QA: [f64; 6] = [
    1.064_208_804_008_442_282_86e-1,
    5.403_979_177_021_710_489_37e-1,
    7.182_865_441_419_626_628_68e-2,
    1.261_712_198_087_616_421_12e-1,
    1.363_708_391_202_905_073_62e-2,
    1.198_449_984_679_910_741_70e-2,
];
const RA: [f64; 8] = [
    -9.864_944_034_847_148_227_05e-3,
    -6.938_585_727_071_817_643_72e-1,
    -1.055_862_622_532_329_098_14e1,
    -6.237_533_245_032_600_603_96e1,
    -1.623_966_694_625_734_703_55e2,
    -1.846_050_929_067_110_359_94e2,
    -8.128_743_550_630_659_342_46e1,
    -9.814_329_344_169_145_485_92,
];
const SA: [f64; 8] = [
    1.965_127_166_743_925_712_92e1,
    1.376_577_541_435_190_426_00e2,
    4.345_658_774_752_292_288_21e2,
    6.453_872_717_332_678_803_36e2,
    4.290_081_400_275_678_333_86e2,
    1.086_350_055_417_794_351_34e2,
    6.570_249_770_319_281_701_35,
    -6.042_441_521_485_809_874_38e-2,
];
const RB: [f64; 7] = [
    -9.864_942_924_700_099_285_97e-3,
    -7.992_832_376_805_230_065_74e-1,
    -1.775_795_491_775_475_198_89e1,
    -1.606_363_848_558_219_160_62e2,
    -6.375_664_433_683_896_277_22e2,
    -1.025_095_131_611_077_249_54e3,
    -4.835_191_916_086_513_970_19e2,
];
const SB: [f64; 7] = [
    3.033_806_074_348_245_829_24e1,
    3.257_925_129_965_739_188_26e2,
    1.536_729_586_084_436_959_94e3,
    3.199_858_219_508_595_539_08e3,
    2.553_050_406_433_164_425_83e3,
    4.745_285_412_069_553_672_15e2,
    -2.244_095_244_658_581_833_62e1,
];
const TINY: f64 = 1e-300;

/// `c[0] + x * (c[1] + x * (...))`.
fn horner(x: f64, c: &[f64]) -> f64 {
    c.iter().rev().fold(0.0, |acc, &ci| acc * x + ci)
}

/// `1 + x * (c[0] + x * (c[1] + ...))`.
fn horner1(x: f64, c: &[f64]) -> f64 {
    1.0 + x * horner(x, c)
}

fn high_word(x: f64) -> u32 {
    (x.to_bits() >> 32) as u32
}

/// `x` with the low 32 bits of its representation cleared.
fn clear_low_word(x: f64) -> f64 {
    f64::from_bits(x.to_bits() & 0xffff_ffff_0000_0000)
}

/// `exp(-x^2 - 0.5625 + r)` evaluated as fdlibm does (split so `x^2` loses no bits).
fn exp_tail(x: f64, r: f64) -> f64 {
    let z = clear_low_word(x);
    (-z * z - 0.5625).exp() * ((z - x) * (z + x) + r).exp()
}

/// `ln(erfc(x))` for `1.25 <= x < 28`: fdlibm's tail formula, with the exponentials folded into
/// the logarithm instead of evaluated (the same value, without two `exp` calls).
fn ln_erfc_tail(x: f64) -> f64 {
    let s = 1.0 / (x * x);
    let rs = if x < 1.0 / 0.35 { horner(s, &RA) / horner1(s, &SA) } else { horner(s, &RB) / horner1(s, &SB) };
    let z = clear_low_word(x);
    (-z * z - 0.5625) + ((z - x) * (z + x) + rs) - x.ln()
}

/// The error function.
pub fn erf(x: f64) -> f64 {
    let hx = high_word(x);
    let ix = hx & 0x7fff_ffff;
    let negative = hx >> 31 != 0;
    if ix >= 0x7ff0_0000 {
        return if x.is_nan() {
            x
        } else if negative {
            -1.0
        } else {
            1.0
        };
    }
    if ix < 0x3feb_0000 {
        if ix < 0x3e30_0000 {
            if ix < 0x0080_0000 {
                return 0.125 * (8.0 * x + EFX8 * x);
            }
            return x + EFX * x;
        }
        let z = x * x;
        let y = horner(z, &PP) / horner1(z, &QQ);
        return x + x * y;
    }
    if ix < 0x3ff4_0000 {
        let s = x.abs() - 1.0;
        let pq = horner(s, &PA) / horner1(s, &QA);
        return if negative { -ERX - pq } else { ERX + pq };
    }
    if ix >= 0x4018_0000 {
        return if negative { TINY - 1.0 } else { 1.0 - TINY };
    }
    let ax = x.abs();
    let s = 1.0 / (ax * ax);
    let rs = if ix < 0x4006_db6e { horner(s, &RA) / horner1(s, &SA) } else { horner(s, &RB) / horner1(s, &SB) };
    let r = exp_tail(ax, rs);
    if negative {
        r / ax - 1.0
    } else {
        1.0 - r / ax
    }
}

/// The complementary error function, `1 - erf(x)` without the cancellation.
pub fn erfc(x: f64) -> f64 {
    let hx = high_word(x);
    let ix = hx & 0x7fff_ffff;
    let negative = hx >> 31 != 0;
    if ix >= 0x7ff0_0000 {
        return if x.is_nan() {
            x
        } else if negative {
            2.0
        } else {
            0.0
        };
    }
    if ix < 0x3feb_0000 {
        if ix < 0x3c70_0000 {
            return 1.0 - x;
        }
        let z = x * x;
        let y = horner(z, &PP) / horner1(z, &QQ);
        if x < 0.25 {
            return 1.0 - (x + x * y);
        }
        let r = x * y + (x - 0.5);
        return 0.5 - r;
    }
    if ix < 0x3ff4_0000 {
        let s = x.abs() - 1.0;
        let pq = horner(s, &PA) / horner1(s, &QA);
        return if negative { 1.0 + (ERX + pq) } else { (1.0 - ERX) - pq };
    }
    if ix < 0x403c_0000 {
        let ax = x.abs();
        let s = 1.0 / (ax * ax);
        let rs = if ix < 0x4006_db6d {
            horner(s, &RA) / horner1(s, &SA)
        } else {
            if negative && ix >= 0x4018_0000 {
                return 2.0 - TINY;
            }
            horner(s, &RB) / horner1(s, &SB)
        };
        let r = exp_tail(ax, rs);
        return if negative { 2.0 - r / ax } else { r / ax };
    }
    if negative {
        2.0 - TINY
    } else {
        TINY * TINY
    }
}

/// `log(sqrt(2 pi))`, the standard normal density's log normaliser.
pub(crate) fn norm_log_c() -> f64 {
    (2.0 * PI).sqrt().ln()
}

/// The standard normal CDF, branch by branch on `erf`/`erfc` for accuracy in both tails.
pub fn ndtr(a: f64) -> f64 {
    let x = a / SQRT_2;
    let edge = 1.0 / SQRT_2;
    if x < -edge {
        0.5 * erfc(-x)
    } else if x < edge {
        0.5 + 0.5 * erf(x)
    } else {
        1.0 - 0.5 * erfc(x)
    }
}

/// The standard normal CDF as `0.5 + 0.5 erf(a / sqrt 2)` (Optuna's vectorised form, used in the
/// central case of [`log_gauss_mass`], where neither tail matters).
fn ndtr_central(a: f64) -> f64 {
    0.5 + 0.5 * erf(a / SQRT_2)
}

/// `log(ndtr(a))`, finite far into the left tail (an asymptotic series below -20).
pub fn log_ndtr(a: f64) -> f64 {
    if a > 6.0 {
        return -ndtr(-a);
    }
    if a > -20.0 {
        let x = -a / SQRT_2;
        if x >= 1.25 {
            // ndtr(a) = erfc(x) / 2, in its tail branch.
            return ln_erfc_tail(x) - std::f64::consts::LN_2;
        }
        return ndtr(a).ln();
    }
    let log_lhs = -0.5 * (a * a) - (-a).ln() - 0.5 * (2.0 * PI).ln();
    let mut last_total: f64 = 0.0;
    let mut rhs: f64 = 1.0;
    let mut numerator = 1.0;
    let mut denom_factor = 1.0;
    let denom_cons = 1.0 / (a * a);
    let mut sign = 1.0;
    let mut i = 0.0;
    while (last_total - rhs).abs() > f64::EPSILON {
        i += 1.0;
        last_total = rhs;
        sign = -sign;
        denom_factor *= denom_cons;
        numerator *= 2.0 * i - 1.0;
        rhs += sign * numerator * denom_factor;
    }
    log_lhs + rhs.ln()
}

/// `log(exp(p) - exp(q))` for `p >= q`.
fn log_diff(log_p: f64, log_q: f64) -> f64 {
    log_p + (-(log_q - log_p).exp()).ln_1p()
}

/// `log(exp(x) + exp(y))`, with NumPy's `logaddexp` rules for equal and infinite arguments.
pub(crate) fn log_add_exp(x: f64, y: f64) -> f64 {
    if x == y {
        return x + std::f64::consts::LN_2;
    }
    let d = x - y;
    if d > 0.0 {
        x + (-d).exp().ln_1p()
    } else if d <= 0.0 {
        y + d.exp().ln_1p()
    } else {
        d
    }
}

/// The log of the standard normal's mass in `[a, b]`, accurate in both tails.
pub fn log_gauss_mass(a: f64, b: f64) -> f64 {
    if b <= 0.0 {
        log_diff(log_ndtr(b), log_ndtr(a))
    } else if a > 0.0 {
        log_diff(log_ndtr(-a), log_ndtr(-b))
    } else if a / SQRT_2 <= -6.0 && -b / SQRT_2 <= -6.0 {
        // Both ends beyond where erf is exactly -1: the formula below gives log1p(-0) = -0.
        -0.0
    } else {
        (-ndtr_central(a) - ndtr_central(-b)).ln_1p()
    }
}

/// Solves `log_ndtr(x) = y` for every `y` in place by Newton's method from a tail or logistic
/// first guess; the iteration stops once every element has converged (relative 1e-8).
fn ndtri_exp(ys: &mut [f64]) {
    let log_c = norm_log_c();
    let approx_c = 3f64.sqrt() / PI;
    let flipped: Vec<bool> = ys.iter().map(|&y| y > -1e-2).collect();
    let z: Vec<f64> = ys.iter().zip(&flipped).map(|(&y, &f)| if f { (-y.exp_m1()).ln() } else { y }).collect();
    for (x, &zi) in ys.iter_mut().zip(&z) {
        *x = if zi < -5.0 { -(-2.0 * (zi + log_c)).sqrt() } else { -approx_c * (-zi).exp_m1().ln() };
    }
    for _ in 0..100 {
        let mut converged = true;
        for (x, &zi) in ys.iter_mut().zip(&z) {
            let log_ndtr_x = log_ndtr(*x);
            let log_pdf_x = -0.5 * *x * *x - log_c;
            let dx = (log_ndtr_x - zi) * (log_ndtr_x - log_pdf_x).exp();
            *x -= dx;
            // A NaN step never counts as converged, as in NumPy's comparison.
            converged &= dx.abs() < 1e-8 * x.abs();
        }
        if converged {
            break;
        }
    }
    for (x, f) in ys.iter_mut().zip(flipped) {
        if f {
            *x = -*x;
        }
    }
}

/// The truncated standard normal's quantiles: `out[i]` is the point of `[a[i], b[i]]` below
/// which a fraction `q[i]` of the truncated mass lies.
///
/// Left-anchored intervals (`a < 0`) invert the CDF from the left, the others from the right by
/// symmetry; each side's Newton iteration runs as one batch, as Optuna's does.
///
/// # Panics
/// If the slices differ in length.
pub fn ppf(q: &[f64], a: &[f64], b: &[f64]) -> Vec<f64> {
    assert!(q.len() == a.len() && a.len() == b.len(), "ppf: q, a and b must have one entry each");
    let mut out = vec![0.0; q.len()];
    for left in [true, false] {
        let idx: Vec<usize> = (0..q.len()).filter(|&i| (a[i] < 0.0) == left).collect();
        if idx.is_empty() {
            continue;
        }
        let mut ys: Vec<f64> = idx
            .iter()
            .map(|&i| {
                let mass = log_gauss_mass(a[i], b[i]);
                if left {
                    log_add_exp(log_ndtr(a[i]), q[i].ln() + mass)
                } else {
                    log_add_exp(log_ndtr(-b[i]), (-q[i]).ln_1p() + mass)
                }
            })
            .collect();
        ndtri_exp(&mut ys);
        for (&i, y) in idx.iter().zip(ys) {
            out[i] = if left { y } else { -y };
        }
    }
    for i in 0..q.len() {
        if q[i] == 0.0 {
            out[i] = a[i];
        }
        if q[i] == 1.0 {
            out[i] = b[i];
        }
        if a[i] == b[i] {
            out[i] = f64::NAN;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_known_values() {
        // Values from the definition (high-precision references).
        let cases = [
            (0.0, 0.0),
            (1e-10, 1.128_379_167_095_512_6e-10),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (3.5, 0.999_999_256_901_627_7),
            (7.0, 1.0),
        ];
        for (x, want) in cases {
            assert!((erf(x) - want).abs() <= 2e-16, "erf({x}) = {}", erf(x));
            assert!((erf(-x) + want).abs() <= 2e-16);
        }
        assert!((erfc(5.0) - 1.537_459_794_428_034_8e-12).abs() <= 1e-26);
        assert!((erfc(-1.0) - 1.842_700_792_949_715).abs() <= 4e-16);
        assert_eq!(erfc(30.0), 0.0);
        assert!(erf(f64::NAN).is_nan());
    }

    #[test]
    fn log_ndtr_tails_stay_finite() {
        assert!((log_ndtr(0.0) - 0.5f64.ln()).abs() < 1e-16);
        // log Phi(-40) = -804.6084420137538 (asymptotic expansion).
        assert!((log_ndtr(-40.0) + 804.608_442_013_753_8).abs() < 1e-10);
        assert!(log_ndtr(-1e5).is_finite());
        assert!((log_ndtr(10.0) + 7.619_853_024_160_527e-24).abs() < 1e-36);
    }

    #[test]
    fn log_gauss_mass_central_and_tails() {
        assert!((log_gauss_mass(-1.0, 1.0) - 0.682_689_492_137_085_9f64.ln()).abs() < 1e-15);
        let right = log_gauss_mass(30.0, 31.0);
        let left = log_gauss_mass(-31.0, -30.0);
        assert_eq!(right, left);
        assert!(right.is_finite() && right < -450.0);
    }

    #[test]
    fn ppf_inverts_the_truncated_cdf() {
        let (a, b) = (-0.5, 2.0);
        let qs = [0.1, 0.5, 0.9];
        let xs = ppf(&qs, &[a; 3], &[b; 3]);
        for (q, x) in qs.iter().zip(xs) {
            let got = (ndtr(x) - ndtr(a)) / (ndtr(b) - ndtr(a));
            assert!((got - q).abs() < 1e-9, "{q} -> {x} -> {got}");
        }
        assert_eq!(ppf(&[0.0, 1.0], &[-1.0, 1.0], &[1.0, 2.0]), vec![-1.0, 2.0]);
    }
}

//! Float functions that reproduce Go's `math` and `strconv` results bit for bit (as built for amd64, which
//! is what Prometheus and promtool run), because PromQL results are compared exactly.

// The constants are Go's, digit for digit; the compiler rounds them to the same float64 values.
#![allow(clippy::excessive_precision, clippy::approx_constant)]

/// Go's `math.NaN()` bit pattern.
pub const GO_NAN: u64 = 0x7FF8_0000_0000_0001;

pub fn nan() -> f64 {
    f64::from_bits(GO_NAN)
}

/// Go's float64 → int64 conversion on amd64: truncation, and the "integer indefinite" value for NaN and
/// out-of-range inputs.
pub fn to_i64(x: f64) -> i64 {
    // ±2^63: the int64 range's float bounds.
    if x.is_nan() || !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&x) {
        i64::MIN
    } else {
        x as i64
    }
}

/// Go's `math.Max`.
pub fn max(x: f64, y: f64) -> f64 {
    if x == f64::INFINITY || y == f64::INFINITY {
        return f64::INFINITY;
    }
    if x.is_nan() || y.is_nan() {
        return nan();
    }
    if x == 0.0 && x == y {
        return if x.is_sign_negative() { y } else { x };
    }
    if x > y {
        x
    } else {
        y
    }
}

/// Go's `math.Min`.
pub fn min(x: f64, y: f64) -> f64 {
    if x == f64::NEG_INFINITY || y == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    if x.is_nan() || y.is_nan() {
        return nan();
    }
    if x == 0.0 && x == y {
        return if x.is_sign_negative() { x } else { y };
    }
    if x < y {
        x
    } else {
        y
    }
}

const SMALLEST_NORMAL: f64 = 2.2250738585072014e-308;

fn normalize(x: f64) -> (f64, i64) {
    if x.abs() < SMALLEST_NORMAL {
        (x * (1u64 << 52) as f64, -52)
    } else {
        (x, 0)
    }
}

/// Go's `math.Frexp`.
pub fn frexp(f: f64) -> (f64, i64) {
    if f == 0.0 || f.is_infinite() || f.is_nan() {
        return (f, 0);
    }
    let (f, mut exp) = normalize(f);
    let mut x = f.to_bits();
    exp += ((x >> 52) & 0x7ff) as i64 - 1023 + 1;
    x &= !(0x7ffu64 << 52);
    x |= 1022u64 << 52;
    (f64::from_bits(x), exp)
}

/// Go's `math.Ldexp`.
pub fn ldexp(frac: f64, exp: i64) -> f64 {
    if frac == 0.0 || frac.is_infinite() || frac.is_nan() {
        return frac;
    }
    let (frac, e) = normalize(frac);
    let mut exp = exp + e;
    let mut x = frac.to_bits();
    exp += ((x >> 52) & 0x7ff) as i64 - 1023;
    if exp < -1075 {
        return 0.0f64.copysign(frac);
    }
    if exp > 1023 {
        return if frac < 0.0 { f64::NEG_INFINITY } else { f64::INFINITY };
    }
    let mut m = 1.0;
    if exp < -1022 {
        exp += 53;
        m = 1.0 / (1u64 << 53) as f64;
    }
    x &= !(0x7ffu64 << 52);
    x |= ((exp + 1023) as u64) << 52;
    m * f64::from_bits(x)
}

/// Go's `math.Modf`.
pub fn modf(f: f64) -> (f64, f64) {
    if f < 1.0 {
        if f < 0.0 {
            let (i, fr) = modf(-f);
            return (-i, -fr);
        }
        if f == 0.0 {
            return (f, f);
        }
        return (0.0, f);
    }
    let mut x = f.to_bits();
    let e = ((x >> 52) & 0x7ff) as i64 - 1023;
    if e < 64 - 12 {
        x &= !((1u64 << (64 - 12 - e)) - 1);
    }
    let int = f64::from_bits(x);
    (int, f - int)
}

/// Go's `math.Mod`.
pub fn fmod(x: f64, y: f64) -> f64 {
    if y == 0.0 || x.is_infinite() || x.is_nan() || y.is_nan() {
        return nan();
    }
    let y = y.abs();
    let (yfr, yexp) = frexp(y);
    let mut r = if x < 0.0 { -x } else { x };
    while r >= y {
        let (rfr, mut rexp) = frexp(r);
        if rfr < yfr {
            rexp -= 1;
        }
        r -= ldexp(y, rexp - yexp);
    }
    if x < 0.0 {
        r = -r;
    }
    r
}

/// Go's `math.Log` (the amd64 assembly version).
pub fn log(x: f64) -> f64 {
    const HSQRT2: f64 = 7.07106781186547524401e-01;
    const LN2HI: f64 = 6.93147180369123816490e-01;
    const LN2LO: f64 = 1.90821492927058770002e-10;
    const L1: f64 = 6.666666666666735130e-01;
    const L2: f64 = 3.999999999940941908e-01;
    const L3: f64 = 2.857142874366239149e-01;
    const L4: f64 = 2.222219843214978396e-01;
    const L5: f64 = 1.818357216161805012e-01;
    const L6: f64 = 1.531383769920937332e-01;
    const L7: f64 = 1.479819860511658591e-01;
    let bits = x.to_bits();
    if bits & !(1u64 << 63) == 0 {
        return f64::NEG_INFINITY;
    }
    if (bits as i64) < 0 {
        return f64::from_bits(GO_NAN);
    }
    if bits >= 0x7FF0_0000_0000_0000 {
        return x;
    }
    let mut f1 = f64::from_bits((bits & 0x000F_FFFF_FFFF_FFFF) | 0x3FE0_0000_0000_0000);
    let mut k = (((bits >> 52) & 0x7FF) as i32 - 0x3FE) as f64;
    if f1 < HSQRT2 {
        k -= 1.0;
        f1 *= 2.0;
    } else {
        f1 *= 1.0;
    }
    let f = f1 - 1.0;
    let s = f / (2.0 + f);
    let s2 = s * s;
    let s4 = s2 * s2;
    let t1 = s2 * (((L7 * s4 + L5) * s4 + L3) * s4 + L1);
    let t2 = s4 * ((L6 * s4 + L4) * s4 + L2);
    let r = t1 + t2;
    let hfsq = 0.5 * f * f;
    k * LN2HI - ((hfsq - (s * (hfsq + r) + k * LN2LO)) - f)
}

/// Go's `math.Log10`.
pub fn log10(x: f64) -> f64 {
    log(x) * f64::from_bits(0x3fdb_cb7b_1526_e50e) // 1/Ln10, rounded once as Go's constant arithmetic does
}

/// Go's `math.Log2`.
pub fn log2(x: f64) -> f64 {
    let (frac, exp) = frexp(x);
    if frac == 0.5 {
        return (exp - 1) as f64;
    }
    log(frac) * f64::from_bits(0x3ff7_1547_652b_82fe) + exp as f64 // 1/Ln2, rounded once
}

#[cfg(target_arch = "x86_64")]
fn use_fma() -> bool {
    static FMA: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FMA.get_or_init(|| std::arch::is_x86_feature_detected!("avx") && std::arch::is_x86_feature_detected!("fma"))
}

#[cfg(not(target_arch = "x86_64"))]
fn use_fma() -> bool {
    false
}

/// Go's `math.Exp` (the amd64 assembly version, which takes an FMA path on CPUs with AVX and FMA).
pub fn exp(x: f64) -> f64 {
    const LOG2E: f64 = 1.4426950408889634073599246810018920;
    const LN2U: f64 = 0.69314718055966295651160180568695068359375;
    const LN2L: f64 = 0.28235290563031577122588448175013436025525412068e-12;
    const OVERFLOW: f64 = 7.09782712893384e+02;
    const C: [f64; 9] = [
        0.5,
        1.0,
        2.0,
        1.6666666666666666667e-1,
        4.1666666666666666667e-2,
        8.3333333333333333333e-3,
        1.3888888888888888889e-3,
        1.9841269841269841270e-4,
        2.4801587301587301587e-5,
    ];
    let bits = x.to_bits();
    if bits & !(1u64 << 63) >= 0x7FF0_0000_0000_0000 {
        if bits == 0xFFF0_0000_0000_0000 {
            return 0.0;
        }
        return x;
    }
    if x > OVERFLOW {
        return f64::INFINITY;
    }
    let t = LOG2E * x;
    // CVTSD2SL: round to nearest even; out-of-range gives the integer indefinite value.
    let n: i32 = if t.is_nan() || !(-2147483648.5..2147483647.5).contains(&t) { i32::MIN } else { t.round_ties_even() as i32 };
    let nf = n as f64;
    let mut x0;
    if use_fma() {
        x0 = (-nf).mul_add(LN2U, x);
        x0 = (-nf).mul_add(LN2L, x0);
        x0 *= 0.0625;
        let mut x1 = C[8];
        x1 = x1.mul_add(x0, C[7]);
        x1 = x1.mul_add(x0, C[6]);
        x1 = x1.mul_add(x0, C[5]);
        x1 = x1.mul_add(x0, C[4]);
        x1 = x1.mul_add(x0, C[3]);
        x1 = x1.mul_add(x0, C[0]);
        x1 = x1.mul_add(x0, C[1]);
        x0 *= x1;
        for _ in 0..3 {
            let y = x0 + C[2];
            x0 *= y;
        }
        let y = x0 + C[2];
        x0 = x0.mul_add(y, C[1]);
    } else {
        x0 = x - LN2U * nf;
        x0 -= LN2L * nf;
        x0 *= 0.0625;
        let mut x1 = C[8];
        for c in [C[7], C[6], C[5], C[4], C[3], C[0], C[1]] {
            x1 *= x0;
            x1 += c;
        }
        x0 *= x1;
        for _ in 0..4 {
            let y = C[2] + x0;
            x0 *= y;
        }
        x0 += C[1];
    }
    // ldexp by exponent bits.
    let biased = n.wrapping_add(0x3FF);
    if biased <= 0 {
        if biased < -52 {
            return 0.0;
        }
        let m = f64::from_bits(((biased + 0x3FE) as u64) << 52);
        x0 *= m;
        return x0 * f64::from_bits(1u64 << 52);
    }
    if biased >= 0x7FF {
        return f64::INFINITY;
    }
    x0 * f64::from_bits((biased as u64) << 52)
}

fn is_odd_int(x: f64) -> bool {
    let (xi, xf) = modf(x);
    xf == 0.0 && to_i64(xi) & 1 == 1
}

/// Go's `math.Pow`.
pub fn pow(x: f64, y: f64) -> f64 {
    if y == 0.0 || x == 1.0 {
        return 1.0;
    }
    if y == 1.0 {
        return x;
    }
    if x.is_nan() || y.is_nan() {
        return nan();
    }
    if x == 0.0 {
        if y < 0.0 {
            if is_odd_int(y) {
                return f64::INFINITY.copysign(x);
            }
            return f64::INFINITY;
        } else if y > 0.0 {
            if is_odd_int(y) {
                return x;
            }
            return 0.0;
        }
    }
    if y.is_infinite() {
        if x == -1.0 {
            return 1.0;
        }
        if (x.abs() < 1.0) == (y == f64::INFINITY) {
            return 0.0;
        }
        return f64::INFINITY;
    }
    if x.is_infinite() {
        if x == f64::NEG_INFINITY {
            return pow(1.0 / x, -y);
        }
        if y < 0.0 {
            return 0.0;
        } else if y > 0.0 {
            return f64::INFINITY;
        }
    }
    if y == 0.5 {
        return x.sqrt();
    }
    if y == -0.5 {
        return 1.0 / x.sqrt();
    }
    let (mut yi, mut yf) = modf(y.abs());
    if yf != 0.0 && x < 0.0 {
        return nan();
    }
    if yi >= 9.223_372_036_854_775_808e18 {
        if x == -1.0 {
            return 1.0;
        }
        if (x.abs() < 1.0) == (y > 0.0) {
            return 0.0;
        }
        return f64::INFINITY;
    }
    let mut a1 = 1.0;
    let mut ae: i64 = 0;
    if yf != 0.0 {
        if yf > 0.5 {
            yf -= 1.0;
            yi += 1.0;
        }
        a1 = exp(yf * log(x));
    }
    let (mut x1, mut xe) = frexp(x);
    let mut i = yi as i64;
    while i != 0 {
        if !(-(1 << 12)..=(1 << 12)).contains(&xe) {
            ae += xe;
            break;
        }
        if i & 1 == 1 {
            a1 *= x1;
            ae += xe;
        }
        x1 *= x1;
        xe <<= 1;
        if x1 < 0.5 {
            x1 += x1;
            xe -= 1;
        }
        i >>= 1;
    }
    if y < 0.0 {
        a1 = 1.0 / a1;
        ae = -ae;
    }
    ldexp(a1, ae)
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        // Rust's Display prints the shortest round-tripping digits without an exponent, as 'f', -1 does.
        format!("{v}")
    }
}

/// Go's `strconv.FormatFloat(v, 'E', -1, 64)` (used in promtool's messages).
pub fn format_float_e(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".to_string() } else { "-Inf".to_string() };
    }
    let s = format!("{v:E}");
    // Rust gives "1.5E2" / "1E-7"; Go gives "1.5E+02" / "1E-07".
    match s.split_once('E') {
        Some((m, e)) => {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            if digits.len() < 2 {
                format!("{m}E{sign}0{digits}")
            } else {
                format!("{m}E{sign}{digits}")
            }
        }
        None => s,
    }
}

/// Go's `strconv.ParseFloat(s, 64)` for the forms Prometheus label values use: decimal with optional
/// exponent, underscores between digits, hexadecimal mantissas with a binary exponent, and case-insensitive
/// `inf`, `infinity` and `nan` with an optional sign.
pub fn parse_float(s: &str) -> Option<f64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let sign = |v: f64| if neg { -v } else { v };
    match lower.as_str() {
        "inf" | "infinity" => return Some(sign(f64::INFINITY)),
        "nan" => return if body.len() == s.len() { Some(nan()) } else { None },
        _ => {}
    }
    if let Some(hex) = lower.strip_prefix("0x") {
        return parse_hex_float(hex).map(sign);
    }
    if body.is_empty() {
        return None;
    }
    let b = body.as_bytes();
    // Underscores must sit between digits.
    let mut cleaned = String::with_capacity(body.len());
    for (i, &c) in b.iter().enumerate() {
        if c == b'_' {
            let ok = i > 0 && i + 1 < b.len() && b[i - 1].is_ascii_digit() && b[i + 1].is_ascii_digit();
            if !ok {
                return None;
            }
            continue;
        }
        if !(c.is_ascii_digit() || c == b'.' || c == b'e' || c == b'E' || c == b'+' || c == b'-') {
            return None;
        }
        cleaned.push(c as char);
    }
    if cleaned.contains('_') {
        return None;
    }
    cleaned.parse::<f64>().ok().map(sign)
}

fn parse_hex_float(s: &str) -> Option<f64> {
    let (mant, exp) = match s.split_once('p') {
        Some((m, e)) => (m, Some(e)),
        None => (s, None),
    };
    let mant: String = mant.chars().filter(|c| *c != '_').collect();
    let (int_part, frac_part) = mant.split_once('.').unwrap_or((&mant, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let mut value = 0f64;
    let mut digits = 0;
    let mut scale: i64 = 0;
    for c in int_part.chars() {
        let d = c.to_digit(16)? as f64;
        if digits < 15 {
            value = value * 16.0 + d;
            digits += 1;
        } else {
            scale += 4;
        }
    }
    for c in frac_part.chars() {
        let d = c.to_digit(16)? as f64;
        if digits < 15 {
            value = value * 16.0 + d;
            digits += 1;
            scale -= 4;
        }
    }
    let e: i64 = match exp {
        Some(e) => e.parse().ok()?,
        None if frac_part.is_empty() => 0,
        None => return None,
    };
    Some(ldexp(value, e + scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_values() {
        assert_eq!(log(1.0), 0.0);
        assert_eq!(log(0.0), f64::NEG_INFINITY);
        assert!(log(-1.0).is_nan());
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f64::NEG_INFINITY), 0.0);
        assert_eq!(exp(1000.0), f64::INFINITY);
        assert_eq!(pow(2.0, 10.0), 1024.0);
        assert!(pow(-8.0, 1.0 / 3.0).is_nan());
        assert_eq!(log2(8.0), 3.0);
        assert_eq!(fmod(7.0, 3.0), 1.0);
        assert_eq!(fmod(-7.0, 3.0), -1.0);
        assert!(fmod(1.0, 0.0).is_nan());
        assert_eq!(max(f64::INFINITY, f64::NAN), f64::INFINITY);
        assert!(max(1.0, f64::NAN).is_nan());
        assert_eq!(min(-0.0, 0.0).to_bits(), (-0.0f64).to_bits());
    }

    #[test]
    fn formatting_and_parsing() {
        assert_eq!(format_float(1.5), "1.5");
        assert_eq!(format_float(1e21), "1000000000000000000000");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float_e(150.0), "1.5E+02");
        assert_eq!(format_float_e(1e-7), "1E-07");
        assert_eq!(format_float_e(1e100), "1E+100");
        assert_eq!(parse_float("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_float("0.25"), Some(0.25));
        assert_eq!(parse_float("1e3"), Some(1000.0));
        assert_eq!(parse_float("0x1p-2"), Some(0.25));
        assert_eq!(parse_float("1_000"), Some(1000.0));
        assert_eq!(parse_float("abc"), None);
        assert_eq!(parse_float(""), None);
        assert_eq!(to_i64(f64::NAN), i64::MIN);
        assert_eq!(to_i64(-1.9), -1);
    }
}

//! Storage quantities as numbers of bytes, to compare a volume's requested size with a PVC's.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// The bytes `q` stands for (`10Gi`, `500M`, `1e3`, `1073741824`), rounded up to a whole byte;
/// `None` for text that is not a quantity.
pub fn bytes(q: &Quantity) -> Option<u128> {
    let text = q.0.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let (mantissa, scale_num, scale_den): (&str, u128, u128) = match suffix {
        "" => (number, 1, 1),
        "Ki" => (number, 1 << 10, 1),
        "Mi" => (number, 1 << 20, 1),
        "Gi" => (number, 1 << 30, 1),
        "Ti" => (number, 1 << 40, 1),
        "Pi" => (number, 1 << 50, 1),
        "Ei" => (number, 1 << 60, 1),
        "k" => (number, 1_000, 1),
        "M" => (number, 1_000_000, 1),
        "G" => (number, 1_000_000_000, 1),
        "T" => (number, 1_000_000_000_000, 1),
        "P" => (number, 1_000_000_000_000_000, 1),
        "E" => (number, 1_000_000_000_000_000_000, 1),
        "m" => (number, 1, 1_000),
        "u" => (number, 1, 1_000_000),
        "n" => (number, 1, 1_000_000_000),
        exponent if exponent.starts_with(['e', 'E']) => {
            let power: u32 = exponent[1..].trim_start_matches('+').parse().ok()?;
            (number, 10u128.checked_pow(power)?, 1)
        }
        _ => return None,
    };
    let mantissa = mantissa.trim_start_matches('+');
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let digits = |s: &str| -> Option<u128> {
        if s.is_empty() {
            Some(0)
        } else {
            s.parse().ok()
        }
    };
    let denominator = 10u128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
    let value = digits(whole)?
        .checked_mul(denominator)?
        .checked_add(digits(fraction)?)?;
    let numerator = value.checked_mul(scale_num)?;
    let total_den = denominator.checked_mul(scale_den)?;
    Some(numerator.div_ceil(total_den))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(text: &str) -> Option<u128> {
        bytes(&Quantity(text.into()))
    }

    #[test]
    fn quantities_in_every_notation_become_bytes() {
        assert_eq!(b("10Gi"), Some(10 << 30));
        assert_eq!(b("1.5Gi"), Some(3 << 29));
        assert_eq!(b("500M"), Some(500_000_000));
        assert_eq!(b("1073741824"), Some(1 << 30));
        assert_eq!(b("1e3"), Some(1_000));
        assert_eq!(b("+2k"), Some(2_000));
        assert_eq!(b("1500m"), Some(2), "rounded up to a whole byte");
        assert_eq!(b("Gi"), None);
        assert_eq!(b("10Gb"), None);
        assert_eq!(b("-1Gi"), None);
        assert!(b("20Gi") > b("10Gi"));
    }
}

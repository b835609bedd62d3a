//! Decimal strings (money, weights) checked and put in one canonical form, without ever going through a float: the
//! database stores them as NUMERIC and the API carries them as strings, so "1.50" and "1.5" must compare equal and
//! "1e-3" (how a JSON number may print) must become "0.001".

/// The canonical form of a non-negative decimal: no sign, no leading zeros in the integer part, no trailing zeros in
/// the fraction, no exponent ("001.500" -> "1.5", "2.0" -> "2", "1e-3" -> "0.001"). None when it is not one.
pub fn canonical(text: &str) -> Option<String> {
    let text = text.trim();
    let text = text.strip_prefix('+').unwrap_or(text);
    if text.starts_with('-') {
        return None;
    }
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], text[at + 1..].parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || exponent.unsigned_abs() > 64
    {
        return None;
    }
    // All digits, and where the decimal point sits in them once the exponent is applied.
    let digits: String = format!("{int}{frac}");
    let point = int.len() as i64 + i64::from(exponent);
    let (int, frac) = if point <= 0 {
        (
            String::new(),
            format!("{}{digits}", "0".repeat(point.unsigned_abs() as usize)),
        )
    } else if point as usize >= digits.len() {
        (
            format!("{digits}{}", "0".repeat(point as usize - digits.len())),
            String::new(),
        )
    } else {
        (
            digits[..point as usize].to_string(),
            digits[point as usize..].to_string(),
        )
    };
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    Some(if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    })
}

/// A money amount: a non-negative decimal with at most 4 fractional digits (as `shopbridge.common.v1.Money` says).
pub fn money(text: &str) -> Option<String> {
    let canonical = canonical(text)?;
    let fraction = canonical.split_once('.').map_or(0, |(_, f)| f.len());
    (fraction <= 4 && canonical.len() <= 24).then_some(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_take_one_canonical_form() {
        for (input, expected) in [
            ("1.5", "1.5"),
            ("1.50", "1.5"),
            ("001.500", "1.5"),
            ("2.0", "2"),
            ("0", "0"),
            ("0.0", "0"),
            (".5", "0.5"),
            ("5.", "5"),
            ("+3", "3"),
            ("1e-3", "0.001"),
            ("1.25E2", "125"),
            ("12e1", "120"),
            (" 7.25 ", "7.25"),
        ] {
            assert_eq!(canonical(input).as_deref(), Some(expected), "{input}");
        }
    }

    #[test]
    fn what_is_not_a_non_negative_decimal_is_refused() {
        for input in [
            "", ".", "-1", "1,5", "abc", "1.2.3", "1e", "1e999", "NaN", "inf",
        ] {
            assert_eq!(canonical(input), None, "{input}");
        }
    }

    #[test]
    fn money_has_at_most_four_fractional_digits() {
        assert_eq!(money("19.99").as_deref(), Some("19.99"));
        assert_eq!(money("19.12340").as_deref(), Some("19.1234"));
        assert_eq!(money("19.12345"), None);
        assert_eq!(money("-1"), None);
    }
}

//! Exact amounts for budgets: a non-negative decimal with at most four
//! places, held as whole *units* of 1/10,000, so that sums are exact
//! integers in every state store and in Cedar (which compares them as a
//! `Long`, up to `i64::MAX` units).

use std::fmt;

/// Units in one: amounts are counted in ten-thousandths.
pub const UNITS_PER_ONE: u64 = 10_000;
/// Decimal places an amount may have.
pub const MAX_PLACES: usize = 4;
/// The largest amount in units Cedar can compare (a `Long`, i64::MAX).
pub const MAX_UNITS: u64 = i64::MAX as u64;

/// Why a text is not an exact amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountProblem {
    /// Not a plain decimal number (`12`, `12.5`): exponents, signs other
    /// than a leading `-`, or no digits.
    NotANumber,
    Negative,
    /// More than [`MAX_PLACES`] decimal places (non-zero ones).
    TooPrecise,
    /// Above what Cedar's `decimal` holds.
    TooLarge,
}

impl fmt::Display for AmountProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AmountProblem::NotANumber => "not a number",
            AmountProblem::Negative => "negative",
            AmountProblem::TooPrecise => "more than 4 decimal places",
            AmountProblem::TooLarge => "too large",
        })
    }
}

/// `12.5` → 125000 units. Accepts a JSON number's text as well as a
/// policy literal: an exponent (`1e3`, `1.5E-2`) is applied exactly.
pub fn parse_units(text: &str) -> Result<u64, AmountProblem> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => {
            let exp: i64 = body[i + 1..]
                .trim_start_matches('+')
                .parse()
                .map_err(|_| AmountProblem::NotANumber)?;
            (&body[..i], exp)
        }
        None => (body, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(AmountProblem::NotANumber);
    }
    // The number is D × 10^(exponent − len(frac)), D the integer of all
    // its digits; in units, D × 10^k with k = exponent − len(frac) + 4.
    let k = i64::try_from(frac.len())
        .ok()
        .and_then(|f| exponent.checked_sub(f))
        .and_then(|e| e.checked_add(MAX_PLACES as i64))
        .ok_or(AmountProblem::TooLarge)?;
    let all = format!("{int}{frac}");
    let significant = all.trim_start_matches('0');
    if significant.is_empty() {
        return Ok(0);
    }
    if negative {
        return Err(AmountProblem::Negative);
    }
    let trimmed = significant.trim_end_matches('0');
    let k = k + (significant.len() - trimmed.len()) as i64;
    if k < 0 {
        return Err(AmountProblem::TooPrecise);
    }
    if trimmed.len() as i64 + k > 20 {
        return Err(AmountProblem::TooLarge);
    }
    let mut value: u64 = 0;
    for b in trimmed.bytes() {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or(AmountProblem::TooLarge)?;
    }
    for _ in 0..k {
        value = value.checked_mul(10).ok_or(AmountProblem::TooLarge)?;
    }
    if value > MAX_UNITS {
        return Err(AmountProblem::TooLarge);
    }
    Ok(value)
}

/// 125000 units → `12.5`; whole amounts print without a point.
pub fn format_units(units: u64) -> String {
    let whole = units / UNITS_PER_ONE;
    let frac = units % UNITS_PER_ONE;
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:04}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_decimals_are_exact_units() {
        assert_eq!(parse_units("2000"), Ok(20_000_000));
        assert_eq!(parse_units("12.5"), Ok(125_000));
        assert_eq!(parse_units("0.0001"), Ok(1));
        assert_eq!(parse_units("0.10"), Ok(1_000));
        assert_eq!(parse_units("007.50"), Ok(75_000));
        assert_eq!(parse_units("0"), Ok(0));
        assert_eq!(parse_units("-0.0"), Ok(0));
    }

    #[test]
    fn exponents_are_applied_exactly() {
        assert_eq!(parse_units("1e3"), Ok(10_000_000));
        assert_eq!(parse_units("1.5E-2"), Ok(150));
        assert_eq!(parse_units("25e-5"), Err(AmountProblem::TooPrecise));
        assert_eq!(parse_units("1e-4"), Ok(1));
        assert_eq!(parse_units("1e+2"), Ok(1_000_000));
    }

    #[test]
    fn what_is_not_an_exact_amount_is_refused_with_why() {
        assert_eq!(parse_units("0.00001"), Err(AmountProblem::TooPrecise));
        assert_eq!(parse_units("-1"), Err(AmountProblem::Negative));
        assert_eq!(parse_units("1e400"), Err(AmountProblem::TooLarge));
        assert_eq!(
            parse_units("1000000000000000"),
            Err(AmountProblem::TooLarge)
        );
        assert_eq!(parse_units("922337203685477.5807"), Ok(MAX_UNITS));
        assert_eq!(
            parse_units("922337203685477.5808"),
            Err(AmountProblem::TooLarge)
        );
        for bad in ["", ".", "abc", "1.2.3", "+1", "1e", "0x10", "1_000"] {
            assert_eq!(parse_units(bad), Err(AmountProblem::NotANumber), "{bad}");
        }
    }

    #[test]
    fn formatting_round_trips() {
        for units in [0, 1, 10, 125_000, 20_000_000, MAX_UNITS] {
            assert_eq!(parse_units(&format_units(units)), Ok(units));
        }
        assert_eq!(format_units(125_000), "12.5");
    }
}

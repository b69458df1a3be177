//! Exact money: [`Price`], [`Size`] and [`Funds`] newtypes over `Decimal`.
//!
//! | expression      | result  | why                                   |
//! |-----------------|---------|---------------------------------------|
//! | `Price * Size`  | `Funds` | a price times a base amount is quote  |
//! | `Funds / Price` | `Size`  | how much base the funds buy           |
//! | `Size ± Size`   | `Size`  | checked; never below zero             |
//! | `Funds ± Funds` | `Funds` | checked; never below zero             |
//!
//! Every operation is checked: overflow and negative results are errors,
//! never panics or silent wraps. Values come in only through
//! [`parse_decimal`] (the exchange's strict decimal text) or the checked
//! constructors, so a bad wire value cannot produce a money value.

use std::{fmt, str::FromStr};

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a money value could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The text is not a plain decimal number.
    #[error("{what} `{text}` is not a decimal number ({why})")]
    Malformed {
        /// Which value ("price", "size", ...).
        what: &'static str,
        /// The offending text.
        text: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The value must be greater than zero.
    #[error("{what} must be greater than zero, got {value}")]
    NotPositive {
        /// Which value.
        what: &'static str,
        /// The value.
        value: Decimal,
    },
    /// The value must not be negative.
    #[error("{what} must not be negative, got {value}")]
    Negative {
        /// Which value.
        what: &'static str,
        /// The value.
        value: Decimal,
    },
    /// An operation overflowed the decimal range.
    #[error("{what} overflowed")]
    Overflow {
        /// Which value.
        what: &'static str,
    },
}

/// Parses the exchange's decimal text strictly: optional `-`, digits,
/// optionally `.` and digits. No exponents, `NaN`, `inf`, `+`, spaces,
/// leading zeros (`"01.5"`) or stray signs (`"0.-10000"`).
pub fn parse_decimal(what: &'static str, text: &str) -> Result<Decimal, MoneyError> {
    let bad = |why| MoneyError::Malformed {
        what,
        text: text.to_owned(),
        why,
    };
    let body = text.strip_prefix('-').unwrap_or(text).as_bytes();
    if body.is_empty() {
        return Err(bad("empty"));
    }
    // One pass over the digits (this is on the feed's hot path): the
    // mantissa is accumulated as the text is checked. Up to 19 digits fit a
    // u64, which covers every feed value; longer texts (and negative zero)
    // are checked here and built by rust_decimal.
    let mut mantissa: u64 = 0;
    let mut digits = 0_usize;
    let mut i = 0;
    while let Some(&c) = body.get(i) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
        digits += 1;
        i += 1;
    }
    let int_len = i;
    if int_len == 0 || body.get(int_len).is_some_and(|&c| c != b'.') {
        return Err(bad("expected digits before the decimal point"));
    }
    if int_len > 1 && body[0] == b'0' {
        return Err(bad("leading zeros"));
    }
    let mut scale = 0_u32;
    if int_len < body.len() {
        i += 1;
        while let Some(&c) = body.get(i) {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return Err(bad("expected digits after the decimal point"));
            }
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
            digits += 1;
            i += 1;
        }
        if i == int_len + 1 {
            return Err(bad("expected digits after the decimal point"));
        }
        scale = u32::try_from(i - int_len - 1).unwrap_or(u32::MAX);
    }
    let negative = body.len() != text.len();
    if digits <= 19 && !(negative && mantissa == 0) && scale <= 28 {
        // 19 digits never wrapped the u64 above; the parts are its two
        // 32-bit halves (truncation intended) and a zero high word.
        #[expect(clippy::cast_possible_truncation, reason = "the low and middle words")]
        let (lo, mid) = (mantissa as u32, (mantissa >> 32) as u32);
        return Ok(Decimal::from_parts(lo, mid, 0, negative, scale));
    }
    Decimal::from_str_exact(text).map_err(|_| bad("out of range or too many digits"))
}

/// Compares two decimals by value: as integers when they share a scale, as
/// amounts of one product or currency nearly always do, inline; rust_decimal's
/// general comparison (out of line, aligning scales) otherwise. Books,
/// order indexes and ledgers compare amounts on every operation.
#[inline]
pub fn cmp(a: Decimal, b: Decimal) -> std::cmp::Ordering {
    if a.scale() == b.scale() {
        a.mantissa().cmp(&b.mantissa())
    } else {
        a.cmp(&b)
    }
}

macro_rules! money_type {
    ($name:ident, $what:literal, $doc:literal, strictly_positive = $pos:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(Decimal);

        impl Ord for $name {
            /// By value (see [`cmp`]).
            #[inline]
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                cmp(self.0, other.0)
            }
        }

        impl PartialOrd for $name {
            #[inline]
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl $name {
            /// Checked constructor.
            pub fn new(value: Decimal) -> Result<Self, MoneyError> {
                // By sign and zero rather than comparisons with zero, which
                // align scales out of line: every feed decimal passes here.
                let (zero, minus) = (value.is_zero(), value.is_sign_negative());
                if $pos && (zero || minus) {
                    return Err(MoneyError::NotPositive { what: $what, value });
                }
                if minus && !zero {
                    return Err(MoneyError::Negative { what: $what, value });
                }
                Ok(Self(value))
            }

            /// Parses the exchange's decimal text.
            pub fn parse(text: &str) -> Result<Self, MoneyError> {
                Self::new(parse_decimal($what, text)?)
            }

            /// The underlying decimal.
            pub const fn get(self) -> Decimal {
                self.0
            }

            /// Whether `self` is an exact multiple of `increment`.
            pub fn is_multiple_of(self, increment: Decimal) -> bool {
                increment > Decimal::ZERO && (self.0 % increment).is_zero()
            }

            /// Rounds down to a multiple of `increment` (a no-op for a zero increment).
            pub fn floor_to(self, increment: Decimal) -> Decimal {
                if increment <= Decimal::ZERO {
                    return self.0;
                }
                (self.0 / increment).floor() * increment
            }

            /// Rounds to the nearest multiple of `increment`, half away from zero.
            pub fn round_to(self, increment: Decimal) -> Decimal {
                if increment <= Decimal::ZERO {
                    return self.0;
                }
                (self.0 / increment)
                    .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
                    * increment
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = MoneyError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    // Written straight into the output (serde_json formats
                    // through `Display`), not through a String per amount.
                    s.collect_str(&self.0)
                } else {
                    crate::compact::put_decimal(&self.0, s)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let text = String::deserialize(d)?;
                    Self::parse(&text).map_err(serde::de::Error::custom)
                } else {
                    // The same sign rules as text: a damaged record cannot
                    // make a negative size.
                    let v = crate::compact::get_decimal(d, $what)?;
                    Self::new(v).map_err(serde::de::Error::custom)
                }
            }
        }
    };
}

money_type!(
    Price,
    "price",
    "A price in quote currency per unit of base; strictly positive.",
    strictly_positive = true
);
money_type!(
    Size,
    "size",
    "An amount of base currency; never negative.",
    strictly_positive = false
);
money_type!(
    Funds,
    "funds",
    "An amount of quote currency; never negative.",
    strictly_positive = false
);

impl Size {
    /// Zero size.
    pub const ZERO: Self = Self(Decimal::ZERO);

    /// `self + other`, checked.
    pub fn checked_add(self, other: Self) -> Result<Self, MoneyError> {
        self.0
            .checked_add(other.0)
            .map(Self)
            .ok_or(MoneyError::Overflow { what: "size" })
    }

    /// `self - other`, checked; an error if it would go below zero.
    pub fn checked_sub(self, other: Self) -> Result<Self, MoneyError> {
        Self::new(
            self.0
                .checked_sub(other.0)
                .ok_or(MoneyError::Overflow { what: "size" })?,
        )
    }

    /// The smaller of two sizes.
    pub fn min(self, other: Self) -> Self {
        if self <= other { self } else { other }
    }

    /// Whether the size is zero.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl Funds {
    /// Zero funds.
    pub const ZERO: Self = Self(Decimal::ZERO);

    /// `self + other`, checked.
    pub fn checked_add(self, other: Self) -> Result<Self, MoneyError> {
        self.0
            .checked_add(other.0)
            .map(Self)
            .ok_or(MoneyError::Overflow { what: "funds" })
    }

    /// `self - other`, checked; an error if it would go below zero.
    pub fn checked_sub(self, other: Self) -> Result<Self, MoneyError> {
        Self::new(
            self.0
                .checked_sub(other.0)
                .ok_or(MoneyError::Overflow { what: "funds" })?,
        )
    }

    /// `self × rate` (a fee or a fee-inclusive hold), checked.
    pub fn checked_mul_rate(self, rate: Decimal) -> Result<Self, MoneyError> {
        Self::new(
            self.0
                .checked_mul(rate)
                .ok_or(MoneyError::Overflow { what: "funds" })?,
        )
    }

    /// Truncates (rounds toward zero) to `dp` decimal places, as Coinbase
    /// truncates market-buy funds net of the fee reservation.
    pub fn truncate_dp(self, dp: u32) -> Self {
        Self(self.0.trunc_with_scale(dp))
    }

    /// Whether the funds are zero.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl Price {
    /// `price × size` in quote currency, checked.
    pub fn checked_mul(self, size: Size) -> Result<Funds, MoneyError> {
        self.0
            .checked_mul(size.0)
            .map(Funds)
            .ok_or(MoneyError::Overflow { what: "funds" })
    }

    /// The price as a whole number of `increment`s (ticks), or `None` when it
    /// is not on the increment or does not fit. Books key their levels by it:
    /// integers compare in one instruction, prices of mixed scales do not.
    pub fn ticks(self, increment: Decimal) -> Option<u64> {
        let (pm, ps) = (self.0.mantissa(), self.0.scale());
        let (im, is) = (increment.mantissa(), increment.scale());
        if im <= 0 {
            return None;
        }
        // price / increment = (pm / 10^ps) / (im / 10^is), over one scale.
        if im == 1 && is >= ps {
            // The usual increment (0.01, 0.00000001): no division.
            const POW10: [u64; 20] = {
                let mut t = [1_u64; 20];
                let mut i = 1;
                while i < 20 {
                    t[i] = t[i - 1] * 10;
                    i += 1;
                }
                t
            };
            return u64::try_from(pm)
                .ok()?
                .checked_mul(*POW10.get((is - ps) as usize)?);
        }
        let (num, den) = if is >= ps {
            (pm.checked_mul(10_i128.checked_pow(is - ps)?)?, im)
        } else {
            (pm, im.checked_mul(10_i128.checked_pow(ps - is)?)?)
        };
        if num % den != 0 {
            return None;
        }
        u64::try_from(num / den).ok()
    }
}

/// Formats a value with exactly 8 decimals, as Coinbase prints the
/// "smallest unit" in its validation messages (`0.01000000`).
pub fn format_8dp(value: Decimal) -> String {
    let mut v = value;
    v.rescale(8);
    v.to_string()
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    #[test]
    fn ticks_count_increments_exactly() {
        let p = |t: &str| Price::parse(t).unwrap();
        assert_eq!(p("26000.01").ticks(dec!(0.01)), Some(2_600_001));
        assert_eq!(p("26000.1").ticks(dec!(0.01)), Some(2_600_010));
        assert_eq!(p("26000.010000").ticks(dec!(0.01)), Some(2_600_001));
        assert_eq!(p("26000").ticks(dec!(0.5)), Some(52_000));
        assert_eq!(p("0.00000001").ticks(dec!(0.00000001)), Some(1));
        assert_eq!(p("26000.005").ticks(dec!(0.01)), None, "between ticks");
        assert_eq!(p("26000.25").ticks(dec!(0.5)), None, "between ticks");
        assert_eq!(p("26000").ticks(dec!(0)), None);
        assert_eq!(
            Price::new(Decimal::MAX).unwrap().ticks(dec!(0.00000001)),
            None,
            "too many ticks for u64"
        );
    }

    proptest::proptest! {
        /// The inline comparison is rust_decimal's, at equal and mixed scales.
        #[test]
        fn cmp_is_decimals(a in proptest::prelude::any::<i64>(), b in proptest::prelude::any::<i64>(), sa in 0u32..=28, sb in 0u32..=28, same in proptest::prelude::any::<bool>()) {
            let x = Decimal::new(a, sa);
            let y = Decimal::new(b, if same { sa } else { sb });
            proptest::prop_assert_eq!(cmp(x, y), x.cmp(&y));
        }
    }

    proptest::proptest! {
        /// Ticks order as prices do, whatever the scale each was written at.
        #[test]
        fn ticks_order_as_prices(a in 1u64..10_000_000, b in 1u64..10_000_000, za in 0u32..6, zb in 0u32..6) {
            let at = |n: u64, zeros: u32| {
                let mut d = Decimal::new(i64::try_from(n).unwrap(), 2);
                d.rescale(2 + zeros);
                Price::new(d).unwrap()
            };
            let (pa, pb) = (at(a, za), at(b, zb));
            proptest::prop_assert_eq!(pa.ticks(dec!(0.01)), Some(a));
            proptest::prop_assert_eq!(pa.ticks(dec!(0.01)).cmp(&pb.ticks(dec!(0.01))), pa.cmp(&pb));
        }
    }

    #[test]
    fn strict_decimal_text_is_accepted() {
        for ok in ["0", "0.5", "26000.00", "-3.25", "0.00000001", "100000"] {
            assert!(parse_decimal("price", ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn malformed_decimal_text_is_rejected_with_a_reason() {
        for bad in [
            "", "-", "NaN", "nan", "inf", "1e5", "1E-3", "+1", " 1", "1 ", "0.-10000", "1.", ".5",
            "01.5", "1,5", "0x10", "--1", "1.2.3",
        ] {
            let err = parse_decimal("price", bad).unwrap_err().to_string();
            assert!(err.starts_with("price `"), "{bad}: {err}");
        }
    }

    #[test]
    fn price_must_be_positive_and_size_non_negative() {
        assert!(Price::parse("0").is_err());
        assert!(Price::parse("-1").is_err());
        assert_eq!(Size::parse("0").unwrap(), Size::ZERO);
        assert_eq!(
            Size::parse("-0.1").unwrap_err().to_string(),
            "size must not be negative, got -0.1"
        );
    }

    #[test]
    fn arithmetic_is_checked() {
        let p = Price::parse("26000.01").unwrap();
        let s = Size::parse("0.01").unwrap();
        assert_eq!(p.checked_mul(s).unwrap().get(), dec!(260.0001));
        assert!(
            Size::parse("1")
                .unwrap()
                .checked_sub(Size::parse("2").unwrap())
                .is_err()
        );
        assert!(
            Funds::new(Decimal::MAX)
                .unwrap()
                .checked_add(Funds::new(Decimal::MAX).unwrap())
                .is_err()
        );
    }

    #[test]
    fn increments_and_rounding() {
        let p = Price::parse("26000.015").unwrap();
        assert!(!p.is_multiple_of(dec!(0.01)));
        assert_eq!(p.floor_to(dec!(0.01)), dec!(26000.01));
        assert_eq!(p.round_to(dec!(0.01)), dec!(26000.02));
        assert!(Price::parse("26000.01").unwrap().is_multiple_of(dec!(0.01)));
    }

    #[test]
    fn market_funds_truncate_as_documented() {
        let f = Funds::new(dec!(10) / dec!(1.005)).unwrap().truncate_dp(8);
        assert_eq!(f.get(), dec!(9.95024875));
        let f = Funds::new(dec!(10) / dec!(1.0025)).unwrap().truncate_dp(8);
        assert_eq!(f.get(), dec!(9.97506234));
    }

    #[test]
    fn smallest_unit_prints_with_8_decimals() {
        assert_eq!(format_8dp(dec!(0.01)), "0.01000000");
        assert_eq!(format_8dp(dec!(5)), "5.00000000");
    }

    #[test]
    fn serde_goes_through_the_checked_parser() {
        let p: Price = serde_json::from_str("\"27000.50\"").unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"27000.50\"");
        assert!(serde_json::from_str::<Price>("\"1e3\"").is_err());
        assert!(serde_json::from_str::<Price>("\"-1\"").is_err());
    }
}

#[cfg(test)]
mod property_tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn prop_amounts_order_as_their_values(
            a in 0i64..1_000_000_000_000, sa in 0u32..12, b in 0i64..1_000_000_000_000, sb in 0u32..12,
        ) {
            let (x, y) = (Decimal::new(a, sa), Decimal::new(b, sb));
            let (p, q) = (Size::new(x).unwrap(), Size::new(y).unwrap());
            prop_assert_eq!(p.cmp(&q), x.cmp(&y));
            prop_assert_eq!(p == q, x == y);
            // The same value at the same scale takes the integer path.
            let z = Decimal::new(a, sb);
            prop_assert_eq!(Size::new(z).unwrap().cmp(&q), z.cmp(&y));
        }

        #[test]
        fn prop_display_parse_round_trips(units in 1i64..i64::MAX, scale in 0u32..12) {
            let p = Price::new(Decimal::new(units, scale)).unwrap();
            prop_assert_eq!(Price::parse(&p.to_string()).unwrap(), p);
        }

        #[test]
        fn prop_the_direct_decimal_build_is_rust_decimals_parse(
            neg in any::<bool>(), int in "(0|[1-9][0-9]{0,20})", frac in proptest::option::of("[0-9]{1,20}")
        ) {
            let text = format!("{}{int}{}", if neg { "-" } else { "" }, frac.map(|f| format!(".{f}")).unwrap_or_default());
            let ours = parse_decimal("x", &text);
            let theirs = Decimal::from_str_exact(&text);
            match (ours, theirs) {
                (Ok(a), Ok(b)) => {
                    prop_assert_eq!(a, b);
                    prop_assert_eq!(a.scale(), b.scale());
                    prop_assert_eq!(a.to_string(), b.to_string());
                }
                (Err(_), Err(_)) => {}
                (a, b) => prop_assert!(false, "{text}: {a:?} vs {b:?}"),
            }
        }

        #[test]
        fn prop_floor_is_a_multiple_not_above(units in 0i64..1_000_000_000_000, inc_units in 1i64..10_000) {
            let s = Size::new(Decimal::new(units, 8)).unwrap();
            let inc = Decimal::new(inc_units, 8);
            let f = s.floor_to(inc);
            prop_assert!(f <= s.get());
            prop_assert!((f % inc).is_zero());
            prop_assert!(s.get() - f < inc);
        }
    }
}

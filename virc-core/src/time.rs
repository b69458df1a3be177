//! Exchange timestamps: RFC 3339 UTC text (`2016-05-12T15:04:30.982824Z`)
//! to nanoseconds since the Unix epoch, without a clock.

/// Why a timestamp could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time `{0}` is not an RFC 3339 UTC timestamp like 2021-04-17T16:43:37.075687Z")]
pub struct TimeError(pub String);

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Nanoseconds since the epoch as the exchange writes times:
/// `2014-11-06T10:34:47.123456Z` (microseconds, UTC).
pub fn format_rfc3339_micros(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let micros = nanos.rem_euclid(1_000_000_000) / 1000;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (or `+00:00`) into nanoseconds.
pub fn parse_rfc3339(text: &str) -> Result<i64, TimeError> {
    nanos_of(text.as_bytes()).ok_or_else(|| TimeError(text.to_owned()))
}

/// [`parse_rfc3339`] without the error text: it is on the feed's hot path,
/// so the fixed-position digits are read from a fixed-size array (no
/// bounds checks) by arithmetic, and nothing is allocated.
fn nanos_of(b: &[u8]) -> Option<i64> {
    let (head, rest) = b.split_first_chunk::<19>()?;
    if head[4] != b'-'
        || head[7] != b'-'
        || !(head[10] == b'T' || head[10] == b' ')
        || head[13] != b':'
        || head[16] != b':'
    {
        return None;
    }
    // Every digit is checked; the sum of the checks is tested once.
    let mut bad = false;
    let mut digit = |i: usize| {
        let d = u32::from(head[i].wrapping_sub(b'0'));
        bad |= d > 9;
        d
    };
    let y = digit(0) * 1000 + digit(1) * 100 + digit(2) * 10 + digit(3);
    let mo = digit(5) * 10 + digit(6);
    let d = digit(8) * 10 + digit(9);
    let h = digit(11) * 10 + digit(12);
    let mi = digit(14) * 10 + digit(15);
    let s = digit(17) * 10 + digit(18);
    if bad || !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut nanos: i64 = 0;
    let zone = match rest.split_first() {
        Some((b'.', frac)) => {
            let mut n = 0;
            let mut scale: i64 = 1_000_000_000;
            while let Some(&c) = frac.get(n) {
                let v = c.wrapping_sub(b'0');
                if v > 9 {
                    break;
                }
                // Digits past nanoseconds are read and dropped.
                scale /= 10;
                nanos += i64::from(v) * scale;
                n += 1;
            }
            if n == 0 {
                return None;
            }
            &frac[n..]
        }
        _ => rest,
    };
    if !(zone == b"Z" || zone == b"+00:00") {
        return None;
    }
    let days = days_from_civil(i64::from(y), mo, d);
    let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s);
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first version of `nanos_of`, field by field: the reference.
    fn reference(b: &[u8]) -> Option<i64> {
        if b.len() < 20
            || b[4] != b'-'
            || b[7] != b'-'
            || !(b[10] == b'T' || b[10] == b' ')
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        let num = |from: usize, to: usize| -> Option<u32> {
            b[from..to].iter().try_fold(0_u32, |n, &c| {
                c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
            })
        };
        let (y, mo, d, h, mi, s) = (
            num(0, 4)?,
            num(5, 7)?,
            num(8, 10)?,
            num(11, 13)?,
            num(14, 16)?,
            num(17, 19)?,
        );
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
            return None;
        }
        let rest = &b[19..];
        let (frac, zone) = match rest.split_first() {
            Some((b'.', r)) => {
                let end = r
                    .iter()
                    .position(|c| !c.is_ascii_digit())
                    .unwrap_or(r.len());
                if end == 0 {
                    return None;
                }
                r.split_at(end)
            }
            _ => (&[][..], rest),
        };
        if !(zone == b"Z" || zone == b"+00:00") {
            return None;
        }
        let mut nanos: i64 = 0;
        let mut unit = 100_000_000;
        for &c in frac.iter().take(9) {
            nanos += i64::from(c - b'0') * unit;
            unit /= 10;
        }
        let days = days_from_civil(i64::from(y), mo, d);
        let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s);
        secs.checked_mul(1_000_000_000)?.checked_add(nanos)
    }

    proptest::proptest! {
        /// The same answer as the reference on exchange-like times and on
        /// every one-byte damage to them.
        #[test]
        fn agrees_with_the_reference(
            t in "(19[7-9][0-9]|20[0-9]{2})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,12})?(Z|\\+00:00)",
            at in 0usize..40,
            byte in proptest::prelude::any::<u8>(),
        ) {
            proptest::prop_assert_eq!(nanos_of(t.as_bytes()), reference(t.as_bytes()), "{}", t);
            let mut damaged = t.into_bytes();
            if let Some(b) = damaged.get_mut(at) {
                *b = byte;
            }
            proptest::prop_assert_eq!(nanos_of(&damaged), reference(&damaged));
        }
    }

    #[test]
    fn parses_exchange_timestamps() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            parse_rfc3339("2021-04-17T16:43:37.075687Z").unwrap(),
            1_618_677_817_075_687_000
        );
        assert_eq!(
            parse_rfc3339("2016-05-12T15:04:30.982824Z").unwrap(),
            1_463_065_470_982_824_000
        );
        assert_eq!(
            parse_rfc3339("2000-02-29T00:00:00.5+00:00").unwrap(),
            951_782_400_500_000_000
        );
        // Coinbase's zero time does not fit i64 nanoseconds (1677..2262): an error, never an overflow.
        assert!(parse_rfc3339("0001-01-01T00:00:00.000000Z").is_err());
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "2021-04-17",
            "2021-13-01T00:00:00Z",
            "2021-04-17T16:43:37",
            "2021-04-17T16:43:37.Z",
            "2021-04-17T16:43:37+02:00",
            "2021-04-1xT16:43:37Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_what_it_parses() {
        for text in [
            "2014-11-06T10:34:47.123456Z",
            "1969-12-31T23:59:59.000001Z",
            "2024-02-29T00:00:00.000000Z",
        ] {
            let n = parse_rfc3339(text).unwrap();
            assert_eq!(format_rfc3339_micros(n), text);
        }
    }
}

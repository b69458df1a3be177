//! A one-pass scanner for the frames that make up nearly all of a feed
//! (`l2update`, `match`, `ticker`, `heartbeat`, the `full` messages): one
//! flat JSON object of strings, integers, `null`s and arrays of strings.
//! It fills the same [`RawFields`] serde would, borrowing every string from
//! the frame, and gives up (`None`) on anything else: an escape in a
//! string, a nested object, a number that is not a plain `u64` where one
//! is expected, a repeated key, trailing bytes. The caller then parses the
//! frame with serde, which yields the same fields or the precise error, so
//! the scanner changes how fast a frame is read, never what it means.
//!
//! The three frames a market feed is made of (`l2update`, `match`,
//! `ticker`), in the exchange's own layout with `type` first, take shorter
//! paths still ([`l2update`], [`matched`], [`ticker`]): straight into their
//! typed messages, giving up to the general path on anything it would read
//! differently.

#![expect(
    clippy::option_option,
    reason = "outer None: give the frame to serde; inner None: the field is JSON null"
)]

use virc_core::{
    ids::{OrderId, ProductId},
    money::{Price, Size, parse_decimal},
    order::Side,
    time::parse_rfc3339,
};

use super::{L2Changes, Match, RawFields, Ticker};

struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        self.skip_ws();
        (self.peek()? == b).then(|| self.at += 1)
    }

    /// A string without escapes, borrowed.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let rest = self.text.as_bytes().get(self.at..)?;
        let len = string_end(rest)?;
        if rest[len] != b'"' {
            return None;
        }
        let s = self.text.get(self.at..self.at + len)?;
        self.at += len + 1;
        Some(s)
    }

    /// A plain non-negative integer.
    fn u64(&mut self) -> Option<u64> {
        self.skip_ws();
        let start = self.at;
        // The value is built as the digits are read; one that overflows is
        // serde's to report.
        let mut value: u64 = 0;
        while let Some(d) = self
            .peek()
            .map(|c| c.wrapping_sub(b'0'))
            .filter(|d| *d <= 9)
        {
            value = value.checked_mul(10)?.checked_add(u64::from(d))?;
            self.at += 1;
        }
        let len = self.at - start;
        // A fraction or an exponent is not an integer: let serde say so.
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) || len == 0 {
            return None;
        }
        // JSON has no leading zeros.
        if len > 1 && self.text.as_bytes().get(start) == Some(&b'0') {
            return None;
        }
        Some(value)
    }

    fn null(&mut self) -> bool {
        self.skip_ws();
        if self.text.get(self.at..self.at + 4) == Some("null") {
            self.at += 4;
            true
        } else {
            false
        }
    }

    /// `Option<&str>`: a string or `null`.
    fn opt_str(&mut self) -> Option<Option<&'a str>> {
        if self.null() {
            return Some(None);
        }
        self.string().map(Some)
    }

    /// `Option<u64>`: an integer or `null`.
    fn opt_u64(&mut self) -> Option<Option<u64>> {
        if self.null() {
            return Some(None);
        }
        self.u64().map(Some)
    }

    /// `Option<Vec<[&str; N]>>`: an array of arrays of exactly N strings, or `null`.
    fn opt_rows<const N: usize>(&mut self) -> Option<Option<Vec<[&'a str; N]>>> {
        self.opt_rows_map(Some)
    }

    /// As [`Cursor::opt_rows`], each row turned into a `T` as it is read
    /// into a `C`; a row `f` refuses gives up.
    fn opt_rows_map<const N: usize, T, C: Default + Extend<T>>(
        &mut self,
        mut f: impl FnMut([&'a str; N]) -> Option<T>,
    ) -> Option<Option<C>> {
        if self.null() {
            return Some(None);
        }
        self.eat(b'[')?;
        let mut rows = C::default();
        self.skip_ws();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(Some(rows));
        }
        loop {
            self.eat(b'[')?;
            let mut row = [""; N];
            for (i, cell) in row.iter_mut().enumerate() {
                if i > 0 {
                    self.eat(b',')?;
                }
                *cell = self.string()?;
            }
            self.eat(b']')?;
            rows.extend(Some(f(row)?));
            self.skip_ws();
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(Some(rows));
                }
                _ => return None,
            }
        }
    }

    /// `changes` as typed level-2 changes, or `null`; a row it cannot type
    /// gives up.
    fn opt_changes(&mut self) -> Option<Option<L2Changes>> {
        self.opt_rows_map(|[s, p, q]| {
            let side = match s {
                "buy" => Side::Buy,
                "sell" => Side::Sell,
                _ => return None,
            };
            Some((side, Price::parse(p).ok()?, Size::parse(q).ok()?))
        })
    }

    /// Skips a value of a field we do not read: a string, number, literal,
    /// or an array of those; a nested object gives up.
    fn skip_value(&mut self) -> Option<()> {
        self.skip_ws();
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'[' => {
                self.at += 1;
                loop {
                    self.skip_ws();
                    match self.peek()? {
                        b']' => {
                            self.at += 1;
                            return Some(());
                        }
                        b',' => self.at += 1,
                        _ => self.skip_value()?,
                    }
                }
            }
            b'{' => None,
            _ => {
                let start = self.at;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.'))
                {
                    self.at += 1;
                }
                let token = self.text.get(start..self.at)?;
                let number = token
                    .bytes()
                    .next()
                    .is_some_and(|c| c == b'-' || c.is_ascii_digit())
                    && token.parse::<f64>().is_ok();
                (number || matches!(token, "true" | "false" | "null")).then_some(())
            }
        }
    }
}

/// The first byte that ends or interrupts a JSON string body: `"`, `\\` or
/// a control character. Eight bytes at a time (the classic "has a zero
/// byte" word tricks): string scanning is most of a frame's reading.
fn string_end(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut chunks = bytes.chunks_exact(8);
    let mut base = 0;
    for chunk in chunks.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let hits = zero_byte(w ^ (ONES * u64::from(b'"')))
            | zero_byte(w ^ (ONES * u64::from(b'\\')))
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGHS);
        if hits != 0 {
            // The lowest flagged byte is a true hit (a borrow only flags bytes above one).
            return Some(base + (hits.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|i| base + i)
}

/// [`slot`] of `type`.
const TYPE: u8 = 100;
/// [`slot`] of a key whose value is nested (`channels`, `products`,
/// `currencies`): serde's job.
const NESTED: u8 = 101;
/// [`slot`] of a key the scanner skips.
const OTHER: u8 = 102;

/// The field slot of a key (0..=28, in [`fields`]'s order), [`TYPE`],
/// [`NESTED`] or [`OTHER`]. Dispatching on the length first leaves one or
/// two short comparisons per key, where a plain `match` on the string
/// tried the names one after another.
fn slot(key: &str) -> u8 {
    match key.len() {
        4 => match key {
            "type" => TYPE,
            "time" => 4,
            "side" => 5,
            "size" => 7,
            "bids" => 27,
            "asks" => 28,
            _ => OTHER,
        },
        5 => match key {
            "price" => 6,
            "funds" => 8,
            _ => OTHER,
        },
        6 => match key {
            "reason" => 15,
            _ => OTHER,
        },
        7 => match key {
            "message" => 25,
            "changes" => 26,
            _ => OTHER,
        },
        8 => match key {
            "sequence" => 1,
            "trade_id" => 2,
            "order_id" => 9,
            "old_size" => 17,
            "new_size" => 18,
            "best_bid" => 19,
            "best_ask" => 20,
            "open_24h" => 21,
            "products" => NESTED,
            "channels" => NESTED,
            _ => OTHER,
        },
        9 => match key {
            "stop_type" => 23,
            _ => OTHER,
        },
        10 => match key {
            "product_id" => 0,
            "client_oid" => 10,
            "order_type" => 11,
            "volume_24h" => 22,
            "stop_price" => 24,
            "currencies" => NESTED,
            _ => OTHER,
        },
        13 => match key {
            "last_trade_id" => 3,
            "cancel_reason" => 16,
            _ => OTHER,
        },
        14 => match key {
            "maker_order_id" => 12,
            "taker_order_id" => 13,
            "remaining_size" => 14,
            _ => OTHER,
        },
        _ => OTHER,
    }
}

/// Sets `slot` once; a repeated key gives up (serde reports it).
fn once<T>(slot: &mut Option<T>, v: Option<T>, seen: &mut bool) -> Option<()> {
    if *seen {
        return None;
    }
    *seen = true;
    *slot = v;
    Some(())
}

/// Fills `r` with the frame's fields and returns its `type`, or `None` to
/// leave the frame to serde (`r` is then to be discarded).
pub(super) fn fields<'a>(text: &'a str, r: &mut RawFields<'a>) -> Option<&'a str> {
    let mut c = Cursor { text, at: 0 };
    let mut kind = None;
    // Which known keys were seen, to refuse repeats as serde does.
    let mut seen = [false; 32];
    c.eat(b'{')?;
    c.skip_ws();
    if c.peek()? == b'}' {
        return None;
    }
    loop {
        let key = c.string()?;
        c.eat(b':')?;
        macro_rules! set {
            ($i:expr, $slot:expr, $read:expr) => {
                once(&mut $slot, $read?, &mut seen[$i])?
            };
        }
        match slot(key) {
            TYPE => {
                if kind.is_some() {
                    return None;
                }
                kind = Some(c.string()?);
            }
            0 => set!(0, r.product_id, c.opt_str()),
            1 => set!(1, r.sequence, c.opt_u64()),
            2 => set!(2, r.trade_id, c.opt_u64()),
            3 => set!(3, r.last_trade_id, c.opt_u64()),
            4 => set!(4, r.time, c.opt_str()),
            5 => set!(5, r.side, c.opt_str()),
            6 => set!(6, r.price, c.opt_str()),
            7 => set!(7, r.size, c.opt_str()),
            8 => set!(8, r.funds, c.opt_str()),
            9 => set!(9, r.order_id, c.opt_str()),
            10 => set!(10, r.client_oid, c.opt_str()),
            11 => set!(11, r.order_type, c.opt_str()),
            12 => set!(12, r.maker_order_id, c.opt_str()),
            13 => set!(13, r.taker_order_id, c.opt_str()),
            14 => set!(14, r.remaining_size, c.opt_str()),
            15 => set!(15, r.reason, c.opt_str()),
            16 => set!(16, r.cancel_reason, c.opt_str()),
            17 => set!(17, r.old_size, c.opt_str()),
            18 => set!(18, r.new_size, c.opt_str()),
            19 => set!(19, r.best_bid, c.opt_str()),
            20 => set!(20, r.best_ask, c.opt_str()),
            21 => set!(21, r.open_24h, c.opt_str()),
            22 => set!(22, r.volume_24h, c.opt_str()),
            23 => set!(23, r.stop_type, c.opt_str()),
            24 => set!(24, r.stop_price, c.opt_str()),
            25 => set!(25, r.message, c.opt_str()),
            26 => set!(26, r.typed_changes, c.opt_changes()),
            27 => set!(27, r.bids, c.opt_rows::<2>()),
            28 => set!(28, r.asks, c.opt_rows::<2>()),
            // Nested or rare: serde's job.
            NESTED => return None,
            _ => c.skip_value()?,
        }
        c.skip_ws();
        match c.peek()? {
            b',' => {
                c.at += 1;
                c.skip_ws();
            }
            b'}' => {
                c.at += 1;
                break;
            }
            _ => return None,
        }
    }
    c.skip_ws();
    if c.at != text.len() {
        return None;
    }
    kind
}

/// Walks a flat object that begins with `prefix` (its `type`, as the
/// exchange writes it): `read` takes each key's value and says `None` to
/// leave the frame to the general path. Keys it does not take are skipped
/// only where [`fields`] skips them too.
fn typed_object<'a>(
    text: &'a str,
    prefix: &str,
    mut read: impl FnMut(&mut Cursor<'a>, &'a str) -> Option<Option<()>>,
) -> Option<()> {
    let rest = text.strip_prefix(prefix)?;
    let mut c = Cursor {
        text,
        at: text.len() - rest.len(),
    };
    loop {
        c.skip_ws();
        let key = c.string()?;
        c.eat(b':')?;
        match read(&mut c, key)? {
            Some(()) => {}
            // A key the general path skips too; any other (repeated, or
            // another message's field, which it would read and check) is
            // left to it.
            None if slot(key) == OTHER => c.skip_value()?,
            None => return None,
        }
        c.skip_ws();
        match c.peek()? {
            b',' => c.at += 1,
            b'}' => {
                c.at += 1;
                break;
            }
            _ => return None,
        }
    }
    c.skip_ws();
    (c.at == text.len()).then_some(())
}

/// Sets `slot` from `read` the first time; a repeat gives up.
fn first<T>(slot: &mut Option<T>, read: impl FnOnce() -> Option<T>) -> Option<Option<()>> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(read()?);
    Some(Some(()))
}

/// A required time: Coinbase's zero time is left to the general path,
/// which reports it missing.
fn exchange_time(s: &str) -> Option<i64> {
    (s != super::ZERO_TIME).then(|| parse_rfc3339(s).ok())?
}

/// The parts of an `l2update` frame in the exchange's own layout (`type`
/// first), read straight into their types: the frame most of a level-2
/// feed is made of. `None` for anything else, or anything unusual in one
/// (a repeated or nested key, a value [`fields`] would not take, a bad
/// product id or time): the general path then gives the same message or
/// the precise error, as the tests check on every fixture frame.
pub(super) fn l2update(text: &str) -> Option<(ProductId, Option<i64>, L2Changes)> {
    let (mut product, mut time, mut changes) = (None, None, None);
    typed_object(text, r#"{"type":"l2update","#, |c, key| match key {
        "product_id" => first(&mut product, || ProductId::parse(c.string()?).ok()),
        "changes" => first(&mut changes, || c.opt_changes()?),
        "time" => first(&mut time, || match c.string()? {
            super::ZERO_TIME => Some(None),
            t => parse_rfc3339(t).ok().map(Some),
        }),
        _ => Some(None),
    })?;
    Some((product?, time.flatten(), changes?))
}

/// A `match` frame in the exchange's own layout, as [`l2update`] reads
/// an `l2update`: the frame every trade arrives in.
pub(super) fn matched(text: &str) -> Option<Match> {
    let (mut product, mut trade, mut sequence) = (None, None, None);
    let (mut maker, mut taker, mut side) = (None, None, None);
    let (mut price, mut size, mut time) = (None, None, None);
    typed_object(text, r#"{"type":"match","#, |c, key| match key {
        "product_id" => first(&mut product, || ProductId::parse(c.string()?).ok()),
        "trade_id" => first(&mut trade, || c.u64()),
        "sequence" => first(&mut sequence, || c.opt_u64()),
        "maker_order_id" => first(&mut maker, || OrderId::parse(c.string()?).ok()),
        "taker_order_id" => first(&mut taker, || OrderId::parse(c.string()?).ok()),
        "side" => first(&mut side, || match c.string()? {
            "buy" => Some(Side::Buy),
            "sell" => Some(Side::Sell),
            _ => None,
        }),
        "price" => first(&mut price, || Price::parse(c.string()?).ok()),
        "size" => first(&mut size, || Size::parse(c.string()?).ok()),
        "time" => first(&mut time, || exchange_time(c.string()?)),
        _ => Some(None),
    })?;
    Some(Match {
        product_id: product?,
        trade_id: trade?,
        sequence: sequence.flatten(),
        maker_order_id: maker?,
        taker_order_id: taker?,
        side: side?,
        price: price?,
        size: size?,
        time: time?,
        last: false,
    })
}

/// A `ticker` frame in the exchange's own layout, as [`l2update`] reads
/// an `l2update`.
pub(super) fn ticker(text: &str) -> Option<Ticker> {
    let (mut product, mut sequence, mut trade) = (None, None, None);
    let (mut price, mut bid, mut ask) = (None, None, None);
    let (mut open, mut volume, mut time, mut side) = (None, None, None, None);
    let opt_price = |s: Option<&str>| match s {
        Some(s) => Price::parse(s).ok().map(Some),
        None => Some(None),
    };
    let opt_decimal = |s: Option<&str>| match s {
        Some(s) => parse_decimal("", s).ok().map(Some),
        None => Some(None),
    };
    typed_object(text, r#"{"type":"ticker","#, |c, key| match key {
        "product_id" => first(&mut product, || ProductId::parse(c.string()?).ok()),
        "sequence" => first(&mut sequence, || c.opt_u64()),
        "trade_id" => first(&mut trade, || c.opt_u64()),
        "price" => first(&mut price, || Price::parse(c.string()?).ok()),
        "best_bid" => first(&mut bid, || opt_price(c.opt_str()?)),
        "best_ask" => first(&mut ask, || opt_price(c.opt_str()?)),
        "open_24h" => first(&mut open, || opt_decimal(c.opt_str()?)),
        "volume_24h" => first(&mut volume, || opt_decimal(c.opt_str()?)),
        "time" => first(&mut time, || match c.opt_str()? {
            None | Some(super::ZERO_TIME) => Some(None),
            Some(t) => parse_rfc3339(t).ok().map(Some),
        }),
        // Read and checked as the general path does, not kept.
        "side" => first(&mut side, || c.opt_str()),
        _ => Some(None),
    })?;
    Some(Ticker {
        product_id: product?,
        sequence: sequence.flatten(),
        trade_id: trade.flatten(),
        price: price?,
        best_bid: bid.flatten(),
        best_ask: ask.flatten(),
        open_24h: open.flatten(),
        volume_24h: volume.flatten(),
        time: time.flatten(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use std::path::Path;

    use super::super::{parse, parse_serde};

    /// Every frame of every recorded fixture, one per line (JSON files whole).
    fn frames() -> Vec<String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut out = Vec::new();
        let mut dirs = vec![root];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                let ext = p.extension().and_then(|e| e.to_str()).unwrap_or_default();
                if p.is_dir() {
                    dirs.push(p);
                } else if ext == "jsonl" {
                    let text = std::fs::read_to_string(&p).unwrap();
                    out.extend(
                        text.lines()
                            .filter(|l| !l.trim().is_empty())
                            .map(str::to_owned),
                    );
                } else if ext == "json" && !name.starts_with("signature") {
                    out.push(std::fs::read_to_string(&p).unwrap());
                }
            }
        }
        out
    }

    /// The same answer both ways: the same message, or an error from both.
    fn agree(text: &str) {
        match (parse(text), parse_serde(text)) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{text}"),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("scanner {a:?} vs serde {b:?} on {text}"),
        }
    }

    #[test]
    fn every_field_name_finds_its_slot() {
        let names = [
            "product_id",
            "sequence",
            "trade_id",
            "last_trade_id",
            "time",
            "side",
            "price",
            "size",
            "funds",
            "order_id",
            "client_oid",
            "order_type",
            "maker_order_id",
            "taker_order_id",
            "remaining_size",
            "reason",
            "cancel_reason",
            "old_size",
            "new_size",
            "best_bid",
            "best_ask",
            "open_24h",
            "volume_24h",
            "stop_type",
            "stop_price",
            "message",
            "changes",
            "bids",
            "asks",
        ];
        for (i, name) in names.iter().enumerate() {
            assert_eq!(usize::from(super::slot(name)), i, "{name}");
        }
        assert_eq!(super::slot("type"), super::TYPE);
        for nested in ["channels", "products", "currencies"] {
            assert_eq!(super::slot(nested), super::NESTED);
        }
        for other in ["", "typ", "types", "low_24h", "last_size", "product_ids"] {
            assert_eq!(super::slot(other), super::OTHER, "{other}");
        }
    }

    #[test]
    fn string_ends_are_found_in_every_position() {
        for len in 0..40 {
            for stop in [b'"', b'\\', 0x00, 0x1f, 0x0a] {
                for at in 0..len {
                    let mut bytes = vec![b'a'; len];
                    // Bytes that look close to the stops must not count.
                    if at > 0 {
                        bytes[at - 1] = 0x20;
                    }
                    bytes[at] = stop;
                    bytes.push(b'"');
                    assert_eq!(super::string_end(&bytes), Some(at), "{len} {stop} {at}");
                }
                let mut none = vec![0x7f_u8; len];
                none.extend_from_slice(&[0x21, 0xff, 0x5b, 0x5d]);
                assert_eq!(super::string_end(&none), None);
            }
        }
    }

    #[test]
    fn the_scanner_reads_every_recorded_frame_as_serde_does() {
        let frames = frames();
        assert!(frames.len() > 9_900, "{}", frames.len());
        let mut scanned = 0;
        for f in &frames {
            agree(f);
            let mut r = super::RawFields::default();
            scanned += usize::from(super::fields(f, &mut r).is_some());
        }
        // It is the fast path for nearly all of them.
        assert!(
            scanned * 100 > frames.len() * 95,
            "{scanned} of {}",
            frames.len()
        );
        // And every l2update takes the shorter one.
        let l2: Vec<_> = frames
            .iter()
            .filter(|f| f.contains("\"type\":\"l2update\""))
            .collect();
        assert!(l2.len() > 9_000, "{}", l2.len());
        assert!(l2.iter().all(|f| super::l2update(f).is_some()));
        let matches: Vec<_> = frames
            .iter()
            .filter(|f| f.starts_with("{\"type\":\"match\""))
            .collect();
        assert!(matches.len() > 90, "{}", matches.len());
        assert!(matches.iter().all(|f| super::matched(f).is_some()));
        let tickers: Vec<_> = frames
            .iter()
            .filter(|f| f.starts_with("{\"type\":\"ticker\""))
            .collect();
        assert!(tickers.len() > 100, "{}", tickers.len());
        assert!(tickers.iter().all(|f| super::ticker(f).is_some()));
    }

    #[test]
    fn damaged_frames_get_the_same_answer_both_ways() {
        let frames = frames();
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        for f in frames.iter().step_by(7) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let cut = usize::try_from(seed % (f.len() as u64 + 1)).unwrap();
            let cut = (0..=cut)
                .rev()
                .find(|&i| f.is_char_boundary(i))
                .unwrap_or(0);
            agree(&f[..cut]);
            for (from, to) in [
                ("\"sequence\":", "\"sequence\":-"),
                ("\"price\":\"", "\"price\":\"\\u0031"),
                ("\"trade_id\":", "\"trade_id\":1.5,\"x\":"),
                ("{", "{\"side\":\"buy\","),
                ("\"size\":\"", "\"size\":\"1e3"),
                ("}", "} x"),
                ("\"changes\":[", "\"changes\":[[\"buy\",\"1\"],"),
                ("\"time\":", "\"time\":{},\"t\":"),
                // For the l2update path: repeats, other messages' fields,
                // skipped keys, nulls, a bad id.
                ("\"time\":\"", "\"sequence\":\"abc\",\"time\":\""),
                ("\"time\":\"", "\"low_24h\":\"1\",\"time\":\""),
                (
                    "\"product_id\":",
                    "\"product_id\":\"ETH-USD\",\"product_id\":",
                ),
                ("\"product_id\":\"", "\"product_id\":\"x"),
                ("\"changes\":", "\"changes\":null,\"c\":"),
                ("\"sequence\":", "\"sequence\":null,\"s\":"),
                ("\"side\":\"", "\"side\":\"x"),
                ("\"maker_order_id\":\"", "\"maker_order_id\":\"0"),
                ("\"trade_id\":", "\"trade_id\":null,\"t\":"),
                ("\"size\":\"", "\"size\":\"-"),
                ("\"side\":", "\"side\":1,\"x\":"),
                ("\"best_bid\":\"", "\"best_bid\":null,\"b\":\""),
                ("\"best_ask\":\"", "\"best_ask\":\"-"),
                ("\"open_24h\":\"", "\"open_24h\":\"1e"),
                ("\"volume_24h\":", "\"volume_24h\":null,\"v\":"),
                ("\"last_size\":", "\"last_size\":{},\"l\":"),
                ("\"time\":\"", "\"time\":null,\"t\":\""),
                (
                    "\"time\":\"",
                    "\"time\":\"0001-01-01T00:00:00.000000Z\",\"t\":\"",
                ),
            ] {
                agree(&f.replacen(from, to, 1));
            }
        }
        for odd in [
            "",
            "{}",
            "[]",
            "null",
            "{\"type\":1}",
            "{\"type\":\"match\"",
            "{\"type\":\"heartbeat\",\"sequence\":01}",
            "{\"type\":\"heartbeat\",\"product_id\":\"BTC-USD\",\"sequence\":18446744073709551615}",
            "{\"type\":\"heartbeat\",\"product_id\":\"BTC-USD\",\"sequence\":18446744073709551616}",
            "{\"type\":\"heartbeat\",\"product_id\":\"BTC-USD\",\"sequence\":0}",
            "{\"type\":\"l2update\",\"product_id\":\"BTC-USD\",\"changes\":[]}",
            "{\"type\":\"l2update\",\"product_id\":\"BTC-USD\",\"changes\":[],\"type\":\"x\"}",
            "{\"type\":\"l2update\",\"product_id\":\"BTC-USD\"}",
            "{\"type\":\"l2update\", \"product_id\":\"BTC-USD\",\"changes\":[[\"sell\",\"1.5\",\"0\"]]}",
            "{\"type\":\"l2update\",\"product_id\":\"BTC-USD\",\"changes\":[[\"up\",\"1.5\",\"0\"]]}",
        ] {
            agree(odd);
        }
    }
}

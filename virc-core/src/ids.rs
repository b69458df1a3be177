//! Identifiers as newtypes, so that swapped arguments do not compile.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// Why an identifier could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not a UUID.
    #[error("{what} `{text}` is not a UUID")]
    NotUuid {
        /// Which id.
        what: &'static str,
        /// The text.
        text: String,
    },
    /// Not `BASE-QUOTE`.
    #[error("product id `{0}` is not of the form BASE-QUOTE (for example BTC-USD)")]
    BadProduct(String),
    /// Not a currency code.
    #[error(
        "currency code `{0}` must be 1 to 16 printable ASCII characters without spaces (for example BTC or USD)"
    )]
    BadCurrency(String),
}

/// A stable 64-bit id space per product (FNV-1a of its id): engines put it
/// in the high half of the order ids they issue, so ids of different
/// products never collide.
pub fn id_space(product: &str) -> u64 {
    product.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The traits of an id kept inline as text (`as_str`) and checked by
/// `$check` when read: shown, hashed, borrowed, compared with `&str` and
/// serialised as that text. Hashing the text is what `Borrow<str>` needs;
/// each type orders itself (as its text) for speed.
macro_rules! text_id {
    ($name:ident, $check:path) => {
        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.as_str().hash(state);
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                self.as_str()
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                self.as_str()
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self.as_str(), f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = std::borrow::Cow::<str>::deserialize(d)?;
                $check(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A currency code ("BTC", "USD"), kept inline and zero-padded: ledgers
/// look one up on every hold and fill, where a `String` cost an allocation
/// per hold and a pointer chase and `memcmp` per lookup.
///
/// Ordered as its text (the padding sorts before every character), so maps
/// keyed by it list currencies alphabetically and can be searched by `&str`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Currency([u8; Currency::MAX_LEN]);

impl Currency {
    /// The longest code accepted, in bytes.
    pub const MAX_LEN: usize = 16;

    /// Checks and packs a code.
    pub fn new(code: &str) -> Result<Self, IdError> {
        let bytes = code.as_bytes();
        if bytes.is_empty()
            || bytes.len() > Self::MAX_LEN
            || !bytes.iter().all(u8::is_ascii_graphic)
        {
            return Err(IdError::BadCurrency(code.to_owned()));
        }
        let mut packed = [0u8; Self::MAX_LEN];
        packed[..bytes.len()].copy_from_slice(bytes);
        Ok(Self(packed))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever packed, so this cannot fail.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The code's bytes, without the text check `as_str` makes (store
    /// keys are built from them on every fill).
    pub fn as_bytes(&self) -> &[u8] {
        let len = self.0.iter().position(|&b| b == 0).unwrap_or(Self::MAX_LEN);
        &self.0[..len]
    }

    fn key(self) -> u128 {
        u128::from_be_bytes(self.0)
    }
}

impl PartialOrd for Currency {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Currency {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

text_id!(Currency, Currency::new);

impl FromStr for Currency {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// Hashes ids and keys we issue ourselves cheaply: our order ids come from
/// a counter, Coinbase's are its own UUIDs and store keys are built from
/// those, so they need no protection against crafted collisions, and
/// SipHash was a measurable part of every matcher operation and every
/// journaled write.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // splitmix64's finalizer: every input bit reaches the low bits that
        // pick the bucket (the counter sits in the high bytes of a UUID).
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(32) ^ u64::from_le_bytes(word);
        }
    }
}

/// A hash map keyed by order id with [`IdHasher`].
pub(crate) type IdMap<V> =
    std::collections::HashMap<OrderId, V, std::hash::BuildHasherDefault<IdHasher>>;

macro_rules! uuid_id {
    ($name:ident, $what:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub Uuid);

        impl $name {
            /// Parses the hyphenated UUID text.
            pub fn parse(text: &str) -> Result<Self, IdError> {
                Uuid::parse_str(text)
                    .map(Self)
                    .map_err(|_| IdError::NotUuid {
                        what: $what,
                        text: text.to_owned(),
                    })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.collect_str(self)
                } else {
                    s.serialize_bytes(self.0.as_bytes())
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    Self::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
                } else {
                    crate::compact::bytes16(d, $what).map(|b| Self(Uuid::from_bytes(b)))
                }
            }
        }
    };
}

uuid_id!(OrderId, "order id", "The exchange's id of an order.");
uuid_id!(
    ClientOid,
    "client_oid",
    "Our id of an order, persisted before the order is sent."
);
uuid_id!(BotId, "bot id", "A bot's id.");

/// Namespace for deterministic client order ids (UUID v5).
const CLIENT_OID_NAMESPACE: Uuid = Uuid::from_u128(0x6d2f_4a8e_0b1c_4c55_9a7e_2f3d_1c0b_9e41);

impl ClientOid {
    /// The deterministic id of a bot's order intent: the same (bot, step,
    /// attempt) always gives the same id, so a restart finds the order it
    /// may already have placed instead of placing it twice.
    pub fn for_intent(bot: BotId, step: u64, attempt: u32) -> Self {
        let mut name = [0u8; 28];
        name[..16].copy_from_slice(bot.0.as_bytes());
        name[16..24].copy_from_slice(&step.to_be_bytes());
        name[24..].copy_from_slice(&attempt.to_be_bytes());
        Self(Uuid::new_v5(&CLIENT_OID_NAMESPACE, &name))
    }
}

/// An exchange trade id; increases per product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TradeId(pub u64);

/// A per-product feed sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sequence(pub u64);

/// A product id, validated `BASE-QUOTE` (upper-case letters and digits,
/// at most 10 each).
///
/// Stored inline (it is `Copy`): every feed message names its product, and
/// an allocation per message was a sixth of the cost of reading a trade.
/// Equality, order and hash are the text's, so maps keyed by it can be
/// looked up by `&str`. The text is zero-padded to three 8-byte words, so
/// equality and order compare those words (zero sorts before any byte an
/// id holds, as a shorter string sorts before its extensions): a map keyed
/// by product is looked up on every feed message.
#[derive(Clone, Copy)]
pub struct ProductId {
    text: [u8; ProductId::STORED],
    len: u8,
}

impl ProductId {
    /// The longest id: two 10-character codes and the dash.
    pub const MAX_LEN: usize = 21;

    /// Bytes stored: `MAX_LEN` rounded up to whole 8-byte words.
    const STORED: usize = 24;

    /// The text as big-endian words: their order is the text's.
    #[inline]
    fn words(&self) -> [u64; 3] {
        let t = &self.text;
        let word = |i: usize| {
            u64::from_be_bytes([
                t[i],
                t[i + 1],
                t[i + 2],
                t[i + 3],
                t[i + 4],
                t[i + 5],
                t[i + 6],
                t[i + 7],
            ])
        };
        [word(0), word(8), word(16)]
    }

    /// Parses and validates `BASE-QUOTE`.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        // One pass over the bytes: every feed message names its product.
        let bytes = text.as_bytes();
        let mut dash = None;
        let mut ok = bytes.len() <= Self::MAX_LEN;
        if ok {
            for (i, &b) in bytes.iter().enumerate() {
                if b == b'-' {
                    ok &= dash.is_none();
                    dash = Some(i);
                } else {
                    ok &= b.is_ascii_uppercase() || b.is_ascii_digit();
                }
            }
        }
        match dash {
            Some(d) if ok && (1..=10).contains(&d) && (1..=10).contains(&(bytes.len() - d - 1)) => {
                let mut id = Self {
                    text: [0; Self::STORED],
                    len: 0,
                };
                id.text[..bytes.len()].copy_from_slice(bytes);
                id.len = u8::try_from(bytes.len()).unwrap_or(0);
                Ok(id)
            }
            _ => Err(IdError::BadProduct(text.to_owned())),
        }
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        // Only ASCII letters, digits and '-' are ever stored.
        std::str::from_utf8(&self.text[..usize::from(self.len)]).unwrap_or_default()
    }

    /// The base currency.
    pub fn base(&self) -> &str {
        self.as_str().split_once('-').map_or("", |(b, _)| b)
    }

    /// The quote currency.
    pub fn quote(&self) -> &str {
        self.as_str().split_once('-').map_or("", |(_, q)| q)
    }
}

impl PartialEq for ProductId {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for ProductId {}

impl PartialOrd for ProductId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ProductId {
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.words().cmp(&other.words())
    }
}

text_id!(ProductId, ProductId::parse);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_ids_are_validated() {
        let p = ProductId::parse("BTC-USD").unwrap();
        assert_eq!((p.base(), p.quote()), ("BTC", "USD"));
        assert!(ProductId::parse("1INCH-EUR").is_ok());
        let longest = ProductId::parse("ABCDEFGHIJ-0123456789").unwrap();
        assert_eq!(longest.as_str(), "ABCDEFGHIJ-0123456789");
        assert_eq!(format!("{p} {p:?}"), "BTC-USD \"BTC-USD\"");
        let mut ids =
            ["BTC-USDC", "BTC-USD", "AAVE-USD", "BTC-EUR"].map(|t| ProductId::parse(t).unwrap());
        ids.sort();
        assert_eq!(
            ids.map(|p| p.to_string()),
            ["AAVE-USD", "BTC-EUR", "BTC-USD", "BTC-USDC"],
            "text order"
        );
        for bad in [
            "btc-usd",
            "BTCUSD",
            "BTC-",
            "-USD",
            "BTC-USD-X",
            "",
            "ABCDEFGHIJK-USD",
        ] {
            assert!(ProductId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn currency_codes_are_checked_and_read_back() {
        for good in ["BTC", "USD", "1INCH", "00", "ABCDEFGHIJKLMNOP"] {
            let c = Currency::new(good).unwrap();
            assert_eq!((c.as_str(), c.to_string()), (good, good.to_owned()));
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{good}\""));
            assert_eq!(serde_json::from_str::<Currency>(&json).unwrap(), c);
        }
        for bad in ["", "BTC USD", "ABCDEFGHIJKLMNOPQ", "BTC\0", "\u{e9}"] {
            let e = Currency::new(bad).unwrap_err();
            assert!(e.to_string().contains("1 to 16 printable ASCII"), "{e}");
        }
        let e = serde_json::from_str::<Currency>("\"\"").unwrap_err();
        assert!(e.to_string().contains("currency code ``"), "{e}");
    }

    proptest::proptest! {
        /// A currency sorts, compares and hashes as its text, so a map keyed
        /// by it can be searched by `&str`.
        #[test]
        fn currencies_order_as_their_text(a in "[!-~]{1,16}", b in "[!-~]{1,16}", cut in 0usize..16) {
            let b = if cut % 2 == 0 { format!("{a}{}", &b[..cut.min(b.len())]) } else { b };
            let Ok(y) = Currency::new(&b) else {
                proptest::prop_assert!(b.len() > 16);
                return Ok(());
            };
            let x = Currency::new(&a).unwrap();
            proptest::prop_assert_eq!(x.cmp(&y), a.cmp(&b));
            proptest::prop_assert_eq!(x == y, a == b);
            let tree: std::collections::BTreeSet<Currency> = [x].into();
            proptest::prop_assert_eq!(tree.contains(b.as_str()), a == b);
            let set: std::collections::HashSet<Currency> = [x].into();
            proptest::prop_assert_eq!(set.contains(b.as_str()), a == b);
        }
    }

    proptest::proptest! {
        /// Equality and order by words agree with the text's, for ids of
        /// every length, including one a prefix of the other.
        #[test]
        fn order_and_equality_are_the_texts(
            a in "[A-Z0-9]{1,10}-[A-Z0-9]{1,10}",
            b in "[A-Z0-9]{1,10}-[A-Z0-9]{1,10}",
            cut in 0usize..10,
        ) {
            // Often a prefix of `a` extended: the case zero padding must get right.
            let b = if cut % 2 == 0 { format!("{a}{}", &b[..cut.min(b.len())]) } else { b };
            let (Ok(x), Ok(y)) = (ProductId::parse(&a), ProductId::parse(&b)) else {
                return Ok(());
            };
            proptest::prop_assert_eq!(x.cmp(&y), a.cmp(&b));
            proptest::prop_assert_eq!(x == y, a == b);
        }

        /// The one-pass parser accepts exactly `BASE-QUOTE`, each part 1 to
        /// 10 upper-case letters or digits.
        #[test]
        fn parse_accepts_exactly_the_rule(text in "[A-Za-z0-9-]{0,24}") {
            let rule = text.split_once('-').is_some_and(|(b, q)| {
                [b, q].iter().all(|p| {
                    (1..=10).contains(&p.len())
                        && p.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                })
            });
            let parsed = ProductId::parse(&text);
            proptest::prop_assert_eq!(parsed.is_ok(), rule, "{}", text);
            if let Ok(p) = parsed {
                proptest::prop_assert_eq!(p.as_str(), text.as_str());
            }
        }
    }

    #[test]
    fn client_oids_are_deterministic_per_intent() {
        let bot = BotId(Uuid::from_u128(42));
        assert_eq!(
            ClientOid::for_intent(bot, 3, 0),
            ClientOid::for_intent(bot, 3, 0)
        );
        assert_ne!(
            ClientOid::for_intent(bot, 3, 0),
            ClientOid::for_intent(bot, 3, 1)
        );
        assert_ne!(
            ClientOid::for_intent(bot, 3, 0),
            ClientOid::for_intent(bot, 4, 0)
        );
        assert_ne!(
            ClientOid::for_intent(bot, 3, 0),
            ClientOid::for_intent(BotId(Uuid::from_u128(43)), 3, 0)
        );
    }

    #[test]
    fn uuids_round_trip_and_reject_garbage() {
        let id = OrderId::parse("d0c5340b-6d6c-49d9-b567-48c4bfca13d2").unwrap();
        assert_eq!(id.to_string(), "d0c5340b-6d6c-49d9-b567-48c4bfca13d2");
        assert_eq!(
            OrderId::parse("nope").unwrap_err().to_string(),
            "order id `nope` is not a UUID"
        );
    }
}

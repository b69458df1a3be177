//! Compact serde forms for binary formats: a decimal as its 16 raw bytes,
//! a uuid as its 16 bytes, instead of their text.
//!
//! Every type here serialises as text for a human-readable format (JSON,
//! TOML: the wire, the config, old stored records) and compactly for one
//! that is not (the daemon's stored records), decided by
//! `is_human_readable()`. Formatting a decimal or a uuid as text was most
//! of the cost of storing an order or a fill; the bytes are a copy.
//!
//! Bytes read back are checked: a decimal's flags must be ones
//! `rust_decimal` writes (scale ≤ 28, no stray bits) and the money types
//! apply their own sign rules after, so a damaged record is an error, never
//! a wrong amount.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A fixed 16-byte value out of a binary record.
pub(crate) fn bytes16<'de, D: Deserializer<'de>>(
    d: D,
    what: &'static str,
) -> Result<[u8; 16], D::Error> {
    struct Sixteen(&'static str);
    impl de::Visitor<'_> for Sixteen {
        type Value = [u8; 16];
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{} as 16 bytes", self.0)
        }
        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
            v.try_into().map_err(|_| E::invalid_length(v.len(), &self))
        }
    }
    d.deserialize_bytes(Sixteen(what))
}

/// A decimal from its `Decimal::serialize` bytes, refusing flags that
/// `rust_decimal` never writes (they would make an invalid value).
pub(crate) fn decimal_from_bytes<E: de::Error>(b: [u8; 16]) -> Result<Decimal, E> {
    // Flags: bytes 0-1 unused, byte 2 the scale, byte 3 the sign bit.
    if b[0] != 0 || b[1] != 0 || b[2] > 28 || b[3] & 0x7f != 0 {
        return Err(E::custom(format_args!(
            "decimal bytes have invalid flags {:02x?}",
            &b[..4]
        )));
    }
    Ok(Decimal::deserialize(b))
}

/// Writes a decimal: text when human-readable, 16 bytes otherwise.
pub(crate) fn put_decimal<S: Serializer>(v: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        Serialize::serialize(v, s)
    } else {
        s.serialize_bytes(&v.serialize())
    }
}

/// Reads what [`put_decimal`] writes.
pub(crate) fn get_decimal<'de, D: Deserializer<'de>>(
    d: D,
    what: &'static str,
) -> Result<Decimal, D::Error> {
    if d.is_human_readable() {
        <Decimal as Deserialize>::deserialize(d)
    } else {
        decimal_from_bytes(bytes16(d, what)?)
    }
}

/// `#[serde(with = "virc_core::compact::decimal")]` for a plain `Decimal`
/// field of a stored record: the same text as before in JSON, 16 bytes in
/// a binary record.
pub mod decimal {
    use super::{Decimal, Deserializer, Serializer};

    /// Writes the field.
    pub fn serialize<S: Serializer>(v: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        super::put_decimal(v, s)
    }

    /// Reads the field.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        super::get_decimal(d, "decimal")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;
    use crate::{
        ids::{ClientOid, OrderId},
        money::{Funds, Price, Size},
    };
    use proptest::prelude::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Rec {
        #[serde(with = "decimal")]
        d: Decimal,
    }

    fn raw(d: Decimal) -> [u8; 16] {
        d.serialize()
    }

    fn binary<T: Serialize>(v: &T) -> Vec<u8> {
        rmp_serde::to_vec_named(v).unwrap()
    }

    proptest! {
        #[test]
        fn every_decimal_survives_its_bytes(m in any::<i64>(), scale in 0u32..=28) {
            let d = Decimal::new(m, scale);
            let back: Decimal = decimal_from_bytes::<de::value::Error>(raw(d)).unwrap();
            prop_assert_eq!(back, d);
            prop_assert_eq!(back.scale(), d.scale());
            let rec: Rec = rmp_serde::from_slice(&binary(&Rec { d })).unwrap();
            prop_assert_eq!(rec.d.scale(), d.scale());
            prop_assert_eq!(rec.d, d);
        }

        #[test]
        fn money_and_ids_survive_a_binary_record(m in 1i64.., scale in 0u32..=12, id in any::<u128>()) {
            let v = (
                Price::new(Decimal::new(m, scale)).unwrap(),
                Size::new(Decimal::new(m, scale)).unwrap(),
                Funds::new(Decimal::new(m, scale)).unwrap(),
                OrderId(uuid::Uuid::from_u128(id)),
                ClientOid(uuid::Uuid::from_u128(id)),
            );
            let back: (Price, Size, Funds, OrderId, ClientOid) =
                rmp_serde::from_slice(&binary(&v)).unwrap();
            prop_assert_eq!(back, v);
        }
    }

    #[test]
    fn a_binary_amount_keeps_its_sign_rules() {
        #[derive(Debug, Deserialize)]
        struct SizeRec {
            #[allow(dead_code, reason = "only decoded")]
            d: Size,
        }
        let negative = binary(&Rec {
            d: Decimal::new(-5, 1),
        });
        // The same bytes as a `Size`: refused, not a negative size.
        let e = rmp_serde::from_slice::<SizeRec>(&negative).unwrap_err();
        assert!(e.to_string().contains("must not be negative"), "{e}");
    }

    #[test]
    fn a_short_id_is_refused_with_its_name() {
        let e = rmp_serde::from_slice::<OrderId>(&binary(&serde_bytes16(&[1; 15]))).unwrap_err();
        assert!(e.to_string().contains("order id as 16 bytes"), "{e}");
    }

    /// Bytes serialised as bytes (serde's `Vec<u8>` is a sequence).
    fn serde_bytes16(b: &[u8]) -> impl Serialize + '_ {
        struct B<'a>(&'a [u8]);
        impl Serialize for B<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        B(b)
    }

    #[test]
    fn bytes_with_flags_rust_decimal_never_writes_are_refused() {
        let mut b = raw(Decimal::new(15, 1));
        b[2] = 29;
        assert!(decimal_from_bytes::<de::value::Error>(b).is_err());
        let mut b = raw(Decimal::new(15, 1));
        b[3] = 0x01;
        assert!(decimal_from_bytes::<de::value::Error>(b).is_err());
    }

    #[test]
    fn json_keeps_the_text_form() {
        let r = Rec {
            d: Decimal::new(-1050, 2),
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, r#"{"d":"-10.50"}"#);
        assert_eq!(serde_json::from_str::<Rec>(&json).unwrap(), r);
        // JSON written by hand or by older builds with a number still reads.
        assert_eq!(
            serde_json::from_str::<Rec>(r#"{"d":2.5}"#).unwrap().d,
            Decimal::new(25, 1)
        );
    }
}

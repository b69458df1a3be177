//! A level-2 (aggregated) order book: a snapshot, then `l2update` changes
//! that set a level's new total size (zero removes the level).

use std::collections::BTreeMap;

use crate::{
    money::{Price, Size},
    order::Side,
};

/// An aggregated book of one product.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct L2Book {
    bids: BTreeMap<Price, Size>,
    asks: BTreeMap<Price, Size>,
}

impl L2Book {
    /// A book from a snapshot's levels.
    pub fn from_snapshot(
        bids: impl IntoIterator<Item = (Price, Size)>,
        asks: impl IntoIterator<Item = (Price, Size)>,
    ) -> Self {
        let keep = |(p, s): (Price, Size)| (!s.is_zero()).then_some((p, s));
        Self {
            bids: bids.into_iter().filter_map(keep).collect(),
            asks: asks.into_iter().filter_map(keep).collect(),
        }
    }

    /// Sets a level's total size; zero removes it.
    pub fn apply(&mut self, side: Side, price: Price, size: Size) {
        let book = self.side_mut(side);
        if size.is_zero() {
            book.remove(&price);
        } else {
            book.insert(price, size);
        }
    }

    fn side_mut(&mut self, side: Side) -> &mut BTreeMap<Price, Size> {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    /// The size at one level (zero if none).
    pub fn size_at(&self, side: Side, price: Price) -> Size {
        let book = match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        };
        book.get(&price).copied().unwrap_or(Size::ZERO)
    }

    /// Best bid.
    pub fn best_bid(&self) -> Option<(Price, Size)> {
        self.bids.iter().next_back().map(|(p, s)| (*p, *s))
    }

    /// Best ask.
    pub fn best_ask(&self) -> Option<(Price, Size)> {
        self.asks.iter().next().map(|(p, s)| (*p, *s))
    }

    /// Levels of one side, best first.
    pub fn levels(&self, side: Side) -> Box<dyn Iterator<Item = (Price, Size)> + '_> {
        match side {
            Side::Buy => Box::new(self.bids.iter().rev().map(|(p, s)| (*p, *s))),
            Side::Sell => Box::new(self.asks.iter().map(|(p, s)| (*p, *s))),
        }
    }

    /// Number of levels per side: (bids, asks).
    pub fn len(&self) -> (usize, usize) {
        (self.bids.len(), self.asks.len())
    }

    /// Whether both sides are empty.
    pub fn is_empty(&self) -> bool {
        self.bids.is_empty() && self.asks.is_empty()
    }

    /// Whether best bid ≥ best ask (a sign of a missed update).
    pub fn is_crossed(&self) -> bool {
        matches!((self.best_bid(), self.best_ask()), (Some((b, _)), Some((a, _))) if b >= a)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn p(s: &str) -> Price {
        Price::parse(s).unwrap()
    }

    fn z(s: &str) -> Size {
        Size::parse(s).unwrap()
    }

    #[test]
    fn levels_order_by_value_whatever_their_decimal_places() {
        let mut b = L2Book::default();
        for (price, size) in [("1.5", "1"), ("2", "1"), ("1.51", "1"), ("0.999", "1")] {
            b.apply(Side::Sell, p(price), z(size));
        }
        // "1.50" is the level "1.5", not a new one.
        b.apply(Side::Sell, p("1.50"), z("3"));
        let asks: Vec<String> = b
            .levels(Side::Sell)
            .map(|(p, s)| format!("{p}:{s}"))
            .collect();
        assert_eq!(asks, ["0.999:1", "1.5:3", "1.51:1", "2:1"]);
        b.apply(Side::Sell, p("1.500"), Size::ZERO);
        assert_eq!(b.len(), (0, 3));
        assert_eq!(b.size_at(Side::Sell, p("1.5")), Size::ZERO);
        assert_eq!(b.best_ask().unwrap().0, p("0.999"));
    }
}

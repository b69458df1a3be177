//! Products as the exchange defines them (`GET /products`), and the catalogue
//! the rest of the core looks them up in.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Deserialize;

use crate::{
    ids::{Currency, IdError, ProductId},
    money::{Funds, MoneyError, parse_decimal},
};

/// Why a product definition was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProductError {
    /// The JSON is not the `/products` shape.
    #[error("invalid products JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The id is not BASE-QUOTE.
    #[error(transparent)]
    Id(#[from] IdError),
    /// A decimal field is malformed.
    #[error("product {product}: {source}")]
    Money {
        /// The product.
        product: String,
        /// The error.
        source: MoneyError,
    },
    /// An increment is zero or negative.
    #[error("product {product}: {field} must be greater than zero")]
    BadIncrement {
        /// The product.
        product: String,
        /// The field.
        field: &'static str,
    },
}

/// One tradable product with its increments, limits and status flags.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "the exchange's independent status flags, as /products defines them"
)]
pub struct Product {
    /// "BTC-USD".
    pub id: ProductId,
    /// "BTC".
    pub base_currency: Currency,
    /// "USD".
    pub quote_currency: Currency,
    /// Price tick.
    pub quote_increment: Decimal,
    /// Size step.
    pub base_increment: Decimal,
    /// Smallest market-order funds, and smallest limit notional.
    pub min_market_funds: Funds,
    /// Largest market-order funds, when the exchange sets one.
    pub max_market_funds: Option<Funds>,
    /// Human name.
    pub display_name: String,
    /// Status text ("online", "delisted", ...).
    pub status: String,
    /// Only post-only orders are accepted.
    pub post_only: bool,
    /// Only limit orders are accepted.
    pub limit_only: bool,
    /// Only cancels are accepted.
    pub cancel_only: bool,
    /// Trading is disabled.
    pub trading_disabled: bool,
}

#[derive(Deserialize)]
#[expect(clippy::struct_excessive_bools, reason = "mirrors the /products JSON")]
struct WireProduct {
    id: String,
    base_currency: String,
    quote_currency: String,
    quote_increment: String,
    base_increment: String,
    #[serde(default)]
    min_market_funds: Option<String>,
    #[serde(default)]
    max_market_funds: Option<String>,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    post_only: bool,
    #[serde(default)]
    limit_only: bool,
    #[serde(default)]
    cancel_only: bool,
    #[serde(default)]
    trading_disabled: bool,
}

impl TryFrom<WireProduct> for Product {
    type Error = ProductError;

    fn try_from(w: WireProduct) -> Result<Self, Self::Error> {
        let id = ProductId::parse(&w.id)?;
        let money = |source| ProductError::Money {
            product: w.id.clone(),
            source,
        };
        let increment = |field, text: &str| -> Result<Decimal, ProductError> {
            let v = parse_decimal(field, text).map_err(money)?;
            if v <= Decimal::ZERO {
                return Err(ProductError::BadIncrement {
                    product: w.id.clone(),
                    field,
                });
            }
            Ok(v)
        };
        let quote_increment = increment("quote_increment", &w.quote_increment)?;
        let base_increment = increment("base_increment", &w.base_increment)?;
        let funds = |text: Option<&String>| -> Result<Option<Funds>, ProductError> {
            match text.map(String::as_str) {
                None | Some("") => Ok(None),
                Some(t) => Funds::parse(t).map(Some).map_err(money),
            }
        };
        Ok(Self {
            min_market_funds: funds(w.min_market_funds.as_ref())?.unwrap_or(Funds::ZERO),
            max_market_funds: funds(w.max_market_funds.as_ref())?,
            id,
            base_currency: Currency::new(&w.base_currency)?,
            quote_currency: Currency::new(&w.quote_currency)?,
            quote_increment,
            base_increment,
            display_name: w.display_name,
            status: w.status,
            post_only: w.post_only,
            limit_only: w.limit_only,
            cancel_only: w.cancel_only,
            trading_disabled: w.trading_disabled,
        })
    }
}

impl Product {
    /// Parses one product object of the `/products` shape.
    pub fn from_json(json: &str) -> Result<Self, ProductError> {
        serde_json::from_str::<WireProduct>(json)?.try_into()
    }
}

/// The products of one exchange, by id.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    products: BTreeMap<ProductId, Product>,
}

impl Catalogue {
    /// Parses a `GET /products` response body.
    pub fn from_json(json: &str) -> Result<Self, ProductError> {
        let wire: Vec<WireProduct> = serde_json::from_str(json)?;
        let products = wire
            .into_iter()
            .map(|w| Product::try_from(w).map(|p| (p.id, p)))
            .collect::<Result<_, _>>()?;
        Ok(Self { products })
    }

    /// Adds or replaces a product.
    pub fn insert(&mut self, product: Product) {
        self.products.insert(product.id, product);
    }

    /// Looks a product up by its id text.
    pub fn get(&self, id: &str) -> Option<&Product> {
        ProductId::parse(id)
            .ok()
            .and_then(|id| self.products.get(&id))
    }

    /// All products, sorted by id.
    pub fn iter(&self) -> impl Iterator<Item = &Product> {
        self.products.values()
    }

    /// Number of products.
    pub fn len(&self) -> usize {
        self.products.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.products.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    #[test]
    fn the_real_162_product_file_loads() {
        let text = include_str!("../tests/fixtures/cryptofeed/products-2021-04-17.json");
        let cat = Catalogue::from_json(text).unwrap();
        assert_eq!(cat.len(), 162);
        let btc = cat.get("BTC-USD").unwrap();
        assert_eq!(btc.quote_increment, dec!(0.01));
        assert_eq!(btc.base_increment, dec!(0.00000001));
        assert_eq!(btc.min_market_funds.get(), dec!(5));
        assert_eq!(btc.max_market_funds.unwrap().get(), dec!(1000000));
        assert_eq!(
            (btc.base_currency.as_str(), btc.quote_currency.as_str()),
            ("BTC", "USD")
        );
        assert!(!btc.post_only && !btc.limit_only && !btc.cancel_only && !btc.trading_disabled);
        assert!(cat.get("NOPE-USD").is_none());
        assert!(cat.get("garbage").is_none());
    }

    #[test]
    fn bad_products_are_refused_with_the_field_named() {
        let base = r#"{"id":"BTC-USD","base_currency":"BTC","quote_currency":"USD","base_increment":"0.00000001","quote_increment":"QI"}"#;
        let err = Product::from_json(&base.replace("QI", "0.0.1"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("BTC-USD") && err.contains("quote_increment"),
            "{err}"
        );
        let err = Product::from_json(&base.replace("QI", "0"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("must be greater than zero"), "{err}");
        let ok = Product::from_json(&base.replace("QI", "0.01")).unwrap();
        assert_eq!(ok.min_market_funds, Funds::ZERO);
    }
}

//! Fixtures shared by the unit tests of this crate.

use crate::product::{Catalogue, Product};

/// The real 162-product `/products` response of 2021-04-17.
pub(crate) fn catalogue() -> Catalogue {
    Catalogue::from_json(include_str!(
        "../tests/fixtures/cryptofeed/products-2021-04-17.json"
    ))
    .expect("fixture parses")
}

/// BTC-USD from that response: tick 0.01, step 0.00000001, min funds 5.
pub(crate) fn btc_usd() -> Product {
    catalogue()
        .get("BTC-USD")
        .expect("BTC-USD is in the fixture")
        .clone()
}

/// A BTC-USD order validated from `req` (its product id is filled in).
pub(crate) fn order(req: crate::order::OrderRequest) -> crate::order::NewOrder {
    let req = crate::order::OrderRequest {
        product_id: "BTC-USD".into(),
        ..req
    };
    crate::order::validate_for(&btc_usd(), &req).expect("test order is valid")
}

/// A BTC-USD limit order request, before validation.
pub(crate) fn request(side: &str, price: &str, size: &str) -> crate::order::OrderRequest {
    crate::order::OrderRequest {
        product_id: "BTC-USD".into(),
        side: Some(side.into()),
        price: Some(price.into()),
        size: Some(size.into()),
        ..crate::order::OrderRequest::default()
    }
}

/// A BTC-USD GTC limit order.
pub(crate) fn limit(side: &str, price: &str, size: &str) -> crate::order::NewOrder {
    order(request(side, price, size))
}

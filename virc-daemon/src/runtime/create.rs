//! Creating bots: checking a spec against the product and the wallet,
//! reserving the bot's money, and the spec of an existing bot (for show and
//! duplicate).

use rust_decimal::Decimal;
use virc_core::{
    bot::{BotInput, RangeBot, RangeParams},
    ids::BotId,
    money::{Price, Size},
    order::{OrderRequest, validate_for},
    product::Product,
};
use virc_proto::v1::{self as pb, bot_spec::Kind, event::Payload};

use super::{BotRecord, Machine, Runtime, dec};
use crate::{api::ServiceError, events::Draft};

/// The spec a bot was created with, rebuilt from its (normalised) parameters.
pub fn spec_of(rec: &BotRecord) -> pb::BotSpec {
    let Machine::Range(b) = &rec.machine;
    let p = b.params();
    pb::BotSpec {
        name: rec.name.clone(),
        exchange: rec.exchange.clone(),
        kind: Some(Kind::Range(pb::RangeSpec {
            product_id: p.product_id.clone(),
            size: p.size.to_string(),
            buy_price: p.buy.to_string(),
            sell_price: p.sell.to_string(),
            r#loop: p.looping,
            begin_with_sell: p.begin_with_sell,
            force: rec.force,
        })),
    }
}

fn price(
    field: &str,
    text: &str,
    product: &Product,
    warnings: &mut Vec<String>,
) -> Result<Price, ServiceError> {
    let p = Price::parse(text).map_err(|e| {
        ServiceError::Invalid(format!(
            "{field} `{text}`: {e}; give a positive decimal like 450.25"
        ))
    })?;
    if p.is_multiple_of(product.quote_increment) {
        return Ok(p);
    }
    let rounded = Price::new(p.round_to(product.quote_increment)).map_err(|_| {
        ServiceError::Invalid(format!(
            "{field} {text} rounds to zero on {}'s quote increment {}",
            product.id,
            dec(product.quote_increment)
        ))
    })?;
    warnings.push(format!(
        "{field} {text} rounded to {rounded} ({}'s quote increment is {})",
        product.id,
        dec(product.quote_increment)
    ));
    Ok(rounded)
}

fn range_params(
    spec: &pb::RangeSpec,
    product: &Product,
    warnings: &mut Vec<String>,
) -> Result<RangeParams, ServiceError> {
    let size = Size::parse(&spec.size).map_err(|e| {
        ServiceError::Invalid(format!(
            "size `{}`: {e}; give a decimal like 0.01",
            spec.size
        ))
    })?;
    if size.is_zero() {
        return Err(ServiceError::Invalid("size must be above zero".into()));
    }
    let buy = price("buy price", &spec.buy_price, product, warnings)?;
    let sell = price("sell price", &spec.sell_price, product, warnings)?;
    // Beyond any wallet, and beyond what the profit arithmetic can hold.
    let huge = |p: Price| {
        p.get()
            .checked_mul(size.get())
            .and_then(|v| v.checked_mul(Decimal::TEN))
            .is_none()
    };
    if huge(buy) || huge(sell) {
        return Err(ServiceError::Invalid(format!(
            "size {size} at these prices is out of range; no wallet holds that much"
        )));
    }
    if sell <= buy && !spec.force {
        return Err(ServiceError::Invalid(format!(
            "sell price {sell} is not above buy price {buy}: every cycle would lose money; pass --force if that is what you want"
        )));
    }
    // Both orders must pass the exchange's own checks, in its words.
    for (side, p) in [("buy", buy), ("sell", sell)] {
        let req = OrderRequest {
            product_id: spec.product_id.clone(),
            side: Some(side.into()),
            price: Some(p.to_string()),
            size: Some(size.to_string()),
            ..OrderRequest::default()
        };
        validate_for(product, &req).map_err(|r| {
            ServiceError::Refused(format!(
                "the bot's {side} order would be refused: {}",
                r.message
            ))
        })?;
    }
    Ok(RangeParams {
        product_id: spec.product_id.clone(),
        base: product.base_currency.clone(),
        quote: product.quote_currency.clone(),
        size,
        buy,
        sell,
        looping: spec.r#loop,
        begin_with_sell: spec.begin_with_sell,
    })
}

impl Runtime {
    /// Creates (or with `if_absent`, finds) a bot, reserves its money and starts it.
    pub(super) async fn create(
        &mut self,
        req: pb::CreateBotRequest,
    ) -> Result<pb::CreateBotResponse, ServiceError> {
        let spec = req
            .spec
            .ok_or_else(|| ServiceError::Invalid("spec is required".into()))?;
        if !spec.name.is_empty()
            && let Some(id) = self.names.get(&spec.name).copied()
        {
            if req.if_absent {
                return Ok(pb::CreateBotResponse {
                    bot: Some(self.bot_view(id, super::View::One)),
                    created: false,
                    warnings: Vec::new(),
                });
            }
            return Err(ServiceError::Exists(format!(
                "a bot named `{}` exists (id {id}); choose another --name, or pass --if-absent to reuse it",
                spec.name
            )));
        }
        let exchange = self.venue_name(&spec.exchange)?;
        let range = match spec.kind {
            Some(Kind::Range(r)) => r,
            Some(Kind::Grid(_)) => {
                return Err(ServiceError::Unimplemented(
                    "grid bots are not available in this build yet; range bots are".into(),
                ));
            }
            Some(Kind::StopLoss(_)) => {
                return Err(ServiceError::Unimplemented(
                    "stop-loss bots are not available in this build yet; range bots are".into(),
                ));
            }
            Some(Kind::Conditional(_)) => {
                return Err(ServiceError::Unimplemented(
                    "conditional bots are not available in this build yet; range bots are".into(),
                ));
            }
            None => return Err(ServiceError::Invalid("the spec names no bot kind".into())),
        };
        let venue = &self.venues[&exchange];
        let product = venue.exchange.catalogue().get(&range.product_id).cloned().ok_or_else(|| {
            ServiceError::NotFound(format!(
                "unknown product `{}` on exchange {exchange}; `virc products` lists what it trades",
                range.product_id
            ))
        })?;
        let mut warnings = Vec::new();
        let params = range_params(&range, &product, &mut warnings)?;
        let rates = venue.exchange.rates();
        let probe = RangeBot::new(BotId(uuid::Uuid::nil()), params.clone());
        let (per_cycle, _) = probe.theoretical_cycle_profit(rates);
        if per_cycle <= Decimal::ZERO && params.sell > params.buy {
            warnings.push(format!(
                "each cycle loses {} {} after fees (maker {} on both orders); widen the range to profit",
                dec(-per_cycle),
                params.quote,
                dec(rates.maker)
            ));
        }
        let id = BotId(uuid::Uuid::new_v4());
        let name = if spec.name.is_empty() {
            // At most `bots + 1` tries: one of those names is free.
            (1..=self.bots.len() + 1)
                .map(|n| format!("range-{n}"))
                .find(|n| !self.names.contains_key(n))
                .unwrap_or_else(|| id.to_string())
        } else {
            spec.name.clone()
        };
        // The bot's first order is paid from its reservation; the rest from what it earns.
        let (currency, amount) = if params.begin_with_sell {
            (params.base.clone(), params.size.get())
        } else {
            let rates = venue.exchange.rates();
            (
                params.quote.clone(),
                params.buy.get() * params.size.get() * (Decimal::ONE + rates.taker),
            )
        };
        let venue = self
            .venues
            .get_mut(&exchange)
            .ok_or_else(|| ServiceError::NotFound(exchange.clone()))?;
        venue
            .exchange
            .reserve(id, &currency, amount)
            .map_err(|e| ServiceError::Refused(format!("cannot start bot {name}: {e}")))?;
        let now = self.now();
        let rec = BotRecord {
            id,
            name: name.clone(),
            exchange,
            created_at: now,
            updated_at: now,
            force: range.force,
            machine: Machine::Range(RangeBot::new(id, params)),
            history_len: 0,
        };
        self.bots.insert(id, rec);
        self.names.insert(name, id);
        self.save(id)?;
        self.store.flush().await?;
        let view = self.bot_view(id, super::View::One);
        self.events
            .emit(Draft {
                bot_id: id.to_string(),
                product_id: range.product_id.clone(),
                payload: Payload::BotCreated(pb::BotCreated { bot: Some(view) }),
            })
            .await;
        for w in &warnings {
            self.note(id, format!("warning: {w}"), true).await?;
        }
        self.drive(id, BotInput::Started).await?;
        self.store.flush().await?;
        Ok(pb::CreateBotResponse {
            bot: Some(self.bot_view(id, super::View::One)),
            created: true,
            warnings,
        })
    }

    /// Creates a bot with another's spec and the given field overrides.
    pub(super) async fn duplicate(
        &mut self,
        req: pb::DuplicateBotRequest,
    ) -> Result<pb::CreateBotResponse, ServiceError> {
        let id = self.find(&req.bot)?;
        let mut spec = spec_of(&self.bots[&id]);
        spec.name.clone_from(&req.name);
        let Some(Kind::Range(r)) = spec.kind.as_mut() else {
            return Err(ServiceError::Internal("bot without a kind".into()));
        };
        let flag = |k: &str, v: &str| -> Result<bool, ServiceError> {
            v.parse().map_err(|_| {
                ServiceError::Invalid(format!("override {k}={v}: expected true or false"))
            })
        };
        for (k, v) in &req.overrides {
            match k.as_str() {
                "size" => r.size.clone_from(v),
                "buy_price" | "buy" => r.buy_price.clone_from(v),
                "sell_price" | "sell" => r.sell_price.clone_from(v),
                "product_id" | "product" => r.product_id.clone_from(v),
                "loop" => r.r#loop = flag(k, v)?,
                "begin_with_sell" => r.begin_with_sell = flag(k, v)?,
                "force" => r.force = flag(k, v)?,
                "exchange" => spec.exchange.clone_from(v),
                _ => {
                    return Err(ServiceError::Invalid(format!(
                        "cannot override `{k}`: a range bot has size, buy_price, sell_price, product_id, loop, begin_with_sell, force, exchange"
                    )));
                }
            }
        }
        self.create(pb::CreateBotRequest {
            spec: Some(spec),
            if_absent: false,
        })
        .await
    }
}

//! The rules of Get Orders, as the spec states them, as pure functions:
//!
//! 1. an order on hold or scheduled (its display status, or any of its fulfillment orders) is not imported until it
//!    becomes unfulfilled: the next run or webhook imports it then ([`Skip::Held`]);
//! 2. its fulfillment status must be one of the settings' (UNFULFILLED and Shopify's other not-yet-shipped states
//!    count as unfulfilled), and its financial status accepted by one of the settings' choices;
//! 3. with a location chosen, an order assigned to another location is skipped; an order assigned to none follows
//!    "import orders with no location";
//! 4. it must have been updated within the settings' window;
//! 5. every line item must have a SKU, and the order a shipping address (unless nothing in it needs shipping), else
//!    it "cannot be saved" ([`validate`]);
//!
//! and [`build`] turns an accepted order into what is stored: only the fields the mapping enables, the order marked
//! non-shippable when nothing is left to ship (fulfillable quantity 0) and digital when no line needs shipping,
//! its currency and its location's currency per the mapping.
//!
//! An order already stored is updated whatever rules 1-4 say now (its status moving on is exactly what an update
//! is); rule 5 still applies.

use chrono::{DateTime, Duration, Utc};
use shopbridge_proto::gateway as gw;

use super::{
    mapping::Mapping,
    order::{Address, Line, StoredOrder, from_timestamp},
    settings::{Fulfillment, GetOrdersSettings},
};

/// Why an order is not imported (not an error of the order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// On hold or scheduled: imported once it becomes unfulfilled.
    Held(String),
    FulfillmentStatus(String),
    FinancialStatus(String),
    /// Assigned to another location than the settings'.
    OtherLocation(String),
    /// Assigned to no location, and such orders are not imported.
    NoLocation,
    /// Not updated within the settings' window.
    OutsideWindow,
}

impl Skip {
    pub fn describe(&self) -> String {
        match self {
            Self::Held(status) => format!(
                "its fulfillment status is {status}, which is not supported: it will be imported once it becomes unfulfilled"
            ),
            Self::FulfillmentStatus(s) => format!(
                "its fulfillment status {s} is not among the settings' fulfillment statuses"
            ),
            Self::FinancialStatus(s) => {
                format!("its financial status {s} is not among the settings' financial statuses")
            }
            Self::OtherLocation(l) => {
                format!("it is assigned to another location ({l}) than the settings' location")
            }
            Self::NoLocation => {
                "it has no location and the settings do not import orders without one".into()
            }
            Self::OutsideWindow => "it was not updated within the settings' window".into(),
        }
    }
}

const HELD: [&str; 2] = ["ON_HOLD", "SCHEDULED"];

/// Shopify's displayFulfillmentStatus as one of the settings' choices; `None` for held orders.
pub fn fulfillment_of(status: &str) -> Option<Fulfillment> {
    match status {
        "PARTIALLY_FULFILLED" => Some(Fulfillment::PartiallyFulfilled),
        "FULFILLED" | "RESTOCKED" => Some(Fulfillment::Fulfilled),
        s if HELD.contains(&s) => None,
        // UNFULFILLED, OPEN, IN_PROGRESS, PENDING_FULFILLMENT, REQUEST_DECLINED: nothing shipped yet.
        _ => Some(Fulfillment::Unfulfilled),
    }
}

/// The locations the order is assigned to (its fulfillment orders' locations, without repeats).
pub fn locations(order: &gw::Order) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for fo in &order.fulfillment_orders {
        if !fo.location_id.is_empty() && !out.contains(&fo.location_id) {
            out.push(fo.location_id.clone());
        }
    }
    out
}

/// Rules 1-4: `None` when the order is to be imported.
pub fn skip_reason(
    order: &gw::Order,
    settings: &GetOrdersSettings,
    now: DateTime<Utc>,
) -> Option<Skip> {
    let held = HELD.contains(&order.fulfillment_status.as_str())
        || order
            .fulfillment_orders
            .iter()
            .any(|fo| HELD.contains(&fo.status.as_str()));
    if held {
        let status = if HELD.contains(&order.fulfillment_status.as_str()) {
            order.fulfillment_status.clone()
        } else {
            order
                .fulfillment_orders
                .iter()
                .find(|fo| HELD.contains(&fo.status.as_str()))
                .map(|fo| fo.status.clone())
                .unwrap_or_default()
        };
        return Some(Skip::Held(status));
    }
    match fulfillment_of(&order.fulfillment_status) {
        Some(f) if settings.fulfillment_statuses.contains(&f) => {}
        _ => return Some(Skip::FulfillmentStatus(order.fulfillment_status.clone())),
    }
    if !settings
        .financial_statuses
        .iter()
        .any(|f| f.accepts(&order.financial_status))
    {
        return Some(Skip::FinancialStatus(order.financial_status.clone()));
    }
    if !settings.location_id.is_empty() {
        let locations = locations(order);
        if locations.is_empty() {
            if !settings.import_orders_without_location {
                return Some(Skip::NoLocation);
            }
        } else if !locations.contains(&settings.location_id) {
            return Some(Skip::OtherLocation(locations.join(", ")));
        }
    }
    let updated = order.updated_at.as_ref().and_then(from_timestamp);
    let window_start = now - Duration::days(i64::from(settings.updated_within_days));
    if updated.is_some_and(|u| u < window_start) {
        return Some(Skip::OutsideWindow);
    }
    None
}

/// Rule 5: why the order cannot be saved; empty when it can.
pub fn validate(order: &gw::Order) -> Vec<String> {
    let mut reasons = Vec::new();
    for line in &order.line_items {
        if line.sku.trim().is_empty() {
            reasons.push(format!("the line item \"{}\" has no SKU", line.name));
        }
    }
    let needs_shipping = order.line_items.iter().any(|l| l.requires_shipping);
    let has_address = order
        .shipping_address
        .as_ref()
        .is_some_and(|a| !a.address1.trim().is_empty() || !a.city.trim().is_empty());
    if needs_shipping && !has_address {
        reasons.push("it has no shipping address".into());
    }
    reasons
}

fn opt(enabled: bool, value: &str) -> Option<String> {
    (enabled && !value.is_empty()).then(|| value.to_string())
}

fn address(
    mapping: &Mapping,
    kind: &str,
    a: Option<&gw::OrderAddress>,
    email: Option<&str>,
    email_field: &str,
) -> Option<Address> {
    let on = |f: &str| mapping.enabled(&format!("{kind}.{f}"));
    let mut out = match a {
        Some(a) => Address {
            name: opt(on("name"), &a.name),
            first_name: opt(on("first_name"), &a.first_name),
            last_name: opt(on("last_name"), &a.last_name),
            company: opt(on("company"), &a.company),
            address1: opt(on("address1"), &a.address1),
            address2: opt(on("address2"), &a.address2),
            city: opt(on("city"), &a.city),
            province_code: opt(on("province_code"), &a.province_code),
            zip: opt(on("zip"), &a.zip),
            country_code: opt(on("country_code"), &a.country_code),
            phone: opt(on("phone"), &a.phone),
            email: None,
        },
        None => Address::default(),
    };
    if a.is_some() {
        out.email = email.and_then(|e| opt(mapping.enabled(email_field), e));
    }
    (!out.is_empty()).then_some(out)
}

/// What is stored of an accepted order.
pub fn build(order: &gw::Order, settings: &GetOrdersSettings, mapping: &Mapping) -> StoredOrder {
    let locations = locations(order);
    let location_id =
        if !settings.location_id.is_empty() && locations.contains(&settings.location_id) {
            settings.location_id.clone()
        } else {
            locations.first().cloned().unwrap_or_default()
        };
    let currency = order
        .total_price
        .as_ref()
        .map(|m| m.currency_code.clone())
        .unwrap_or_default();
    let location_currency = mapping
        .currency_by_location
        .get(&location_id)
        .cloned()
        .unwrap_or_else(|| currency.clone());
    let customer_email = {
        let from_customer = order
            .customer
            .as_ref()
            .map(|c| c.email.as_str())
            .unwrap_or("");
        if from_customer.is_empty() {
            order.email.clone()
        } else {
            from_customer.to_string()
        }
    };
    let email = (!customer_email.is_empty()).then_some(customer_email.as_str());
    let lines: Vec<Line> = order
        .line_items
        .iter()
        .map(|l| Line {
            shopify_line_item_id: l.id.clone(),
            shopify_variant_id: l.variant_id.clone(),
            sku: opt(mapping.enabled("line_item.sku"), &l.sku),
            title: opt(mapping.enabled("line_item.title"), &l.name),
            quantity: mapping.enabled("line_item.quantity").then_some(l.quantity),
            fulfillable_quantity: l.unfulfilled_quantity.max(0),
            unit_price: l.price.as_ref().map(|p| p.amount.clone()),
            currency: l
                .price
                .as_ref()
                .map(|p| p.currency_code.clone())
                .unwrap_or_default(),
            digital: !l.requires_shipping,
            // The gateway's order has no custom attributes yet (see the README): stored empty when enabled.
            custom_attributes: mapping
                .enabled("line_item.custom_attributes")
                .then(Vec::new),
        })
        .collect();
    let shippable_left: i64 = order
        .line_items
        .iter()
        .filter(|l| l.requires_shipping)
        .map(|l| l.unfulfilled_quantity.max(0))
        .sum();
    let digital =
        !order.line_items.is_empty() && order.line_items.iter().all(|l| !l.requires_shipping);
    StoredOrder {
        shopify_order_id: order.id.clone(),
        name: order.name.clone(),
        financial_status: order.financial_status.clone(),
        fulfillment_status: order.fulfillment_status.clone(),
        location_id,
        currency,
        location_currency,
        total_amount: order
            .total_price
            .as_ref()
            .and_then(|m| opt(mapping.enabled("order.total"), &m.amount)),
        // The gateway's order has no shipping lines yet (see the README).
        shipping_method_title: None,
        non_shippable: shippable_left == 0,
        digital,
        shopify_created_at: if mapping.enabled("order.created_at") {
            order.created_at.as_ref().and_then(from_timestamp)
        } else {
            None
        },
        shopify_updated_at: order
            .updated_at
            .as_ref()
            .and_then(from_timestamp)
            .unwrap_or_else(Utc::now),
        customer_id: order
            .customer
            .as_ref()
            .map(|c| c.id.clone())
            .unwrap_or_default(),
        customer_email: (!customer_email.is_empty()).then_some(customer_email.clone()),
        billing: address(
            mapping,
            "billing_address",
            order.billing_address.as_ref(),
            email,
            "customer.email_to_billing",
        ),
        shipping: address(
            mapping,
            "shipping_address",
            order.shipping_address.as_ref(),
            email,
            "customer.email_to_shipping",
        ),
        lines,
    }
}

#[cfg(test)]
mod tests;

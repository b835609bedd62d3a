//! Shopify's order nodes as our `Order` records: the same for pages and bulk lines.

use shopbridge_proto::{common::Money, gateway as pb};

use crate::shopify::wire::{
    MoneyBag,
    orders::{FulfillmentOrderNode, LineItemNode, MailingAddress, OrderNode},
};

fn timestamp(t: Option<&str>) -> Option<prost_types::Timestamp> {
    let t = chrono::DateTime::parse_from_rfc3339(t?).ok()?;
    Some(prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    })
}

fn money(set: MoneyBag) -> Option<Money> {
    Some(Money {
        amount: set.shop_money.amount,
        currency_code: set.shop_money.currency_code,
    })
}

fn address(a: MailingAddress) -> pb::OrderAddress {
    let text = Option::unwrap_or_default;
    pb::OrderAddress {
        name: text(a.name),
        first_name: text(a.first_name),
        last_name: text(a.last_name),
        company: text(a.company),
        address1: text(a.address1),
        address2: text(a.address2),
        city: text(a.city),
        province_code: text(a.province_code),
        zip: text(a.zip),
        country_code: text(a.country_code_v2),
        phone: text(a.phone),
    }
}

/// An order node; its connections (page reads) are added by the caller.
pub fn order_from(o: OrderNode) -> pb::Order {
    pb::Order {
        created_at: timestamp(Some(&o.created_at)),
        updated_at: timestamp(Some(&o.updated_at)),
        processed_at: timestamp(o.processed_at.as_deref()),
        closed_at: timestamp(o.closed_at.as_deref()),
        cancelled_at: timestamp(o.cancelled_at.as_deref()),
        id: o.id,
        name: o.name,
        financial_status: o.display_financial_status.unwrap_or_default(),
        fulfillment_status: o.display_fulfillment_status,
        tags: o.tags,
        email: o.email.unwrap_or_default(),
        phone: o.phone.unwrap_or_default(),
        note: o.note.unwrap_or_default(),
        test: o.test,
        total_price: money(o.total_price_set),
        customer: o.customer.map(|c| pb::OrderCustomer {
            id: c.id,
            first_name: c.first_name.unwrap_or_default(),
            last_name: c.last_name.unwrap_or_default(),
            email: c
                .default_email_address
                .and_then(|e| e.email_address)
                .unwrap_or_default(),
        }),
        shipping_address: o.shipping_address.map(address),
        billing_address: o.billing_address.map(address),
        line_items: Vec::new(),
        fulfillment_orders: Vec::new(),
    }
}

pub fn line_item_from(l: LineItemNode) -> pb::OrderLineItem {
    pb::OrderLineItem {
        id: l.id,
        sku: l.sku.unwrap_or_default(),
        name: l.name,
        variant_id: l.variant.map(|v| v.id).unwrap_or_default(),
        quantity: l.quantity,
        current_quantity: l.current_quantity,
        unfulfilled_quantity: l.unfulfilled_quantity,
        price: money(l.original_unit_price_set),
        requires_shipping: l.requires_shipping,
    }
}

pub fn fulfillment_order_from(f: FulfillmentOrderNode) -> pb::OrderFulfillmentOrder {
    pb::OrderFulfillmentOrder {
        id: f.id,
        status: f.status,
        location_id: f
            .assigned_location
            .location
            .map(|l| l.id)
            .unwrap_or_default(),
    }
}

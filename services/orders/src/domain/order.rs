//! An order as the orders service stores it: only what the mapping template enables (a disabled field is `None`),
//! with its lines and its two addresses (PII).

use chrono::{DateTime, Utc};
use shopbridge_proto::{common::Money, orders as pb};
use uuid::Uuid;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Address {
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub address1: Option<String>,
    pub address2: Option<String>,
    pub city: Option<String>,
    pub province_code: Option<String>,
    pub zip: Option<String>,
    pub country_code: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
}

impl Address {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    pub fn to_proto(&self) -> pb::Address {
        let s = |v: &Option<String>| v.clone().unwrap_or_default();
        pb::Address {
            name: s(&self.name),
            first_name: s(&self.first_name),
            last_name: s(&self.last_name),
            company: s(&self.company),
            address1: s(&self.address1),
            address2: s(&self.address2),
            city: s(&self.city),
            province_code: s(&self.province_code),
            zip: s(&self.zip),
            country_code: s(&self.country_code),
            phone: s(&self.phone),
            email: s(&self.email),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub shopify_line_item_id: String,
    pub shopify_variant_id: String,
    pub sku: Option<String>,
    pub title: Option<String>,
    pub quantity: Option<i64>,
    pub fulfillable_quantity: i64,
    /// A decimal string.
    pub unit_price: Option<String>,
    pub currency: String,
    pub digital: bool,
    pub custom_attributes: Option<Vec<(String, String)>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOrder {
    pub shopify_order_id: String,
    pub name: String,
    pub financial_status: String,
    pub fulfillment_status: String,
    pub location_id: String,
    pub currency: String,
    pub location_currency: String,
    pub total_amount: Option<String>,
    pub shipping_method_title: Option<String>,
    pub non_shippable: bool,
    pub digital: bool,
    pub shopify_created_at: Option<DateTime<Utc>>,
    pub shopify_updated_at: DateTime<Utc>,
    pub customer_id: String,
    pub customer_email: Option<String>,
    pub lines: Vec<Line>,
    pub billing: Option<Address>,
    pub shipping: Option<Address>,
}

impl StoredOrder {
    pub fn fully_fulfilled(&self) -> bool {
        self.fulfillment_status == "FULFILLED"
    }

    /// What differs from `before`, in words for the history (never the PII values themselves).
    pub fn changes_from(&self, before: &StoredOrder) -> Vec<String> {
        let mut changes = Vec::new();
        let mut field = |name: &str, a: &str, b: &str| {
            if a != b {
                changes.push(format!("{name}: {a} -> {b}"));
            }
        };
        field(
            "financial_status",
            &before.financial_status,
            &self.financial_status,
        );
        field(
            "fulfillment_status",
            &before.fulfillment_status,
            &self.fulfillment_status,
        );
        field("location_id", &before.location_id, &self.location_id);
        field(
            "total",
            before.total_amount.as_deref().unwrap_or(""),
            self.total_amount.as_deref().unwrap_or(""),
        );
        field(
            "shipping_method_title",
            before.shipping_method_title.as_deref().unwrap_or(""),
            self.shipping_method_title.as_deref().unwrap_or(""),
        );
        field(
            "non_shippable",
            &before.non_shippable.to_string(),
            &self.non_shippable.to_string(),
        );
        if before.lines != self.lines {
            changes.push("lines".into());
        }
        if before.billing != self.billing {
            changes.push("billing_address".into());
        }
        if before.shipping != self.shipping {
            changes.push("shipping_address".into());
        }
        if before.customer_email != self.customer_email {
            changes.push("customer_email".into());
        }
        changes
    }
}

/// What the database adds to a stored order.
#[derive(Debug, Clone, Default)]
pub struct OrderMeta {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub channel_id: Uuid,
    pub pii_erased_at: Option<DateTime<Utc>>,
    pub shipped_at: Option<DateTime<Utc>>,
    pub tagged_at: Option<DateTime<Utc>>,
    pub imported_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

pub fn from_timestamp(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.seconds, t.nanos.clamp(0, 999_999_999) as u32)
}

pub fn to_proto(order: &StoredOrder, meta: &OrderMeta) -> pb::Order {
    pb::Order {
        order_id: meta.id.to_string(),
        tenant_id: meta.tenant_id.to_string(),
        channel_id: meta.channel_id.to_string(),
        shopify_order_id: order.shopify_order_id.clone(),
        name: order.name.clone(),
        financial_status: order.financial_status.clone(),
        fulfillment_status: order.fulfillment_status.clone(),
        location_id: order.location_id.clone(),
        currency: order.currency.clone(),
        location_currency: order.location_currency.clone(),
        total: order.total_amount.as_ref().map(|amount| Money {
            amount: amount.clone(),
            currency_code: order.currency.clone(),
        }),
        shipping_method_title: order.shipping_method_title.clone().unwrap_or_default(),
        non_shippable: order.non_shippable,
        digital: order.digital,
        lines: order
            .lines
            .iter()
            .map(|l| pb::LineItem {
                shopify_line_item_id: l.shopify_line_item_id.clone(),
                shopify_variant_id: l.shopify_variant_id.clone(),
                sku: l.sku.clone().unwrap_or_default(),
                title: l.title.clone().unwrap_or_default(),
                quantity: l.quantity.unwrap_or_default(),
                fulfillable_quantity: l.fulfillable_quantity,
                unit_price: l.unit_price.as_ref().map(|amount| Money {
                    amount: amount.clone(),
                    currency_code: l.currency.clone(),
                }),
                digital: l.digital,
                custom_attributes: l
                    .custom_attributes
                    .iter()
                    .flatten()
                    .map(|(key, value)| pb::CustomAttribute {
                        key: key.clone(),
                        value: value.clone(),
                    })
                    .collect(),
            })
            .collect(),
        billing_address: order.billing.as_ref().map(Address::to_proto),
        shipping_address: order.shipping.as_ref().map(Address::to_proto),
        pii_erased: meta.pii_erased_at.is_some(),
        pii_erased_at: meta.pii_erased_at.map(timestamp),
        shopify_created_at: order.shopify_created_at.map(timestamp),
        shopify_updated_at: Some(timestamp(order.shopify_updated_at)),
        imported_at: meta.imported_at.map(timestamp),
        updated_at: meta.updated_at.map(timestamp),
        shipped_at: meta.shipped_at.map(timestamp),
        tagged_at: meta.tagged_at.map(timestamp),
        history: Vec::new(),
    }
}

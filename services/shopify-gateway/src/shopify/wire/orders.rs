//! Orders: pages, the rest of an order's connections, tags, close. The order node is also the shape of
//! `orders_bulk`'s root lines (without the connections, which come as lines of their own).

use serde::{Deserialize, Serialize};

use super::{Errors, Id, MoneyBag, Page, Request, UserError};
use crate::shopify::documents::{self, Document};

/// `orders_page`.
#[derive(Debug, Clone, Serialize)]
pub struct OrdersPage {
    pub first: u32,
    pub after: Option<String>,
    pub query: Option<String>,
    pub lines: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OrdersPageData {
    pub orders: Page<OrderNode>,
}

impl Request for OrdersPage {
    const DOCUMENT: Document = documents::ORDERS_PAGE;
    type Response = OrdersPageData;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderNode {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub updated_at: String,
    pub processed_at: Option<String>,
    pub closed_at: Option<String>,
    pub cancelled_at: Option<String>,
    pub test: bool,
    pub display_financial_status: Option<String>,
    pub display_fulfillment_status: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub tags: Vec<String>,
    pub note: Option<String>,
    pub total_price_set: MoneyBag,
    pub customer: Option<Customer>,
    pub shipping_address: Option<MailingAddress>,
    pub billing_address: Option<MailingAddress>,
    /// Selected by `orders_page`; in `orders_bulk` line items are lines of their own.
    #[serde(default)]
    pub line_items: Option<Page<LineItemNode>>,
    #[serde(default)]
    pub fulfillment_orders: Option<Page<FulfillmentOrderNode>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    pub id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub default_email_address: Option<EmailAddress>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailAddress {
    pub email_address: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailingAddress {
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub address1: Option<String>,
    pub address2: Option<String>,
    pub city: Option<String>,
    pub province_code: Option<String>,
    pub zip: Option<String>,
    pub country_code_v2: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineItemNode {
    pub id: String,
    pub sku: Option<String>,
    pub name: String,
    pub quantity: i64,
    pub current_quantity: i64,
    pub unfulfilled_quantity: i64,
    pub requires_shipping: bool,
    pub variant: Option<Id>,
    pub original_unit_price_set: MoneyBag,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FulfillmentOrderNode {
    pub id: String,
    pub status: String,
    pub assigned_location: AssignedLocation,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AssignedLocation {
    pub location: Option<Id>,
}

/// The rest of one order's connection: `id`, `first`, `after` (`order_line_items`, `order_fulfillment_orders`).
#[derive(Debug, Clone, Serialize)]
pub struct OrderConnectionPage {
    pub id: String,
    pub first: u32,
    pub after: Option<String>,
}

/// `order_line_items`.
#[derive(Debug, Clone, Serialize)]
pub struct OrderLineItems(pub OrderConnectionPage);

#[derive(Debug, Clone, Deserialize)]
pub struct OrderLineItemsData {
    pub order: Option<OrderLineItemsOrder>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderLineItemsOrder {
    pub line_items: Page<LineItemNode>,
}

impl Request for OrderLineItems {
    const DOCUMENT: Document = documents::ORDER_LINE_ITEMS;
    type Response = OrderLineItemsData;
}

/// `order_fulfillment_orders`.
#[derive(Debug, Clone, Serialize)]
pub struct OrderFulfillmentOrders(pub OrderConnectionPage);

#[derive(Debug, Clone, Deserialize)]
pub struct OrderFulfillmentOrdersData {
    pub order: Option<OrderFulfillmentOrdersOrder>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderFulfillmentOrdersOrder {
    pub id: String,
    pub fulfillment_orders: Page<FulfillmentOrderNode>,
}

impl Request for OrderFulfillmentOrders {
    const DOCUMENT: Document = documents::ORDER_FULFILLMENT_ORDERS;
    type Response = OrderFulfillmentOrdersData;
}

/// `order_tag`: `tagsAdd`.
#[derive(Debug, Clone, Serialize)]
pub struct OrderTag {
    pub id: String,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderTagData {
    pub tags_add: Option<Errors>,
}

impl Request for OrderTag {
    const DOCUMENT: Document = documents::ORDER_TAG;
    type Response = OrderTagData;
}

/// `order_close`.
#[derive(Debug, Clone, Serialize)]
pub struct OrderClose {
    pub input: Id,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderCloseData {
    pub order_close: Option<OrderClosePayload>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderClosePayload {
    pub order: Option<ClosedOrder>,
    pub user_errors: Vec<UserError>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClosedOrder {
    pub id: String,
    pub closed: bool,
}

impl Request for OrderClose {
    const DOCUMENT: Document = documents::ORDER_CLOSE;
    type Response = OrderCloseData;
}

//! Fulfillments: the lines of a fulfillment order, an order's fulfillments, create, tracking updates.

use serde::{Deserialize, Serialize};

use super::{Id, Page, Request, UserError};
use crate::shopify::documents::{self, Document};

/// `fulfillment_order_lines`.
#[derive(Debug, Clone, Serialize)]
pub struct FulfillmentOrderLines {
    pub id: String,
    pub first: u32,
    pub after: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FulfillmentOrderLinesData {
    pub fulfillment_order: Option<FulfillmentOrderWithLines>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FulfillmentOrderWithLines {
    pub id: String,
    pub status: String,
    pub line_items: Page<FulfillmentOrderLine>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FulfillmentOrderLine {
    pub id: String,
    pub remaining_quantity: i64,
    pub total_quantity: i64,
    pub sku: Option<String>,
    pub line_item: LineItemRef,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LineItemRef {
    pub id: String,
    pub sku: Option<String>,
}

impl Request for FulfillmentOrderLines {
    const DOCUMENT: Document = documents::FULFILLMENT_ORDER_LINES;
    type Response = FulfillmentOrderLinesData;
}

/// `order_fulfillments`.
#[derive(Debug, Clone, Serialize)]
pub struct OrderFulfillments {
    pub id: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OrderFulfillmentsData {
    pub order: Option<OrderWithFulfillments>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OrderWithFulfillments {
    pub id: String,
    pub fulfillments: Vec<FulfillmentNode>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FulfillmentNode {
    pub id: String,
    pub status: String,
    /// Selected by `order_fulfillments`, not by the mutations' payloads.
    #[serde(default)]
    pub location: Option<Id>,
    pub tracking_info: Vec<TrackingInfo>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TrackingInfo {
    pub company: Option<String>,
    pub number: Option<String>,
    pub url: Option<String>,
}

impl Request for OrderFulfillments {
    const DOCUMENT: Document = documents::ORDER_FULFILLMENTS;
    type Response = OrderFulfillmentsData;
}

/// `fulfillment_create`.
#[derive(Debug, Clone, Serialize)]
pub struct FulfillmentCreate {
    pub fulfillment: FulfillmentInput,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FulfillmentInput {
    pub line_items_by_fulfillment_order: Vec<FulfillmentOrderLineItems>,
    pub notify_customer: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracking_info: Option<FulfillmentTrackingInput>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FulfillmentOrderLineItems {
    pub fulfillment_order_id: String,
    pub fulfillment_order_line_items: Vec<FulfillmentOrderLineItemInput>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FulfillmentOrderLineItemInput {
    pub id: String,
    pub quantity: i64,
}

/// `FulfillmentTrackingInput`; empty fields are left out.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FulfillmentTrackingInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FulfillmentCreateData {
    pub fulfillment_create: Option<FulfillmentPayload>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FulfillmentPayload {
    pub fulfillment: Option<FulfillmentNode>,
    pub user_errors: Vec<UserError>,
}

impl Request for FulfillmentCreate {
    const DOCUMENT: Document = documents::FULFILLMENT_CREATE;
    type Response = FulfillmentCreateData;
}

/// `fulfillment_tracking_update`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FulfillmentTrackingUpdate {
    pub fulfillment_id: String,
    pub tracking_info_input: FulfillmentTrackingInput,
    pub notify_customer: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FulfillmentTrackingUpdateData {
    pub fulfillment_tracking_info_update: Option<FulfillmentTrackingPayload>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FulfillmentTrackingPayload {
    pub fulfillment: Option<TrackedFulfillment>,
    pub user_errors: Vec<UserError>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackedFulfillment {
    pub id: String,
    pub tracking_info: Vec<TrackingInfo>,
}

impl Request for FulfillmentTrackingUpdate {
    const DOCUMENT: Document = documents::FULFILLMENT_TRACKING_UPDATE;
    type Response = FulfillmentTrackingUpdateData;
}

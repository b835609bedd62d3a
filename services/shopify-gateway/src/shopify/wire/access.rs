//! The shop, its locations, and webhook subscriptions.

use serde::{Deserialize, Serialize};

use super::{Page, Request, UserError};
use crate::shopify::documents::{self, Document};

/// `shop_info`.
#[derive(Debug, Clone, Serialize)]
pub struct ShopInfo {}

#[derive(Debug, Clone, Deserialize)]
pub struct ShopInfoData {
    pub shop: Shop,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shop {
    pub name: String,
    pub myshopify_domain: String,
    pub plan: ShopPlan,
    pub currency_code: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShopPlan {
    pub display_name: String,
    pub partner_development: bool,
    pub shopify_plus: bool,
}

impl Request for ShopInfo {
    const DOCUMENT: Document = documents::SHOP_INFO;
    type Response = ShopInfoData;
}

/// A page of a top-level connection: `first`/`after`.
#[derive(Debug, Clone, Serialize)]
pub struct PageOf {
    pub first: u32,
    pub after: Option<String>,
}

/// `locations`.
#[derive(Debug, Clone, Serialize)]
pub struct Locations(pub PageOf);

#[derive(Debug, Clone, Deserialize)]
pub struct LocationsData {
    pub locations: Page<Location>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    pub id: String,
    pub name: String,
    pub is_active: bool,
    pub fulfills_online_orders: bool,
    pub ships_inventory: bool,
}

impl Request for Locations {
    const DOCUMENT: Document = documents::LOCATIONS;
    type Response = LocationsData;
}

/// `webhook_subscriptions`.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookSubscriptions(pub PageOf);

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSubscriptionsData {
    pub webhook_subscriptions: Page<WebhookSubscription>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSubscription {
    pub id: String,
    pub topic: String,
    pub uri: String,
}

impl Request for WebhookSubscriptions {
    const DOCUMENT: Document = documents::WEBHOOK_SUBSCRIPTIONS;
    type Response = WebhookSubscriptionsData;
}

/// `webhook_subscribe`: `webhookSubscriptionCreate`.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookSubscribe {
    pub topic: String,
    pub sub: WebhookSubscriptionInput,
}

#[derive(Debug, Clone, Serialize)]
pub struct WebhookSubscriptionInput {
    pub uri: String,
    pub format: &'static str,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSubscribeData {
    pub webhook_subscription_create: Option<WebhookSubscribePayload>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSubscribePayload {
    pub webhook_subscription: Option<WebhookSubscription>,
    pub user_errors: Vec<UserError>,
}

impl Request for WebhookSubscribe {
    const DOCUMENT: Document = documents::WEBHOOK_SUBSCRIBE;
    type Response = WebhookSubscribeData;
}

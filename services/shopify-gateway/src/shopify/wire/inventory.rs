//! Inventory, prices and variant lookups.

use serde::{Deserialize, Serialize};

use super::{Errors, Id, Page, Request, UserError};
use crate::shopify::documents::{self, Document};

/// `inventory_set`: `inventorySetQuantities` with its `@idempotent` key.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InventorySet {
    pub input: InventorySetQuantitiesInput,
    /// Set per attempt by `operations::inventory::idempotent_call`.
    pub idempotency_key: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InventorySetQuantitiesInput {
    pub name: String,
    pub reason: String,
    pub reference_document_uri: String,
    pub quantities: Vec<InventoryQuantityInput>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryQuantityInput {
    pub inventory_item_id: String,
    pub location_id: String,
    pub quantity: i64,
    /// Compare-and-set; sent as an explicit null when the quantity Shopify has is not known (2026-04+).
    pub change_from_quantity: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventorySetData {
    pub inventory_set_quantities: Option<Errors>,
}

impl Request for InventorySet {
    const DOCUMENT: Document = documents::INVENTORY_SET;
    type Response = InventorySetData;
}

/// `variants_update_prices`: `productVariantsBulkUpdate` for one product.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantsUpdatePrices {
    pub product_id: String,
    pub variants: Vec<VariantPriceInput>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantPriceInput {
    pub id: String,
    pub price: String,
    /// None clears it (explicit null).
    pub compare_at_price: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantsUpdatePricesData {
    pub product_variants_bulk_update: Option<Errors>,
}

impl Request for VariantsUpdatePrices {
    const DOCUMENT: Document = documents::VARIANTS_UPDATE_PRICES;
    type Response = VariantsUpdatePricesData;
}

/// `inventory_item_cost`: `inventoryItemUpdate` with the unit cost.
#[derive(Debug, Clone, Serialize)]
pub struct InventoryItemCost {
    pub id: String,
    pub input: InventoryItemCostInput,
}

#[derive(Debug, Clone, Serialize)]
pub struct InventoryItemCostInput {
    pub cost: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryItemCostData {
    pub inventory_item_update: Option<Errors>,
}

impl Request for InventoryItemCost {
    const DOCUMENT: Document = documents::INVENTORY_ITEM_COST;
    type Response = InventoryItemCostData;
}

/// `variants_lookup`: variants by search query.
#[derive(Debug, Clone, Serialize)]
pub struct VariantsLookup {
    pub first: u32,
    pub after: Option<String>,
    pub query: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantsLookupData {
    pub product_variants: Page<LookedUpVariant>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LookedUpVariant {
    pub id: String,
    pub sku: Option<String>,
    pub barcode: Option<String>,
    pub product: Id,
    pub inventory_item: Id,
}

impl Request for VariantsLookup {
    const DOCUMENT: Document = documents::VARIANTS_LOOKUP;
    type Response = VariantsLookupData;
}

/// The user errors of a payload that may be null (a payload is null when a top-level error answered instead).
pub fn user_errors(payload: Option<&Errors>) -> &[UserError] {
    payload.map_or(&[], |p| &p.user_errors)
}

//! Catalog writes and reads: productSet, metafields, publishing, collections, publications, the delta export.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Errors, Id, Nodes, Page, Request, UserError};
use crate::shopify::documents::{self, Document};

/// `product_set` (also one line of its bulk mutation).
#[derive(Debug, Clone, Serialize)]
pub struct ProductSet {
    pub identifier: ProductSetIdentifiers,
    pub input: ProductSetInput,
}

/// Which product: by id, or by handle (created when missing).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ProductSetIdentifiers {
    Id(String),
    Handle(String),
}

/// `ProductSetInput`: what is left out (None, empty) is left as Shopify has it.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductSetInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description_html: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_type: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub product_options: Vec<OptionSetInput>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<ProductVariantSetInput>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metafields: Vec<MetafieldInput>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OptionSetInput {
    pub name: String,
    pub position: usize,
    pub values: Vec<OptionValueSetInput>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OptionValueSetInput {
    pub name: String,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductVariantSetInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub option_values: Vec<VariantOptionValueInput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// Never together with `barcode` (Shopify refuses both: INCOMPATIBLE_BARCODE_FIELDS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub barcodes: Option<Vec<BarcodeInput>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub barcode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compare_at_price: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inventory_item: Option<InventoryItemSetInput>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metafields: Vec<MetafieldInput>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantOptionValueInput {
    pub option_name: String,
    pub name: String,
}

/// 2026-10's `barcodes` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BarcodeInput {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub value: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct InventoryItemSetInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measurement: Option<MeasurementInput>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MeasurementInput {
    pub weight: WeightInput,
}

#[derive(Debug, Clone, Serialize)]
pub struct WeightInput {
    /// A Float in Shopify's schema: the checked decimal string is passed as a JSON number.
    pub value: serde_json::Number,
    pub unit: String,
}

/// A metafield of a product or variant input (`MetafieldInput`), or with `ownerId` an entry of `metafieldsSet`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetafieldInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    pub namespace: String,
    pub key: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductSetData {
    pub product_set: Option<ProductSetPayload>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductSetPayload {
    pub product: Option<SetProduct>,
    pub user_errors: Vec<UserError>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SetProduct {
    pub id: String,
    pub handle: String,
    pub variants: Nodes<SetVariant>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetVariant {
    pub id: String,
    pub sku: Option<String>,
    pub inventory_item: Id,
}

impl Request for ProductSet {
    const DOCUMENT: Document = documents::PRODUCT_SET;
    type Response = ProductSetData;
}

/// `metafields_set`.
#[derive(Debug, Clone, Serialize)]
pub struct MetafieldsSet {
    pub metafields: Vec<MetafieldInput>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetafieldsSetData {
    pub metafields_set: Option<MetafieldsSetPayload>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetafieldsSetPayload {
    pub metafields: Option<Vec<SetMetafield>>,
    pub user_errors: Vec<UserError>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SetMetafield {
    pub id: String,
    pub namespace: String,
    pub key: String,
}

impl Request for MetafieldsSet {
    const DOCUMENT: Document = documents::METAFIELDS_SET;
    type Response = MetafieldsSetData;
}

/// `publish`: `publishablePublish`.
#[derive(Debug, Clone, Serialize)]
pub struct Publish {
    pub id: String,
    pub input: Vec<PublicationInput>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicationInput {
    pub publication_id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishData {
    pub publishable_publish: Option<Errors>,
}

impl Request for Publish {
    const DOCUMENT: Document = documents::PUBLISH;
    type Response = PublishData;
}

/// `collection_by_handle`.
#[derive(Debug, Clone, Serialize)]
pub struct CollectionByHandle {
    pub handle: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectionByHandleData {
    pub collection_by_identifier: Option<CollectionRef>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CollectionRef {
    pub id: String,
    pub handle: String,
}

impl Request for CollectionByHandle {
    const DOCUMENT: Document = documents::COLLECTION_BY_HANDLE;
    type Response = CollectionByHandleData;
}

/// `collection_create`: a smart collection.
#[derive(Debug, Clone, Serialize)]
pub struct CollectionCreate {
    pub input: CollectionInput,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectionInput {
    pub title: String,
    pub handle: String,
    pub rule_set: CollectionRuleSetInput,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description_html: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectionRuleSetInput {
    pub applied_disjunctively: bool,
    pub rules: Vec<CollectionRuleInput>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CollectionRuleInput {
    pub column: String,
    pub relation: String,
    pub condition: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectionCreateData {
    pub collection_create: Option<CollectionCreatePayload>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectionCreatePayload {
    pub collection: Option<CollectionRef>,
    pub user_errors: Vec<UserError>,
}

impl Request for CollectionCreate {
    const DOCUMENT: Document = documents::COLLECTION_CREATE;
    type Response = CollectionCreateData;
}

/// `publications`.
#[derive(Debug, Clone, Serialize)]
pub struct Publications(pub super::access::PageOf);

#[derive(Debug, Clone, Deserialize)]
pub struct PublicationsData {
    pub publications: Page<PublicationNode>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicationNode {
    pub id: String,
    pub catalog: Option<CatalogRef>,
    pub auto_publish: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CatalogRef {
    pub id: String,
    pub title: String,
}

impl Request for Publications {
    const DOCUMENT: Document = documents::PUBLICATIONS;
    type Response = PublicationsData;
}

/// `products_delta`: products changed since a time, with their first variants (more by the same document for one
/// product, `variantsAfter`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductsDelta {
    pub first: u32,
    pub after: Option<String>,
    pub query: String,
    pub variants: u32,
    pub variants_after: Option<String>,
    pub media: u32,
    pub metafields: u32,
    pub variant_metafields: u32,
    pub levels: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ProductsDeltaData {
    pub products: DeltaProducts,
}

/// The page of products. Each node is checked for the connections the follow-ups need (`DeltaProduct`) and kept
/// whole for the mapping it shares with the bulk export's JSONL lines (`operations::catalog::records`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaProducts {
    pub page_info: super::PageInfo,
    pub nodes: Vec<Value>,
}

/// The parts of a `products_delta` product node the gateway pages on: checked on every node.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaProduct {
    pub id: String,
    pub updated_at: String,
    pub media: HasMore,
    pub metafields: HasMore,
    pub variants: Page<DeltaVariant>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HasMore {
    pub page_info: HasNextPage,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HasNextPage {
    pub has_next_page: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaVariant {
    pub id: String,
    pub metafields: HasMore,
    pub inventory_item: DeltaInventoryItem,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaInventoryItem {
    pub id: String,
    pub inventory_levels: HasMore,
}

impl Request for ProductsDelta {
    const DOCUMENT: Document = documents::PRODUCTS_DELTA;
    type Response = ProductsDeltaData;
}

/// A product's own fields, as `catalog_products` (a bulk root line) and `products_delta` (a page node) both select
/// them; the connections are read on their own.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductNode {
    pub id: String,
    pub title: String,
    pub handle: String,
    pub description_html: String,
    pub vendor: String,
    pub product_type: String,
    pub tags: Vec<String>,
    pub status: String,
    pub updated_at: String,
    pub options: Vec<ProductOption>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductOption {
    pub name: String,
    pub position: u32,
    pub option_values: Vec<Named>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Named {
    pub name: String,
}

/// A variant as both catalog reads select it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantNode {
    pub id: String,
    pub sku: Option<String>,
    pub barcode: Option<String>,
    pub price: String,
    pub compare_at_price: Option<String>,
    pub position: u32,
    pub selected_options: Vec<SelectedOption>,
    pub inventory_item: VariantInventoryItem,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SelectedOption {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct VariantInventoryItem {
    pub id: String,
    pub measurement: Measurement,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Measurement {
    pub weight: Option<Weight>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Weight {
    /// A Float: kept as the number Shopify wrote.
    pub value: serde_json::Number,
    pub unit: String,
}

/// `... on MediaImage { id image { url altText } }`.
#[derive(Debug, Clone, Deserialize)]
pub struct MediaImageNode {
    pub id: String,
    pub image: Option<Image>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    pub url: String,
    pub alt_text: Option<String>,
}

/// `{ namespace key type value }`.
#[derive(Debug, Clone, Deserialize)]
pub struct MetafieldNode {
    pub namespace: String,
    pub key: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

/// `{ location { id } quantities(names: ["available"]) { name quantity } }`.
#[derive(Debug, Clone, Deserialize)]
pub struct InventoryLevelNode {
    pub location: Id,
    pub quantities: Vec<NamedQuantity>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NamedQuantity {
    pub name: String,
    pub quantity: i64,
}

//! Catalog export with bulk operations: three bulk queries (products with options, images, metafields and
//! variants; variant metafields; per-location quantities) run through the bulk machinery (`bulk::query`: recorded,
//! resumed after a restart), downloaded and parsed line by line into compact product records, published in batches.
//! Children may come anywhere in Shopify's JSONL (`groupObjects: false`), so lines wait for their parent when needed.

use std::collections::HashMap;

use serde_json::Value;
use shopbridge_proto::gateway as pb;

use super::records::{Child, child, metafield, product, quantity};
use crate::{
    bulk::query::{ExportError, Exporter},
    shopify::{
        budget::Lane,
        documents::{self, Document},
        executor::{CallError, ShopCredentials},
    },
};

/// Products per CatalogBatch event, at most.
pub const CATALOG_BATCH: usize = 250;
/// Encoded bytes per CatalogBatch event, at most: products with many variants (or long descriptions) make a batch of
/// 250 too big for NATS's 1 MiB message limit, so such a batch is cut earlier (64 KiB are left for the event's
/// headers). Batches under the limit are as they were, so consumers see no change where publishing worked.
const CATALOG_BATCH_BYTES: usize = 960 * 1024;

/// Cuts an export's products into CatalogBatch events of at most [`CATALOG_BATCH`] products and
/// `CATALOG_BATCH_BYTES` bytes (a single bigger product goes alone), numbered 1..total. The products move into
/// their batches (no copy of the catalog). The bulk and the delta export both publish through here, so consumers
/// see one shape.
pub fn catalog_batches(
    command: &pb::Command,
    products: Vec<pb::CatalogProduct>,
) -> Vec<pb::CatalogBatch> {
    use prost::Message;
    let mut batches: Vec<Vec<pb::CatalogProduct>> = Vec::new();
    let mut bytes = 0;
    for product in products {
        let size = product.encoded_len();
        match batches.last_mut() {
            Some(batch) if batch.len() < CATALOG_BATCH && bytes + size <= CATALOG_BATCH_BYTES => {
                bytes += size;
                batch.push(product);
            }
            _ => {
                bytes = size;
                batches.push(vec![product]);
            }
        }
    }
    let total = batches.len() as u32;
    batches
        .into_iter()
        .enumerate()
        .map(|(i, products)| pb::CatalogBatch {
            command_id: command.command_id.clone(),
            shop_domain: command.shop_domain.clone(),
            channel_id: command.channel_id.clone(),
            seq: i as u32 + 1,
            total_batches: total,
            products,
        })
        .collect()
}

/// The three stages, in order.
pub const STAGES: [Document; 3] = [
    documents::CATALOG_PRODUCTS,
    documents::CATALOG_VARIANT_METAFIELDS,
    documents::CATALOG_INVENTORY,
];

/// Exports the catalog of `shop` for `command_id`, resuming bulk operations started before.
pub async fn export(
    exporter: &Exporter<'_>,
    shop: &ShopCredentials,
    command_id: &str,
) -> Result<Vec<pb::CatalogProduct>, ExportError> {
    let mut catalog = Assembler::default();
    // The first line that does not have the shape we expect fails the export (after the download, which cannot stop
    // midway: its lines are only read on).
    let mut drift: Option<CallError> = None;
    for stage in STAGES {
        let done = exporter
            .run_bulk_query(shop, Lane::Import, command_id, stage.name, stage.text)
            .await?;
        if let Some(url) = done.url {
            // Lines are parsed as they arrive: the result file (hundreds of MB for a big catalog) is never held
            // whole, only the partial line at the end of the last chunk.
            exporter
                .fetch_lines(&url, |line| {
                    if drift.is_some() {
                        return;
                    }
                    match serde_json::from_slice::<Value>(line) {
                        Ok(value) => drift = catalog.line(stage, value).err(),
                        Err(e) => {
                            tracing::warn!(stage = stage.name, error = %e, "skipping a JSONL line that is not JSON")
                        }
                    }
                })
                .await?;
        }
        if let Some(e) = drift {
            return Err(e.into());
        }
        catalog.end_of_stage(stage);
    }
    Ok(catalog.finish())
}

/// Builds products from JSONL lines of the three stages.
#[derive(Default)]
struct Assembler {
    products: Vec<pb::CatalogProduct>,
    /// The indexes below are kept only while a stage needs them: the catalog itself is all that is held at the end.
    /// product id -> product index (stage 1)
    product_at: HashMap<GidKey, usize>,
    /// variant id -> (product index, variant index) (stage 2)
    variant_at: HashMap<GidKey, (usize, usize)>,
    /// inventory item id -> (product index, variant index) (stage 3)
    item_at: HashMap<GidKey, (usize, usize)>,
    /// Children whose parent has not been seen yet, by parent id, already in their compact form (a parsed JSON
    /// line is several times bigger, and a fifth of the children can wait until the end of the file).
    waiting: HashMap<String, Vec<Child>>,
}

/// An index key for a Shopify gid: its number, where it has one (8 bytes instead of a ~45-byte string on the heap;
/// with 100,000 variants the indexes hold 300,000 keys). Each index holds one kind of object, so numbers are unique.
#[derive(Debug, PartialEq, Eq, Hash)]
enum GidKey {
    Number(u64),
    Text(Box<str>),
}

impl GidKey {
    fn of(gid: &str) -> Self {
        match gid.rsplit('/').next().and_then(|n| n.parse().ok()) {
            Some(n) => Self::Number(n),
            None => Self::Text(gid.into()),
        }
    }
}

impl Assembler {
    /// Takes one line of `stage`'s result; a line without a field we need is an error naming it.
    fn line(&mut self, stage: Document, line: Value) -> Result<(), CallError> {
        let parent = line["__parentId"].as_str().map(str::to_string);
        match (stage.name, parent) {
            ("catalog_products", None) => self.product(product(stage, line)?),
            ("catalog_products", Some(parent)) => {
                let Some(child) = child(stage, line)? else {
                    return Ok(());
                };
                match self.product_at.get(&GidKey::of(&parent)).copied() {
                    Some(p) => self.attach(p, child),
                    None => self.waiting.entry(parent).or_default().push(child),
                }
            }
            ("catalog_variant_metafields", Some(parent)) => {
                if let Some((p, v)) = self.variant_at.get(&GidKey::of(&parent)).copied() {
                    self.products[p].variants[v]
                        .metafields
                        .push(metafield(stage, line)?);
                }
            }
            ("catalog_inventory", Some(item)) => {
                let Some((p, v)) = self.item_at.get(&GidKey::of(&item)).copied() else {
                    return Ok(());
                };
                self.products[p].variants[v]
                    .quantities
                    .push(quantity(stage, line)?);
            }
            // Parent lines of stages 2 and 3 (variants, inventory items) carry nothing new.
            _ => {}
        }
        Ok(())
    }

    fn product(&mut self, product: pb::CatalogProduct) {
        let id = product.id.clone();
        let p = self.products.len();
        self.product_at.insert(GidKey::of(&id), p);
        self.products.push(product);
        for child in self.waiting.remove(&id).unwrap_or_default() {
            self.attach(p, child);
        }
    }

    fn attach(&mut self, p: usize, child: Child) {
        let product = &mut self.products[p];
        match child {
            Child::Variant(variant) => {
                let at = (p, product.variants.len());
                self.item_at
                    .insert(GidKey::of(&variant.inventory_item_id), at);
                self.variant_at.insert(GidKey::of(&variant.id), at);
                product.variants.push(variant);
            }
            Child::Image(image) => product.images.push(image),
            Child::Metafield(metafield) => product.metafields.push(metafield),
        }
    }
}

impl Assembler {
    fn end_of_stage(&mut self, stage: Document) {
        if !self.waiting.is_empty() {
            let orphans: usize = self.waiting.values().map(Vec::len).sum();
            tracing::warn!(
                stage = stage.name,
                orphans,
                "bulk lines whose parent never came; dropped"
            );
            self.waiting = HashMap::new();
        }
        // Free each index once no later stage needs it (clear() would keep the table's memory).
        match stage.name {
            "catalog_products" => {
                self.product_at = HashMap::new();
                // Every variant has come: give back the slack of the growing vectors (up to half of each).
                for product in &mut self.products {
                    product.variants.shrink_to_fit();
                }
                self.products.shrink_to_fit();
            }
            "catalog_variant_metafields" => self.variant_at = HashMap::new(),
            "catalog_inventory" => self.item_at = HashMap::new(),
            _ => {}
        }
    }

    fn finish(mut self) -> Vec<pb::CatalogProduct> {
        for product in &mut self.products {
            product.variants.sort_by_key(|v| v.position);
        }
        self.products
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn catalog_batches_hold_at_most_250_products_and_960_kib_numbered_in_order() {
        use prost::Message;
        let command = pb::Command {
            command_id: "c1".into(),
            ..Default::default()
        };
        let product = |i: usize, bytes: usize| pb::CatalogProduct {
            id: format!("gid://shopify/Product/{i}"),
            description_html: "x".repeat(bytes),
            ..Default::default()
        };
        let batches = catalog_batches(&command, (0..600).map(|i| product(i, 10)).collect());
        let sizes: Vec<usize> = batches.iter().map(|b| b.products.len()).collect();
        assert_eq!(sizes, vec![250, 250, 100]);
        assert!(
            batches
                .iter()
                .enumerate()
                .all(|(i, b)| b.seq == i as u32 + 1
                    && b.total_batches == 3
                    && b.command_id == "c1")
        );
        let big = catalog_batches(&command, (0..10).map(|i| product(i, 200_000)).collect());
        // Four products of 200 kB fit a batch.
        assert_eq!(big.len(), 3);
        assert!(
            big.iter()
                .all(|b| b.encoded_len() < CATALOG_BATCH_BYTES + 1024)
        );
        assert_eq!(big.iter().map(|b| b.products.len()).sum::<usize>(), 10);
        assert!(catalog_batches(&command, Vec::new()).is_empty());
    }

    fn variant_line() -> Value {
        json!({"__parentId": "gid://shopify/Product/1", "id": "gid://shopify/ProductVariant/9", "sku": "S-9",
            "barcode": null, "price": "10.00", "compareAtPrice": null,
            "position": 1, "selectedOptions": [{"name": "Size", "value": "M"}],
            "inventoryItem": {"id": "gid://shopify/InventoryItem/5", "measurement": {"weight": {"value": 1.5, "unit": "KILOGRAMS"}}}})
    }

    fn product_line() -> Value {
        json!({"id": "gid://shopify/Product/1", "title": "Tee", "handle": "tee", "descriptionHtml": "", "vendor": "V",
            "productType": "", "tags": [], "status": "ACTIVE", "updatedAt": "2026-10-01T00:00:00Z",
            "options": [{"name": "Size", "position": 1, "optionValues": [{"name": "M"}]}]})
    }

    #[test]
    fn children_before_their_parent_are_attached_when_it_comes() {
        let mut a = Assembler::default();
        a.line(documents::CATALOG_PRODUCTS, variant_line()).unwrap();
        a.line(documents::CATALOG_PRODUCTS, product_line()).unwrap();
        a.line(documents::CATALOG_PRODUCTS, json!({"__parentId": "gid://shopify/Product/1", "id": "gid://shopify/MediaImage/3", "image": {"url": "https://cdn/x.jpg", "altText": null}})).unwrap();
        a.end_of_stage(documents::CATALOG_PRODUCTS);
        a.line(
            documents::CATALOG_INVENTORY,
            json!({"id": "gid://shopify/InventoryItem/5"}),
        )
        .unwrap();
        a.line(documents::CATALOG_INVENTORY, json!({"__parentId": "gid://shopify/InventoryItem/5", "location": {"id": "gid://shopify/Location/7"}, "quantities": [{"name": "available", "quantity": 4}]})).unwrap();
        let products = a.finish();
        assert_eq!(products.len(), 1);
        let v = &products[0].variants[0];
        assert_eq!(
            (
                v.sku.as_str(),
                v.weight_value.as_str(),
                v.weight_unit.as_str()
            ),
            ("S-9", "1.5", "KILOGRAMS")
        );
        assert_eq!(
            v.quantities,
            vec![pb::CatalogQuantity {
                location_id: "gid://shopify/Location/7".into(),
                available: 4
            }]
        );
        assert_eq!(products[0].images[0].url, "https://cdn/x.jpg");
    }

    #[test]
    fn a_line_without_a_field_we_need_is_an_error_naming_it() {
        let mut a = Assembler::default();
        let mut variant = variant_line();
        variant.as_object_mut().unwrap().remove("price");
        let message = a
            .line(documents::CATALOG_PRODUCTS, variant)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("catalog_products") && message.contains("`price`"),
            "{message}"
        );
    }
}

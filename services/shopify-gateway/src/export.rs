//! Catalog export with bulk operations: three bulk queries (products with options, images, metafields and
//! variants; variant metafields; per-location quantities), each recorded in the gateway's database as soon as
//! Shopify accepts it (and its start before it is sent, so even a crash between the two never starts a second one:
//! [`bulk_start`]), polled by id (so a restarted gateway resumes instead of starting over), downloaded and
//! parsed line by line into compact product records. Children may come before their parent in Shopify's JSONL, so
//! lines wait for their parent when needed.

pub mod bulk_start;

use std::{collections::HashMap, time::Duration};

use serde_json::{Value, json};
use shopbridge_proto::gateway as pb;
use sqlx::PgPool;

use self::bulk_start::{BulkKind, BulkStart, StartError};
use crate::{
    budget::Lane,
    documents::{self, Document},
    executor::{CallError, Executor, ShopCredentials},
};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("bulk operation {id} ended {status} ({error_code})")]
    BulkFailed {
        id: String,
        status: String,
        error_code: String,
    },
    #[error("Shopify refused the bulk query: {0}")]
    Refused(String),
    #[error("downloading the bulk result failed: {0}")]
    Download(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl From<StartError> for ExportError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Call(e) => Self::Call(e),
            StartError::Refused(m) | StartError::Prepare(m) => Self::Refused(m),
            StartError::Database(e) => Self::Database(e),
        }
    }
}

/// How often a running bulk operation is polled (Shopify suggests seconds, not milliseconds).
pub struct PollSettings {
    pub first: Duration,
    pub max: Duration,
}

impl Default for PollSettings {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(200),
            max: Duration::from_secs(5),
        }
    }
}

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

/// A finished bulk operation: its id and result file (None when it matched nothing).
#[derive(Debug, Clone)]
pub struct BulkDone {
    pub id: String,
    pub url: Option<String>,
}

pub struct Exporter<'a> {
    pub executor: &'a Executor,
    pub pool: &'a PgPool,
    pub download: reqwest::Client,
    pub poll: PollSettings,
}

/// The three stages, in order.
pub const STAGES: [Document; 3] = [
    documents::CATALOG_PRODUCTS,
    documents::CATALOG_VARIANT_METAFIELDS,
    documents::CATALOG_INVENTORY,
];

impl Exporter<'_> {
    /// Exports the catalog of `shop` for `command_id`, resuming bulk operations started before.
    pub async fn export(
        &self,
        shop: &ShopCredentials,
        command_id: &str,
    ) -> Result<Vec<pb::CatalogProduct>, ExportError> {
        let mut catalog = Assembler::default();
        for stage in STAGES {
            let url = self.run_stage(shop, command_id, stage).await?;
            if let Some(url) = url {
                // Lines are parsed as they arrive: the result file (hundreds of MB for a big catalog) is never
                // held whole, only the partial line at the end of the last chunk.
                self.fetch_lines(&url, |line| {
                    match serde_json::from_slice::<Value>(line) {
                        Ok(value) => catalog.line(stage, value),
                        Err(e) => {
                            tracing::warn!(stage = stage.name, error = %e, "skipping a JSONL line that is not JSON")
                        }
                    }
                })
                .await?;
            }
            catalog.end_of_stage(stage);
        }
        Ok(catalog.finish())
    }

    /// Starts (or finds) the stage's bulk operation and polls it to the end; returns its result URL (None: empty).
    async fn run_stage(
        &self,
        shop: &ShopCredentials,
        command_id: &str,
        stage: Document,
    ) -> Result<Option<String>, ExportError> {
        let done = self
            .run_bulk_query(shop, Lane::Import, command_id, stage.name, stage.text)
            .await?;
        Ok(done.url)
    }

    /// Runs one bulk query of a command to the end: starts it (or, after a restart, finds the operation started
    /// before under the same command id and stage name, even one whose id was never recorded: [`bulk_start`]) and
    /// polls it until it finishes. Other modules' bulk reads (orders) go through here too, so every bulk operation is
    /// recorded and resumed the same way.
    pub async fn run_bulk_query(
        &self,
        shop: &ShopCredentials,
        lane: Lane,
        command_id: &str,
        stage: &str,
        query: &str,
    ) -> Result<BulkDone, ExportError> {
        let start = BulkStart {
            executor: self.executor,
            pool: self.pool,
            shop,
            lane,
            command_id,
            stage,
            kind: BulkKind::Query,
            text: query,
            wait_first: self.poll.first,
            wait_max: self.poll.max,
        };
        let mut calls = 0;
        let bulk_id = start
            .run(|| async { Ok(json!({ "query": query })) }, &mut calls)
            .await?;
        let end = start.poll_to_end(&bulk_id, &mut calls).await?;
        if !end.completed() {
            return Err(ExportError::BulkFailed {
                id: bulk_id,
                status: end.status,
                error_code: end.error_code,
            });
        }
        Ok(BulkDone {
            id: bulk_id,
            url: end.url,
        })
    }

    /// Downloads a bulk result file.
    pub async fn fetch(&self, url: &str) -> Result<Vec<u8>, ExportError> {
        let mut response = self.open(url).await?;
        let mut body = Vec::new();
        while let Some(chunk) = next_chunk(&mut response).await? {
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Downloads a bulk result file and hands each non-empty JSONL line to `line` as it arrives, holding only the
    /// unfinished line between chunks.
    pub async fn fetch_lines(
        &self,
        url: &str,
        mut line: impl FnMut(&[u8]),
    ) -> Result<(), ExportError> {
        let mut response = self.open(url).await?;
        let mut splitter = LineSplitter::default();
        while let Some(chunk) = next_chunk(&mut response).await? {
            splitter.push(&chunk, &mut line);
        }
        splitter.finish(&mut line);
        Ok(())
    }

    async fn open(&self, url: &str) -> Result<reqwest::Response, ExportError> {
        self.download
            .get(url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| ExportError::Download(e.without_url().to_string()))
    }
}

async fn next_chunk(response: &mut reqwest::Response) -> Result<Option<bytes::Bytes>, ExportError> {
    response
        .chunk()
        .await
        .map_err(|e| ExportError::Download(e.without_url().to_string()))
}

/// Cuts a byte stream into lines at `\n`; a line split across chunks is carried over until its end comes.
#[derive(Default)]
struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    fn push(&mut self, chunk: &[u8], line: &mut impl FnMut(&[u8])) {
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            if self.partial.is_empty() {
                emit(&rest[..end], line);
            } else {
                self.partial.extend_from_slice(&rest[..end]);
                emit(&self.partial, line);
                self.partial.clear();
            }
            rest = &rest[end + 1..];
        }
        self.partial.extend_from_slice(rest);
    }

    /// The last line, when the file does not end with a newline.
    fn finish(mut self, line: &mut impl FnMut(&[u8])) {
        emit(&self.partial, line);
        self.partial.clear();
    }
}

fn emit(bytes: &[u8], line: &mut impl FnMut(&[u8])) {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    if !bytes.is_empty() {
        line(bytes);
    }
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

/// A product's child line, parsed.
pub(crate) enum Child {
    Variant(pb::CatalogVariant),
    Image(pb::CatalogImage),
    Metafield(pb::CatalogMetafield),
}

fn s(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

pub(crate) fn metafield(v: &Value) -> pb::CatalogMetafield {
    pb::CatalogMetafield {
        namespace: s(v, "namespace"),
        key: s(v, "key"),
        r#type: s(v, "type"),
        value: s(v, "value"),
    }
}

impl Assembler {
    fn line(&mut self, stage: Document, line: Value) {
        let parent = line["__parentId"].as_str().map(str::to_string);
        match (stage.name, parent) {
            ("catalog_products", None) => self.product(&line),
            ("catalog_products", Some(parent)) => {
                let Some(child) = child(&line) else {
                    return;
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
                        .push(metafield(&line));
                }
            }
            ("catalog_inventory", Some(item)) => {
                let Some((p, v)) = self.item_at.get(&GidKey::of(&item)).copied() else {
                    return;
                };
                self.products[p].variants[v]
                    .quantities
                    .push(quantity(&line));
            }
            // Parent lines of stages 2 and 3 (variants, inventory items) carry nothing new.
            _ => {}
        }
    }

    fn product(&mut self, v: &Value) {
        let product = product(v);
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

/// A product's own fields (no variants, media or metafields), from a product object of the bulk JSONL or of a
/// products page: both use the same field names.
pub(crate) fn product(v: &Value) -> pb::CatalogProduct {
    let id = s(v, "id");
    let mut options: Vec<pb::CatalogOption> = v["options"]
        .as_array()
        .map(|o| {
            o.iter()
                .map(|o| pb::CatalogOption {
                    name: s(o, "name"),
                    position: o["position"].as_u64().unwrap_or(0) as u32,
                    values: o["optionValues"]
                        .as_array()
                        .map(|vs| vs.iter().map(|x| s(x, "name")).collect())
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    options.sort_by_key(|o| o.position);
    pb::CatalogProduct {
        id,
        title: s(v, "title"),
        handle: s(v, "handle"),
        description_html: s(v, "descriptionHtml"),
        vendor: s(v, "vendor"),
        product_type: s(v, "productType"),
        tags: v["tags"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        status: s(v, "status"),
        options,
        updated_at: s(v, "updatedAt"),
        ..Default::default()
    }
}

/// One location's available quantity, from an inventory level (`location { id } quantities { name quantity }`).
pub(crate) fn quantity(v: &Value) -> pb::CatalogQuantity {
    let available = v["quantities"]
        .as_array()
        .and_then(|q| q.iter().find(|q| q["name"] == "available"))
        .and_then(|q| q["quantity"].as_i64())
        .unwrap_or(0);
    pb::CatalogQuantity {
        location_id: s(&v["location"], "id"),
        available,
    }
}

/// Parses a product's child line (variant, image or metafield); None for anything else.
pub(crate) fn child(v: &Value) -> Option<Child> {
    let id = s(v, "id");
    if id.starts_with("gid://shopify/ProductVariant/") {
        let weight = &v["inventoryItem"]["measurement"]["weight"];
        let variant = pb::CatalogVariant {
            id: id.clone(),
            sku: s(v, "sku"),
            barcode: s(v, "barcode"),
            price: s(v, "price"),
            compare_at_price: s(v, "compareAtPrice"),
            position: v["position"].as_u64().unwrap_or(0) as u32,
            option_values: v["selectedOptions"]
                .as_array()
                .map(|o| {
                    o.iter()
                        .map(|o| pb::CatalogOptionValue {
                            name: s(o, "name"),
                            value: s(o, "value"),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            inventory_item_id: s(&v["inventoryItem"], "id"),
            weight_value: s(weight, "value"),
            weight_unit: s(weight, "unit"),
            ..Default::default()
        };
        Some(Child::Variant(variant))
    } else if v.get("image").is_some() {
        let image = &v["image"];
        Some(Child::Image(pb::CatalogImage {
            id,
            url: s(image, "url"),
            alt_text: s(image, "altText"),
        }))
    } else if v.get("namespace").is_some() {
        Some(Child::Metafield(metafield(v)))
    } else {
        None
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

    #[test]
    fn lines_split_across_chunks_come_out_whole() {
        let mut lines = Vec::new();
        let mut collect = |l: &[u8]| lines.push(String::from_utf8(l.to_vec()).unwrap());
        let mut splitter = LineSplitter::default();
        for chunk in [&b"{\"a\":"[..], b"1}\n{\"b\"", b":2}\r\n\n", b"{\"c\":3}"] {
            splitter.push(chunk, &mut collect);
        }
        splitter.finish(&mut collect);
        assert_eq!(lines, ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"]);
    }

    #[test]
    fn children_before_their_parent_are_attached_when_it_comes() {
        let mut a = Assembler::default();
        let variant = json!({"__parentId": "gid://shopify/Product/1", "id": "gid://shopify/ProductVariant/9", "sku": "S-9",
            "position": 1, "selectedOptions": [{"name": "Size", "value": "M"}],
            "inventoryItem": {"id": "gid://shopify/InventoryItem/5", "measurement": {"weight": {"value": 1.5, "unit": "KILOGRAMS"}}}});
        a.line(documents::CATALOG_PRODUCTS, variant);
        a.line(documents::CATALOG_PRODUCTS, json!({"id": "gid://shopify/Product/1", "title": "Tee", "options": [{"name": "Size", "position": 1, "optionValues": [{"name": "M"}]}]}));
        a.line(documents::CATALOG_PRODUCTS, json!({"__parentId": "gid://shopify/Product/1", "id": "gid://shopify/MediaImage/3", "image": {"url": "https://cdn/x.jpg", "altText": null}}));
        a.end_of_stage(documents::CATALOG_PRODUCTS);
        a.line(
            documents::CATALOG_INVENTORY,
            json!({"id": "gid://shopify/InventoryItem/5"}),
        );
        a.line(documents::CATALOG_INVENTORY, json!({"__parentId": "gid://shopify/InventoryItem/5", "location": {"id": "gid://shopify/Location/7"}, "quantities": [{"name": "available", "quantity": 4}]}));
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
}

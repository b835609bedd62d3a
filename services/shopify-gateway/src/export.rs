//! Catalog export with bulk operations: three bulk queries (products with options, images, metafields and
//! variants; variant metafields; per-location quantities), each recorded in the gateway's database as soon as
//! Shopify accepts it, polled by id (so a restarted gateway resumes instead of starting over), downloaded and
//! parsed line by line into compact product records. Children may come before their parent in Shopify's JSONL, so
//! lines wait for their parent when needed.

use std::{collections::HashMap, time::Duration};

use serde_json::{Value, json};
use shopbridge_proto::gateway as pb;
use sqlx::PgPool;

use crate::{
    budget::Lane,
    documents::{self, Document},
    executor::{CallError, Executor, Operation, ShopCredentials},
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
    /// before under the same command id and stage name) and polls it until it finishes. Other modules' bulk reads
    /// (orders) go through here too, so every bulk operation is recorded and resumed the same way.
    pub async fn run_bulk_query(
        &self,
        shop: &ShopCredentials,
        lane: Lane,
        command_id: &str,
        stage: &str,
        query: &str,
    ) -> Result<BulkDone, ExportError> {
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT bulk_id FROM bulk_operations WHERE command_id = $1 AND stage = $2",
        )
        .bind(command_id)
        .bind(stage)
        .fetch_optional(self.pool)
        .await?;
        let bulk_id = match existing {
            Some(id) => {
                tracing::info!(bulk_id = %id, stage, "resuming a bulk operation started before");
                id
            }
            None => self.start(shop, lane, command_id, stage, query).await?,
        };
        let mut delay = self.poll.first;
        loop {
            let poll = Operation {
                document: documents::BULK_OPERATION_POLL,
                variables: json!({ "id": bulk_id }),
                expected_cost: 1.0,
                idempotency_key: None,
            };
            let data = self.executor.call(shop, lane, &poll).await?;
            let node = &data["node"];
            let status = node["status"].as_str().unwrap_or_default().to_string();
            match status.as_str() {
                "COMPLETED" => {
                    self.finish(command_id, stage, &status).await?;
                    return Ok(BulkDone {
                        id: bulk_id,
                        url: node["url"].as_str().map(str::to_string),
                    });
                }
                "FAILED" | "CANCELED" | "CANCELING" | "EXPIRED" => {
                    self.finish(command_id, stage, &status).await?;
                    return Err(ExportError::BulkFailed {
                        id: bulk_id,
                        status,
                        error_code: node["errorCode"].as_str().unwrap_or("-").to_string(),
                    });
                }
                _ => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.poll.max);
                }
            }
        }
    }

    async fn start(
        &self,
        shop: &ShopCredentials,
        lane: Lane,
        command_id: &str,
        stage: &str,
        query: &str,
    ) -> Result<String, ExportError> {
        let mut delay = self.poll.first;
        loop {
            let start = Operation {
                document: documents::BULK_EXPORT_START,
                variables: json!({ "query": query }),
                expected_cost: 10.0,
                idempotency_key: Some(format!("{command_id}:bulk:{stage}")),
            };
            let data = self.executor.call(shop, lane, &start).await?;
            let payload = &data["bulkOperationRunQuery"];
            if let Some(id) = payload["bulkOperation"]["id"].as_str() {
                sqlx::query(
                    "INSERT INTO bulk_operations (command_id, stage, shop_domain, bulk_id, status) VALUES ($1, $2, $3, $4, 'RUNNING')",
                )
                .bind(command_id)
                .bind(stage)
                .bind(&shop.domain)
                .bind(id)
                .execute(self.pool)
                .await?;
                tracing::info!(bulk_id = id, stage, "bulk operation started");
                return Ok(id.to_string());
            }
            let errors = payload["userErrors"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            // One bulk query at a time per shop (API 2025-10): wait for the other one to finish.
            if errors.iter().any(|e| e["code"] == "OPERATION_IN_PROGRESS") {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(self.poll.max);
                continue;
            }
            return Err(ExportError::Refused(Value::Array(errors).to_string()));
        }
    }

    async fn finish(&self, command_id: &str, stage: &str, status: &str) -> Result<(), ExportError> {
        sqlx::query("UPDATE bulk_operations SET status = $3, finished_at = now() WHERE command_id = $1 AND stage = $2")
            .bind(command_id)
            .bind(stage)
            .bind(status)
            .execute(self.pool)
            .await?;
        Ok(())
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
    product_at: HashMap<String, usize>,
    /// variant id -> (product index, variant index)
    variant_at: HashMap<String, (usize, usize)>,
    /// inventory item id -> (product index, variant index)
    item_at: HashMap<String, (usize, usize)>,
    /// Children whose parent has not been seen yet, by parent id, already in their compact form (a parsed JSON
    /// line is several times bigger, and a fifth of the children can wait until the end of the file).
    waiting: HashMap<String, Vec<Child>>,
}

/// A product's child line, parsed.
enum Child {
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

fn metafield(v: &Value) -> pb::CatalogMetafield {
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
                match self.product_at.get(&parent).copied() {
                    Some(p) => self.attach(p, child),
                    None => self.waiting.entry(parent).or_default().push(child),
                }
            }
            ("catalog_variant_metafields", Some(parent)) => {
                if let Some((p, v)) = self.variant_at.get(&parent).copied() {
                    self.products[p].variants[v]
                        .metafields
                        .push(metafield(&line));
                }
            }
            ("catalog_inventory", Some(item)) => {
                let Some((p, v)) = self.item_at.get(&item).copied() else {
                    return;
                };
                let available = line["quantities"]
                    .as_array()
                    .and_then(|q| q.iter().find(|q| q["name"] == "available"))
                    .and_then(|q| q["quantity"].as_i64())
                    .unwrap_or(0);
                self.products[p].variants[v]
                    .quantities
                    .push(pb::CatalogQuantity {
                        location_id: s(&line["location"], "id"),
                        available,
                    });
            }
            // Parent lines of stages 2 and 3 (variants, inventory items) carry nothing new.
            _ => {}
        }
    }

    fn product(&mut self, v: &Value) {
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
        let product = pb::CatalogProduct {
            id: id.clone(),
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
        };
        let p = self.products.len();
        self.product_at.insert(id.clone(), p);
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
                self.item_at.insert(variant.inventory_item_id.clone(), at);
                self.variant_at.insert(variant.id.clone(), at);
                product.variants.push(variant);
            }
            Child::Image(image) => product.images.push(image),
            Child::Metafield(metafield) => product.metafields.push(metafield),
        }
    }
}

/// Parses a product's child line (variant, image or metafield); None for anything else.
fn child(v: &Value) -> Option<Child> {
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
            self.waiting.clear();
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

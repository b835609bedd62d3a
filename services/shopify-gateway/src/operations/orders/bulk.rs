//! Orders with one bulk operation, through the bulk machinery (recorded when Shopify accepts it, resumed after a
//! restart): orders are root lines of the result; line items and fulfillment orders are lines of their own with the
//! order's id in `__parentId`, and may come anywhere in the file.

use std::collections::HashMap;

use serde_json::Value;
use shopbridge_proto::gateway as pb;

use super::{
    BULK_STAGE, FetchError, Fetched,
    records::{fulfillment_order_from, line_item_from, order_from},
    search_query,
};
use crate::{
    bulk::query::Exporter,
    shopify::{
        budget::Lane,
        documents,
        executor::{CallError, ShopCredentials},
        wire::{
            decode,
            orders::{FulfillmentOrderNode, LineItemNode, OrderNode},
        },
    },
};

/// The text of `orders_bulk` with `search` bound in. Bulk queries take no variables, so the search goes into the
/// document as a GraphQL string literal (a JSON string is one: same quoting and escapes), never spliced raw.
pub fn bulk_query(search: &str) -> String {
    let literal = serde_json::to_string(search).expect("a string serializes");
    let text = documents::ORDERS_BULK
        .text
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .replacen("query OrdersBulk($query: String)", "query OrdersBulk", 1)
        .replacen(
            "orders(query: $query,",
            &format!("orders(query: {literal},"),
            1,
        );
    debug_assert!(!text.contains("$query"), "orders_bulk changed shape");
    text
}

/// Reads every order matching `filter` with one bulk operation (resumed if this command started one before).
pub async fn fetch_bulk(
    exporter: &Exporter<'_>,
    shop: &ShopCredentials,
    lane: Lane,
    command_id: &str,
    filter: &pb::OrderFilter,
) -> Result<Fetched, FetchError> {
    let query = bulk_query(&search_query(filter));
    let done = exporter
        .run_bulk_query(shop, lane, command_id, BULK_STAGE, &query)
        .await?;
    let mut assembler = BulkOrders::default();
    if let Some(url) = &done.url {
        let body = exporter.fetch(url).await?;
        for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<Value>(line) {
                Ok(value) => assembler.line(value)?,
                Err(e) => tracing::warn!(error = %e, "skipping a JSONL line that is not JSON"),
            }
        }
    }
    Ok(Fetched {
        orders: assembler.finish()?,
        calls: 0,
        bulk_operation_id: done.id,
    })
}

/// Orders from bulk JSONL, each line checked against the shape `orders_bulk` selects.
#[derive(Default)]
pub struct BulkOrders {
    orders: Vec<pb::Order>,
    children: HashMap<String, Vec<Value>>,
}

impl BulkOrders {
    /// Takes one line: an order, or a child kept until its order has come.
    pub fn line(&mut self, line: Value) -> Result<(), CallError> {
        match line["__parentId"].as_str() {
            Some(parent) => {
                self.children
                    .entry(parent.to_string())
                    .or_default()
                    .push(line);
            }
            None => {
                let order: OrderNode = decode(documents::ORDERS_BULK, line)?;
                self.orders.push(order_from(order));
            }
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<Vec<pb::Order>, CallError> {
        for order in &mut self.orders {
            for child in self.children.remove(&order.id).unwrap_or_default() {
                let id = child["id"].as_str().unwrap_or_default();
                if id.starts_with("gid://shopify/LineItem/") {
                    let line: LineItemNode = decode(documents::ORDERS_BULK, child)?;
                    order.line_items.push(line_item_from(line));
                } else if id.starts_with("gid://shopify/FulfillmentOrder/") {
                    let fo: FulfillmentOrderNode = decode(documents::ORDERS_BULK, child)?;
                    order.fulfillment_orders.push(fulfillment_order_from(fo));
                }
            }
        }
        if !self.children.is_empty() {
            let orphans: usize = self.children.values().map(Vec::len).sum();
            tracing::warn!(orphans, "bulk order lines whose order never came; dropped");
        }
        Ok(self.orders)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_bulk_query_carries_the_search_as_a_quoted_literal() {
        let text = bulk_query("updated_at:>='2025-11-01T00:00:00Z' AND tag:\"a\\b\"");
        assert!(!text.contains("$query"));
        assert!(text.contains(
            r#"orders(query: "updated_at:>='2025-11-01T00:00:00Z' AND tag:\"a\\b\"", sortKey"#
        ));
    }

    fn line_item() -> Value {
        json!({"__parentId": "gid://shopify/Order/1", "id": "gid://shopify/LineItem/2", "sku": "A", "name": "Shirt",
            "quantity": 3, "currentQuantity": 3, "unfulfilledQuantity": 3, "requiresShipping": true, "variant": null,
            "originalUnitPriceSet": {"shopMoney": {"amount": "9.5", "currencyCode": "CAD"}}})
    }

    fn order() -> Value {
        json!({"id": "gid://shopify/Order/1", "name": "#1001", "createdAt": "2025-11-01T09:00:00Z",
            "updatedAt": "2025-11-01T10:00:00Z", "processedAt": null, "closedAt": null, "cancelledAt": null,
            "test": false, "displayFinancialStatus": "PAID", "displayFulfillmentStatus": "UNFULFILLED",
            "email": null, "phone": null, "tags": ["x"], "note": null,
            "totalPriceSet": {"shopMoney": {"amount": "28.5", "currencyCode": "CAD"}},
            "customer": null, "shippingAddress": null, "billingAddress": null})
    }

    #[test]
    fn bulk_children_before_their_order_are_attached() {
        let mut bulk = BulkOrders::default();
        bulk.line(line_item()).unwrap();
        bulk.line(order()).unwrap();
        bulk.line(json!({"__parentId": "gid://shopify/Order/1", "id": "gid://shopify/FulfillmentOrder/3",
            "status": "OPEN", "assignedLocation": {"location": {"id": "gid://shopify/Location/4"}}}))
            .unwrap();
        let orders = bulk.finish().unwrap();
        assert_eq!(orders.len(), 1);
        let order = &orders[0];
        assert_eq!(order.updated_at.unwrap().seconds, 1_761_991_200);
        assert_eq!(order.shipping_address, None);
        assert_eq!(order.line_items[0].sku, "A");
        assert_eq!(order.line_items[0].price.as_ref().unwrap().amount, "9.5");
        assert_eq!(
            order.fulfillment_orders[0].location_id,
            "gid://shopify/Location/4"
        );
    }

    #[test]
    fn a_line_without_a_field_we_need_is_an_error_naming_it() {
        let mut bulk = BulkOrders::default();
        let mut order = order();
        order.as_object_mut().unwrap().remove("name");
        let message = bulk.line(order).unwrap_err().to_string();
        assert!(
            message.contains("orders_bulk") && message.contains("`name`"),
            "{message}"
        );
        let mut bulk = BulkOrders::default();
        let mut line = line_item();
        line.as_object_mut().unwrap().remove("quantity");
        bulk.line(line).unwrap();
        bulk.line(self::order()).unwrap();
        let message = bulk.finish().unwrap_err().to_string();
        assert!(message.contains("`quantity`"), "{message}");
    }
}

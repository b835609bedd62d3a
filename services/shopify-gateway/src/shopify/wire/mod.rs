//! Typed documents: each `.graphql` document has one variables type (serialized as the request's `variables`) and
//! one response type (its `data`), tied together by [`Request`]. An answer that lacks a field we need, or has it in
//! another shape, is an error naming the document and the field's path ([`decode`]): schema drift fails the command
//! instead of storing empty strings. Nullable fields are `Option`s; only payloads passed through untouched (bulk
//! JSONL lines, webhook bodies) stay `serde_json::Value`.
//!
//! The pairs live by concern in the submodules; `documents` keeps the text of each.

pub mod access;
pub mod bulk;
pub mod catalog;
pub mod fulfillments;
pub mod inventory;
pub mod orders;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use super::documents::Document;
use crate::shopify::{executor::CallError, http::FatalKind};

/// A document's variables, and what its `data` deserializes into.
pub trait Request: Serialize {
    const DOCUMENT: Document;
    type Response: DeserializeOwned;
}

/// Deserializes `data`, the answer to `document`, naming the field that does not match.
pub fn decode<T: DeserializeOwned>(document: Document, data: Value) -> Result<T, CallError> {
    serde_path_to_error::deserialize(data).map_err(|e| CallError::Fatal {
        kind: FatalKind::UnexpectedAnswer,
        message: format!(
            "Shopify's answer to {} does not have the shape we expect at `{}`: {}",
            document.name,
            e.path(),
            e.inner()
        ),
    })
}

/// The variables of a request, as JSON (they are plain structs: serializing cannot fail).
pub fn variables<R: Request>(request: &R) -> Value {
    serde_json::to_value(request).expect("request variables serialize to JSON")
}

/// A `userErrors` entry: a problem Shopify found with one input (or one we found before sending, in the same shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserError {
    /// The path of the input field, e.g. `["input", "quantities", "3", "quantity"]`; null for the whole input.
    pub field: Option<Vec<String>>,
    pub message: String,
    /// Typed user errors carry a code; plain `UserError`s do not select one.
    #[serde(default)]
    pub code: Option<String>,
}

impl UserError {
    pub fn new(code: &str, field: &[&str], message: impl Into<String>) -> Self {
        Self {
            field: Some(field.iter().map(|f| f.to_string()).collect()),
            message: message.into(),
            code: Some(code.to_string()),
        }
    }

    pub fn code(&self) -> &str {
        self.code.as_deref().unwrap_or("USER_ERROR")
    }
}

/// `pageInfo { hasNextPage endCursor }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageInfo {
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

impl PageInfo {
    /// The cursor of the next page, if there is one.
    pub fn next(&self) -> Option<String> {
        self.end_cursor.clone().filter(|_| self.has_next_page)
    }
}

/// A connection selected as `pageInfo` and `nodes`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub page_info: PageInfo,
    pub nodes: Vec<T>,
}

/// A connection selected as `nodes` only.
#[derive(Debug, Clone, Deserialize)]
pub struct Nodes<T> {
    pub nodes: Vec<T>,
}

/// An object selected as `{ id }` (also an input of that shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Id {
    pub id: String,
}

/// `MoneyV2 { amount currencyCode }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MoneyV2 {
    pub amount: String,
    pub currency_code: String,
}

/// `MoneyBag { shopMoney { ... } }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MoneyBag {
    pub shop_money: MoneyV2,
}

/// A payload that only reports user errors (`{ userErrors { field message } }`, whatever else is selected).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Errors {
    pub user_errors: Vec<UserError>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::shopify::documents;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Shape {
        page: Page<Id>,
    }

    #[test]
    fn a_missing_field_is_named_with_the_document_and_its_path() {
        let data = json!({"page": {"pageInfo": {"hasNextPage": false, "endCursor": null}, "nodes": [{"id": "1"}, {}]}});
        let error = decode::<Shape>(documents::LOCATIONS, data).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("locations"), "{message}");
        assert!(message.contains("page.nodes[1]"), "{message}");
        assert!(message.contains("missing field `id`"), "{message}");
    }

    #[test]
    fn a_field_of_another_type_is_named_too() {
        let data =
            json!({"page": {"pageInfo": {"hasNextPage": "yes", "endCursor": null}, "nodes": []}});
        let message = decode::<Shape>(documents::LOCATIONS, data)
            .unwrap_err()
            .to_string();
        assert!(message.contains("page.pageInfo.hasNextPage"), "{message}");
    }

    #[test]
    fn every_document_but_the_bulk_queries_has_its_request_type() {
        use super::{
            access as a, bulk as b, catalog as c, fulfillments as f, inventory as i, orders as o,
        };
        use crate::shopify::documents::Kind;
        let typed = [
            <a::ShopInfo as Request>::DOCUMENT,
            <a::Locations as Request>::DOCUMENT,
            <a::WebhookSubscriptions as Request>::DOCUMENT,
            <a::WebhookSubscribe as Request>::DOCUMENT,
            <b::BulkExportStart as Request>::DOCUMENT,
            <b::BulkMutationStart as Request>::DOCUMENT,
            <b::BulkOperationPoll as Request>::DOCUMENT,
            <b::CurrentBulkOperation as Request>::DOCUMENT,
            <b::StagedUpload as Request>::DOCUMENT,
            <c::ProductSet as Request>::DOCUMENT,
            <c::MetafieldsSet as Request>::DOCUMENT,
            <c::Publish as Request>::DOCUMENT,
            <c::CollectionByHandle as Request>::DOCUMENT,
            <c::CollectionCreate as Request>::DOCUMENT,
            <c::Publications as Request>::DOCUMENT,
            <c::ProductsDelta as Request>::DOCUMENT,
            <f::FulfillmentOrderLines as Request>::DOCUMENT,
            <f::OrderFulfillments as Request>::DOCUMENT,
            <f::FulfillmentCreate as Request>::DOCUMENT,
            <f::FulfillmentTrackingUpdate as Request>::DOCUMENT,
            <i::InventorySet as Request>::DOCUMENT,
            <i::VariantsUpdatePrices as Request>::DOCUMENT,
            <i::InventoryItemCost as Request>::DOCUMENT,
            <i::VariantsLookup as Request>::DOCUMENT,
            <o::OrdersPage as Request>::DOCUMENT,
            <o::OrderLineItems as Request>::DOCUMENT,
            <o::OrderFulfillmentOrders as Request>::DOCUMENT,
            <o::OrderTag as Request>::DOCUMENT,
            <o::OrderClose as Request>::DOCUMENT,
        ];
        for document in documents::ALL {
            let pairs = typed.iter().filter(|d| d.name == document.name).count();
            // Bulk queries take no variables; their JSONL lines are mapped where they are read.
            let expected = usize::from(document.kind != Kind::BulkQuery);
            assert_eq!(
                pairs, expected,
                "{}: one request type per document",
                document.name
            );
        }
    }

    #[test]
    fn user_errors_without_a_code_have_the_generic_one() {
        let e: UserError = serde_json::from_value(json!({"field": null, "message": "m"})).unwrap();
        assert_eq!(e.code(), "USER_ERROR");
        assert_eq!(e.field, None);
    }
}

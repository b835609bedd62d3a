//! Orders placed and changed in the simulated shop through its control API (`/_sim/shops/{shop}/orders/...`).

use serde_json::{Value, json};

use super::stack::Stack;

/// An order as the test wants it in Shopify.
#[derive(Debug, Clone)]
pub struct OrderSpec {
    pub financial_status: &'static str,
    /// "none", "partial" or "all".
    pub fulfilled: &'static str,
    /// A location GID; None: the shop's primary location.
    pub location: Option<String>,
    /// Assigned to no location at all (no fulfillment order).
    pub no_location: bool,
    /// "OPEN", "ON_HOLD" or "SCHEDULED".
    pub hold: &'static str,
    pub missing_sku: bool,
    pub missing_address: bool,
    pub digital: bool,
    pub customer_email: String,
}

impl Default for OrderSpec {
    fn default() -> Self {
        Self {
            financial_status: "PAID",
            fulfilled: "none",
            location: None,
            no_location: false,
            hold: "OPEN",
            missing_sku: false,
            missing_address: false,
            digital: false,
            customer_email: "jane@example.com".into(),
        }
    }
}

/// A placed order: its GID, name ("#1001") and customer GID.
#[derive(Debug, Clone)]
pub struct Placed {
    pub id: String,
    pub name: String,
    pub customer_id: String,
}

fn url(stack: &Stack, path: &str) -> String {
    format!(
        "http://{}/_sim/shops/{}/{path}",
        stack.sim.addr(),
        stack.shop
    )
}

pub async fn place(stack: &Stack, spec: &OrderSpec) -> Placed {
    let second_sku = if spec.missing_sku {
        Value::Null
    } else {
        json!("SKU-B")
    };
    let body = json!({
        "lines": [
            {"sku": "SKU-A", "title": "Tee", "quantity": 2, "price": "12.50", "requires_shipping": !spec.digital,
             "custom_attributes": [["engraving", "Hi"]]},
            {"sku": second_sku, "title": "Mug", "quantity": 1, "price": "7.00", "requires_shipping": !spec.digital},
        ],
        "financial_status": spec.financial_status,
        "location": spec.location,
        "no_location": spec.no_location,
        "fulfillment_order_status": spec.hold,
        "fulfilled": spec.fulfilled,
        "no_shipping_address": spec.missing_address,
        "billing_address": {"name": "Bill Payer", "firstName": "Bill", "lastName": "Payer", "address1": "9 Billing St",
                            "city": "Toronto", "provinceCode": "ON", "zip": "M5V 1A1", "countryCodeV2": "CA",
                            "phone": "+14165550199"},
        "customer": {"first_name": "Jane", "last_name": "Doe", "email": spec.customer_email},
        "shipping_lines": ["Express"],
    });
    let r = reqwest::Client::new()
        .post(url(stack, "orders/custom"))
        .json(&body)
        .send()
        .await
        .expect("place order");
    assert!(r.status().is_success(), "{:?}", r.text().await);
    let v: Value = r.json().await.unwrap();
    Placed {
        id: v["id"].as_str().unwrap().to_string(),
        name: v["name"].as_str().unwrap().to_string(),
        customer_id: v["customer_id"].as_str().unwrap().to_string(),
    }
}

/// Changes an order (`release_hold`, `hold`, `financial_status`, `fulfill`, `notify`).
pub async fn change(stack: &Stack, order_id: &str, change: Value) {
    let id = order_id.rsplit('/').next().unwrap();
    let r = reqwest::Client::new()
        .post(url(stack, &format!("orders/{id}/change")))
        .json(&change)
        .send()
        .await
        .expect("change order");
    assert!(r.status().is_success(), "{:?}", r.text().await);
}

/// Sends a compliance webhook to the gateway.
pub async fn compliance(stack: &Stack, topic: &str, payload: Value) {
    let r = reqwest::Client::new()
        .post(url(stack, "compliance"))
        .json(&json!({"topic": topic, "uri": stack.webhooks_url(), "payload": payload}))
        .send()
        .await
        .expect("compliance");
    assert!(r.status().is_success(), "{:?}", r.text().await);
}

/// The order as the simulator holds it (tags included).
pub async fn shopify_order(stack: &Stack, order_id: &str) -> Value {
    let (_, body) = stack
        .sim_client
        .graphql(
            &stack.shop,
            &stack.shop_token,
            "query One($id: ID!) { order(id: $id) { id name tags } }",
            json!({"id": order_id}),
        )
        .await
        .expect("read order");
    body["data"]["order"].clone()
}

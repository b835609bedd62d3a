use base64::Engine;
use shopbridge_platform::{
    bus::Namespace,
    testing::{TestDb, TestNats, eventually, service_settings},
};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "test_secret_key";

struct Gateway {
    base: String,
    db: TestDb,
    nats: TestNats,
    cancel: CancellationToken,
}

impl Gateway {
    async fn start() -> Self {
        shopbridge_platform::telemetry::init_for_tests();
        let db = TestDb::new(&shopbridge_gateway::MIGRATOR).await;
        let nats = TestNats::new().await;
        let settings: shopbridge_gateway::Settings = service_settings(
            &shopbridge_gateway::SPEC,
            &db.url,
            &nats.namespace,
            &[("SHOPBRIDGE__SERVICE__WEBHOOKS__CLIENT_SECRET", SECRET)],
        );
        let app = shopbridge_gateway::build(settings)
            .await
            .expect("build gateway");
        let base = format!("http://{}", app.http_addr());
        let cancel = CancellationToken::new();
        tokio::spawn(app.run_until_stopped(cancel.clone()));
        Self {
            base,
            db,
            nats,
            cancel,
        }
    }

    async fn deliver(&self, topic: &str, event_id: &str, body: &str, signature: &str) -> u16 {
        reqwest::Client::new()
            .post(format!("{}/shopify/webhooks", self.base))
            .header("X-Shopify-Topic", topic)
            .header("X-Shopify-Shop-Domain", "shop-a.myshopify.com")
            .header("X-Shopify-Event-Id", event_id)
            .header("X-Shopify-Triggered-At", "2026-11-26T10:00:00.000Z")
            .header("X-Shopify-Hmac-Sha256", signature)
            .body(body.to_string())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn stream_messages(&self, subject: &str) -> u64 {
        let ns: &Namespace = &self.nats.namespace;
        let stream = self
            .nats
            .js
            .get_stream(ns.resource("EVENTS"))
            .await
            .unwrap();
        let subjects = stream
            .info_with_subjects(ns.subject(subject))
            .await
            .unwrap();
        use futures::TryStreamExt;
        let all: Vec<(String, usize)> = subjects.try_collect().await.unwrap();
        all.into_iter().map(|(_, n)| n as u64).sum()
    }

    async fn finish(self) {
        self.cancel.cancel();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        self.nats.cleanup().await;
        self.db.drop_db().await;
    }
}

/// The body of Shopify's sample orders/create delivery (the shared file wraps it with its provenance).
fn sample_order() -> String {
    let file: serde_json::Value = serde_json::from_str(include_str!(
        "../../../../../shared/data/shopify/orders_create_webhook_sample.json"
    ))
    .unwrap();
    file["payload"].to_string()
}

fn sign(body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    base64::engine::general_purpose::STANDARD
        .encode(ring::hmac::sign(&key, body.as_bytes()).as_ref())
}

#[tokio::test]
async fn the_shopify_app_js_vector_is_accepted_and_published_once() {
    let gw = Gateway::start().await;
    // From ../shared/data/shopify/hmac_test_vectors.json (Shopify/shopify-app-js validate.test.ts).
    let body = r#"{"foo": "bar"}"#;
    let status = gw
        .deliver(
            "app/uninstalled",
            "evt-1",
            body,
            "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=",
        )
        .await;
    assert_eq!(status, 200);
    eventually("the event on the bus", || async {
        gw.stream_messages("events.gateway.v1.ShopifyAppUninstalled")
            .await
            == 1
    })
    .await;
    gw.finish().await;
}

#[tokio::test]
async fn a_forged_signature_gets_401_and_publishes_nothing() {
    let gw = Gateway::start().await;
    let body = &sample_order();
    let forged = sign("something else");
    assert_eq!(
        gw.deliver("orders/create", "evt-2", body, &forged).await,
        401
    );
    assert_eq!(gw.deliver("orders/create", "evt-3", body, "").await, 401);
    let recorded: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM webhook_deliveries) + (SELECT count(*) FROM outbox)",
    )
    .fetch_one(&gw.db.pool)
    .await
    .unwrap();
    assert_eq!(recorded, 0, "nothing recorded, nothing queued");
    gw.finish().await;
}

#[tokio::test]
async fn a_duplicate_delivery_is_answered_200_and_published_once() {
    let gw = Gateway::start().await;
    let body = &sample_order();
    let signature = sign(body);
    for _ in 0..3 {
        assert_eq!(
            gw.deliver("orders/create", "evt-dup", body, &signature)
                .await,
            200
        );
    }
    eventually("the order event", || async {
        gw.stream_messages("events.gateway.v1.ShopifyOrderChanged")
            .await
            == 1
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(
        gw.stream_messages("events.gateway.v1.ShopifyOrderChanged")
            .await,
        1
    );
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&gw.db.pool)
        .await
        .unwrap();
    assert_eq!(outbox, 1);
    gw.finish().await;
}

#[tokio::test]
async fn the_order_event_carries_shopifys_ids_from_the_sample_payload() {
    use prost::Message;
    let gw = Gateway::start().await;
    let body = &sample_order();
    assert_eq!(
        gw.deliver("orders/create", "evt-typed", body, &sign(body))
            .await,
        200
    );
    let payload: Vec<u8> = sqlx::query_scalar("SELECT payload FROM outbox")
        .fetch_one(&gw.db.pool)
        .await
        .unwrap();
    let event = shopbridge_proto::gateway::ShopifyOrderChanged::decode(payload.as_slice()).unwrap();
    let sample: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        sample["id"].as_u64(),
        Some(820_982_911_946_154_508),
        "64-bit ids survive"
    );
    assert_eq!(
        event.order_id,
        sample["admin_graphql_api_id"].as_str().unwrap()
    );
    assert_eq!(event.name, sample["name"].as_str().unwrap());
    let delivery = event.delivery.unwrap();
    assert_eq!(
        (delivery.shop_domain.as_str(), delivery.topic.as_str()),
        ("shop-a.myshopify.com", "orders/create")
    );
    assert_eq!(delivery.triggered_at.unwrap().seconds, 1_795_687_200);
    gw.finish().await;
}

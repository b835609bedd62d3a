//! The mandatory compliance webhooks (customers/data_request, customers/redact, shop/redact): verified like every
//! delivery (401 without a valid HMAC, as Shopify's app review checks) and published as ShopifyComplianceRequest
//! events with Shopify's body, once per event id.

use base64::Engine;
use shopbridge_platform::testing::{TestDb, TestNats, eventually, service_settings};
use shopbridge_proto::gateway as pb;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "compliance-test-secret";

fn sign(body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    base64::engine::general_purpose::STANDARD
        .encode(ring::hmac::sign(&key, body.as_bytes()).as_ref())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compliance_requests_are_verified_and_published_once_each() {
    shopbridge_platform::telemetry::init_for_tests();
    let db = TestDb::new(&shopbridge_gateway::MIGRATOR).await;
    let nats = TestNats::new().await;
    let settings: shopbridge_gateway::Settings = service_settings(
        &shopbridge_gateway::SPEC,
        &db.url,
        &nats.namespace,
        &[("SHOPBRIDGE__SERVICE__WEBHOOKS__CLIENT_SECRET", SECRET)],
    );
    let app = shopbridge_gateway::build(settings).await.unwrap();
    let url = format!("http://{}/shopify/webhooks", app.http_addr());
    let cancel = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(cancel.clone()));
    let http = reqwest::Client::new();
    let deliver = |topic: &'static str, event_id: &'static str, body: String, signature: String| {
        let request = http
            .post(&url)
            .header("X-Shopify-Topic", topic)
            .header("X-Shopify-Shop-Domain", "privacy-shop.myshopify.com")
            .header("X-Shopify-Event-Id", event_id)
            .header("X-Shopify-Hmac-Sha256", signature)
            .body(body);
        async move { request.send().await.unwrap().status().as_u16() }
    };

    let requests = [
        (
            "customers/data_request",
            "evt-data",
            r#"{"shop_id":1,"shop_domain":"privacy-shop.myshopify.com","customer":{"id":7,"email":"a@b.c"},"orders_requested":[1],"data_request":{"id":9}}"#,
        ),
        (
            "customers/redact",
            "evt-redact",
            r#"{"shop_id":1,"shop_domain":"privacy-shop.myshopify.com","customer":{"id":7},"orders_to_redact":[1]}"#,
        ),
        (
            "shop/redact",
            "evt-shop",
            r#"{"shop_id":1,"shop_domain":"privacy-shop.myshopify.com"}"#,
        ),
    ];
    for (topic, event_id, body) in requests {
        assert_eq!(
            deliver(topic, event_id, body.into(), "bm90IGl0".into()).await,
            401,
            "{topic}"
        );
        // Shopify retries: the same event twice is published once.
        for _ in 0..2 {
            assert_eq!(
                deliver(topic, event_id, body.into(), sign(body)).await,
                200,
                "{topic}"
            );
        }
    }
    eventually("three compliance events", || async {
        nats.events::<pb::ShopifyComplianceRequest>().await.len() >= 3
    })
    .await;
    let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(unsent, 0);
    let events = nats.events::<pb::ShopifyComplianceRequest>().await;
    let mut topics: Vec<(String, Vec<u8>)> = events
        .into_iter()
        .map(|e| (e.delivery.unwrap().topic, e.payload_json))
        .collect();
    topics.sort();
    let mut want: Vec<(String, Vec<u8>)> = requests
        .iter()
        .map(|(topic, _, body)| (topic.to_string(), body.as_bytes().to_vec()))
        .collect();
    want.sort();
    assert_eq!(topics, want, "one event per request, with Shopify's body");

    cancel.cancel();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    nats.cleanup().await;
    db.drop_db().await;
}

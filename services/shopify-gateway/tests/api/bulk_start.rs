//! Issue 4: a bulk operation is started at most once per command and stage, even when the gateway died after Shopify
//! accepted the start but before the operation's id was recorded. The crash is reproduced exactly: the test does what
//! the dying gateway did (commits the start's `bulk_starts` row, then sends the same start to the simulator) and
//! nothing more, then lets a gateway run the command.

use std::collections::HashSet;

use serde_json::{Value, json};
use shopbridge_gateway::{
    bulk::mutation::run_bulk_mutation,
    operations::catalog::DEFAULT_BULK_UPLOAD_MAX_BYTES,
    outcome::Outcome,
    shopify::{
        documents::{self, Document},
        executor::ShopCredentials,
    },
};
use shopbridge_platform::testing::{TestDb, eventually};
use shopbridge_proto::gateway as pb;

use crate::{
    budget::fixture,
    bulk_mutation::BulkShop,
    harness::{Harness, executor_via, seed, succeeded},
};

/// An ExportCatalog command for `shop` (channel id = shop domain).
fn export(id: &str, shop: &str) -> pb::Command {
    pb::Command {
        command_id: id.into(),
        shop_domain: shop.into(),
        channel_id: shop.into(),
        lane: pb::Lane::Import as i32,
        operation: Some(pb::command::Operation::ExportCatalog(pb::ExportCatalog {})),
    }
}

/// The `bulk_starts` row a gateway commits before sending a start, its only attempt `delay_secs` from now (see the
/// callers).
async fn interrupted_start(
    pool: &sqlx::PgPool,
    command_id: &str,
    stage: &str,
    shop: &str,
    kind: &str,
    delay_secs: i64,
) {
    interrupted_retried_start(pool, command_id, stage, shop, kind, delay_secs, delay_secs).await;
}

/// The `bulk_starts` row of a start sent first `first_secs` and last `last_secs` from now (refused
/// OPERATION_IN_PROGRESS in between and sent again).
async fn interrupted_retried_start(
    pool: &sqlx::PgPool,
    command_id: &str,
    stage: &str,
    shop: &str,
    kind: &str,
    first_secs: i64,
    last_secs: i64,
) {
    sqlx::query(
        "INSERT INTO bulk_starts (command_id, stage, shop_domain, kind, first_attempted_at, attempted_at) \
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5), now() + make_interval(secs => $6))",
    )
    .bind(command_id)
    .bind(stage)
    .bind(shop)
    .bind(kind)
    .bind(first_secs as f64)
    .bind(last_secs as f64)
    .execute(pool)
    .await
    .unwrap();
}

async fn recorded(pool: &sqlx::PgPool, command_id: &str, stage: &str) -> String {
    sqlx::query_scalar("SELECT bulk_id FROM bulk_operations WHERE command_id = $1 AND stage = $2")
        .bind(command_id)
        .bind(stage)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn starts_left(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM bulk_starts")
        .fetch_one(pool)
        .await
        .unwrap()
}

impl Harness {
    /// The `bulk_starts` row of export `command`'s interrupted products stage on `shop`, its attempts sent
    /// `first_secs` and `last_secs` from now.
    async fn interrupted_export(&self, command: &str, shop: &str, first_secs: i64, last_secs: i64) {
        interrupted_retried_start(
            &self.db.pool,
            command,
            "catalog_products",
            shop,
            "QUERY",
            first_secs,
            last_secs,
        )
        .await;
    }

    /// Starts a bulk query on `shop` as the gateway would; returns its id.
    async fn start_bulk_query(&self, shop: &str, query: &str) -> String {
        let data = self
            .graphql(
                shop,
                documents::BULK_EXPORT_START.text,
                json!({ "query": query }),
            )
            .await;
        data["bulkOperationRunQuery"]["bulkOperation"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{data}"))
            .to_string()
    }

    async fn wait_until_bulk_ended(&self, shop: &str, kind: &str) {
        eventually("the bulk operation ended", || async {
            let data = self
                .graphql(
                    shop,
                    documents::CURRENT_BULK_OPERATION.text,
                    json!({ "type": kind }),
                )
                .await;
            data["currentBulkOperation"]["status"] == "COMPLETED"
        })
        .await;
    }

    /// The product ids the command's CatalogBatch events carry.
    async fn exported(&self, command_id: &str) -> Vec<String> {
        self.nats
            .events::<pb::CatalogBatch>()
            .await
            .into_iter()
            .filter(|b| b.command_id == command_id)
            .flat_map(|b| b.products.into_iter().map(|p| p.id))
            .collect()
    }

    /// Checks that the export `command` of `shop` succeeded with three operations of its own, not adopting
    /// `foreign`, and exported the whole store.
    async fn exported_with_its_own_operations(&self, command: &str, shop: &str, foreign: &str) {
        let result = self.result_of(command).await;
        assert!(succeeded(&result), "{result:?}");
        assert_ne!(
            recorded(&self.db.pool, command, "catalog_products").await,
            foreign,
            "{command}: not adopted"
        );
        assert_eq!(
            self.stats(shop).await["bulk_operations"],
            4,
            "{command}: three of its own besides the other one"
        );
        let exported: HashSet<String> = self.exported(command).await.into_iter().collect();
        let store: HashSet<String> = self.product_ids(shop).await.into_iter().collect();
        assert_eq!(exported, store, "{command}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_whose_bulk_start_was_accepted_but_not_recorded_adopts_that_operation() {
    const SHOP: &str = "window-shop.myshopify.com";
    let h = Harness::start(&[(SHOP, seed(40, 1, 0))]).await;
    // The crashed gateway: committed its start, sent it, Shopify accepted it, and the gateway died.
    h.interrupted_export("export-window", SHOP, 0, 0).await;
    let orphan = h
        .start_bulk_query(SHOP, documents::CATALOG_PRODUCTS.text)
        .await;

    h.send(&export("export-window", SHOP)).await;
    let result = h.result_of("export-window").await;
    assert!(succeeded(&result), "{result:?}");

    assert_eq!(
        recorded(&h.db.pool, "export-window", "catalog_products").await,
        orphan,
        "the accepted operation is the stage's"
    );
    assert_eq!(
        h.stats(SHOP).await["bulk_operations"],
        3,
        "one per stage: the accepted one was not started again"
    );
    assert_eq!(starts_left(&h.db.pool).await, 0);
    let exported = h.exported("export-window").await;
    let unique: HashSet<String> = exported.iter().cloned().collect();
    assert_eq!(exported.len(), unique.len(), "no product twice");
    assert_eq!(
        unique,
        h.product_ids(SHOP)
            .await
            .into_iter()
            .collect::<HashSet<_>>()
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_does_not_adopt_an_operation_with_other_text_or_created_before_its_start() {
    const OTHER_TEXT: &str = "other-text-shop.myshopify.com";
    const EARLIER: &str = "earlier-shop.myshopify.com";
    let h = Harness::start(&[(OTHER_TEXT, seed(20, 1, 0)), (EARLIER, seed(20, 1, 0))]).await;
    // A start was committed, then the app's current bulk query is another query.
    h.interrupted_export("export-other-text", OTHER_TEXT, 0, 0)
        .await;
    let other = h
        .start_bulk_query(OTHER_TEXT, documents::CATALOG_INVENTORY.text)
        .await;
    // The same query, created well before the start (the start's time is moved a minute on instead of sleeping
    // past the allowed clock skew).
    let earlier = h
        .start_bulk_query(EARLIER, documents::CATALOG_PRODUCTS.text)
        .await;
    h.interrupted_export("export-earlier", EARLIER, 60, 60)
        .await;
    // Ended, so a new start is not refused and the check above is all that keeps them apart.
    h.wait_until_bulk_ended(OTHER_TEXT, "QUERY").await;
    h.wait_until_bulk_ended(EARLIER, "QUERY").await;

    h.send(&export("export-other-text", OTHER_TEXT)).await;
    h.send(&export("export-earlier", EARLIER)).await;
    h.exported_with_its_own_operations("export-other-text", OTHER_TEXT, &other)
        .await;
    h.exported_with_its_own_operations("export-earlier", EARLIER, &earlier)
        .await;
    assert_eq!(starts_left(&h.db.pool).await, 0);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_does_not_adopt_an_operation_a_retried_rival_may_have_created_or_another_command_claims()
 {
    const RIVAL: &str = "rival-shop.myshopify.com";
    const CLAIMED: &str = "claimed-shop.myshopify.com";
    let h = Harness::start(&[(RIVAL, seed(20, 1, 0)), (CLAIMED, seed(20, 1, 0))]).await;
    // Two unfinished starts of the shop's export: this command's, and another command's, whose first attempt is as
    // early but which was refused OPERATION_IN_PROGRESS and sent again a minute later. Either may have created the
    // current operation: its first attempt counts, not only its latest.
    h.interrupted_export("export-rival", RIVAL, 0, 0).await;
    h.interrupted_export("export-rival-other", RIVAL, 0, 60)
        .await;
    let either = h
        .start_bulk_query(RIVAL, documents::CATALOG_PRODUCTS.text)
        .await;
    // This command's start, and an operation of the same text that another command has already recorded as its own.
    h.interrupted_export("export-claimed", CLAIMED, 0, 0).await;
    let claimed = h
        .start_bulk_query(CLAIMED, documents::CATALOG_PRODUCTS.text)
        .await;
    sqlx::query(
        "INSERT INTO bulk_operations (command_id, stage, shop_domain, bulk_id, status) \
         VALUES ('export-claimed-other', 'catalog_products', $1, $2, 'RUNNING')",
    )
    .bind(CLAIMED)
    .bind(&claimed)
    .execute(&h.db.pool)
    .await
    .unwrap();
    h.wait_until_bulk_ended(RIVAL, "QUERY").await;
    h.wait_until_bulk_ended(CLAIMED, "QUERY").await;

    h.send(&export("export-rival", RIVAL)).await;
    h.send(&export("export-claimed", CLAIMED)).await;
    h.exported_with_its_own_operations("export-rival", RIVAL, &either)
        .await;
    h.exported_with_its_own_operations("export-claimed", CLAIMED, &claimed)
        .await;
    let left: Vec<String> = sqlx::query_scalar("SELECT command_id FROM bulk_starts")
        .fetch_all(&h.db.pool)
        .await
        .unwrap();
    assert_eq!(
        left,
        ["export-rival-other"],
        "only the rival's start is left"
    );
    h.finish().await;
}

// ----------------------------------------------------------------------------------------------------------------
// Bulk mutations

const MUTATION_SHOP: &str = "bulk-window-shop.myshopify.com";

/// metafieldsSet variables setting `bridge.note` = `{value}-{i}` on each product.
fn metafield_lines(products: &[String], value: &str) -> Vec<Value> {
    products
        .iter()
        .enumerate()
        .map(|(i, id)| {
            json!({"metafields": [{"ownerId": id, "namespace": "bridge", "key": "note",
                "type": "single_line_text_field", "value": format!("{value}-{i}")}]})
        })
        .collect()
}

/// Stages and uploads `lines` and starts `mutation` over them, as the gateway does; returns the operation's id.
async fn start_bulk_mutation(
    client: &shopify_sim::SimClient,
    token: &str,
    mutation: &str,
    lines: &[Value],
) -> String {
    let jsonl: String = lines.iter().map(|line| format!("{line}\n")).collect();
    let key = client
        .stage_jsonl(MUTATION_SHOP, token, "window.jsonl", &jsonl)
        .await
        .expect("staged upload");
    let (status, started) = client
        .graphql(
            MUTATION_SHOP,
            token,
            documents::BULK_MUTATION_START.text,
            json!({"mutation": mutation, "path": key}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{started}");
    started["data"]["bulkOperationRunMutation"]["bulkOperation"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{started}"))
        .to_string()
}

async fn wait_until_mutation_ended(client: &shopify_sim::SimClient, token: &str) {
    eventually("the bulk mutation ended", || async {
        let (_, body) = client
            .graphql(
                MUTATION_SHOP,
                token,
                documents::CURRENT_BULK_OPERATION.text,
                json!({"type": "MUTATION"}),
            )
            .await
            .unwrap();
        body["data"]["currentBulkOperation"]["status"] == "COMPLETED"
    })
    .await;
}

/// The `bridge.note` value of each product, by product id.
async fn notes(client: &shopify_sim::SimClient, token: &str, products: &[String]) -> Vec<String> {
    let mut values = Vec::new();
    for id in products {
        let (_, body) = client
            .graphql(
                MUTATION_SHOP,
                token,
                "query($id: ID!) { product(id: $id) { metafield(namespace: \"bridge\", key: \"note\") { value } } }",
                json!({"id": id}),
            )
            .await
            .unwrap();
        values.push(
            body["data"]["product"]["metafield"]["value"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    values
}

fn mutations(stats: &Value, name: &str) -> u64 {
    stats["mutations"][name].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_mutation_accepted_but_not_recorded_is_adopted_not_uploaded_or_started_again() {
    let shop = BulkShop::new(MUTATION_SHOP, 3).await;
    let s = &shop;
    let (f, db, token, products) = (&s.f, &s.db, s.token(), &s.owners);
    let document: Document = documents::METAFIELDS_SET;
    // The `bulk_starts` row of an interrupted start of command `command`'s metafields mutation.
    let interrupted = |command: &'static str, delay_secs: i64| {
        interrupted_start(
            &db.pool,
            command,
            "mutation:metafields",
            MUTATION_SHOP,
            "MUTATION",
            delay_secs,
        )
    };
    // An operation of `text` setting the notes to `value`, started outside the command; its id.
    let started = |text: &'static str, value: &'static str| async move {
        start_bulk_mutation(&f.client, token, text, &metafield_lines(products, value)).await
    };
    // Runs command `command` setting the notes to `value`, checks that they are set; its operation's id.
    let written = |command: &'static str, value: &'static str| async move {
        let w = s.writer(&f.executor, command, DEFAULT_BULK_UPLOAD_MAX_BYTES);
        let mut outcome = Outcome::default();
        let results = run_bulk_mutation(
            &w,
            "metafields",
            document,
            metafield_lines(products, value),
            &mut outcome,
        )
        .await
        .unwrap_or_else(|_| panic!("{outcome:?}"));
        assert_eq!(results.lines.len(), 3, "{:?}", results.lines);
        assert!(
            results
                .lines
                .values()
                .all(|l| l["data"]["metafieldsSet"]["userErrors"] == json!([])),
            "{:?}",
            results.lines
        );
        let expected: Vec<String> = (0..3).map(|i| format!("{value}-{i}")).collect();
        assert_eq!(notes(&f.client, token, products).await, expected);
        results.id
    };

    // The crashed gateway's start, accepted by Shopify with its lines.
    interrupted("window-1", 0).await;
    let orphan = started(document.text, "first").await;
    assert_eq!(
        written("window-1", "first").await,
        orphan,
        "the accepted operation is adopted"
    );
    let stats = f.client.stats(MUTATION_SHOP).await.unwrap();
    assert_eq!(stats["bulk_operations"], 1, "{stats}");
    assert_eq!(
        mutations(&stats, "stagedUploadsCreate"),
        1,
        "not uploaded again: {stats}"
    );

    // Another mutation text is current: a new operation, with this command's own upload.
    interrupted("window-2", 0).await;
    let other_text = "mutation Other($metafields: [MetafieldsSetInput!]!) { metafieldsSet(metafields: $metafields) { userErrors { message } } }";
    let other = started(other_text, "other").await;
    wait_until_mutation_ended(&f.client, token).await;
    assert_ne!(written("window-2", "second").await, other, "not adopted");

    // The same text, created before the start (moved a minute on instead of sleeping past the clock skew).
    let earlier = started(document.text, "earlier").await;
    interrupted("window-3", 60).await;
    wait_until_mutation_ended(&f.client, token).await;
    assert_ne!(written("window-3", "third").await, earlier, "not adopted");

    // Two interrupted starts either of which may have created the current operation: neither adopts it (it could
    // carry the other's lines).
    interrupted("window-4a", 0).await;
    interrupted("window-4b", 0).await;
    let either = started(document.text, "either").await;
    assert_ne!(
        written("window-4a", "fourth").await,
        either,
        "not adopted by one of two candidates"
    );
    assert_ne!(
        written("window-4b", "fifth").await,
        either,
        "nor by the other"
    );

    // Another command's mutation start, unfinished, last sent ten minutes after the operation was created: too late
    // by the clocks to have created it, but a mutation carries its own lines, so a rival anywhere near is enough
    // not to adopt.
    interrupted("window-6", 0).await;
    interrupted("window-6-rival", 600).await;
    let near = started(document.text, "near").await;
    assert_ne!(
        written("window-6", "sixth").await,
        near,
        "not adopted with a rival near"
    );

    let stats = f.client.stats(MUTATION_SHOP).await.unwrap();
    // 1 adopted + (1 other + 1 new) + (1 earlier + 1 new) + (1 either + 2 new) + (1 near + 1 new).
    assert_eq!(stats["bulk_operations"], 10, "{stats}");
    assert_eq!(mutations(&stats, "stagedUploadsCreate"), 10, "{stats}");
    assert_eq!(starts_left(&db.pool).await, 1, "the rival's");
    shop.finish().await;
}

// ----------------------------------------------------------------------------------------------------------------
// A lost answer

/// A TCP proxy in front of the simulator that loses the answers to the next `times` requests carrying one of
/// `needles`: each request reaches Shopify and is applied, then the client's connection is closed before the response.
/// Returns its address and how many answers are still to be lost (set it to 0 to stop losing them).
async fn answer_losing_proxy(
    target: std::net::SocketAddr,
    needles: &'static [&'static str],
    times: usize,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let to_lose = Arc::new(AtomicUsize::new(times));
    let lost_any = to_lose.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                continue;
            };
            let lost_any = lost_any.clone();
            tokio::spawn(async move {
                let (mut from_client, mut to_client) = inbound.into_split();
                let (mut from_server, mut to_server) = outbound.into_split();
                // This connection's next answer is to be lost.
                let doomed = Arc::new(AtomicBool::new(false));
                let doom = doomed.clone();
                let upstream = tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match from_client.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if needles.iter().any(|needle| {
                            buf[..n]
                                .windows(needle.len())
                                .any(|w| w == needle.as_bytes())
                        }) && lost_any
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok()
                        {
                            doom.store(true, Ordering::SeqCst);
                        }
                        if to_server.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match from_server.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if doomed.load(Ordering::SeqCst) {
                        break;
                    }
                    if to_client.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                upstream.abort();
            });
        }
    });
    (addr, to_lose)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_whose_answer_was_lost_adopts_the_operation_shopify_reports_in_progress() {
    use shopbridge_gateway::{
        bulk::query::{Exporter, PollSettings},
        operations::catalog::export::export,
    };
    const SHOP: &str = "lost-answer-shop.myshopify.com";
    let f = fixture().await;
    let db = TestDb::new(&shopbridge_gateway::MIGRATOR).await;
    let token = f.client.create_shop(SHOP, "standard").await.unwrap();
    f.client.seed(SHOP, &seed(20, 1, 0)).await.unwrap();
    // The operation stays in progress a while. Without looking for it after the lost answer, the start sent again
    // would be accepted too (five bulk operations may run at once from API 2026-01): a fourth operation.
    let faults: shopify_sim::FaultConfig =
        serde_json::from_value(json!({"bulk_delay_ms": 1000, "shops": [SHOP]})).unwrap();
    f.client.set_faults(&faults).await.unwrap();
    let (proxy, to_lose) = answer_losing_proxy(f._sim.addr(), &["bulkOperationRunQuery"], 1).await;
    let executor = executor_via(proxy, 60);
    let exporter = Exporter {
        executor: &executor,
        pool: &db.pool,
        download: reqwest::Client::new(),
        poll: PollSettings {
            first: std::time::Duration::from_millis(50),
            max: std::time::Duration::from_millis(200),
        },
    };
    let shop = ShopCredentials {
        domain: SHOP.into(),
        token: token.into(),
        fence: None,
    };

    let products = export(&exporter, &shop, "export-lost-answer")
        .await
        .expect("export");

    assert_eq!(
        to_lose.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the proxy lost an answer"
    );
    assert_eq!(products.len(), 20);
    let stats = f.client.stats(SHOP).await.unwrap();
    assert_eq!(stats["bulk_operations"], 3, "one per stage: {stats}");
    assert_eq!(starts_left(&db.pool).await, 0);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_mutation_whose_start_went_unanswered_past_the_deadline_is_left_unanswered_then_adopted()
 {
    let s = BulkShop::new(MUTATION_SHOP, 3).await;
    let (f, db, token, products) = (&s.f, &s.db, s.token(), &s.owners);
    // Shopify accepts the start, but every answer to it is lost, and so is every answer to the gateway's look for
    // the operation the lost start may have created (currentBulkOperation), until the gateway's 2 s call deadline
    // has passed.
    let faults: shopify_sim::FaultConfig =
        serde_json::from_value(json!({"bulk_delay_ms": 3000, "shops": [MUTATION_SHOP]})).unwrap();
    f.client.set_faults(&faults).await.unwrap();
    let (proxy, to_lose) = answer_losing_proxy(
        f._sim.addr(),
        &["bulkOperationRunMutation", "currentBulkOperation"],
        usize::MAX,
    )
    .await;
    let executor = executor_via(proxy, 2);
    let w = s.writer(&executor, "lost-start", DEFAULT_BULK_UPLOAD_MAX_BYTES);
    let lines = metafield_lines(products, "lost");

    let mut outcome = Outcome::default();
    let first = run_bulk_mutation(
        &w,
        "metafields",
        documents::METAFIELDS_SET,
        lines.clone(),
        &mut outcome,
    )
    .await;
    assert!(first.is_err());
    assert!(
        outcome.unfinished.is_some()
            && outcome.failed_calls.is_empty()
            && outcome.user_errors.is_empty(),
        "not answered: Shopify may be running it: {outcome:?}"
    );
    assert_eq!(starts_left(&db.pool).await, 1, "the start's row is kept");

    // The next delivery, with answers getting through again.
    to_lose.store(0, std::sync::atomic::Ordering::SeqCst);
    let mut outcome = Outcome::default();
    let results = run_bulk_mutation(
        &w,
        "metafields",
        documents::METAFIELDS_SET,
        lines,
        &mut outcome,
    )
    .await
    .unwrap_or_else(|_| panic!("{outcome:?}"));
    assert_eq!(results.lines.len(), 3, "{:?}", results.lines);
    assert_eq!(
        notes(&f.client, token, products).await,
        ["lost-0", "lost-1", "lost-2"]
    );
    let stats = f.client.stats(MUTATION_SHOP).await.unwrap();
    assert_eq!(
        stats["bulk_operations"], 1,
        "adopted, not started again: {stats}"
    );
    assert_eq!(mutations(&stats, "stagedUploadsCreate"), 1, "{stats}");
    assert_eq!(starts_left(&db.pool).await, 0);
    s.finish().await;
}

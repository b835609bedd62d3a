//! Every service binary as an operator runs it: `--help`, start against real NATS and PostgreSQL, gRPC health,
//! `/readyz` following its dependencies, clean exit on SIGTERM, and a clear failure on bad configuration.
//! The binaries come from `cargo build --workspace --bins` (`make test` builds them first).

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use shopbridge_platform::{
    bus::Namespace,
    testing::{TcpProxy, TestDb, TestNats, nats_url, socket_addr_of, url_via},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

const SERVICES: [&str; 5] = ["auth", "listings", "orders", "gateway", "scheduler"];

fn binary(service: &str) -> PathBuf {
    // target/<profile>/deps/<this test> -> target/<profile>/shopbridge-<service>
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = dir.join(format!("shopbridge-{service}"));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` (make test does)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Running {
    child: Child,
    grpc: u16,
    http: u16,
}

impl Running {
    fn start(service: &str, database_url: &str, nats: &str, namespace: &Namespace) -> Self {
        let (grpc, http) = (free_port(), free_port());
        let ns = namespace.subject("x");
        let child = Command::new(binary(service))
            .arg("serve")
            .env("SHOPBRIDGE__GRPC__LISTEN", format!("127.0.0.1:{grpc}"))
            .env("SHOPBRIDGE__HTTP__LISTEN", format!("127.0.0.1:{http}"))
            .env("SHOPBRIDGE__DATABASE__URL", database_url)
            .env("SHOPBRIDGE__NATS__URL", nats)
            .env(
                "SHOPBRIDGE__NATS__NAMESPACE",
                ns.strip_suffix(".x").unwrap_or(""),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start service");
        Self { child, grpc, http }
    }

    async fn readyz(&self) -> Option<(u16, String)> {
        let response = reqwest::get(format!("http://127.0.0.1:{}/readyz", self.http))
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.unwrap_or_default()))
    }

    async fn wait_for_readyz(&self, want: u16) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((status, body)) = self.readyz().await
                && status == want
            {
                return body;
            }
            assert!(Instant::now() < deadline, "/readyz never answered {want}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn health(&self) -> ServingStatus {
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", self.grpc))
                .expect("endpoint")
                .connect()
                .await
                .expect("gRPC connect");
        let mut client = HealthClient::new(channel);
        let response = client
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("health check");
        response.into_inner().status()
    }

    async fn wait_for_health(&self, want: ServingStatus) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.health().await != want {
            assert!(
                Instant::now() < deadline,
                "gRPC health never became {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Sends SIGTERM and returns the exit code and how long the exit took.
    fn terminate(mut self) -> (Option<i32>, Duration) {
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status.code(), started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(15) {
                let _ = self.child.kill();
                return (None, started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn every_service_binary_prints_its_help() {
    for service in SERVICES {
        let output = Command::new(binary(service))
            .arg("--help")
            .output()
            .expect("run --help");
        assert!(output.status.success(), "{service} --help failed");
        let text = String::from_utf8_lossy(&output.stdout);
        for word in ["Usage", "serve", "migrate", "--config"] {
            assert!(text.contains(word), "{service} --help lacks {word}: {text}");
        }
    }
}

#[tokio::test]
async fn every_service_starts_serves_health_and_exits_zero_on_sigterm() {
    shopbridge_platform::install_crypto_provider();
    let nats = TestNats::new().await;
    for service in SERVICES {
        let db = TestDb::empty().await;
        let running = Running::start(service, &db.url, &nats_url(), &nats.namespace);
        let body = running.wait_for_readyz(200).await;
        assert_eq!(body, "ready");
        running.wait_for_health(ServingStatus::Serving).await;
        let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", running.http))
            .await
            .unwrap();
        assert_eq!(metrics.status().as_u16(), 200);
        let healthz = reqwest::get(format!("http://127.0.0.1:{}/healthz", running.http))
            .await
            .unwrap();
        assert_eq!(healthz.status().as_u16(), 200);

        let (code, took) = running.terminate();
        assert_eq!(code, Some(0), "{service} exits 0 on SIGTERM");
        assert!(
            took < Duration::from_secs(10),
            "{service} took {took:?} to stop"
        );
        db.drop_db().await;
    }
    nats.cleanup().await;
}

#[tokio::test]
async fn readyz_is_200_only_while_the_database_and_nats_are_reachable() {
    shopbridge_platform::install_crypto_provider();
    let nats = TestNats::new().await;
    let db = TestDb::empty().await;

    // Database cut.
    let db_proxy = TcpProxy::start(socket_addr_of(&db.url).await).await;
    let running = Running::start(
        "scheduler",
        &url_via(&db.url, db_proxy.addr),
        &nats_url(),
        &nats.namespace,
    );
    running.wait_for_readyz(200).await;
    db_proxy.cut();
    let body = running.wait_for_readyz(503).await;
    assert!(body.contains("database"), "{body}");
    running.wait_for_health(ServingStatus::NotServing).await;
    let (code, _) = running.terminate();
    assert_eq!(code, Some(0));

    // NATS cut.
    let nats_proxy = TcpProxy::start(socket_addr_of(&nats_url()).await).await;
    let running = Running::start(
        "scheduler",
        &db.url,
        &url_via(&nats_url(), nats_proxy.addr),
        &nats.namespace,
    );
    running.wait_for_readyz(200).await;
    nats_proxy.cut();
    let body = running.wait_for_readyz(503).await;
    assert!(body.contains("nats"), "{body}");
    let (code, _) = running.terminate();
    assert_eq!(code, Some(0));

    db.drop_db().await;
    nats.cleanup().await;
}

#[test]
fn a_misspelled_or_bad_setting_fails_at_start_naming_the_key() {
    let cases = [
        ("SHOPBRIDGE__DATABSE__URL", "postgres://x", "databse"),
        (
            "SHOPBRIDGE__DATABASE__MAX_CONNECTIONS",
            "lots",
            "database.max_connections",
        ),
        ("SHOPBRIDGE_NATS__URL", "nats://x", "SHOPBRIDGE_NATS__URL"),
    ];
    for (key, value, named) in cases {
        let output = Command::new(binary("listings"))
            .arg("serve")
            .env(key, value)
            .output()
            .expect("run");
        assert_eq!(
            output.status.code(),
            Some(78),
            "{key} makes the service refuse to start"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(named), "{key}: {stderr}");
    }
}

#[tokio::test]
async fn migrate_applies_the_schema_and_serve_refuses_an_unmigrated_one_when_told_not_to_migrate() {
    shopbridge_platform::install_crypto_provider();
    let db = TestDb::empty().await;
    let refused = Command::new(binary("orders"))
        .arg("serve")
        .env("SHOPBRIDGE__DATABASE__URL", &db.url)
        .env("SHOPBRIDGE__DATABASE__MIGRATE_ON_START", "false")
        .env("SHOPBRIDGE__GRPC__LISTEN", "127.0.0.1:0")
        .env("SHOPBRIDGE__HTTP__LISTEN", "127.0.0.1:0")
        .env("SHOPBRIDGE__NATS__URL", nats_url())
        .output()
        .expect("run");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("migrate"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let migrated = Command::new(binary("orders"))
        .arg("migrate")
        .env("SHOPBRIDGE__DATABASE__URL", &db.url)
        .output()
        .unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('outbox', 'inbox', 'dead_letters')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(tables, 3, "outbox, inbox and dead_letters exist");
    db.drop_db().await;
}

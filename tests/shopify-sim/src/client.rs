//! A small typed client for tests and benchmarks: talks to the simulator over loopback and
//! reaches `<shop>.myshopify.com` by resolving that name to the simulator's address, so URLs
//! are the real Shopify ones.

use crate::faults::FaultConfig;
use crate::seed::SeedRequest;
use serde_json::{Value, json};
use std::net::SocketAddr;

#[derive(Clone)]
pub struct SimClient {
    addr: SocketAddr,
    http: reqwest::Client,
}

impl SimClient {
    pub fn new(addr: SocketAddr) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        SimClient {
            addr,
            http: reqwest::Client::new(),
        }
    }

    fn control(&self, path: &str) -> String {
        format!("http://{}/_sim{path}", self.addr)
    }

    /// A reqwest client that sends `https?://<shop>` requests to the simulator (plain HTTP).
    pub fn shop_http(&self, domain: &str) -> reqwest::Client {
        reqwest::Client::builder()
            .resolve(domain, self.addr)
            .build()
            .unwrap_or_default()
    }

    /// A reqwest client for Shopify's real HTTPS URLs (`https://<shop>/admin/...`, no port):
    /// the shop resolves to the simulator and its test CA is trusted.
    pub fn shop_https(&self, domain: &str) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(crate::tls::CA_PEM.as_bytes()).ok();
        let mut b = reqwest::Client::builder().resolve(domain, self.addr);
        if let Some(ca) = ca {
            b = b.tls_certs_only([ca]);
        }
        b.build().unwrap_or_default()
    }

    /// Shopify's real GraphQL URL for a shop (use with `shop_https`).
    pub fn real_graphql_url(domain: &str, version: &str) -> String {
        format!("https://{domain}/admin/api/{version}/graphql.json")
    }

    /// The GraphQL URL a client builds: `http://<shop>:PORT/admin/api/<version>/graphql.json`.
    /// (The simulator speaks plain HTTP, so the scheme is http and the port is the simulator's.)
    pub fn graphql_url(&self, domain: &str, version: &str) -> String {
        format!(
            "http://{domain}:{}/admin/api/{version}/graphql.json",
            self.addr.port()
        )
    }

    pub async fn create_shop(&self, domain: &str, plan: &str) -> anyhow::Result<String> {
        let r: Value = self
            .http
            .post(self.control("/shops"))
            .json(&json!({"domain": domain, "plan": plan}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(r["access_token"].as_str().unwrap_or_default().to_string())
    }

    pub async fn seed(&self, domain: &str, req: &SeedRequestBody) -> anyhow::Result<Value> {
        Ok(self
            .http
            .post(self.control(&format!("/shops/{domain}/seed")))
            .json(req)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    pub async fn stats(&self, domain: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(self.control(&format!("/shops/{domain}/stats")))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    pub async fn set_faults(&self, faults: &FaultConfig) -> anyhow::Result<()> {
        self.http
            .put(self.control("/faults"))
            .json(faults)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// GET /_sim/shops/{domain}/{what} with what = products | orders | inventory | fulfillments | webhooks.
    pub async fn read(&self, domain: &str, what: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(self.control(&format!("/shops/{domain}/{what}")))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// Stages `jsonl` as a bulk mutation's variables the way an app does (stagedUploadsCreate, then a multipart POST
    /// of the target's parameters and the file); returns the staged upload path for bulkOperationRunMutation.
    pub async fn stage_jsonl(
        &self,
        domain: &str,
        token: &str,
        filename: &str,
        jsonl: &str,
    ) -> anyhow::Result<String> {
        let (_, staged) = self
            .graphql(
                domain,
                token,
                "mutation S($input: [StagedUploadInput!]!) { stagedUploadsCreate(input: $input) { stagedTargets { url parameters { name value } } userErrors { message } } }",
                json!({"input": [{"resource": "BULK_MUTATION_VARIABLES", "filename": filename,
                    "mimeType": "text/jsonl", "httpMethod": "POST"}]}),
            )
            .await?;
        let target = &staged["data"]["stagedUploadsCreate"]["stagedTargets"][0];
        let (Some(url), Some(parameters)) =
            (target["url"].as_str(), target["parameters"].as_array())
        else {
            anyhow::bail!("no staged target: {staged}");
        };
        let field = |p: &Value, k: &str| p[k].as_str().unwrap_or_default().to_string();
        let parameters: Vec<(String, String)> = parameters
            .iter()
            .map(|p| (field(p, "name"), field(p, "value")))
            .collect();
        let key = parameters
            .iter()
            .find(|(name, _)| name == "key")
            .map(|(_, value)| value.clone())
            .ok_or_else(|| anyhow::anyhow!("the staged target has no key: {staged}"))?;
        // multipart/form-data: every parameter, then the file last (as storage services want it).
        let boundary = "shopify-sim-client-boundary";
        let mut body = String::new();
        for (name, value) in &parameters {
            body.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        }
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: text/jsonl\r\n\r\n{jsonl}\r\n--{boundary}--\r\n"
        ));
        self.http
            .post(url)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await?
            .error_for_status()?;
        Ok(key)
    }

    /// Runs a GraphQL document against a shop; returns (HTTP status, body).
    pub async fn graphql(
        &self,
        domain: &str,
        token: &str,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<(u16, Value)> {
        let r = self
            .shop_http(domain)
            .post(self.graphql_url(domain, crate::schema::API_VERSION))
            .header("X-Shopify-Access-Token", token)
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }
}

/// The body of `POST /_sim/shops/{domain}/seed`.
pub type SeedRequestBody = SeedRequestJson;

#[derive(serde::Serialize, Clone, Debug, Default)]
pub struct SeedRequestJson {
    pub products: usize,
    pub variants_per_product: usize,
    pub locations: usize,
    pub orders: usize,
    pub seed: u64,
}

impl From<&SeedRequestJson> for SeedRequest {
    fn from(s: &SeedRequestJson) -> Self {
        SeedRequest {
            products: s.products,
            variants_per_product: s.variants_per_product,
            locations: s.locations,
            orders: s.orders,
            seed: s.seed,
        }
    }
}

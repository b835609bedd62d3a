//! Talking to Shopify: the HTTP client (`http`), each shop's cost budget (`budget`), the one executor every call goes
//! through (`executor`), the GraphQL documents (`documents`) and their typed variables and answers (`wire`), and the
//! idempotency keys of the mutations Shopify de-duplicates (`idempotency`). Nothing here knows about commands.

pub mod budget;
pub mod documents;
pub mod executor;
pub mod http;
pub mod idempotency;
pub mod wire;

pub use http::{Answer, FatalKind, ShopifyHttp, ShopifySettings, is_shop_domain};

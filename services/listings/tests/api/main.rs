//! The listings service against real PostgreSQL and NATS, with auth, shopify-gateway and the Shopify simulator
//! running in-process: the API (tenancy, scopes, validation) and Import Listings end to end.

mod api;
mod import;
mod support;

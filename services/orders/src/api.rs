//! The gRPC API (`shopbridge.orders.v1.OrdersService`), behind the platform's auth interceptor: reads need the scope
//! `orders:read`, changes `orders:write`, and every call works on the token's tenant only (another tenant's order or
//! channel is NOT_FOUND, exactly like a missing one).

use chrono::{DateTime, Utc};
use shopbridge_platform::grpc::principal;
use shopbridge_proto::{
    common::PageResponse,
    orders::{self as pb, orders_service_server::OrdersService},
};
use sqlx::{PgPool, QueryBuilder, Row};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    domain::{
        mapping,
        order::{from_timestamp, timestamp, to_proto},
        settings::{self, GetOrdersSettings, parse_channel_id},
    },
    error::Error,
    store,
};

pub const READ: &str = "orders:read";
pub const WRITE: &str = "orders:write";

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 200;

#[derive(Clone)]
pub struct Api {
    pool: PgPool,
}

impl Api {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// NOT_FOUND when auth reported the channel for another tenant.
    async fn own_channel(&self, tenant: Uuid, channel: Uuid) -> Result<(), Error> {
        let owner: Option<Uuid> =
            sqlx::query_scalar("SELECT tenant_id FROM channels WHERE channel_id = $1")
                .bind(channel)
                .fetch_optional(&self.pool)
                .await?;
        match owner {
            Some(owner) if owner != tenant => {
                Err(Error::NotFound(format!("channel {channel} not found")))
            }
            _ => Ok(()),
        }
    }
}

fn authorize<T>(request: &Request<T>, scope: &str) -> Result<Uuid, Status> {
    let principal = principal(request)?;
    principal.require_scope(scope)?;
    Uuid::parse_str(&principal.tenant_id)
        .map_err(|_| Status::unauthenticated("the token names no valid tenant"))
}

fn like(word: &str) -> String {
    let escaped = word
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

#[tonic::async_trait]
impl OrdersService for Api {
    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        let tenant = authorize(&request, READ)?;
        let req = request.get_ref();
        let page = req.page.clone().unwrap_or_default();
        let size = match page.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let after = match page.page_token.trim() {
            "" => None,
            t => Some(
                Uuid::parse_str(t)
                    .map_err(|_| Error::InvalidArgument("page_token is not valid".into()))?,
            ),
        };
        let channel = match req.channel_id.trim() {
            "" => None,
            c => Some(parse_channel_id(c)?),
        };
        let since: Option<DateTime<Utc>> = req.imported_since.as_ref().and_then(from_timestamp);
        let filters = |qb: &mut QueryBuilder<sqlx::Postgres>| {
            qb.push(" WHERE o.tenant_id = ").push_bind(tenant);
            if let Some(c) = channel {
                qb.push(" AND o.channel_id = ").push_bind(c);
            }
            let status = req.fulfillment_status.trim().to_ascii_uppercase();
            if !status.is_empty() {
                qb.push(" AND o.fulfillment_status = ").push_bind(status);
            }
            let status = req.financial_status.trim().to_ascii_uppercase();
            if !status.is_empty() {
                qb.push(" AND o.financial_status = ").push_bind(status);
            }
            if let Some(s) = since {
                qb.push(" AND o.imported_at >= ").push_bind(s);
            }
            for word in req.text.split_whitespace() {
                let pattern = like(word);
                qb.push(" AND (o.name ILIKE ")
                    .push_bind(pattern.clone())
                    .push(" OR EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.id AND l.sku ILIKE ")
                    .push_bind(pattern)
                    .push("))");
            }
        };
        let mut count = QueryBuilder::new("SELECT count(*) FROM orders o");
        filters(&mut count);
        let total: i64 = count
            .build()
            .fetch_one(&self.pool)
            .await
            .map_err(Error::from)?
            .get(0);
        let mut query = QueryBuilder::new("SELECT o.id FROM orders o");
        filters(&mut query);
        if let Some(after) = after {
            query.push(" AND o.id > ").push_bind(after);
        }
        query
            .push(" ORDER BY o.id LIMIT ")
            .push_bind(i64::from(size) + 1);
        let mut ids: Vec<Uuid> = query
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(Error::from)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let more = ids.len() > size as usize;
        ids.truncate(size as usize);
        let mut conn = self.pool.acquire().await.map_err(Error::from)?;
        let found = store::load(&mut conn, tenant, &ids)
            .await
            .map_err(Error::from)?;
        let next = if more {
            ids.last().map(|id| id.to_string()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListOrdersResponse {
            orders: found.iter().map(|f| to_proto(&f.order, &f.meta)).collect(),
            page: Some(PageResponse {
                next_page_token: next,
            }),
            total: total.max(0) as u64,
        }))
    }

    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::GetOrderResponse>, Status> {
        let tenant = authorize(&request, READ)?;
        let req = request.get_ref();
        let key = req.order_id.trim();
        let id: Option<Uuid> = if key.starts_with("gid://shopify/Order/") {
            let channel = parse_channel_id(&req.channel_id)?;
            sqlx::query_scalar(
                "SELECT id FROM orders WHERE tenant_id = $1 AND channel_id = $2 AND shopify_order_id = $3",
            )
            .bind(tenant)
            .bind(channel)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::from)?
        } else {
            Some(Uuid::parse_str(key).map_err(|_| {
                Error::InvalidArgument(format!(
                    "order_id `{key}` is not an order id or a Shopify order GID"
                ))
            })?)
        };
        let not_found = || Error::NotFound(format!("order {key} not found"));
        let id = id.ok_or_else(not_found)?;
        let mut conn = self.pool.acquire().await.map_err(Error::from)?;
        let found = store::load(&mut conn, tenant, &[id])
            .await
            .map_err(Error::from)?
            .pop()
            .ok_or_else(not_found)?;
        let mut order = to_proto(&found.order, &found.meta);
        let history = sqlx::query("SELECT at, kind, source, run_id, changes FROM order_history WHERE order_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(&mut *conn)
            .await
            .map_err(Error::from)?;
        order.history = history
            .iter()
            .map(|r| pb::HistoryEntry {
                at: Some(timestamp(r.get("at"))),
                kind: r.get("kind"),
                source: r.get("source"),
                run_id: r
                    .get::<Option<Uuid>, _>("run_id")
                    .map(|u| u.to_string())
                    .unwrap_or_default(),
                changes: r.get("changes"),
            })
            .collect();
        Ok(Response::new(pb::GetOrderResponse { order: Some(order) }))
    }

    async fn get_get_orders_settings(
        &self,
        request: Request<pb::GetGetOrdersSettingsRequest>,
    ) -> Result<Response<pb::GetGetOrdersSettingsResponse>, Status> {
        let tenant = authorize(&request, READ)?;
        let channel = parse_channel_id(&request.get_ref().channel_id)?;
        self.own_channel(tenant, channel).await?;
        let s = settings::get(&self.pool, tenant, channel)
            .await
            .map_err(Error::from)?;
        Ok(Response::new(pb::GetGetOrdersSettingsResponse {
            settings: Some(s.to_proto(channel)),
        }))
    }

    async fn set_get_orders_settings(
        &self,
        request: Request<pb::SetGetOrdersSettingsRequest>,
    ) -> Result<Response<pb::SetGetOrdersSettingsResponse>, Status> {
        let tenant = authorize(&request, WRITE)?;
        let Some(p) = request.get_ref().settings.as_ref() else {
            return Err(Error::InvalidArgument("settings is required".into()).into());
        };
        let (channel, s) = GetOrdersSettings::from_proto(p)?;
        self.own_channel(tenant, channel).await?;
        settings::set(&self.pool, tenant, channel, &s)
            .await
            .map_err(Error::from)?;
        tracing::info!(%tenant, %channel, enabled = s.enabled, location = %s.location_id, "get orders settings changed");
        Ok(Response::new(pb::SetGetOrdersSettingsResponse {
            settings: Some(s.to_proto(channel)),
        }))
    }

    async fn get_get_orders_mapping(
        &self,
        request: Request<pb::GetGetOrdersMappingRequest>,
    ) -> Result<Response<pb::GetGetOrdersMappingResponse>, Status> {
        let tenant = authorize(&request, READ)?;
        let channel = parse_channel_id(&request.get_ref().channel_id)?;
        self.own_channel(tenant, channel).await?;
        let m = mapping::get(&self.pool, tenant, channel)
            .await
            .map_err(Error::from)?;
        Ok(Response::new(pb::GetGetOrdersMappingResponse {
            mapping: Some(m.to_proto(channel)),
        }))
    }

    async fn set_get_orders_mapping(
        &self,
        request: Request<pb::SetGetOrdersMappingRequest>,
    ) -> Result<Response<pb::SetGetOrdersMappingResponse>, Status> {
        let tenant = authorize(&request, WRITE)?;
        let Some(p) = request.get_ref().mapping.as_ref() else {
            return Err(Error::InvalidArgument("mapping is required".into()).into());
        };
        let channel = parse_channel_id(&p.channel_id)?;
        self.own_channel(tenant, channel).await?;
        let current = mapping::get(&self.pool, tenant, channel)
            .await
            .map_err(Error::from)?;
        let next = current.apply_proto(p)?;
        mapping::set(&self.pool, tenant, channel, &next)
            .await
            .map_err(Error::from)?;
        tracing::info!(%tenant, %channel, disabled = next.disabled.len(), "get orders mapping changed");
        Ok(Response::new(pb::SetGetOrdersMappingResponse {
            mapping: Some(next.to_proto(channel)),
        }))
    }

    async fn list_data_requests(
        &self,
        request: Request<pb::ListDataRequestsRequest>,
    ) -> Result<Response<pb::ListDataRequestsResponse>, Status> {
        let tenant = authorize(&request, READ)?;
        let channel = match request.get_ref().channel_id.trim() {
            "" => None,
            c => Some(parse_channel_id(c)?),
        };
        let rows = sqlx::query(
            "SELECT id, channel_id, shop_domain, shopify_request_id, customer_id, customer_email, orders, export::text AS export,
                    received_at
             FROM data_requests WHERE tenant_id = $1 AND ($2::uuid IS NULL OR channel_id = $2)
             ORDER BY received_at DESC LIMIT 200",
        )
        .bind(tenant)
        .bind(channel)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::from)?;
        Ok(Response::new(pb::ListDataRequestsResponse {
            requests: rows
                .iter()
                .map(|r| pb::DataRequest {
                    request_id: r.get::<Uuid, _>("id").to_string(),
                    channel_id: r.get::<Uuid, _>("channel_id").to_string(),
                    shop_domain: r.get("shop_domain"),
                    shopify_request_id: r.get("shopify_request_id"),
                    customer_id: r.get("customer_id"),
                    customer_email: r.get("customer_email"),
                    received_at: Some(timestamp(r.get("received_at"))),
                    export_json: r.get("export"),
                    orders: r.get::<i32, _>("orders").max(0) as u32,
                })
                .collect(),
        }))
    }
}

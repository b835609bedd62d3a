//! The gRPC API (`shopbridge.listings.v1.ListingsService`), behind the platform's auth interceptor: reads need the
//! scope `listings:read`, changes `listings:write`, and every call works on the token's tenant only (another tenant's
//! listing is NOT_FOUND, exactly like a missing one).

pub mod convert;

use shopbridge_platform::grpc::principal;
use shopbridge_proto::listings::{self as pb, listings_service_server::ListingsService};
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    catalog::{self, model::ListingStatus, read},
    error::Error,
    import_settings::{self, ImportSettings},
};

pub const READ: &str = "listings:read";
pub const WRITE: &str = "listings:write";

/// Listings per page when the request does not say, and the most one page holds.
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
}

/// The caller's tenant, after checking it holds `scope`.
fn authorize<T>(request: &Request<T>, scope: &str) -> Result<Uuid, Status> {
    let principal = principal(request)?;
    principal.require_scope(scope)?;
    Uuid::parse_str(&principal.tenant_id)
        .map_err(|_| Status::unauthenticated("the token names no valid tenant"))
}

fn parse_id(what: &str, text: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(text.trim())
        .map_err(|_| Error::InvalidArgument(format!("{what} `{text}` is not an id")))
}

/// The text filter: each word must appear in the title, the brand or a SKU (LIKE wildcards taken literally).
fn text_patterns(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|word| {
            let escaped = word
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        })
        .collect()
}

#[tonic::async_trait]
impl ListingsService for Api {
    async fn get_import_settings(
        &self,
        request: Request<pb::GetImportSettingsRequest>,
    ) -> Result<Response<pb::GetImportSettingsResponse>, Status> {
        let tenant = authorize(&request, READ)?;
        let channel = import_settings::parse_channel_id(&request.get_ref().channel_id)?;
        let settings = import_settings::get(&self.pool, tenant, channel)
            .await
            .map_err(Error::from)?;
        Ok(Response::new(pb::GetImportSettingsResponse {
            settings: Some(settings.to_proto(channel)),
        }))
    }

    async fn set_import_settings(
        &self,
        request: Request<pb::SetImportSettingsRequest>,
    ) -> Result<Response<pb::SetImportSettingsResponse>, Status> {
        let tenant = authorize(&request, WRITE)?;
        let Some(settings) = request.get_ref().settings.as_ref() else {
            return Err(Error::InvalidArgument("settings is required".into()).into());
        };
        let (channel, settings) = ImportSettings::from_proto(settings)?;
        import_settings::set(&self.pool, tenant, channel, settings)
            .await
            .map_err(Error::from)?;
        tracing::info!(%tenant, %channel, enabled = settings.enabled, mode = settings.mode.as_str(),
            master_sku_field = settings.master_sku_field.as_str(), pause_new_listings = settings.pause_new_listings,
            "import settings changed");
        Ok(Response::new(pb::SetImportSettingsResponse {
            settings: Some(settings.to_proto(channel)),
        }))
    }

    async fn create_listings(
        &self,
        request: Request<pb::CreateListingsRequest>,
    ) -> Result<Response<pb::CreateListingsResponse>, Status> {
        let tenant = authorize(&request, WRITE)?;
        let (listings, variants) =
            convert::new_listings(&request.get_ref().listings, &mut Uuid::now_v7)?;
        catalog::create(&self.pool, tenant, &listings, &variants).await?;
        let ids: Vec<Uuid> = listings.iter().map(|l| l.id).collect();
        let mut conn = self.pool.acquire().await.map_err(Error::from)?;
        let created = read::listings(&mut conn, tenant, &ids)
            .await
            .map_err(Error::from)?;
        Ok(Response::new(pb::CreateListingsResponse {
            listings: created.iter().map(convert::listing_out).collect(),
        }))
    }

    async fn list_listings(
        &self,
        request: Request<pb::ListListingsRequest>,
    ) -> Result<Response<pb::ListListingsResponse>, Status> {
        let tenant = authorize(&request, READ)?;
        let req = request.get_ref();
        let optional = |text: &str| {
            let text = text.trim();
            (!text.is_empty()).then(|| text.to_string())
        };
        let filter = read::ListFilter {
            sku: optional(&req.sku),
            status: match pb::ListingStatus::try_from(req.status) {
                Ok(pb::ListingStatus::Unspecified) => None,
                Ok(pb::ListingStatus::Active) => Some(ListingStatus::Active),
                Ok(pb::ListingStatus::Paused) => Some(ListingStatus::Paused),
                Err(_) => {
                    return Err(
                        Error::InvalidArgument(format!("unknown status {}", req.status)).into(),
                    );
                }
            },
            linked: match pb::LinkState::try_from(req.link_state) {
                Ok(pb::LinkState::Linked) => Some(true),
                Ok(pb::LinkState::Unlinked) => Some(false),
                // A channel alone asks for what is linked on it.
                Ok(pb::LinkState::Unspecified) if !req.channel_id.trim().is_empty() => Some(true),
                Ok(pb::LinkState::Unspecified) => None,
                Err(_) => {
                    return Err(Error::InvalidArgument(format!(
                        "unknown link_state {}",
                        req.link_state
                    ))
                    .into());
                }
            },
            channel: optional(&req.channel_id)
                .map(|c| import_settings::parse_channel_id(&c))
                .transpose()?,
            text_patterns: text_patterns(&req.text),
            created_by_run: optional(&req.created_by_run_id)
                .map(|r| parse_id("created_by_run_id", &r))
                .transpose()?,
        };
        let page = req.page.clone().unwrap_or_default();
        let size = match page.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let after = optional(&page.page_token)
            .map(|t| {
                parse_id("page_token", &t).map_err(|_| {
                    Error::InvalidArgument(
                        "page_token is not one this API returned; start again without it".into(),
                    )
                })
            })
            .transpose()?;
        let mut conn = self.pool.acquire().await.map_err(Error::from)?;
        // One more than the page, to know whether another page follows.
        let (mut ids, total) = read::page(&mut conn, tenant, &filter, after, i64::from(size) + 1)
            .await
            .map_err(Error::from)?;
        let more = ids.len() > size as usize;
        ids.truncate(size as usize);
        let listings = read::listings(&mut conn, tenant, &ids)
            .await
            .map_err(Error::from)?;
        let next_page_token = if more {
            ids.last().map(Uuid::to_string).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListListingsResponse {
            listings: listings.iter().map(convert::listing_out).collect(),
            page: Some(shopbridge_proto::common::PageResponse { next_page_token }),
            total: total.max(0) as u64,
        }))
    }

    async fn get_listing(
        &self,
        request: Request<pb::GetListingRequest>,
    ) -> Result<Response<pb::GetListingResponse>, Status> {
        let tenant = authorize(&request, READ)?;
        let text = &request.get_ref().listing_id;
        let id = parse_id("listing_id", text)?;
        let mut conn = self.pool.acquire().await.map_err(Error::from)?;
        let listing = read::listings(&mut conn, tenant, &[id])
            .await
            .map_err(Error::from)?
            .pop()
            .ok_or_else(|| Error::NotFound(format!("listing {id} not found")))?;
        Ok(Response::new(pb::GetListingResponse {
            listing: Some(convert::listing_out(&listing)),
        }))
    }

    async fn unpause_listings(
        &self,
        request: Request<pb::UnpauseListingsRequest>,
    ) -> Result<Response<pb::UnpauseListingsResponse>, Status> {
        use pb::unpause_listings_request::Selector;
        let tenant = authorize(&request, WRITE)?;
        let unpaused = match &request.get_ref().selector {
            Some(Selector::ListingIds(ids)) if !ids.ids.is_empty() => {
                let ids = ids
                    .ids
                    .iter()
                    .map(|id| parse_id("listing id", id))
                    .collect::<Result<Vec<Uuid>, Error>>()?;
                catalog::unpause_ids(&self.pool, tenant, &ids)
                    .await
                    .map_err(Error::from)?
            }
            Some(Selector::CreatedByRunId(run)) => {
                let run = parse_id("created_by_run_id", run)?;
                catalog::unpause_run(&self.pool, tenant, run)
                    .await
                    .map_err(Error::from)?
            }
            _ => {
                return Err(Error::InvalidArgument(
                    "say which listings to unpause: listing_ids (at least one) or created_by_run_id".into(),
                )
                .into());
            }
        };
        tracing::info!(%tenant, unpaused, "listings unpaused");
        Ok(Response::new(pb::UnpauseListingsResponse { unpaused }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_filters_take_like_wildcards_literally() {
        assert_eq!(
            text_patterns("red  50%_off"),
            vec!["%red%".to_string(), "%50\\%\\_off%".to_string()]
        );
        assert!(text_patterns("   ").is_empty());
    }
}

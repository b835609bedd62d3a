//! The spec's reset path ("delete the app in Shopify, then connect again"): when shopify-gateway reports
//! `app/uninstalled` for a store, every channel connected to it turns disconnected, its token is deleted (Shopify has
//! already revoked it) and the change is published once; connecting again starts fresh.

use shopbridge_platform::bus::{Envelope, Handler, HandlerError};
use shopbridge_proto::gateway::ShopifyAppUninstalled;
use sqlx::{Postgres, Transaction};

use crate::channels::disconnect_shop;

pub struct UninstallHandler;

/// The reason shown on the channel, in the spec's words.
pub const UNINSTALLED: &str = "the app was deleted from the Shopify store: restart the connection from Step 1 to connect it again";

impl Handler for UninstallHandler {
    type Message = ShopifyAppUninstalled;

    async fn handle(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &Envelope<ShopifyAppUninstalled>,
    ) -> Result<(), HandlerError> {
        let Some(delivery) = &event.message.delivery else {
            return Err(HandlerError::Reject(anyhow::anyhow!(
                "app/uninstalled without its delivery"
            )));
        };
        if delivery.shop_domain.is_empty() {
            return Err(HandlerError::Reject(anyhow::anyhow!(
                "app/uninstalled names no shop"
            )));
        }
        let changed = disconnect_shop(tx, &delivery.shop_domain, UNINSTALLED)
            .await
            .map_err(|e| HandlerError::Retry(e.into()))?;
        tracing::info!(shop = %delivery.shop_domain, channels = changed, "app uninstalled; channels disconnected");
        Ok(())
    }
}

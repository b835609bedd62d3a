//! Import Listings settings per channel, as the spec's "Your Configuration Options" lists them, and their storage.
//!
//! Defaults for a channel never configured follow the spec's setup steps: Import Listings is off until the merchant
//! turns it on ("2. Turn On Import Listings"), so a schedule or a stray "Run now" never fills a catalog nobody asked
//! for; the mode is Create Only (the first and the non-destructive choice), the master SKU is the Shopify variant's
//! SKU (the spec: "links them to existing listings by SKU") and new listings are not paused (an optional step).

use shopbridge_proto::listings as pb;
use sqlx::{PgExecutor, Row};
use uuid::Uuid;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    /// Existing listings are linked and left as they are.
    CreateOnly,
    /// Existing listings are linked and updated from Shopify.
    CreateAndOverwrite,
}

/// Which Shopify variant field holds the SKU of our catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterSkuField {
    Sku,
    Barcode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportSettings {
    pub enabled: bool,
    pub mode: ImportMode,
    pub master_sku_field: MasterSkuField,
    pub pause_new_listings: bool,
}

impl Default for ImportSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            mode: ImportMode::CreateOnly,
            master_sku_field: MasterSkuField::Sku,
            pause_new_listings: false,
        }
    }
}

impl ImportMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateOnly => "create_only",
            Self::CreateAndOverwrite => "create_and_overwrite",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "create_only" => Some(Self::CreateOnly),
            "create_and_overwrite" => Some(Self::CreateAndOverwrite),
            _ => None,
        }
    }
}

impl MasterSkuField {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sku => "sku",
            Self::Barcode => "barcode",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "sku" => Some(Self::Sku),
            "barcode" => Some(Self::Barcode),
            _ => None,
        }
    }

    /// The field as the spec names it, for messages to merchants.
    pub fn label(self) -> &'static str {
        match self {
            Self::Sku => "Shopify Variant - SKU",
            Self::Barcode => "Shopify Variant - Barcode",
        }
    }
}

/// A channel id from the API: auth's channel ids are UUIDs.
pub fn parse_channel_id(text: &str) -> Result<Uuid> {
    if text.trim().is_empty() {
        return Err(Error::InvalidArgument(
            "channel_id is required (a channel id from auth's ListChannels)".into(),
        ));
    }
    Uuid::parse_str(text.trim())
        .map_err(|_| Error::InvalidArgument(format!("channel_id `{text}` is not a channel id")))
}

impl ImportSettings {
    /// Checks settings sent to SetImportSettings; every field must be chosen explicitly.
    pub fn from_proto(settings: &pb::ImportSettings) -> Result<(Uuid, Self)> {
        let channel = parse_channel_id(&settings.channel_id)?;
        let mode = match pb::ImportMode::try_from(settings.mode) {
            Ok(pb::ImportMode::CreateOnly) => ImportMode::CreateOnly,
            Ok(pb::ImportMode::CreateAndOverwrite) => ImportMode::CreateAndOverwrite,
            _ => {
                return Err(Error::InvalidArgument(
                    "mode must be IMPORT_MODE_CREATE_ONLY or IMPORT_MODE_CREATE_AND_OVERWRITE"
                        .into(),
                ));
            }
        };
        let master_sku_field = match pb::MasterSkuField::try_from(settings.master_sku_field) {
            Ok(pb::MasterSkuField::ShopifyVariantSku) => MasterSkuField::Sku,
            Ok(pb::MasterSkuField::ShopifyVariantBarcode) => MasterSkuField::Barcode,
            _ => {
                return Err(Error::InvalidArgument(
                    "master_sku_field must be MASTER_SKU_FIELD_SHOPIFY_VARIANT_SKU or MASTER_SKU_FIELD_SHOPIFY_VARIANT_BARCODE"
                        .into(),
                ));
            }
        };
        Ok((
            channel,
            Self {
                enabled: settings.enabled,
                mode,
                master_sku_field,
                pause_new_listings: settings.pause_new_listings,
            },
        ))
    }

    pub fn to_proto(self, channel: Uuid) -> pb::ImportSettings {
        pb::ImportSettings {
            channel_id: channel.to_string(),
            enabled: self.enabled,
            mode: match self.mode {
                ImportMode::CreateOnly => pb::ImportMode::CreateOnly,
                ImportMode::CreateAndOverwrite => pb::ImportMode::CreateAndOverwrite,
            } as i32,
            master_sku_field: match self.master_sku_field {
                MasterSkuField::Sku => pb::MasterSkuField::ShopifyVariantSku,
                MasterSkuField::Barcode => pb::MasterSkuField::ShopifyVariantBarcode,
            } as i32,
            pause_new_listings: self.pause_new_listings,
        }
    }
}

/// The channel's settings, or the defaults when it was never configured.
pub async fn get(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    channel: Uuid,
) -> sqlx::Result<ImportSettings> {
    let row = sqlx::query(
        "SELECT enabled, mode, master_sku_field, pause_new_listings FROM import_settings
         WHERE tenant_id = $1 AND channel_id = $2",
    )
    .bind(tenant)
    .bind(channel)
    .fetch_optional(db)
    .await?;
    Ok(match row {
        None => ImportSettings::default(),
        Some(row) => ImportSettings {
            enabled: row.get("enabled"),
            // The CHECK constraints admit only what parse() accepts.
            mode: ImportMode::parse(row.get("mode")).unwrap_or(ImportMode::CreateOnly),
            master_sku_field: MasterSkuField::parse(row.get("master_sku_field"))
                .unwrap_or(MasterSkuField::Sku),
            pause_new_listings: row.get("pause_new_listings"),
        },
    })
}

pub async fn set(
    db: impl PgExecutor<'_>,
    tenant: Uuid,
    channel: Uuid,
    settings: ImportSettings,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO import_settings (tenant_id, channel_id, enabled, mode, master_sku_field, pause_new_listings)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (tenant_id, channel_id) DO UPDATE SET enabled = EXCLUDED.enabled, mode = EXCLUDED.mode,
             master_sku_field = EXCLUDED.master_sku_field, pause_new_listings = EXCLUDED.pause_new_listings,
             updated_at = now()",
    )
    .bind(tenant)
    .bind(channel)
    .bind(settings.enabled)
    .bind(settings.mode.as_str())
    .bind(settings.master_sku_field.as_str())
    .bind(settings.pause_new_listings)
    .execute(db)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_need_every_choice_made() {
        let channel = Uuid::now_v7().to_string();
        let good = pb::ImportSettings {
            channel_id: channel.clone(),
            enabled: true,
            mode: pb::ImportMode::CreateAndOverwrite as i32,
            master_sku_field: pb::MasterSkuField::ShopifyVariantBarcode as i32,
            pause_new_listings: true,
        };
        let (_, parsed) = ImportSettings::from_proto(&good).unwrap();
        assert_eq!(parsed.mode, ImportMode::CreateAndOverwrite);
        assert_eq!(parsed.to_proto(Uuid::parse_str(&channel).unwrap()), good);
        for bad in [
            pb::ImportSettings {
                mode: 0,
                ..good.clone()
            },
            pb::ImportSettings {
                master_sku_field: 7,
                ..good.clone()
            },
            pb::ImportSettings {
                channel_id: "not-a-channel".into(),
                ..good.clone()
            },
        ] {
            assert!(matches!(
                ImportSettings::from_proto(&bad),
                Err(Error::InvalidArgument(_))
            ));
        }
    }
}

//! `shopbridge settings get|set OPERATION --channel C`: an operation's settings as YAML. Only import-listings has
//! settings in this deployment (listings' ImportSettings); the other operations say so with exit code 8.

use std::path::Path;

use serde::{Deserialize, Serialize};
use shopbridge_proto::listings::{self as pb, ImportMode, MasterSkuField};

use crate::{
    cli::SettingsCommand,
    client::Ctx,
    commands::channels,
    error::{CallExt, CliError, Exit},
    names::OperationArg,
    output,
};

/// The YAML a user writes; every key is optional (left out: unchanged).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportSettingsFile {
    pub enabled: Option<bool>,
    pub mode: Option<ModeName>,
    pub master_sku_field: Option<SkuFieldName>,
    pub pause_new_listings: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModeName {
    CreateOnly,
    CreateAndOverwrite,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkuFieldName {
    Sku,
    Barcode,
}

/// The settings as printed (`-o json`, or YAML for humans).
#[derive(Debug, Serialize)]
pub struct ImportSettingsView {
    pub channel_id: String,
    pub operation: &'static str,
    pub enabled: bool,
    pub mode: Option<ModeName>,
    pub master_sku_field: Option<SkuFieldName>,
    pub pause_new_listings: bool,
}

impl From<pb::ImportSettings> for ImportSettingsView {
    fn from(s: pb::ImportSettings) -> Self {
        Self {
            operation: OperationArg::ImportListings.name(),
            enabled: s.enabled,
            mode: match ImportMode::try_from(s.mode) {
                Ok(ImportMode::CreateOnly) => Some(ModeName::CreateOnly),
                Ok(ImportMode::CreateAndOverwrite) => Some(ModeName::CreateAndOverwrite),
                _ => None,
            },
            master_sku_field: match MasterSkuField::try_from(s.master_sku_field) {
                Ok(MasterSkuField::ShopifyVariantSku) => Some(SkuFieldName::Sku),
                Ok(MasterSkuField::ShopifyVariantBarcode) => Some(SkuFieldName::Barcode),
                _ => None,
            },
            pause_new_listings: s.pause_new_listings,
            channel_id: s.channel_id,
        }
    }
}

impl ImportSettingsView {
    /// YAML that `settings set -f` reads back.
    fn to_yaml(&self) -> String {
        format!(
            "# {} settings of channel {}\nenabled: {}\nmode: {}\nmaster_sku_field: {}\npause_new_listings: {}",
            self.operation,
            self.channel_id,
            self.enabled,
            self.mode.map_or("unset", ModeName::yaml),
            self.master_sku_field.map_or("unset", SkuFieldName::yaml),
            self.pause_new_listings
        )
    }
}

impl ModeName {
    /// The name serde reads (snake_case).
    fn yaml(self) -> &'static str {
        match self {
            Self::CreateOnly => "create_only",
            Self::CreateAndOverwrite => "create_and_overwrite",
        }
    }
}

impl SkuFieldName {
    fn yaml(self) -> &'static str {
        match self {
            Self::Sku => "sku",
            Self::Barcode => "barcode",
        }
    }
}

impl ImportSettingsFile {
    /// Applies the keys the file sets to `current`.
    pub fn apply(&self, mut current: pb::ImportSettings) -> pb::ImportSettings {
        if let Some(enabled) = self.enabled {
            current.enabled = enabled;
        }
        if let Some(mode) = self.mode {
            current.mode = match mode {
                ModeName::CreateOnly => ImportMode::CreateOnly,
                ModeName::CreateAndOverwrite => ImportMode::CreateAndOverwrite,
            } as i32;
        }
        if let Some(field) = self.master_sku_field {
            current.master_sku_field = match field {
                SkuFieldName::Sku => MasterSkuField::ShopifyVariantSku,
                SkuFieldName::Barcode => MasterSkuField::ShopifyVariantBarcode,
            } as i32;
        }
        if let Some(pause) = self.pause_new_listings {
            current.pause_new_listings = pause;
        }
        current
    }

    fn is_empty(&self) -> bool {
        self.enabled.is_none()
            && self.mode.is_none()
            && self.master_sku_field.is_none()
            && self.pause_new_listings.is_none()
    }
}

/// Parses the YAML of `source` (a file name, or `-` for standard input).
pub fn parse_import_settings(text: &str, source: &str) -> Result<ImportSettingsFile, CliError> {
    let invalid = |e: &dyn std::fmt::Display| {
        CliError::usage(format!(
            "{source} is not valid import-listings settings: {e}; the keys are enabled (true/false), mode \
             (create_only or create_and_overwrite), master_sku_field (sku or barcode), pause_new_listings \
             (true/false)"
        ))
    };
    if text.trim().is_empty() {
        return Err(invalid(&"the file is empty"));
    }
    let parsed = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Yaml))
        .build()
        .map_err(|e| invalid(&e))?
        .try_deserialize::<ImportSettingsFile>()
        .map_err(|e| invalid(&e))?;
    if parsed.is_empty() {
        return Err(invalid(&"it sets none of the keys"));
    }
    Ok(parsed)
}

fn only_import_listings(operation: OperationArg) -> Result<(), CliError> {
    if operation == OperationArg::ImportListings {
        return Ok(());
    }
    Err(CliError::not_available(format!(
        "settings of {} are not available in this deployment yet: only import-listings and get-orders have \
         settings (`shopbridge settings get import-listings --channel C`)",
        operation.name()
    )))
}

pub fn read_source(file: &Path) -> Result<(String, String), CliError> {
    if file == Path::new("-") {
        return Ok((
            super::read_stdin("the settings")?,
            "standard input".to_string(),
        ));
    }
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", file.display())))?;
    Ok((text, file.display().to_string()))
}

pub async fn run(ctx: &Ctx, cmd: SettingsCommand) -> Result<Exit, CliError> {
    match cmd {
        SettingsCommand::Get {
            operation: OperationArg::GetOrders,
            channel,
        } => super::orders::settings_get(ctx, &channel).await,
        SettingsCommand::Set {
            operation: OperationArg::GetOrders,
            channel,
            file,
        } => super::orders::settings_set(ctx, &channel, &file).await,
        SettingsCommand::Get { operation, channel } => {
            only_import_listings(operation)?;
            let channel_id = channels::resolve_id(ctx, &channel).await?;
            let settings = get(ctx, &channel_id).await?;
            print(ctx, settings)
        }
        SettingsCommand::Set {
            operation,
            channel,
            file,
        } => {
            only_import_listings(operation)?;
            let (text, source) = read_source(&file)?;
            let changes = parse_import_settings(&text, &source)?;
            let channel_id = channels::resolve_id(ctx, &channel).await?;
            let current = get(ctx, &channel_id).await?;
            let saved = ctx
                .listings()
                .await?
                .set_import_settings(pb::SetImportSettingsRequest {
                    settings: Some(changes.apply(current)),
                })
                .await
                .or_fail(&ctx.listings)?
                .settings
                .ok_or_else(|| CliError::other("listings answered without the settings"))?;
            print(ctx, saved)
        }
    }
}

async fn get(ctx: &Ctx, channel_id: &str) -> Result<pb::ImportSettings, CliError> {
    let settings = ctx
        .listings()
        .await?
        .get_import_settings(pb::GetImportSettingsRequest {
            channel_id: channel_id.to_string(),
        })
        .await
        .or_fail(&ctx.listings)
        .map_err(|e| {
            e.with_hint(
                Exit::NotFound,
                "see your channels with `shopbridge channels list`",
            )
        })?
        .settings
        .unwrap_or_default();
    Ok(pb::ImportSettings {
        channel_id: channel_id.to_string(),
        ..settings
    })
}

fn print(ctx: &Ctx, settings: pb::ImportSettings) -> Result<Exit, CliError> {
    let view = ImportSettingsView::from(settings);
    if ctx.json() {
        output::json(&view)?;
    } else {
        output::print_line(&view.to_yaml())?;
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_sets_only_the_keys_it_names() {
        let file =
            parse_import_settings("mode: create_and_overwrite\nenabled: true\n", "f").unwrap();
        let current = pb::ImportSettings {
            channel_id: "c".into(),
            enabled: false,
            mode: ImportMode::CreateOnly as i32,
            master_sku_field: MasterSkuField::ShopifyVariantBarcode as i32,
            pause_new_listings: true,
        };
        let next = file.apply(current);
        assert!(next.enabled);
        assert_eq!(next.mode, ImportMode::CreateAndOverwrite as i32);
        assert_eq!(
            next.master_sku_field,
            MasterSkuField::ShopifyVariantBarcode as i32
        );
        assert!(next.pause_new_listings);
    }

    #[test]
    fn printed_settings_read_back() {
        let view = ImportSettingsView::from(pb::ImportSettings {
            channel_id: "c".into(),
            enabled: true,
            mode: ImportMode::CreateAndOverwrite as i32,
            master_sku_field: MasterSkuField::ShopifyVariantSku as i32,
            pause_new_listings: true,
        });
        let back = parse_import_settings(&view.to_yaml(), "printed").unwrap();
        assert_eq!(back.mode, Some(ModeName::CreateAndOverwrite));
        assert_eq!(back.master_sku_field, Some(SkuFieldName::Sku));
        assert_eq!(back.enabled, Some(true));
        assert_eq!(back.pause_new_listings, Some(true));
    }

    #[test]
    fn bad_yaml_is_a_usage_error_that_names_the_keys() {
        for bad in [
            "",
            "mode: create_everything\n",
            "enabeld: true\n",
            "master_sku_field: [sku]\n",
            "::: not yaml",
        ] {
            let err = parse_import_settings(bad, "f.yaml").unwrap_err();
            assert_eq!(err.exit, Exit::Usage, "{bad:?}");
            assert!(
                err.message.contains("master_sku_field (sku or barcode)"),
                "{bad:?}"
            );
        }
    }
}

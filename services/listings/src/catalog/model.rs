//! The catalog's types: a listing (the parent: title, description, brand, options, images, custom fields, status)
//! with its variants (SKU and other identifiers, option values, weight, quantities per location, prices) and each
//! variant's links to Shopify per channel. Decimals are canonical strings (see [`crate::decimal`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An option of a listing, with its values in order ("Size": S, M, L).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptionDef {
    pub name: String,
    pub values: Vec<String>,
}

/// A variant's value of one option, or a custom field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameValue {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    pub url: String,
    pub alt_text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightUnit {
    Oz,
    Lb,
    Kg,
    G,
}

impl WeightUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Oz => "oz",
            Self::Lb => "lb",
            Self::Kg => "kg",
            Self::G => "g",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "oz" => Some(Self::Oz),
            "lb" => Some(Self::Lb),
            "kg" => Some(Self::Kg),
            "g" => Some(Self::G),
            _ => None,
        }
    }

    /// Shopify's WeightUnit enum (GRAMS, KILOGRAMS, OUNCES, POUNDS).
    pub fn from_shopify(text: &str) -> Option<Self> {
        match text {
            "GRAMS" => Some(Self::G),
            "KILOGRAMS" => Some(Self::Kg),
            "OUNCES" => Some(Self::Oz),
            "POUNDS" => Some(Self::Lb),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weight {
    /// Canonical decimal.
    pub value: String,
    pub unit: WeightUnit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantity {
    pub location_id: String,
    pub quantity: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingStatus {
    Active,
    Paused,
}

impl ListingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(Self::Active),
            "paused" => Some(Self::Paused),
            _ => None,
        }
    }
}

/// What a listing says about the product as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParentData {
    pub title: String,
    pub description_html: String,
    pub brand: String,
    pub product_type: String,
    pub tags: Vec<String>,
    /// In Shopify's order.
    pub options: Vec<OptionDef>,
    pub images: Vec<ImageRef>,
    pub custom_fields: Vec<NameValue>,
}

/// The variant fields an import brings from Shopify (the spec's "What Data Gets Imported"); quantities travel beside
/// them. Pricing and categories are not imported, and Shopify has no UPC/GTIN/MPN/ASIN fields of its own.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImportedVariant {
    pub barcode: String,
    pub option_values: Vec<NameValue>,
    pub weight: Option<Weight>,
    pub custom_fields: Vec<NameValue>,
}

/// Everything a variant holds besides its identity, links and quantities.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VariantData {
    pub imported: ImportedVariant,
    pub upc: String,
    pub gtin: String,
    pub mpn: String,
    pub asin: String,
    pub images: Vec<ImageRef>,
    /// Canonical decimals, None when not set.
    pub cost: Option<String>,
    pub list_price: Option<String>,
    pub msrp: Option<String>,
    pub map: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub channel_id: Uuid,
    pub product_id: String,
    pub shopify_variant_id: String,
    pub inventory_item_id: String,
    pub linked_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub id: Uuid,
    pub position: i32,
    pub sku: String,
    pub data: VariantData,
    /// By location id.
    pub quantities: Vec<Quantity>,
    pub total_quantity: i64,
    pub links: Vec<Link>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub id: Uuid,
    pub parent: ParentData,
    pub status: ListingStatus,
    pub created_by_run_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// By position.
    pub variants: Vec<Variant>,
}

/// A listing to insert (its variants are inserted with [`NewVariant`], possibly into existing listings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewListing {
    pub id: Uuid,
    pub parent: ParentData,
    pub status: ListingStatus,
    pub created_by_run_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVariant {
    pub id: Uuid,
    pub listing_id: Uuid,
    pub position: i32,
    pub sku: String,
    pub data: VariantData,
    pub quantities: Vec<Quantity>,
}

/// A variant's link to write: which Shopify variant (on the channel being imported) it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkTarget {
    pub product_id: String,
    pub shopify_variant_id: String,
    pub inventory_item_id: String,
}

/// The sum over every location.
pub fn total(quantities: &[Quantity]) -> i64 {
    quantities.iter().map(|q| q.quantity).sum()
}

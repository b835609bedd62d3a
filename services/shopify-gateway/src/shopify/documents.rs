//! Every GraphQL document the gateway can send, one `.graphql` file each under `graphql/`, embedded at build time.
//! Documents are never assembled from string pieces at run time: variables carry the data. A test validates each
//! against Shopify's real Admin schema.

/// One GraphQL document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Document {
    /// The file name without extension; also the operation's name in metrics and logs.
    pub name: &'static str,
    pub text: &'static str,
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Query,
    Mutation,
    /// The inner query of a bulk export, sent as a variable of `bulk_export_start`.
    BulkQuery,
}

macro_rules! documents {
    ($($ident:ident = $file:literal, $kind:ident;)*) => {
        $(
            pub const $ident: Document = Document {
                name: $file,
                text: include_str!(concat!("../../graphql/", $file, ".graphql")),
                kind: Kind::$kind,
            };
        )*
        /// Every document, for the schema-validation test.
        pub const ALL: &[Document] = &[$($ident),*];
    };
}

documents! {
    SHOP_INFO = "shop_info", Query;
    LOCATIONS = "locations", Query;
    PUBLICATIONS = "publications", Query;
    VARIANTS_LOOKUP = "variants_lookup", Query;
    PRODUCTS_DELTA = "products_delta", Query;
    CATALOG_PRODUCTS = "catalog_products", BulkQuery;
    CATALOG_VARIANT_METAFIELDS = "catalog_variant_metafields", BulkQuery;
    CATALOG_INVENTORY = "catalog_inventory", BulkQuery;
    BULK_EXPORT_START = "bulk_export_start", Mutation;
    BULK_OPERATION_POLL = "bulk_operation_poll", Query;
    CURRENT_BULK_OPERATION = "current_bulk_operation", Query;
    PRODUCT_SET = "product_set", Mutation;
    VARIANTS_UPDATE_PRICES = "variants_update_prices", Mutation;
    INVENTORY_SET = "inventory_set", Mutation;
    INVENTORY_ITEM_COST = "inventory_item_cost", Mutation;
    METAFIELDS_SET = "metafields_set", Mutation;
    PUBLISH = "publish", Mutation;
    COLLECTION_CREATE = "collection_create", Mutation;
    COLLECTION_BY_HANDLE = "collection_by_handle", Query;
    ORDERS_PAGE = "orders_page", Query;
    ORDER_LINE_ITEMS = "order_line_items", Query;
    ORDERS_BULK = "orders_bulk", BulkQuery;
    ORDER_FULFILLMENT_ORDERS = "order_fulfillment_orders", Query;
    FULFILLMENT_ORDER_LINES = "fulfillment_order_lines", Query;
    ORDER_FULFILLMENTS = "order_fulfillments", Query;
    WEBHOOK_SUBSCRIPTIONS = "webhook_subscriptions", Query;
    ORDER_TAG = "order_tag", Mutation;
    FULFILLMENT_CREATE = "fulfillment_create", Mutation;
    FULFILLMENT_TRACKING_UPDATE = "fulfillment_tracking_update", Mutation;
    ORDER_CLOSE = "order_close", Mutation;
    WEBHOOK_SUBSCRIBE = "webhook_subscribe", Mutation;
    STAGED_UPLOAD = "staged_upload", Mutation;
    BULK_MUTATION_START = "bulk_mutation_start", Mutation;
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_graphql_file_is_listed() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("graphql");
        let files = std::fs::read_dir(dir).unwrap().count();
        assert_eq!(
            files,
            super::ALL.len(),
            "a .graphql file is not in documents!{{}}"
        );
    }
}

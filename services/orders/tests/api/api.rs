//! The orders API on its own: settings and mapping defaults, validation with reasons, scopes.

use shopbridge_proto::orders as pb;
use tonic::Code;

use crate::support::stack::{Options, Stack};

const API_ONLY: Options = Options {
    gateway: false,
    fast_timers: false,
    orders: true,
    bulk: false,
};

#[tokio::test]
async fn settings_start_from_documented_defaults_and_invalid_combinations_are_refused_with_the_reason()
 {
    let stack = Stack::start(API_ONLY).await;
    let mut client = stack.client().await;
    let defaults = client
        .get_get_orders_settings(pb::GetGetOrdersSettingsRequest {
            channel_id: stack.channel_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .settings
        .unwrap();
    assert!(!defaults.enabled);
    assert!(defaults.import_orders_without_location);
    assert_eq!(defaults.updated_within_days, 14);
    assert_eq!(
        defaults.financial_statuses,
        vec![pb::FinancialStatus::Any as i32]
    );
    assert_eq!(
        defaults.fulfillment_statuses,
        vec![
            pb::FulfillmentStatus::Unfulfilled as i32,
            pb::FulfillmentStatus::PartiallyFulfilled as i32
        ]
    );
    assert_eq!(
        defaults.pii_retention,
        pb::PiiRetention::Indefinitely as i32
    );

    let invalid = [
        (
            pb::GetOrdersSettings {
                financial_statuses: vec![],
                ..defaults.clone()
            },
            "financial status",
        ),
        (
            pb::GetOrdersSettings {
                financial_statuses: vec![
                    pb::FinancialStatus::Any as i32,
                    pb::FinancialStatus::Paid as i32,
                ],
                ..defaults.clone()
            },
            "any alone",
        ),
        (
            pb::GetOrdersSettings {
                import_orders_without_location: false,
                ..defaults.clone()
            },
            "only when a location",
        ),
        (
            pb::GetOrdersSettings {
                location_id: "warehouse".into(),
                ..defaults.clone()
            },
            "not a Shopify location",
        ),
        (
            pb::GetOrdersSettings {
                updated_within_days: 0,
                ..defaults.clone()
            },
            "between 1 and 365",
        ),
    ];
    for (settings, reason) in invalid {
        let err = client
            .set_get_orders_settings(pb::SetGetOrdersSettingsRequest {
                settings: Some(settings),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{reason}");
        assert!(
            err.message().contains(reason),
            "{} should say {reason}",
            err.message()
        );
    }
    let saved = client
        .set_get_orders_settings(pb::SetGetOrdersSettingsRequest {
            settings: Some(pb::GetOrdersSettings {
                enabled: true,
                location_id: "gid://shopify/Location/1".into(),
                import_orders_without_location: false,
                financial_statuses: vec![
                    pb::FinancialStatus::Paid as i32,
                    pb::FinancialStatus::Unpaid as i32,
                ],
                pii_retention: pb::PiiRetention::Days60 as i32,
                tag_after_import: "Received by Shopbridge".into(),
                ..defaults.clone()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .settings
        .unwrap();
    let read = client
        .get_get_orders_settings(pb::GetGetOrdersSettingsRequest {
            channel_id: stack.channel_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .settings
        .unwrap();
    assert_eq!(read, saved);
    assert_eq!(read.pii_retention, pb::PiiRetention::Days60 as i32);
    stack.finish().await;
}

#[tokio::test]
async fn the_mapping_lists_every_field_and_refuses_unknown_ones() {
    let stack = Stack::start(API_ONLY).await;
    let mut client = stack.client().await;
    let mapping = client
        .get_get_orders_mapping(pb::GetGetOrdersMappingRequest {
            channel_id: stack.channel_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .mapping
        .unwrap();
    assert_eq!(mapping.fields.len(), 31);
    assert!(mapping.fields.iter().all(|f| f.enabled));
    let err = client
        .set_get_orders_mapping(pb::SetGetOrdersMappingRequest {
            mapping: Some(pb::GetOrdersMapping {
                channel_id: stack.channel_id.clone(),
                fields: vec![pb::MappingField {
                    field: "billing.phone".into(),
                    enabled: false,
                }],
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let saved = client
        .set_get_orders_mapping(pb::SetGetOrdersMappingRequest {
            mapping: Some(pb::GetOrdersMapping {
                channel_id: stack.channel_id.clone(),
                fields: vec![pb::MappingField {
                    field: "billing_address.phone".into(),
                    enabled: false,
                }],
                currency_by_location: [("gid://shopify/Location/1".to_string(), "usd".to_string())]
                    .into(),
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .mapping
        .unwrap();
    assert!(
        saved
            .fields
            .iter()
            .any(|f| f.field == "billing_address.phone" && !f.enabled)
    );
    assert_eq!(
        saved.currency_by_location["gid://shopify/Location/1"],
        "USD"
    );
    stack.finish().await;
}

#[tokio::test]
async fn reading_needs_orders_read_and_changing_needs_orders_write() {
    let stack = Stack::start(API_ONLY).await;
    let reader = stack.client_of(stack.tenant.id, &["orders:read"]).await;
    let mut client = stack.client_with(&reader.token).await;
    client
        .list_orders(pb::ListOrdersRequest::default())
        .await
        .expect("orders:read lists");
    let err = client
        .set_get_orders_settings(pb::SetGetOrdersSettingsRequest {
            settings: Some(pb::GetOrdersSettings {
                channel_id: stack.channel_id.clone(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let nobody = stack.client_of(stack.tenant.id, &["listings:read"]).await;
    let err = stack
        .client_with(&nobody.token)
        .await
        .list_orders(pb::ListOrdersRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    stack.finish().await;
}

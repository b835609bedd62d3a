use shopbridge_proto::common::Money;

use super::*;
use crate::domain::settings::Financial;

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    crate::domain::order::timestamp(t)
}

fn order(fulfillment: &str, financial: &str, location: &str) -> gw::Order {
    gw::Order {
        id: "gid://shopify/Order/1".into(),
        name: "#1001".into(),
        updated_at: Some(ts(Utc::now())),
        financial_status: financial.into(),
        fulfillment_status: fulfillment.into(),
        email: "jane@example.com".into(),
        total_price: Some(Money {
            amount: "10.00".into(),
            currency_code: "CAD".into(),
        }),
        shipping_address: Some(gw::OrderAddress {
            name: "Jane".into(),
            address1: "1 Main".into(),
            city: "Montreal".into(),
            phone: "555".into(),
            ..Default::default()
        }),
        billing_address: Some(gw::OrderAddress {
            name: "Bill".into(),
            phone: "556".into(),
            ..Default::default()
        }),
        line_items: vec![gw::OrderLineItem {
            id: "gid://shopify/LineItem/2".into(),
            sku: "SKU-1".into(),
            name: "Tee".into(),
            quantity: 2,
            unfulfilled_quantity: 2,
            requires_shipping: true,
            ..Default::default()
        }],
        fulfillment_orders: if location.is_empty() {
            vec![]
        } else {
            vec![gw::OrderFulfillmentOrder {
                id: "fo".into(),
                status: "OPEN".into(),
                location_id: location.into(),
            }]
        },
        ..Default::default()
    }
}

const OURS: &str = "gid://shopify/Location/1";
const OTHER: &str = "gid://shopify/Location/2";

fn settings() -> GetOrdersSettings {
    GetOrdersSettings {
        enabled: true,
        location_id: OURS.into(),
        ..Default::default()
    }
}

#[test]
fn held_and_scheduled_orders_wait() {
    let now = Utc::now();
    assert!(matches!(
        skip_reason(&order("ON_HOLD", "PAID", OURS), &settings(), now),
        Some(Skip::Held(_))
    ));
    let mut scheduled = order("UNFULFILLED", "PAID", OURS);
    scheduled.fulfillment_orders[0].status = "SCHEDULED".into();
    assert_eq!(
        skip_reason(&scheduled, &settings(), now),
        Some(Skip::Held("SCHEDULED".into()))
    );
}

#[test]
fn statuses_locations_and_the_window_filter() {
    let now = Utc::now();
    let s = settings();
    assert_eq!(
        skip_reason(&order("UNFULFILLED", "PAID", OURS), &s, now),
        None
    );
    assert!(matches!(
        skip_reason(&order("FULFILLED", "PAID", OURS), &s, now),
        Some(Skip::FulfillmentStatus(_))
    ));
    assert!(matches!(
        skip_reason(&order("UNFULFILLED", "PAID", OTHER), &s, now),
        Some(Skip::OtherLocation(_))
    ));
    assert_eq!(
        skip_reason(&order("UNFULFILLED", "PAID", ""), &s, now),
        None
    );
    let strict = GetOrdersSettings {
        import_orders_without_location: false,
        ..s.clone()
    };
    assert_eq!(
        skip_reason(&order("UNFULFILLED", "PAID", ""), &strict, now),
        Some(Skip::NoLocation)
    );
    let paid_only = GetOrdersSettings {
        financial_statuses: vec![Financial::Paid],
        ..s.clone()
    };
    assert!(matches!(
        skip_reason(&order("UNFULFILLED", "PENDING", OURS), &paid_only, now),
        Some(Skip::FinancialStatus(_))
    ));
    let mut old = order("UNFULFILLED", "PAID", OURS);
    old.updated_at = Some(ts(now - Duration::days(15)));
    assert_eq!(skip_reason(&old, &s, now), Some(Skip::OutsideWindow));
}

#[test]
fn a_line_without_sku_or_an_order_without_address_cannot_be_saved() {
    let mut o = order("UNFULFILLED", "PAID", OURS);
    assert!(validate(&o).is_empty());
    o.line_items[0].sku = String::new();
    o.shipping_address = None;
    let reasons = validate(&o);
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].contains("no SKU"));
    assert!(reasons[1].contains("no shipping address"));
    // A digital order needs no address.
    let mut digital = order("UNFULFILLED", "PAID", OURS);
    digital.shipping_address = None;
    digital.line_items[0].requires_shipping = false;
    assert!(validate(&digital).is_empty());
}

#[test]
fn disabled_fields_are_not_built_and_nothing_left_is_non_shippable() {
    let mut mapping = Mapping::default();
    mapping.disabled.insert("billing_address.phone".into());
    mapping.disabled.insert("order.total".into());
    mapping
        .currency_by_location
        .insert(OURS.into(), "USD".into());
    let mut o = order("UNFULFILLED", "PAID", OURS);
    let built = build(&o, &settings(), &mapping);
    assert_eq!(built.billing.as_ref().unwrap().phone, None);
    assert_eq!(
        built.shipping.as_ref().unwrap().phone.as_deref(),
        Some("555")
    );
    assert_eq!(
        built.shipping.as_ref().unwrap().email.as_deref(),
        Some("jane@example.com")
    );
    assert_eq!(built.total_amount, None);
    assert_eq!(
        (built.currency.as_str(), built.location_currency.as_str()),
        ("CAD", "USD")
    );
    assert!(!built.non_shippable);
    o.line_items[0].unfulfilled_quantity = 0;
    assert!(build(&o, &settings(), &mapping).non_shippable);
    o.line_items[0].requires_shipping = false;
    let digital = build(&o, &settings(), &mapping);
    assert!(digital.digital && digital.lines[0].digital);
}

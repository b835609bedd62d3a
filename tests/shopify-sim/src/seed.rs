//! Deterministic store contents: the same request and seed always produce the same store.

use crate::exec::new_variant_pub;
use crate::model::{
    FoLine, FulfillmentOrder, LineItem, Location, Order, Product, ProductOption, Publication, Store,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::json;

#[derive(Clone, Debug, Deserialize)]
pub struct SeedRequest {
    #[serde(default)]
    pub products: usize,
    #[serde(default = "one")]
    pub variants_per_product: usize,
    #[serde(default = "one")]
    pub locations: usize,
    #[serde(default)]
    pub orders: usize,
    #[serde(default)]
    pub seed: u64,
}

fn one() -> usize {
    1
}

const VENDORS: &[&str] = &["Acme", "Globex", "Initech", "Umbrella", "Hooli"];
const TYPES: &[&str] = &["Dog Toys", "Cat Beds", "Leashes", "Bowls", "Treats"];
const SIZES: &[&str] = &["XS", "S", "M", "L", "XL", "XXL"];
const COLORS: &[&str] = &[
    "Red", "Blue", "Green", "Black", "White", "Grey", "Pink", "Orange",
];
const CATEGORIES: &[&str] = &["ap-2-3-7", "ap-2-1", "ap-2", "ap-1"];

/// Seeded data is dated from a fixed point so the store does not depend on when it was seeded.
fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 10, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

pub fn seed(st: &mut Store, req: &SeedRequest) {
    let mut rng = StdRng::seed_from_u64(req.seed);
    let t0 = base_time();
    // Locations: the shop already has one.
    while st.locations.len() < req.locations.max(1) {
        let id = st.next_id();
        let n = st.locations.len() + 1;
        st.locations.insert(
            id,
            Location {
                id,
                name: format!("Warehouse {n}"),
                active: true,
                fulfills_online_orders: true,
                ships_inventory: true,
                address1: format!("{n} Depot Rd"),
                city: "Toronto".into(),
                country_code: "CA".into(),
            },
        );
    }
    if st.publications.len() < 3 {
        for name in ["Point of Sale", "Google & YouTube"] {
            let (id, cid) = (st.next_id(), st.next_id());
            st.publications.insert(
                id,
                Publication {
                    id,
                    catalog_id: cid,
                    name: name.into(),
                    auto_publish: false,
                },
            );
        }
    }
    let locs: Vec<u64> = st.locations.keys().copied().collect();
    let online = st.publications.keys().next().copied();
    let vpp = req.variants_per_product.clamp(1, 2048);
    let start = st.products.len();
    for n in start..start + req.products {
        let pid = st.next_id();
        let at = t0 + Duration::seconds(n as i64 * 60);
        let vendor = VENDORS[rng.random_range(0..VENDORS.len())];
        let (options, combos) = option_grid(st, vpp);
        st.products.insert(
            pid,
            Product {
                id: pid,
                title: format!("{vendor} Product {n}"),
                handle: format!("product-{n}"),
                description_html: format!("<p>Seeded product {n}</p>"),
                vendor: vendor.into(),
                product_type: TYPES[rng.random_range(0..TYPES.len())].into(),
                tags: vec!["seeded".into(), format!("batch-{}", n % 10)],
                status: if rng.random_bool(0.9) {
                    "ACTIVE"
                } else {
                    "DRAFT"
                }
                .into(),
                category: Some(format!(
                    "gid://shopify/TaxonomyCategory/{}",
                    CATEGORIES[n % CATEGORIES.len()]
                )),
                options,
                variant_ids: vec![],
                media: vec![],
                publications: online.into_iter().collect(),
                collections: Default::default(),
                created_at: at,
                updated_at: at,
            },
        );
        let mut vids = Vec::with_capacity(vpp);
        for (i, combo) in combos.into_iter().enumerate() {
            let vid = new_variant_pub(st, pid, at);
            let cents: u32 = rng.random_range(500..20000);
            let price = crate::model::money(&format!("{}.{:02}", cents / 100, cents % 100))
                .unwrap_or_default();
            let sku = format!("SKU-{n:06}-{i:04}");
            if let Some(v) = st.variants.get_mut(&vid) {
                v.sku = sku.clone();
                v.barcode = Some(format!(
                    "{:012}",
                    100_000_000_000u64 + (n * 10_000 + i) as u64
                ));
                v.price = price;
                v.position = i as u32 + 1;
                v.selected_options = combo;
                let iid = v.inventory_item_id;
                if let Some(it) = st.inventory_items.get_mut(&iid) {
                    it.sku = sku;
                    it.cost = crate::model::money(&format!("{}.{:02}", cents / 200, cents % 100));
                }
                for l in &locs {
                    let q: i64 = rng.random_range(0..50);
                    st.levels.insert(
                        (iid, *l),
                        [("available".to_string(), q)].into_iter().collect(),
                    );
                }
            }
            vids.push(vid);
        }
        if let Some(p) = st.products.get_mut(&pid) {
            p.variant_ids = vids;
        }
    }
    seed_orders(st, req.orders, &mut rng, &locs);
    st.start_runtime_ids();
}

/// Options and the first `n` value combinations (Size × Color × Style as needed).
fn option_grid(st: &mut Store, n: usize) -> (Vec<ProductOption>, Vec<Vec<(String, String)>>) {
    if n == 1 {
        return (vec![], vec![vec![]]);
    }
    let sizes = n.min(SIZES.len());
    let colors = n.div_ceil(sizes).min(COLORS.len());
    let styles = n.div_ceil(sizes * colors);
    let mut combos = Vec::with_capacity(n);
    'outer: for st_i in 0..styles {
        for color in COLORS.iter().take(colors) {
            for size in SIZES.iter().take(sizes) {
                if combos.len() == n {
                    break 'outer;
                }
                let mut combo = vec![("Size".to_string(), size.to_string())];
                if colors > 1 {
                    combo.push(("Color".into(), color.to_string()));
                }
                if styles > 1 {
                    combo.push(("Style".into(), format!("Style {}", st_i + 1)));
                }
                combos.push(combo);
            }
        }
    }
    let mut opts = Vec::new();
    let mut add = |name: &str, values: Vec<String>, st: &mut Store| {
        let id = st.next_id();
        let values = values.into_iter().map(|v| (st.next_id(), v)).collect();
        let position = opts.len() as u32 + 1;
        opts.push(ProductOption {
            id,
            name: name.into(),
            position,
            values,
        });
    };
    add(
        "Size",
        SIZES[..sizes].iter().map(|s| s.to_string()).collect(),
        st,
    );
    if colors > 1 {
        add(
            "Color",
            COLORS[..colors].iter().map(|s| s.to_string()).collect(),
            st,
        );
    }
    if styles > 1 {
        add(
            "Style",
            (1..=styles).map(|i| format!("Style {i}")).collect(),
            st,
        );
    }
    (opts, combos)
}

const FINANCIAL: &[&str] = &[
    "PAID",
    "PAID",
    "PAID",
    "PENDING",
    "AUTHORIZED",
    "PARTIALLY_REFUNDED",
    "REFUNDED",
];

fn seed_orders(st: &mut Store, n: usize, rng: &mut StdRng, locs: &[u64]) {
    let variant_ids: Vec<u64> = st.variants.keys().copied().collect();
    if variant_ids.is_empty() {
        return;
    }
    let t0 = base_time() + Duration::days(30);
    for i in 0..n {
        let at = t0 + Duration::seconds(i as i64 * 90);
        let lines = rng.random_range(1..=3usize);
        let mut items = Vec::new();
        for _ in 0..lines {
            let vid = variant_ids[rng.random_range(0..variant_ids.len())];
            let v = &st.variants[&vid];
            let p = &st.products[&v.product_id];
            items.push(LineItem {
                id: 0,
                variant_id: Some(vid),
                product_id: Some(p.id),
                sku: v.sku.clone(),
                name: format!("{} - {}", p.title, v.title()),
                vendor: p.vendor.clone(),
                quantity: rng.random_range(1..=3),
                price: v.price.clone(),
            });
        }
        let financial = FINANCIAL[rng.random_range(0..FINANCIAL.len())];
        let assign: Vec<u64> = items
            .iter()
            .map(|_| locs[rng.random_range(0..locs.len())])
            .collect();
        create_order(st, items, financial, &assign, at);
    }
}

/// Creates an order with one fulfillment order per assigned location; fires `orders/create`.
pub fn create_order(
    st: &mut Store,
    mut items: Vec<LineItem>,
    financial: &str,
    assign: &[u64],
    at: DateTime<Utc>,
) -> u64 {
    let oid = st.next_id();
    for it in &mut items {
        it.id = st.next_id();
    }
    let number = st.next_order_number;
    st.next_order_number += 1;
    let mut fo_ids = Vec::new();
    let mut by_loc: Vec<(u64, Vec<FoLine>)> = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let loc = assign
            .get(i)
            .copied()
            .or_else(|| st.primary_location())
            .unwrap_or(0);
        let line = FoLine {
            id: st.next_id(),
            line_item_id: it.id,
            total: it.quantity,
            remaining: it.quantity,
        };
        match by_loc.iter_mut().find(|(l, _)| *l == loc) {
            Some((_, v)) => v.push(line),
            None => by_loc.push((loc, vec![line])),
        }
    }
    for (loc, lines) in by_loc {
        let id = st.next_id();
        st.fulfillment_orders.insert(
            id,
            FulfillmentOrder {
                id,
                order_id: oid,
                location_id: loc,
                status: "OPEN".into(),
                lines,
                updated_at: at,
            },
        );
        fo_ids.push(id);
    }
    st.orders.insert(
        oid,
        Order {
            id: oid,
            number,
            email: format!("customer{number}@example.com"),
            phone: None,
            created_at: at,
            updated_at: at,
            processed_at: at,
            closed_at: None,
            cancelled_at: None,
            financial_status: financial.into(),
            tags: vec![],
            note: None,
            test: false,
            line_items: items,
            shipping_address: json!({"name": "Jane Doe", "address1": "1 Rue Test", "address2": null, "city": "Montreal",
                                     "provinceCode": "QC", "zip": "H2X 1Y4", "countryCodeV2": "CA", "phone": null}),
            fulfillment_order_ids: fo_ids,
            fulfillment_ids: vec![],
        },
    );
    let body = st.order_webhook_payload(oid);
    st.push_event("orders/create", body);
    oid
}

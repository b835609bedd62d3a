//! Query root fields and catalog object fields.

use super::{Ctx, K, R, V, arg_str, err, paginate, paginate_sorted};
use crate::model::{Product, Store, Variant, gid, parse_gid, parse_gid_of, ts};
use crate::search::{self, FieldVal, text};
use serde_json::{Map, Value, json};

const MAX_PAGE: u64 = 250;

pub fn query_field(cx: &Ctx<'_>, name: &str, args: &Map<String, Value>) -> R {
    let st = cx.store.borrow();
    let q = search::parse(arg_str(args, "query").unwrap_or(""));
    let reverse = args
        .get("reverse")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let id_arg = |kind: &str| arg_str(args, "id").and_then(|s| parse_gid_of(s, kind));
    Ok(match name {
        "shop" => V::Obj(K::Shop),
        "products" => {
            let sort = arg_str(args, "sortKey").unwrap_or("ID");
            let mut list: Vec<(u64, K, String)> = st
                .products
                .values()
                .filter(|p| q.matches(|f| product_vals(&st, p, f)))
                .map(|p| {
                    let key = match sort {
                        "UPDATED_AT" => ts(&p.updated_at),
                        "CREATED_AT" => ts(&p.created_at),
                        "TITLE" => p.title.clone(),
                        _ => id_key(p.id),
                    };
                    (p.id, K::Product(p.id), key)
                })
                .collect();
            sort_entries(&mut list, reverse);
            paginate_sorted(list, reverse, args, MAX_PAGE)?
        }
        "product" => opt(id_arg("Product")
            .filter(|i| st.products.contains_key(i))
            .map(K::Product)),
        "productByHandle" => opt(arg_str(args, "handle")
            .and_then(|h| st.products.values().find(|p| p.handle == h))
            .map(|p| K::Product(p.id))),
        "productVariants" => {
            let mut list: Vec<(u64, K, String)> = st
                .variants
                .values()
                .filter(|v| q.matches(|f| variant_vals(&st, v, f)))
                .map(|v| (v.id, K::Variant(v.id), id_key(v.id)))
                .collect();
            sort_entries(&mut list, reverse);
            paginate_sorted(list, reverse, args, MAX_PAGE)?
        }
        "productVariant" => opt(id_arg("ProductVariant")
            .filter(|i| st.variants.contains_key(i))
            .map(K::Variant)),
        "inventoryItems" => {
            let list: Vec<u64> = st
                .inventory_items
                .values()
                .filter(|it| {
                    q.matches(|f| match f {
                        Some("sku") | None => Some(vec![text(&it.sku)]),
                        Some("id") => Some(vec![FieldVal::Num(it.id as f64)]),
                        Some("created_at") => Some(vec![FieldVal::Time(it.created_at)]),
                        Some("updated_at") => Some(vec![FieldVal::Time(it.updated_at)]),
                        _ => None,
                    })
                })
                .map(|it| it.id)
                .collect();
            paginate(
                list.into_iter().map(|i| (i, K::InventoryItem(i))).collect(),
                args,
                MAX_PAGE,
            )?
        }
        "inventoryItem" => opt(id_arg("InventoryItem")
            .filter(|i| st.inventory_items.contains_key(i))
            .map(K::InventoryItem)),
        "locations" => {
            let inactive = args
                .get("includeInactive")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let list: Vec<u64> = st
                .locations
                .values()
                .filter(|l| inactive || l.active)
                .filter(|l| {
                    q.matches(|f| match f {
                        Some("name") | None => Some(vec![text(&l.name)]),
                        Some("id") => Some(vec![FieldVal::Num(l.id as f64)]),
                        Some("active") => Some(vec![text(l.active.to_string())]),
                        _ => None,
                    })
                })
                .map(|l| l.id)
                .collect();
            paginate(
                list.into_iter().map(|i| (i, K::Location(i))).collect(),
                args,
                MAX_PAGE,
            )?
        }
        "location" => opt(id_arg("Location")
            .filter(|i| st.locations.contains_key(i))
            .map(K::Location)),
        "publications" => paginate(
            st.publications
                .keys()
                .map(|i| (*i, K::Publication(*i)))
                .collect(),
            args,
            MAX_PAGE,
        )?,
        "publication" => opt(id_arg("Publication")
            .filter(|i| st.publications.contains_key(i))
            .map(K::Publication)),
        "collections" => paginate(
            st.collections
                .keys()
                .map(|i| (*i, K::Collection(*i)))
                .collect(),
            args,
            MAX_PAGE,
        )?,
        "collectionByIdentifier" => {
            let identifier = args.get("identifier");
            let by_id = identifier
                .and_then(|i| i.get("id"))
                .and_then(Value::as_str)
                .and_then(|s| parse_gid_of(s, "Collection"));
            let by_handle = identifier
                .and_then(|i| i.get("handle"))
                .and_then(Value::as_str);
            opt(st
                .collections
                .values()
                .find(|c| Some(c.id) == by_id || Some(c.handle.as_str()) == by_handle)
                .map(|c| K::Collection(c.id)))
        }
        "collection" => opt(id_arg("Collection")
            .filter(|i| st.collections.contains_key(i))
            .map(K::Collection)),
        "webhookSubscriptions" => paginate(
            st.webhook_subs
                .keys()
                .map(|i| (*i, K::WebhookSub(*i)))
                .collect(),
            args,
            MAX_PAGE,
        )?,
        "node" => opt(arg_str(args, "id").and_then(|s| node(&st, s))),
        "nodes" => V::List(
            args.get("ids")
                .and_then(Value::as_array)
                .map(|ids| {
                    ids.iter()
                        .map(|i| opt(i.as_str().and_then(|s| node(&st, s))))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        "productOperation" => opt(arg_str(args, "id").and_then(|s| node(&st, s))),
        "currentBulkOperation" => {
            let kind = arg_str(args, "type").unwrap_or("QUERY");
            opt(st
                .bulk_ops
                .values()
                .rev()
                .find(|b| b.kind == kind)
                .map(|b| K::BulkOp(b.id)))
        }
        "orders" | "order" | "fulfillmentOrders" | "fulfillmentOrder" | "fulfillment" => {
            drop(st);
            return super::orders::query_field(cx, name, args);
        }
        other => {
            return Err(err(format!(
                "The simulator does not implement QueryRoot.{other}"
            )));
        }
    })
}

fn opt(k: Option<K>) -> V {
    k.map_or(V::Null, V::Obj)
}

/// `node(id:)`: any GID whose object exists.
pub fn node(st: &Store, s: &str) -> Option<K> {
    let (kind, id) = parse_gid(s)?;
    let k = match kind {
        "Product" if st.products.contains_key(&id) => K::Product(id),
        "ProductVariant" if st.variants.contains_key(&id) => K::Variant(id),
        "InventoryItem" if st.inventory_items.contains_key(&id) => K::InventoryItem(id),
        "Location" if st.locations.contains_key(&id) => K::Location(id),
        "Publication" if st.publications.contains_key(&id) => K::Publication(id),
        "Collection" if st.collections.contains_key(&id) => K::Collection(id),
        "Metafield" if st.metafields.contains_key(&id) => K::Metafield(id),
        "Order" if st.orders.contains_key(&id) => K::Order(id),
        "FulfillmentOrder" if st.fulfillment_orders.contains_key(&id) => K::FulfillmentOrder(id),
        "Fulfillment" if st.fulfillments.contains_key(&id) => K::Fulfillment(id),
        "WebhookSubscription" if st.webhook_subs.contains_key(&id) => K::WebhookSub(id),
        "BulkOperation" if st.bulk_ops.contains_key(&id) => K::BulkOp(id),
        "ProductSetOperation" if st.product_ops.contains_key(&id) => K::ProductOp(id),
        _ => return None,
    };
    Some(k)
}

pub fn product_vals(st: &Store, p: &Product, f: Option<&str>) -> Option<Vec<FieldVal>> {
    let variants = || p.variant_ids.iter().filter_map(|v| st.variants.get(v));
    Some(match f {
        None => vec![text(&p.title)],
        Some("title") => vec![text(&p.title)],
        Some("handle") => vec![text(&p.handle)],
        Some("vendor") => vec![text(&p.vendor)],
        Some("product_type") => vec![text(&p.product_type)],
        Some("status") => vec![text(&p.status)],
        Some("tag") => p.tags.iter().map(text).collect(),
        Some("id") => vec![FieldVal::Num(p.id as f64)],
        Some("sku") => variants().map(|v| text(&v.sku)).collect(),
        Some("barcode") => variants()
            .filter_map(|v| v.barcode.as_ref())
            .map(text)
            .collect(),
        Some("variant_id") => variants().map(|v| FieldVal::Num(v.id as f64)).collect(),
        Some("updated_at") => vec![FieldVal::Time(p.updated_at)],
        Some("created_at") => vec![FieldVal::Time(p.created_at)],
        Some("category_id") => p.category.iter().map(text).collect(),
        Some("collection_id") => p
            .collections
            .iter()
            .map(|c| FieldVal::Num(*c as f64))
            .collect(),
        Some("publication_ids") => p
            .publications
            .iter()
            .map(|c| FieldVal::Num(*c as f64))
            .collect(),
        Some("inventory_total") => {
            vec![FieldVal::Num(
                variants()
                    .map(|v| st.variant_inventory_quantity(v))
                    .sum::<i64>() as f64,
            )]
        }
        _ => return None,
    })
}

fn variant_vals(st: &Store, v: &Variant, f: Option<&str>) -> Option<Vec<FieldVal>> {
    let p = st.products.get(&v.product_id);
    Some(match f {
        None => vec![text(&v.sku), text(p.map_or("", |p| p.title.as_str()))],
        Some("sku") => vec![text(&v.sku)],
        Some("barcode") => v.barcode.iter().map(text).collect(),
        Some("id") => vec![FieldVal::Num(v.id as f64)],
        Some("product_id") | Some("product_ids") => vec![FieldVal::Num(v.product_id as f64)],
        Some("title") => vec![text(v.title())],
        Some("updated_at") => vec![FieldVal::Time(v.updated_at)],
        Some("created_at") => vec![FieldVal::Time(v.created_at)],
        Some("product_status") => p.map(|p| vec![text(&p.status)]).unwrap_or_default(),
        Some("vendor") => p.map(|p| vec![text(&p.vendor)]).unwrap_or_default(),
        Some("tag") => p
            .map(|p| p.tags.iter().map(text).collect())
            .unwrap_or_default(),
        Some("inventory_quantity") => vec![FieldVal::Num(st.variant_inventory_quantity(v) as f64)],
        Some("location_id") => st
            .levels
            .range((v.inventory_item_id, 0)..=(v.inventory_item_id, u64::MAX))
            .map(|((_, l), _)| FieldVal::Num(*l as f64))
            .collect(),
        _ => return None,
    })
}

fn money_v2(amount: &str, currency: &str) -> Value {
    json!({"amount": amount, "currencyCode": currency})
}

fn metafields_of(st: &Store, owner: &str, args: &Map<String, Value>) -> Vec<(u64, K)> {
    let ns = arg_str(args, "namespace");
    let keys: Option<Vec<&str>> = args
        .get("keys")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect());
    st.metafields
        .values()
        .filter(|m| m.owner == owner)
        .filter(|m| ns.is_none_or(|n| m.namespace == n))
        .filter(|m| {
            keys.as_ref().is_none_or(|ks| {
                ks.iter()
                    .any(|k| *k == format!("{}.{}", m.namespace, m.key))
            })
        })
        .map(|m| (m.id, K::Metafield(m.id)))
        .collect()
}

fn metafield_one(st: &Store, owner: &str, args: &Map<String, Value>) -> V {
    let key = arg_str(args, "key").unwrap_or("");
    let (ns, key) = match arg_str(args, "namespace") {
        Some(ns) => (ns.to_string(), key.to_string()),
        None => key
            .rsplit_once('.')
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .unwrap_or_default(),
    };
    opt(st
        .metafields
        .values()
        .find(|m| m.owner == owner && m.namespace == ns && m.key == key)
        .map(|m| K::Metafield(m.id)))
}

pub fn entity_field(cx: &Ctx<'_>, k: &K, name: &str, args: &Map<String, Value>) -> R {
    let st = cx.store.borrow();
    let st: &Store = &st;
    let missing = || err("object no longer exists");
    Ok(match k {
        K::Shop => match name {
            "id" => V::s(gid("Shop", 1 + (st.domain.len() as u64))),
            "name" => V::s(&st.name),
            "myshopifyDomain" => V::s(&st.domain),
            "email" | "contactEmail" => V::s(format!("owner@{}", st.domain)),
            "currencyCode" => V::s(&st.currency),
            "ianaTimezone" => V::s("America/Toronto"),
            "plan" => V::Json(json!({
                "displayName": st.plan.display_name(),
                "publicDisplayName": st.plan.display_name(),
                "partnerDevelopment": false,
                "shopifyPlus": matches!(st.plan, crate::bucket::Plan::Plus | crate::bucket::Plan::Enterprise),
            })),
            "url" => V::s(format!("https://{}", st.domain)),
            _ => V::Null,
        },
        K::Product(id) => {
            let p = st.products.get(id).ok_or_else(missing)?;
            let g = gid("Product", p.id);
            match name {
                "id" => V::s(g),
                "legacyResourceId" => V::s(p.id.to_string()),
                "title" => V::s(&p.title),
                "handle" => V::s(&p.handle),
                "descriptionHtml" => V::s(&p.description_html),
                "description" => V::s(strip_tags(&p.description_html)),
                "vendor" => V::s(&p.vendor),
                "productType" => V::s(&p.product_type),
                "tags" => V::Leaf(json!(p.tags)),
                "status" => V::s(&p.status),
                "createdAt" => V::s(ts(&p.created_at)),
                "updatedAt" => V::s(ts(&p.updated_at)),
                "publishedAt" => V::opt_s((!p.publications.is_empty()).then(|| ts(&p.updated_at))),
                "totalInventory" => V::Leaf(json!(p.variant_ids.iter().filter_map(|v| st.variants.get(v)).map(|v| st.variant_inventory_quantity(v)).sum::<i64>())),
                "tracksInventory" => V::Leaf(json!(true)),
                "category" => match p.category.as_deref().and_then(crate::schema::lookup_category) {
                    Some((cg, path)) => V::Json(category_json(&cg, path)),
                    None => V::Null,
                },
                "options" => V::Json(Value::Array(
                    p.options
                        .iter()
                        .take(args.get("first").and_then(Value::as_u64).unwrap_or(u64::MAX) as usize)
                        .map(|o| {
                            json!({"id": gid("ProductOption", o.id), "name": o.name, "position": o.position,
                               "values": o.values.iter().map(|v| &v.1).collect::<Vec<_>>(),
                               "optionValues": o.values.iter().map(|(vid, n)| json!({"id": gid("ProductOptionValue", *vid), "name": n, "hasVariants": true})).collect::<Vec<_>>()})
                        })
                        .collect(),
                )),
                "variants" => {
                    let list = p.variant_ids.iter().map(|v| (*v, K::Variant(*v))).collect();
                    // Single-product queries may ask for up to 2,048 variants.
                    paginate(list, args, 2048)?
                }
                "variantsCount" => V::Json(json!({"count": p.variant_ids.len(), "precision": "EXACT"})),
                "hasOnlyDefaultVariant" => V::Leaf(json!(p.options.is_empty())),
                "media" => paginate(p.media.iter().map(|m| (m.id, K::Media(p.id, m.id))).collect(), args, MAX_PAGE)?,
                "metafields" => paginate(metafields_of(st, &g, args), args, MAX_PAGE)?,
                "metafield" => metafield_one(st, &g, args),
                "collections" => paginate(p.collections.iter().map(|c| (*c, K::Collection(*c))).collect(), args, MAX_PAGE)?,
                "publishedOnPublication" => V::Leaf(json!(
                    arg_str(args, "publicationId").and_then(|s| parse_gid_of(s, "Publication")).is_some_and(|pid| p.publications.contains(&pid))
                )),
                "resourcePublicationsCount" | "publicationCount" => V::Leaf(json!(p.publications.len())),
                "onlineStoreUrl" => V::Null,
                _ => V::Null,
            }
        }
        K::Variant(id) => {
            let v = st.variants.get(id).ok_or_else(missing)?;
            let g = gid("ProductVariant", v.id);
            match name {
                "id" => V::s(g),
                "legacyResourceId" => V::s(v.id.to_string()),
                "sku" => V::s(&v.sku),
                "barcode" => V::opt_s(v.barcode.clone()),
                "title" => V::s(v.title()),
                "displayName" => V::s(format!(
                    "{} - {}",
                    st.products
                        .get(&v.product_id)
                        .map_or("", |p| p.title.as_str()),
                    v.title()
                )),
                "price" => V::s(&v.price),
                "compareAtPrice" => V::opt_s(v.compare_at_price.clone()),
                "position" => V::Leaf(json!(v.position)),
                "inventoryPolicy" => V::s(&v.inventory_policy),
                "inventoryQuantity" => V::Leaf(json!(st.variant_inventory_quantity(v))),
                "taxable" => V::Leaf(json!(v.taxable)),
                "availableForSale" => V::Leaf(json!(
                    st.variant_inventory_quantity(v) > 0 || v.inventory_policy == "CONTINUE"
                )),
                "selectedOptions" => V::Json(Value::Array(
                    v.selected_options
                        .iter()
                        .map(|(n, x)| json!({"name": n, "value": x}))
                        .collect(),
                )),
                "inventoryItem" => V::Obj(K::InventoryItem(v.inventory_item_id)),
                "product" => V::Obj(K::Product(v.product_id)),
                "createdAt" => V::s(ts(&v.created_at)),
                "updatedAt" => V::s(ts(&v.updated_at)),
                "metafields" => paginate(metafields_of(st, &g, args), args, MAX_PAGE)?,
                "metafield" => metafield_one(st, &g, args),
                "media" => paginate(vec![], args, MAX_PAGE)?,
                _ => V::Null,
            }
        }
        K::InventoryItem(id) => {
            let it = st.inventory_items.get(id).ok_or_else(missing)?;
            match name {
                "id" => V::s(gid("InventoryItem", it.id)),
                "legacyResourceId" => V::s(it.id.to_string()),
                "sku" => V::s(&it.sku),
                "tracked" => V::Leaf(json!(it.tracked)),
                "requiresShipping" => V::Leaf(json!(it.requires_shipping)),
                "countryCodeOfOrigin" => V::opt_s(it.country_of_origin.clone()),
                "harmonizedSystemCode" => V::opt_s(it.hs_code.clone()),
                "unitCost" => it
                    .cost
                    .as_ref()
                    .map_or(V::Null, |c| V::Json(money_v2(c, &st.currency))),
                "measurement" => V::Json(
                    json!({"weight": it.weight.as_ref().map(|(v, u)| json!({"value": v, "unit": u}))}),
                ),
                "variant" => V::Obj(K::Variant(it.variant_id)),
                "createdAt" => V::s(ts(&it.created_at)),
                "updatedAt" => V::s(ts(&it.updated_at)),
                "inventoryLevels" => {
                    let list = st
                        .levels
                        .range((it.id, 0)..=(it.id, u64::MAX))
                        .map(|((i, l), _)| (*l, K::InventoryLevel(*i, *l)))
                        .collect();
                    paginate(list, args, MAX_PAGE)?
                }
                "inventoryLevel" => {
                    let loc = arg_str(args, "locationId").and_then(|s| parse_gid_of(s, "Location"));
                    opt(loc
                        .filter(|l| st.levels.contains_key(&(it.id, *l)))
                        .map(|l| K::InventoryLevel(it.id, l)))
                }
                _ => V::Null,
            }
        }
        K::InventoryLevel(item, loc) => match name {
            "id" => V::s(format!(
                "gid://shopify/InventoryLevel/{loc}?inventory_item_id={item}"
            )),
            "item" => V::Obj(K::InventoryItem(*item)),
            "location" => V::Obj(K::Location(*loc)),
            "available" => V::Leaf(json!(st.qty(*item, *loc, "available").unwrap_or(0))),
            "incoming" => V::Leaf(json!(st.qty(*item, *loc, "incoming").unwrap_or(0))),
            "canDeactivate" => V::Leaf(json!(true)),
            "createdAt" | "updatedAt" => V::s(ts(&cx.now)),
            "quantities" => {
                let names: Vec<&str> = args
                    .get("names")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                V::Json(Value::Array(
                    names
                        .iter()
                        .map(|n| {
                            json!({"id": format!("gid://shopify/InventoryQuantity/{loc}?inventory_item_id={item}&name={n}"),
                               "name": n, "quantity": st.qty(*item, *loc, n).unwrap_or(0), "updatedAt": ts(&cx.now)})
                        })
                        .collect(),
                ))
            }
            _ => V::Null,
        },
        K::Location(id) => {
            let l = st.locations.get(id).ok_or_else(missing)?;
            match name {
                "id" => V::s(gid("Location", l.id)),
                "legacyResourceId" => V::s(l.id.to_string()),
                "name" => V::s(&l.name),
                "isActive" => V::Leaf(json!(l.active)),
                "isPrimary" => V::Leaf(json!(st.primary_location() == Some(l.id))),
                "fulfillsOnlineOrders" => V::Leaf(json!(l.fulfills_online_orders)),
                "shipsInventory" => V::Leaf(json!(l.ships_inventory)),
                "hasActiveInventory" => V::Leaf(json!(true)),
                "isFulfillmentService" => V::Leaf(json!(false)),
                "address" => V::Json(
                    json!({"address1": l.address1, "city": l.city, "countryCode": l.country_code, "country": l.country_code}),
                ),
                "createdAt" | "updatedAt" => V::s(ts(&cx.now)),
                "inventoryLevels" => {
                    let list = st
                        .levels
                        .keys()
                        .filter(|(_, lo)| lo == id)
                        .map(|(i, lo)| (*i, K::InventoryLevel(*i, *lo)))
                        .collect();
                    paginate(list, args, MAX_PAGE)?
                }
                _ => V::Null,
            }
        }
        K::Publication(id) => {
            let p = st.publications.get(id).ok_or_else(missing)?;
            match name {
                "id" => V::s(gid("Publication", p.id)),
                "name" => V::s(&p.name),
                "autoPublish" => V::Leaf(json!(p.auto_publish)),
                "supportsFuturePublishing" => V::Leaf(json!(false)),
                "catalog" => V::Json(
                    json!({"__typename": "AppCatalog", "id": gid("AppCatalog", p.catalog_id), "title": p.name, "status": "ACTIVE"}),
                ),
                _ => V::Null,
            }
        }
        K::Collection(id) => {
            let c = st.collections.get(id).ok_or_else(missing)?;
            match name {
                "id" => V::s(gid("Collection", c.id)),
                "legacyResourceId" => V::s(c.id.to_string()),
                "title" => V::s(&c.title),
                "handle" => V::s(&c.handle),
                "descriptionHtml" => V::s(""),
                "updatedAt" => V::s(ts(&c.updated_at)),
                "sortOrder" => V::s("BEST_SELLING"),
                "ruleSet" => c.rule_set.clone().map_or(V::Null, V::Json),
                "products" => paginate(
                    c.product_ids.iter().map(|p| (*p, K::Product(*p))).collect(),
                    args,
                    MAX_PAGE,
                )?,
                "productsCount" => {
                    V::Json(json!({"count": c.product_ids.len(), "precision": "EXACT"}))
                }
                _ => V::Null,
            }
        }
        K::Metafield(id) => {
            let m = st.metafields.get(id).ok_or_else(missing)?;
            match name {
                "id" => V::s(gid("Metafield", m.id)),
                "legacyResourceId" => V::s(m.id.to_string()),
                "namespace" => V::s(&m.namespace),
                "key" => V::s(&m.key),
                "type" => V::s(&m.kind),
                "value" => V::s(&m.value),
                "ownerType" => V::s(match parse_gid(&m.owner).map(|(k, _)| k) {
                    Some("ProductVariant") => "PRODUCTVARIANT",
                    Some("Collection") => "COLLECTION",
                    Some("Order") => "ORDER",
                    _ => "PRODUCT",
                }),
                "compareDigest" => V::s(format!(
                    "{:x}",
                    m.value.len() as u64 ^ m.updated_at.timestamp() as u64
                )),
                "createdAt" => V::s(ts(&m.created_at)),
                "updatedAt" => V::s(ts(&m.updated_at)),
                _ => V::Null,
            }
        }
        K::Media(pid, mid) => {
            let m = st
                .products
                .get(pid)
                .and_then(|p| p.media.iter().find(|m| m.id == *mid))
                .ok_or_else(missing)?;
            match name {
                "id" => V::s(gid("MediaImage", m.id)),
                "alt" => V::s(&m.alt),
                "mediaContentType" => V::s("IMAGE"),
                "status" | "fileStatus" => V::s("READY"),
                "image" => V::Json(
                    json!({"id": gid("ImageSource", m.id), "url": m.url, "src": m.url, "originalSrc": m.url, "altText": m.alt, "width": 1024, "height": 1024}),
                ),
                "createdAt" | "updatedAt" => V::s(ts(&cx.now)),
                "mediaErrors" | "mediaWarnings" | "fileErrors" => V::Json(json!([])),
                _ => V::Null,
            }
        }
        K::WebhookSub(id) => {
            let w = st.webhook_subs.get(id).ok_or_else(missing)?;
            match name {
                "id" => V::s(gid("WebhookSubscription", w.id)),
                "topic" => V::s(&w.topic),
                "format" => V::s(&w.format),
                "uri" | "callbackUrl" => V::s(&w.uri),
                "endpoint" => {
                    V::Json(json!({"__typename": "WebhookHttpEndpoint", "callbackUrl": w.uri}))
                }
                "createdAt" | "updatedAt" => V::s(ts(&cx.now)),
                "includeFields" | "metafieldNamespaces" => V::Leaf(json!([])),
                _ => V::Null,
            }
        }
        K::BulkOp(id) => {
            let b = st.bulk_ops.get(id).ok_or_else(missing)?;
            match name {
                "id" => V::s(gid("BulkOperation", b.id)),
                "status" => V::s(&b.status),
                "type" => V::s(&b.kind),
                "query" => V::s(&b.query),
                "errorCode" => V::opt_s(b.error_code.clone()),
                "objectCount" => V::s(b.object_count.to_string()),
                "rootObjectCount" => V::s(b.root_object_count.to_string()),
                "fileSize" => V::opt_s(b.file_size.map(|f| f.to_string())),
                "url" => V::opt_s(b.url.clone()),
                "partialDataUrl" => V::opt_s(b.partial_url.clone()),
                "createdAt" => V::s(ts(&b.created_at)),
                "completedAt" => V::opt_s(b.completed_at.map(|t| ts(&t))),
                _ => V::Null,
            }
        }
        K::ProductOp(id) => {
            let product = st.product_ops.get(id).ok_or_else(missing)?;
            match name {
                "id" => V::s(gid("ProductSetOperation", *id)),
                "status" => V::s("COMPLETE"),
                "product" => product
                    .filter(|p| st.products.contains_key(p))
                    .map_or(V::Null, |p| V::Obj(K::Product(p))),
                "userErrors" => V::Json(json!([])),
                _ => V::Null,
            }
        }
        _ => V::Null,
    })
}

pub fn category_json(cgid: &str, path: &str) -> Value {
    let parts: Vec<&str> = path.split(" > ").collect();
    let id = cgid.rsplit('/').next().unwrap_or("");
    let parent = id
        .rsplit_once('-')
        .map(|(p, _)| format!("gid://shopify/TaxonomyCategory/{p}"));
    json!({
        "id": cgid,
        "name": parts.last().copied().unwrap_or(""),
        "fullName": path,
        "level": parts.len(),
        "isRoot": parts.len() == 1,
        "isLeaf": crate::schema::taxonomy().keys().all(|k| !k.starts_with(&format!("{id}-"))),
        "isArchived": false,
        "parentId": if parts.len() > 1 { parent } else { None },
        "ancestorIds": [],
        "childrenIds": [],
    })
}

fn strip_tags(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// Sort value of an id: zero-padded so string order is numeric order.
pub fn id_key(id: u64) -> String {
    format!("{id:020}")
}

/// Sorts by (sort value, id), descending when `reverse`.
pub fn sort_entries(list: &mut [(u64, K, String)], reverse: bool) {
    list.sort_by(|a, b| (a.2.as_str(), a.0).cmp(&(b.2.as_str(), b.0)));
    if reverse {
        list.reverse();
    }
}

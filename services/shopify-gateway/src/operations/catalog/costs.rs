//! Inventory item unit costs: one `inventoryItemUpdate` per item.

use shopbridge_proto::gateway as pb;

use super::{answered, checked_money, count_applied, finish};
use crate::{
    bulk::Writer,
    operations::{MUTATION_COST, run_calls},
    outcome::{Outcome, invalid},
    shopify::wire::{
        UserError,
        inventory::{InventoryItemCost, InventoryItemCostInput},
    },
};

/// Sets unit costs, one inventoryItemUpdate per item.
pub async fn set_inventory_item_costs(w: &Writer<'_>, set: &pb::SetInventoryItemCosts) -> Outcome {
    let mut outcome = Outcome::default();
    if set.costs.is_empty() {
        outcome.user_errors.push(UserError::new(
            "INVALID_REQUEST",
            &["costs"],
            "no cost to set",
        ));
        return finish(outcome, 0);
    }
    let mut items = Vec::new();
    let mut requests = Vec::new();
    for (i, c) in set.costs.iter().enumerate() {
        let mut errors = Vec::new();
        if !c
            .inventory_item_id
            .starts_with("gid://shopify/InventoryItem/")
        {
            errors.push(invalid(
                "costs",
                i,
                &["inventory_item_id"],
                "INVALID",
                format!(
                    "{:?} is not an inventory item id (gid://shopify/InventoryItem/<id>)",
                    c.inventory_item_id
                ),
            ));
        }
        let cost = match &c.cost {
            Some(cost) => checked_money(&mut errors, ("costs", i), &["cost"], cost),
            None => {
                errors.push(invalid(
                    "costs",
                    i,
                    &["cost"],
                    "BLANK",
                    "no cost given".to_string(),
                ));
                String::new()
            }
        };
        if !errors.is_empty() {
            outcome.user_errors.extend(errors);
            continue;
        }
        items.push(i);
        requests.push(InventoryItemCost {
            id: c.inventory_item_id.clone(),
            input: InventoryItemCostInput { cost },
        });
    }
    let results = run_calls(w.executor, w.shop, w.lane, requests, MUTATION_COST).await;
    let by_item = results.into_iter().map(|(n, r)| (items[n], r)).collect();
    let answers: Vec<_> = answered(by_item, &mut outcome)
        .into_iter()
        .map(|(i, data)| {
            let errors = data
                .inventory_item_update
                .map(|p| p.user_errors)
                .unwrap_or_default();
            (i, errors)
        })
        .collect();
    let written = count_applied(answers, "costs", &mut outcome);
    finish(outcome, written)
}

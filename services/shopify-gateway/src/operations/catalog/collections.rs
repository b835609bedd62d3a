//! Smart collections: looked up by handle first (a command re-run after a crash finds the collection its first run
//! created), then `collectionCreate` from the rules.

use shopbridge_proto::gateway as pb;

use super::{finish, shopify_name};
use crate::{
    bulk::Writer,
    operations::MUTATION_COST,
    outcome::Outcome,
    shopify::wire::{
        UserError,
        catalog::{
            CollectionByHandle, CollectionCreate, CollectionInput, CollectionRuleInput,
            CollectionRuleSetInput,
        },
    },
};

/// The rules of `create` as Shopify's input, or the problems with the request.
fn checked_rules(
    create: &pb::CreateSmartCollection,
) -> Result<Vec<CollectionRuleInput>, Vec<UserError>> {
    let mut problems = Vec::new();
    let mut problem = |field: &[&str], code: &str, message: &str| {
        problems.push(UserError::new(code, field, message));
    };
    if create.title.trim().is_empty() {
        problem(&["title"], "BLANK", "a collection needs a title");
    }
    if create.title.chars().count() > 255 {
        problem(&["title"], "TOO_LONG", "a title has at most 255 characters");
    }
    // A collection is created by handle, never anonymously: the handle is how a command re-run after a crash finds
    // the collection its first run created (below) instead of creating a second one.
    if create.handle.trim().is_empty() {
        problem(
            &["handle"],
            "MISSING_IDENTIFIER",
            "give the collection a handle (it keeps a re-sent command from creating it twice)",
        );
    }
    if create.rules.is_empty() {
        problem(
            &["rules"],
            "BLANK",
            "a smart collection needs at least one rule",
        );
    }
    let mut rules = Vec::new();
    for (i, rule) in create.rules.iter().enumerate() {
        let column = pb::CollectionRuleColumn::try_from(rule.column).unwrap_or_default();
        let relation = pb::CollectionRuleRelation::try_from(rule.relation).unwrap_or_default();
        if column == pb::CollectionRuleColumn::Unspecified
            || relation == pb::CollectionRuleRelation::Unspecified
        {
            problem(
                &["rules", &i.to_string()],
                "INVALID",
                "a rule needs a column and a relation",
            );
            continue;
        }
        rules.push(CollectionRuleInput {
            column: shopify_name(column.as_str_name(), "COLLECTION_RULE_COLUMN_").to_string(),
            relation: shopify_name(relation.as_str_name(), "COLLECTION_RULE_RELATION_").to_string(),
            condition: rule.condition.clone(),
        });
    }
    if problems.is_empty() {
        Ok(rules)
    } else {
        Err(problems)
    }
}

/// Creates a smart collection from its rules.
pub async fn create_smart_collection(
    w: &Writer<'_>,
    create: &pb::CreateSmartCollection,
) -> (Option<pb::CollectionCreated>, Outcome) {
    let mut outcome = Outcome::default();
    let rules = match checked_rules(create) {
        Ok(rules) => rules,
        Err(problems) => {
            outcome.user_errors = problems;
            return (None, finish(outcome, 0));
        }
    };
    let lookup = CollectionByHandle {
        handle: create.handle.clone(),
    };
    outcome.calls += 1;
    match w.executor.send(w.shop, w.lane, &lookup, 1.0).await {
        Ok(found) => {
            if let Some(found) = found.collection_by_identifier {
                tracing::info!(
                    collection = found.id,
                    "a collection with this handle exists: answered as created"
                );
                let existing = pb::CollectionCreated {
                    id: found.id,
                    handle: create.handle.clone(),
                };
                return (Some(existing), finish(outcome, 1));
            }
        }
        Err(e) => {
            outcome.failed_calls.push((0, e));
            return (None, finish(outcome, 0));
        }
    }
    let request = CollectionCreate {
        input: CollectionInput {
            title: create.title.clone(),
            handle: create.handle.clone(),
            rule_set: CollectionRuleSetInput {
                applied_disjunctively: create.applied_disjunctively,
                rules,
            },
            description_html: (!create.description_html.is_empty())
                .then(|| create.description_html.clone()),
        },
    };
    outcome.calls += 1;
    let payload = match w
        .executor
        .send(w.shop, w.lane, &request, MUTATION_COST)
        .await
    {
        Ok(data) => data.collection_create,
        Err(e) => {
            outcome.failed_calls.push((0, e));
            return (None, finish(outcome, 0));
        }
    };
    let (collection, errors) = payload
        .map(|p| (p.collection, p.user_errors))
        .unwrap_or_default();
    outcome.user_errors.extend(errors);
    let created = collection.map(|c| pb::CollectionCreated {
        id: c.id,
        handle: c.handle,
    });
    let written = usize::from(created.is_some());
    (created, finish(outcome, written))
}

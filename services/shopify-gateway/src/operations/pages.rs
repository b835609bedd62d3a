//! Reading a whole top-level connection page by page (locations, publications, webhook subscriptions).

use crate::shopify::{
    budget::Lane,
    executor::{CallError, Executor, ShopCredentials},
    wire::{Page, Request, access::PageOf},
};

/// Every node of the connection `request` reads, `page` at a time (`first`/`after`), each node expected to cost
/// `node_cost`; `connection` picks the connection out of an answer.
pub async fn all_nodes<R, T>(
    executor: &Executor,
    shop: &ShopCredentials,
    lane: Lane,
    request: impl Fn(PageOf) -> R,
    connection: impl Fn(R::Response) -> Page<T>,
    page: u32,
    node_cost: f64,
) -> Result<Vec<T>, CallError>
where
    R: Request,
{
    let mut nodes = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let call = request(PageOf { first: page, after });
        let answer = executor
            .send(shop, lane, &call, 2.0 + f64::from(page) * node_cost)
            .await?;
        let connection = connection(answer);
        nodes.extend(connection.nodes);
        match connection.page_info.next() {
            Some(cursor) => after = Some(cursor),
            None => return Ok(nodes),
        }
    }
}

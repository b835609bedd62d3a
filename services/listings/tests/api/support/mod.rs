//! What the tests (and the import benchmark) share: the running system ([`stack`]) and a Shopify store with the
//! catalog an import of it must produce ([`store`]).

pub mod stack;
pub mod store;

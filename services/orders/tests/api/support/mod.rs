pub mod shop;
pub mod stack;

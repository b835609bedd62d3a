//! The Shopify simulator (issue 3) is being built; this placeholder keeps the workspace whole until it lands.

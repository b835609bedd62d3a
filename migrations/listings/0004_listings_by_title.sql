-- ListListings pages by (title, id) within a tenant: the order a person reads, stable across imports.
CREATE INDEX listings_tenant_title ON listings (tenant_id, title, id);

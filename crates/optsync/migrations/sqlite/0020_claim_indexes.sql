-- The claim at many apps: the claimed tenant's next turn is one probe of an index instead
-- of a scan of every tenant.
CREATE INDEX tenants_claim_turn ON tenants (claim_turn);

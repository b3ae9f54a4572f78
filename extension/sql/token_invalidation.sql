-- Backends cache each token's principal (mcp.assume_principal): a token's change (created,
-- revoked, expiry moved, deleted) invalidates every backend's cache when it commits.
CREATE TRIGGER principal_tokens_changed AFTER INSERT OR UPDATE OR DELETE ON @extschema@.principal_tokens
    FOR EACH ROW EXECUTE FUNCTION @extschema@._catalog_changed();
CREATE TRIGGER principal_tokens_truncated AFTER TRUNCATE ON @extschema@.principal_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._catalog_changed();
ALTER TABLE @extschema@.principal_tokens ENABLE ALWAYS TRIGGER principal_tokens_changed,
    ENABLE ALWAYS TRIGGER principal_tokens_truncated;

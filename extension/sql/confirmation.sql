-- Confirmation of calls by a person (extension/src/confirmation.cpp): the role of the logins
-- that may relay a person's answer (pg_mcp_bridge's), the server key that signs the state a
-- client carries between the request for confirmation and the answer, and the states already
-- answered (each is good once). The key is readable by the extension's owner only (and by
-- roles that read everything, pg_read_all_data); neither table is dumped (a restored database
-- makes a new key: states issued before do not verify).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'mcp_confirmation_relay') THEN
        CREATE ROLE mcp_confirmation_relay NOLOGIN;
        COMMENT ON ROLE mcp_confirmation_relay IS 'Members (logins of pg_mcp_bridge) may relay a person''s answer to a request for confirmation (mcp.serve_call''s confirmation state and action); others can be asked, never answer';
    END IF;
END
$$;

CREATE TABLE @extschema@.confirmation_key (
    id  boolean PRIMARY KEY DEFAULT true CHECK (id),
    key bytea NOT NULL CHECK (length(key) = 32)
);
COMMENT ON TABLE @extschema@.confirmation_key IS 'The server key (HMAC-SHA256) of confirmation states: one row, made on first use. Delete it to invalidate every state issued so far';
REVOKE ALL ON @extschema@.confirmation_key FROM PUBLIC;

CREATE TABLE @extschema@.confirmation_uses (
    nonce      text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
COMMENT ON TABLE @extschema@.confirmation_uses IS 'Nonces of confirmation states already answered, until shortly after they expire: a state is good once';
REVOKE ALL ON @extschema@.confirmation_uses FROM PUBLIC;

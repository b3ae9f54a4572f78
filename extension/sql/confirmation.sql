-- Confirmation of calls by a person (extension/src/confirmation.cpp): the server key that signs
-- the state a client carries between the request for confirmation and the person's answer,
-- and the states already answered (each is good once). Only the extension's owner reads them;
-- neither is dumped (a restored database makes a new key: states issued before do not verify).
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

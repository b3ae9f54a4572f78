-- pg_mcp demo: the seed guide's three scenarios, built with pg_mcp.
--   1. support agent: one customer's support context, no financial data
--   2. analytics agent: aggregates only, no PII, small groups suppressed
--   3. multi-tenant agent: one tenant's customers
-- Agent roles have no privileges on tables; each tool runs as a least-privilege reader role.
\set ON_ERROR_STOP on
CREATE EXTENSION IF NOT EXISTS pg_mcp;

CREATE SCHEMA app;
COMMENT ON SCHEMA app IS 'pg_mcp demo application data';

CREATE TABLE app.tenants (
    id   uuid PRIMARY KEY,
    name text NOT NULL
);
INSERT INTO app.tenants VALUES
    ('11111111-1111-4111-8111-111111111111', 'Acme Corp'),
    ('22222222-2222-4222-8222-222222222222', 'Globex'),
    ('33333333-3333-4333-8333-333333333333', 'Initech');

CREATE TABLE app.customers (
    id                  serial PRIMARY KEY,
    tenant_id           uuid NOT NULL REFERENCES app.tenants,
    name                text NOT NULL,
    email               text NOT NULL UNIQUE,
    phone               text,                 -- PII
    card_last4          text,                 -- financial
    plan_name           text NOT NULL,
    subscription_status text NOT NULL,
    signup_date         date NOT NULL,
    last_login_date     date,
    active_users_30d    integer NOT NULL,
    open_tickets_count  integer NOT NULL,
    total_revenue       numeric(12,2) NOT NULL,
    order_count         integer NOT NULL,
    is_active           boolean NOT NULL
);
-- 1,000 deterministic customers (dates relative to today); psql -v customers=N loads N
-- (the benchmarks load 1,000,000).
\if :{?customers}
\else
    \set customers 1000
\endif
INSERT INTO app.customers (tenant_id, name, email, phone, card_last4, plan_name, subscription_status,
                           signup_date, last_login_date, active_users_30d, open_tickets_count,
                           total_revenue, order_count, is_active)
SELECT (ARRAY['11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222',
              '33333333-3333-4333-8333-333333333333'])[1 + g % 3]::uuid,
       'Customer ' || g,
       'customer' || g || '@example.com',
       '+1-555-' || lpad((g * 37 % 10000)::text, 4, '0'),
       lpad((g::bigint * 7919 % 10000)::text, 4, '0'),
       (ARRAY['free', 'starter', 'pro', 'enterprise'])[1 + g % 4],
       (ARRAY['active', 'active', 'active', 'trialing', 'past_due', 'canceled'])[1 + g % 6],
       current_date - (g * 13 % 1100),
       current_date - (g % 60),
       g * 7 % 250,
       g % 5,
       round((g * 97 % 100000) / 10.0, 2),
       g * 3 % 40,
       g % 10 <> 0
  FROM generate_series(1, :customers) g;
CREATE INDEX customers_support_email ON app.customers (email) WHERE is_active;
CREATE INDEX customers_tenant ON app.customers (tenant_id) WHERE is_active;

-- Scenario 1: the support view, a sandboxed view: only these columns (no phone, no card),
-- only active customers of the last two years; name and email are marked as PII.
SELECT mcp.create_sandbox_view(
    name        => 'app.customer_support_view',
    source      => 'app.customers',
    columns     => ARRAY['id', 'name', 'email', 'plan_name', 'subscription_status', 'last_login_date',
                         'active_users_30d', 'open_tickets_count'],
    row_filter  => $f$is_active AND signup_date >= current_date - interval '2 years'$f$,
    description => 'Support context of active customers: no payment data',
    pii_columns => ARRAY['name', 'email']);

-- Scenario 2: aggregates only, no PII, groups of fewer than 10 customers suppressed (a plain
-- view: aggregates are not a column allow-list).
-- Materialized: analytics agents read precomputed aggregates (cheap, whatever the table's
-- size), which the pg_mcp refresher brings up to date every 5 minutes, concurrently (the unique
-- index allows it, so readers never wait). Aggregates only, no personal data, and groups of
-- fewer than 10 customers suppressed.
CREATE MATERIALIZED VIEW app.customer_analytics_view AS
SELECT plan_name, subscription_status, count(*) AS customer_count,
       round(avg(active_users_30d), 1) AS avg_active_users, sum(total_revenue) AS total_revenue,
       round(avg(order_count), 1) AS avg_orders
  FROM app.customers
 WHERE is_active
 GROUP BY plan_name, subscription_status
HAVING count(*) >= 10;
CREATE UNIQUE INDEX customer_analytics_key ON app.customer_analytics_view (plan_name, subscription_status);
COMMENT ON MATERIALIZED VIEW app.customer_analytics_view IS 'Customers per plan and status: counts, averages and revenue; groups under 10 customers suppressed; refreshed every 5 minutes';
-- (Its refresh is scheduled at the end of this script, once its grants are made: a GRANT
-- meeting a running refresh fails with "tuple concurrently updated".)

-- Scenario 3: tenant-scoped customers, a sandboxed view. The tenant comes from the agent's
-- principal, never from the model (see get_tenant_customers below).
SELECT mcp.create_sandbox_view(
    name        => 'app.tenant_customer_view',
    source      => 'app.customers',
    columns     => ARRAY['tenant_id', 'id', 'name', 'email', 'plan_name', 'subscription_status'],
    row_filter  => 'is_active',
    description => 'Active customers with their tenant',
    pii_columns => ARRAY['name', 'email']);

-- Least-privilege roles the tools run as (NOLOGIN), and the agent roles, which have no table
-- privileges at all. The agent roles can log in so that a bridge can connect as each of them
-- (the throwaway cluster trusts local connections; give them passwords or certificates
-- anywhere else).
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['mcp_support_reader', 'mcp_analytics_reader', 'mcp_tenant_reader'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
    FOREACH r IN ARRAY ARRAY['agent_support', 'agent_analytics'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I LOGIN', r);
        END IF;
    END LOOP;
    -- Tenant agents: one login role per tenant (each one a principal), all members of
    -- agent_tenant, the role the tenant tool is granted to.
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'agent_tenant') THEN
        CREATE ROLE agent_tenant NOLOGIN;
    END IF;
    FOREACH r IN ARRAY ARRAY['agent_acme', 'agent_globex', 'agent_initech'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I LOGIN', r);
        END IF;
        EXECUTE format('GRANT agent_tenant TO %I', r);
    END LOOP;
END
$$;
GRANT USAGE ON SCHEMA app TO mcp_support_reader, mcp_analytics_reader, mcp_tenant_reader;
GRANT SELECT ON app.customer_support_view TO mcp_support_reader;
GRANT SELECT ON app.customer_analytics_view TO mcp_analytics_reader;
GRANT SELECT ON app.tenant_customer_view TO mcp_tenant_reader;

SELECT mcp.create_tool(
    name        => 'get_customer_info',
    title       => 'Customer support context',
    description => 'Support context for one customer, found by email: plan, subscription status, '
                   'last login, active users and open tickets. No payment data.',
    sql         => 'SELECT id, name, email, plan_name, subscription_status, last_login_date,
                           active_users_30d, open_tickets_count
                      FROM app.customer_support_view WHERE email = :email LIMIT 1',
    parameters  => '[{"name": "email", "type": "string", "format": "email", "maxLength": 254,
                      "description": "Customer email address"}]',
    max_rows    => 1,
    timeout     => '2 seconds',
    run_as      => 'mcp_support_reader');

SELECT mcp.create_tool(
    name        => 'get_customer_analytics',
    title       => 'Customer analytics by plan',
    description => 'Aggregated customer metrics per plan and subscription status (no personal '
                   'data; groups under 10 customers are suppressed). Optionally one plan only.',
    sql         => 'SELECT plan_name, subscription_status, customer_count, avg_active_users,
                           total_revenue, avg_orders
                      FROM app.customer_analytics_view
                     WHERE :plan_name::text IS NULL OR plan_name = :plan_name
                     ORDER BY plan_name, subscription_status',
    parameters  => '[{"name": "plan_name", "type": "string", "required": false,
                      "enum": ["free", "starter", "pro", "enterprise"],
                      "description": "Plan to filter by; omit for every plan"}]',
    max_rows    => 50,
    timeout     => '5 seconds',
    run_as      => 'mcp_analytics_reader');

-- Principals: each tenant agent's role carries its tenant id, set by the DBA.
SELECT mcp.create_principal('acme-support', 'agent_acme',
                            '{"tenant_id": "11111111-1111-4111-8111-111111111111"}', 'Support agent of Acme Corp');
SELECT mcp.create_principal('globex-support', 'agent_globex',
                            '{"tenant_id": "22222222-2222-4222-8222-222222222222"}', 'Support agent of Globex');
SELECT mcp.create_principal('initech-support', 'agent_initech',
                            '{"tenant_id": "33333333-3333-4333-8333-333333333333"}', 'Support agent of Initech');

-- The tenant is bound from the calling role's principal: tenant_id is not in the tool's
-- inputSchema, and an agent cannot pass another tenant's id in any argument.
SELECT mcp.create_tool(
    name        => 'get_tenant_customers',
    title       => 'Customers of your tenant',
    description => 'Active customers of your own tenant, optionally of one plan, newest first.',
    sql         => 'SELECT id, name, email, plan_name, subscription_status
                      FROM app.tenant_customer_view
                     WHERE tenant_id = :tenant_id AND (:plan_name::text IS NULL OR plan_name = :plan_name)
                     ORDER BY id DESC',
    parameters  => '[{"name": "tenant_id", "type": "string", "format": "uuid", "from_principal": "tenant_id"},
                     {"name": "plan_name", "type": "string", "required": false,
                      "enum": ["free", "starter", "pro", "enterprise"], "description": "Plan to filter by"}]',
    max_rows    => 25,
    timeout     => '2 seconds',
    run_as      => 'mcp_tenant_reader');

SELECT mcp.grant_tool('get_customer_info', 'agent_support');
SELECT mcp.grant_tool('get_customer_analytics', 'agent_analytics');
SELECT mcp.grant_tool('get_tenant_customers', 'agent_tenant');

-- An analyst agent with guarded free-form SQL: the built-in query tool runs as the agent's own
-- role, which can read only the aggregated analytics view; list_objects and describe_object
-- show it what exists.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'agent_analyst') THEN
        CREATE ROLE agent_analyst LOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA app TO agent_analyst;
GRANT SELECT ON app.customer_analytics_view TO agent_analyst;
SELECT mcp.grant_tool('query', 'agent_analyst');
SELECT mcp.grant_tool('list_objects', 'agent_analyst');
SELECT mcp.grant_tool('describe_object', 'agent_analyst');

-- A billing agent that may cancel a subscription, and only after a person confirms that exact
-- call at the MCP client (confirm => 'ask'); the tool runs as a role that may change that one
-- column and nothing else.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'agent_billing') THEN
        CREATE ROLE agent_billing LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mcp_billing_writer') THEN
        CREATE ROLE mcp_billing_writer NOLOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA app TO mcp_billing_writer;
GRANT SELECT (id, name, subscription_status), UPDATE (subscription_status) ON app.customers TO mcp_billing_writer;
SELECT mcp.create_principal('billing-demo', 'agent_billing', '{}', 'Billing agent of the demo');
SELECT mcp.create_tool(
    name            => 'cancel_subscription',
    title           => 'Cancel a subscription',
    description     => 'Cancels the subscription of one customer (by id). A person confirms each call.',
    sql             => $q$UPDATE app.customers SET subscription_status = 'canceled'
                           WHERE id = :customer_id RETURNING id, name, subscription_status$q$,
    parameters      => '[{"name": "customer_id", "type": "integer", "minimum": 1,
                          "description": "The customer whose subscription ends"}]',
    read_only       => false,
    run_as          => 'mcp_billing_writer',
    confirm         => 'ask',
    confirm_message => 'Cancel the subscription of customer {customer_id}? The customer loses access at once.');
SELECT mcp.grant_tool('cancel_subscription', 'agent_billing');

-- The analytics aggregates stay fresh: the pg_mcp refresher refreshes them every 5 minutes.
SELECT mcp.schedule_refresh('app.customer_analytics_view', '5 minutes');

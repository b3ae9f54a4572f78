-- Advice: a tool that scans a large table for the column it filters by gets a ready CREATE
-- INDEX, and with hypopg the estimated cost before and after that hypothetical index; tools
-- that read far more than they return, and caps far above any result, are flagged.
\set SHOW_CONTEXT never
CREATE TABLE adv_orders (id int PRIMARY KEY, customer_email text, status text, total numeric);
INSERT INTO adv_orders SELECT g, 'c' || (g % 5000) || '@example.com', CASE WHEN g % 10 = 0 THEN 'open' ELSE 'done' END, g
  FROM generate_series(1, 50000) g;
ANALYZE adv_orders;
CREATE ROLE regress_adv_reader NOLOGIN;
GRANT SELECT ON adv_orders TO regress_adv_reader;
SELECT mcp.create_tool('adv_by_email', 'SELECT id, total FROM public.adv_orders WHERE customer_email = :email',
    'Orders of a customer', '[{"name": "email", "type": "string", "format": "email"}]', max_rows => 1000,
    run_as => 'regress_adv_reader');
SELECT mcp.create_tool('adv_by_id', 'SELECT id FROM public.adv_orders WHERE id = :id', 'One order',
    '[{"name": "id", "type": "integer"}]', run_as => 'regress_adv_reader');
SELECT mcp.grant_tool(t, 'postgres') FROM unnest(ARRAY['adv_by_email', 'adv_by_id']) t;

-- Before any call: typed samples. The scan is found and the index named.
SELECT finding, suggestion, detail ~ 'typed samples' AS from_samples, cost_after IS NULL AS no_hypopg
  FROM mcp.advise_tool('adv_by_email');
SELECT count(*) AS advice_for_key_lookup FROM mcp.advise_tool('adv_by_id');

-- After calls: their arguments, and the use-based findings.
SELECT count(*) FROM (SELECT mcp.call_tool('adv_by_email', jsonb_build_object('email', 'c' || g || '@example.com'))
                        FROM generate_series(1, 6) g) c;
SELECT finding, suggestion FROM mcp.advise_tool('adv_by_email') ORDER BY finding;
SELECT detail ~ 'latest call' AS from_calls FROM mcp.advise_tool('adv_by_email') WHERE finding = 'seq_scan';

-- With hypopg, the cost with the suggested index, which is never built.
CREATE EXTENSION hypopg;
SELECT finding, cost_after < cost_before / 10 AS much_cheaper FROM mcp.advise_tool('adv_by_email')
 WHERE finding = 'seq_scan';
-- The plan was made as the tool's run_as role; the caller's role is back afterwards.
SELECT current_user AS still_the_caller;
SELECT count(*) AS real_indexes FROM pg_indexes WHERE tablename = 'adv_orders';
-- Following the advice removes the finding.
CREATE INDEX ON adv_orders (customer_email);
SELECT count(*) AS seq_scans_left FROM mcp.advise_tool('adv_by_email') WHERE finding = 'seq_scan';
SELECT tool, finding FROM mcp.advise_tools() WHERE tool LIKE 'adv_%' ORDER BY 1, 2;
DROP EXTENSION hypopg;

SELECT mcp.advise_tool('no_such_tool');
SET ROLE regress_adv_reader;
SELECT mcp.advise_tool('adv_by_id');
RESET ROLE;
SELECT mcp.drop_tool(t) FROM unnest(ARRAY['adv_by_email', 'adv_by_id']) t;
DROP TABLE adv_orders;
DROP ROLE regress_adv_reader;

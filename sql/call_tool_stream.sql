-- call_tool_stream(): the same call as call_tool, as rows: the head ({"_meta", "isError"}),
-- then the body in pieces of at most 64 kB, cut between characters, that join into the rest of
-- the same object; the agent context given as arguments lands in the audit row.
\set SHOW_CONTEXT never
CREATE ROLE regress_stream_agent NOLOGIN;
CREATE ROLE regress_stream_reader NOLOGIN;
SELECT mcp.create_tool('stream_wide',
    'SELECT g AS n, repeat(''é€'', 500) AS t FROM generate_series(1, :n) g',
    'Rows of multibyte text', '[{"name": "n", "type": "integer", "minimum": 0, "maximum": 1000}]',
    max_rows => 1000, max_bytes => 10000000, run_as => 'regress_stream_reader');
SELECT mcp.grant_tool('stream_wide', 'regress_stream_agent');
SET ROLE regress_stream_agent;

-- Small result: the head, then one piece; joined, the same jsonb as call_tool's (but the audit
-- id, which differs per call).
CREATE TEMP TABLE pieces AS
SELECT ordinality AS i, piece FROM mcp.call_tool_stream('stream_wide', '{"n": 2}') WITH ORDINALITY AS s(piece, ordinality);
SELECT count(*) AS rows, (SELECT piece::jsonb - '_meta' FROM pieces WHERE i = 1) AS head FROM pieces;
SELECT (SELECT left(piece, strpos(piece, '"_meta"') - 1) FROM pieces WHERE i = 1) AS head_start;
SELECT ((SELECT left(piece, -1) FROM pieces WHERE i = 1) || ',' ||
        (SELECT string_agg(piece, '' ORDER BY i) FROM pieces WHERE i > 1) || '}')::jsonb #- '{_meta,pg-mcp/audit_id}'
     = mcp.call_tool('stream_wide', '{"n": 2}') #- '{_meta,pg-mcp/audit_id}' AS same_as_call_tool;

-- Large result (about 1.5 MB of 2- and 3-byte characters): many pieces, each at most 64 kB and
-- valid text on its own; joined, the same rows.
DROP TABLE pieces;
CREATE TEMP TABLE pieces AS
SELECT ordinality AS i, piece FROM mcp.call_tool_stream('stream_wide', '{"n": 600}') WITH ORDINALITY AS s(piece, ordinality);
SELECT count(*) > 20 AS many_pieces, max(octet_length(piece)) <= 65536 AS each_within_64kB,
       bool_and(piece = convert_from(convert_to(piece, 'UTF8'), 'UTF8')) AS each_valid
  FROM pieces WHERE i > 1;
WITH joined AS (
    SELECT ((SELECT left(piece, -1) FROM pieces WHERE i = 1) || ',' ||
            (SELECT string_agg(piece, '' ORDER BY i) FROM pieces WHERE i > 1) || '}')::jsonb AS r)
SELECT jsonb_array_length(r -> 'structuredContent' -> 'rows') AS rows,
       r -> 'structuredContent' -> 'rows' -> 599 ->> 'n' AS last_n,
       r -> 'structuredContent' = substring(r -> 'content' -> 0 ->> 'text'
                                            from '<untrusted-data-[0-9a-f]{32}>\n(.*)\n</untrusted-data-')::jsonb AS text_matches,
       r -> 'isError' AS is_error
  FROM joined;

-- Errors come as a head and a body too; the agent context arguments are recorded.
SELECT regexp_replace(piece, ',"pg-mcp/audit_id":\d+', '') AS piece
  FROM mcp.call_tool_stream('stream_wide', '{"n": -1}', 'agent-x', 'client-y 1.0', 'req-7') WITH ORDINALITY AS s(piece, i)
 ORDER BY i;
SELECT regexp_replace(piece, ',"pg-mcp/audit_id":\d+', '') AS piece
  FROM mcp.call_tool_stream('no_such_tool', '{}') WITH ORDINALITY AS s(piece, i) ORDER BY i;
RESET ROLE;
SELECT tool_name, status, agent_name, client_info, request_id FROM mcp.audit_log
 WHERE tool_name IN ('stream_wide', 'no_such_tool') ORDER BY id;

SELECT mcp.drop_tool('stream_wide');
DROP TABLE pieces;
DROP ROLE regress_stream_agent;
DROP ROLE regress_stream_reader;

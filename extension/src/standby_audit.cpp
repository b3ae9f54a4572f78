// Audit records of calls served by a hot standby, forwarded by the client to the primary:
// mcp._queue_forwarded_audit checks one record (its JSON form, audit_record.hpp, mapped to the
// record's fields by name) and queues it into the audit writer as it was recorded (its role
// names and backend pid are the standby's); mcp._await_forwarded_audit waits until every record
// queued so far is durable. mcp.ingest_standby_audit (SQL) drives both and keeps each record's
// id, so that a record sent twice is written once.
#include "audit.hpp"
#include "audit_queue.hpp"
#include "audit_record.hpp"
#include "boundary.hpp"

extern "C" {
#include "utils/builtins.h"
#include "utils/uuid.h"
}

// mcp._queue_forwarded_audit(record jsonb, queue boolean): checks the record (every field's
// kind, the required ones, a record_id) and, when queue is true, queues it. The writer adds
// record_id to mcp.audit_forwarded with the row.
PG_MCP_FUNCTION(pg_mcp_queue_forwarded_record) {
    Jsonb *json = PG_GETARG_JSONB_P(0);
    JsonbValue *id = JB_ROOT_IS_OBJECT(json)
                         ? getKeyJsonValueFromContainer(&json->root, "record_id", 9, NULL)
                         : NULL;
    const char *label = id != NULL && id->type == jbvString
                            ? pnstrdup(id->val.string.val, Min(id->val.string.len, 64))
                            : NULL;
    if (id == NULL || id->type != jbvString)
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("an audit record lacks its \"record_id\" (a uuid)")));
    (void)DirectFunctionCall1(uuid_in, CStringGetDatum(label));
    pg_mcp::AuditRecord record;
    pg_mcp::audit_record_from_json(json, label, &record);
    if (!PG_GETARG_BOOL(1)) PG_RETURN_VOID();
    pg_mcp::bound_audit_record(&record);
    StringInfoData packed;
    initStringInfo(&packed);
    pg_mcp::pack_audit_record(&packed, &record);
    pg_mcp::enqueue_audit_record(packed.data, packed.len, false, false);
    pfree(packed.data);
    PG_RETURN_VOID();
}

// 0.1.0's 20-argument mcp._queue_forwarded_audit, until ALTER EXTENSION pg_mcp UPDATE replaces
// it: a library newer than the installed SQL refuses instead of misreading the arguments.
PG_MCP_FUNCTION(pg_mcp_queue_forwarded_audit) {
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("the pg_mcp library is newer than the extension's SQL objects"),
                    errhint("Run ALTER EXTENSION pg_mcp UPDATE in this database.")));
    PG_RETURN_VOID();
}

// mcp._await_forwarded_audit(): every record this session queued is committed and flushed.
PG_MCP_FUNCTION(pg_mcp_await_forwarded_audit) {
    PG_RETURN_INT64(pg_mcp::await_queued_audit_records());
}

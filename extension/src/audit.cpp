#include "audit.hpp"

#include "boundary.hpp"
#include "security.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
}

namespace pg_mcp {

namespace {

SPIPlanPtr insert_plan = NULL;

// Set only while purge_audit_log deletes: the one path allowed through the guard trigger.
bool purge_in_progress = false;

const char *setting_or_null(const char *name) {
    const char *value = GetConfigOption(name, true, false);
    return value != NULL && value[0] != '\0' ? value : NULL;
}

Datum text_or_null(const char *value, char *null_flag) {
    if (value == NULL) {
        *null_flag = 'n';
        return (Datum)0;
    }
    return CStringGetTextDatum(value);
}

}  // namespace

int64 write_audit_record(const AuditRecord *record) {
    if (insert_plan == NULL) {
        Oid types[16] = {TIMESTAMPTZOID, NAMEOID, NAMEOID,  TEXTOID, TEXTOID,   TEXTOID,
                         TEXTOID,        INT4OID, JSONBOID, TEXTOID, FLOAT8OID, INT4OID,
                         TEXTOID,        TEXTOID, INT4OID,  TEXTOID};
        SPIPlanPtr plan = SPI_prepare(
            "INSERT INTO mcp.audit_log (called_at, caller_role, session_role, agent_name,"
            " client_info, request_id, tool_name, tool_version, arguments, status, duration_ms,"
            " rows_returned, sqlstate, message, backend_pid, principal)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
            " RETURNING id",
            16, types);
        if (plan == NULL)
            elog(ERROR, "could not prepare the audit insert: %s",
                 SPI_result_code_string(SPI_result));
        SPI_keepplan(plan);
        insert_plan = plan;
    }
    Datum values[16];
    char nulls[17] = "                ";
    values[0] = TimestampTzGetDatum(record->called_at);
    values[1] =
        DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(record->caller_role, false)));
    values[2] =
        DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(GetSessionUserId(), false)));
    values[3] = text_or_null(setting_or_null("pg_mcp.agent_name"), &nulls[3]);
    values[4] = text_or_null(setting_or_null("pg_mcp.client_info"), &nulls[4]);
    values[5] = text_or_null(setting_or_null("pg_mcp.request_id"), &nulls[5]);
    values[6] = CStringGetTextDatum(record->tool_name);
    values[7] = Int32GetDatum(record->tool_version);
    if (record->tool_version <= 0) nulls[7] = 'n';
    values[8] = record->arguments;
    if (record->arguments == (Datum)0) nulls[8] = 'n';
    values[9] = CStringGetTextDatum(record->status);
    values[10] = Float8GetDatum(record->duration_ms);
    values[11] = Int32GetDatum((int32)Min(record->rows_returned, (int64)PG_INT32_MAX));
    if (record->rows_returned < 0) nulls[11] = 'n';
    values[12] = text_or_null(record->sqlstate, &nulls[12]);
    values[13] = text_or_null(record->message, &nulls[13]);
    values[14] = Int32GetDatum(MyProcPid);
    values[15] = text_or_null(record->principal, &nulls[15]);

    int rc = SPI_execute_plan(insert_plan, values, nulls, false, 1);
    if (rc != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
        elog(ERROR, "audit insert failed: %s", SPI_result_code_string(rc));
    bool isnull;
    int64 id =
        DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    SPI_freetuptable(SPI_tuptable);
    return id;
}

}  // namespace pg_mcp

// Trigger on mcp.audit_log: refuses UPDATE, DELETE and TRUNCATE, except the DELETE that
// purge_audit_log runs (a backend-local flag that SQL cannot set).
PG_MCP_FUNCTION(pg_mcp_audit_log_guard) {
    if (!CALLED_AS_TRIGGER(fcinfo)) elog(ERROR, "_audit_log_guard must be called as a trigger");
    TriggerData *trigger = (TriggerData *)fcinfo->context;
    if (TRIGGER_FIRED_BY_DELETE(trigger->tg_event) && pg_mcp::purge_in_progress)
        return PointerGetDatum(trigger->tg_trigtuple);
    const char *operation = TRIGGER_FIRED_BY_UPDATE(trigger->tg_event)   ? "UPDATE"
                            : TRIGGER_FIRED_BY_DELETE(trigger->tg_event) ? "DELETE"
                                                                         : "TRUNCATE";
    ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                    errmsg("mcp.audit_log is append-only: %s is not allowed", operation),
                    errhint("Old rows are removed only with mcp.purge_audit_log(older_than).")));
    pg_unreachable();
}

namespace {

struct Purge {
    Datum cutoff;
    int64 deleted;
};

void purge_rows(void *arg) {
    Purge *purge = (Purge *)arg;
    Oid types[1] = {TIMESTAMPTZOID};
    Datum values[1] = {purge->cutoff};
    pg_mcp::purge_in_progress = true;
    int rc = SPI_execute_with_args("DELETE FROM mcp.audit_log WHERE called_at < $1", 1, types,
                                   values, NULL, false, 0);
    if (rc != SPI_OK_DELETE) elog(ERROR, "audit purge failed: %s", SPI_result_code_string(rc));
    purge->deleted = (int64)SPI_processed;
}

void end_purge(void *) {
    pg_mcp::purge_in_progress = false;
}

}  // namespace

// mcp.purge_audit_log(older_than interval): retention, returns the number of rows deleted.
PG_MCP_FUNCTION(pg_mcp_purge_audit_log) {
    Purge purge;
    purge.cutoff = DirectFunctionCall2(timestamptz_mi_interval,
                                       TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()),
                                       PG_GETARG_DATUM(0));
    purge.deleted = 0;
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    // The flag must not outlive the DELETE, even when it fails.
    pg_mcp::run_with_cleanup(purge_rows, end_purge, &purge);
    SPI_finish();
    PG_RETURN_INT64(purge.deleted);
}

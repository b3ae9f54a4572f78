// The libpq layer under the pool, the audit confirmer, the listener and the replica monitor:
// opening a connection with the bridge's settings, its notices as log lines, the backoff between
// attempts, and the start-up check of the extension.
#pragma once

#include <chrono>
#include <set>
#include <string>

#include <libpq-fe.h>

#include "log.hpp"

namespace pg_mcp::bridge {

// Reconnection: the first retry after 50 ms, doubling to at most a second (jittered), so that a
// server back from a restart is used within about a second.
inline constexpr std::chrono::milliseconds kFirstBackoff{50};
inline constexpr std::chrono::milliseconds kMaxBackoff{1000};

extern const char *const kExtensionVersion;  // the extension version this bridge was built with
// Whether an installed extension version works with this bridge: the same major.minor.
bool compatible_extension_version(const std::string &installed);

// One libpq connection with its cancel handle. Not thread-safe: one worker uses it.
class Connection {
  public:
    explicit Connection(std::string dsn) : dsn_(std::move(dsn)) {}
    ~Connection() { close(); }
    Connection(const Connection &) = delete;
    Connection &operator=(const Connection &) = delete;

    // Connects if not connected (or if the server dropped the connection while it was idle).
    // On failure returns false with a message.
    bool ensure(std::string &error);
    void close();
    PGconn *get() const { return conn_; }
    PGcancel *cancel_handle() const { return cancel_; }
    // Prepares a statement on this connection once (until it is closed).
    bool prepare(const char *name, const char *sql, std::string &error);

  private:
    bool healthy();
    std::string dsn_;
    PGconn *conn_ = nullptr;
    PGcancel *cancel_ = nullptr;
    std::set<std::string> prepared_;
};

// Opens a connection with the bridge's settings (application_name) on top of the DSN, which
// may be empty (then PG* variables, service files and .pgpass apply, as for psql).
PGconn *open_connection(const std::string &dsn);
// Where the notices of every connection open_connection makes go (set once, at start-up).
void route_notices_to(const Logger *logger);

struct StartupCheck {
    bool ok = false;
    bool unreachable = false;  // the connection itself failed
    std::string message;       // what is wrong, for a DBA; or a summary when ok
};

// Connects once and verifies that pg_mcp is installed in the expected version.
StartupCheck check_database(const std::string &dsn);

// A libpq message without its trailing newline.
std::string trim(std::string text);
// A connection's error message ("out of memory" for a null connection).
std::string connection_error(PGconn *conn);

}  // namespace pg_mcp::bridge

// Session tickets: a 2025-11-25 session's state sealed into its MCP-Session-Id with a key the
// bridges behind one load balancer share, so that any of them can serve the session (a bridge
// that restarts, or a balancer that moves a client, does not end it). What a ticket carries is
// what initialize settled and nothing that changes afterwards: the protocol revision, the
// client's name and version, whether it can be asked to confirm a call, whose it is (a digest
// of the owner, never a token), when it was issued. Every input is checked here; nothing here
// throws on what a client sends.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace pg_mcp::bridge {

// What initialize settled for a 2025-11-25 session (McpServer::negotiate, McpServer::restore).
struct SessionState {
    std::string version;         // a legacy protocol revision
    nlohmann::json client_info;  // an object: name, version, title (strings, bounded)
    bool can_elicit = false;     // the client declared elicitation in form mode
};

// The keys a bridge seals and opens tickets with: the first seals, every one opens (so that a
// key can be rotated without ending sessions: add the new key second everywhere, then first,
// then drop the old one).
class SessionKeys {
  public:
    static constexpr size_t kMinKeyBytes = 32;
    // Reads one key from each file (its bytes, trailing whitespace dropped); an error message
    // naming the file when one cannot be read or is shorter than kMinKeyBytes.
    static std::optional<SessionKeys> load(const std::vector<std::string> &files,
                                           std::string &problem);
    explicit SessionKeys(std::vector<std::string> keys) : keys_(std::move(keys)) {}

    static constexpr std::string_view kPrefix = "s1.";
    static constexpr size_t kMaxTicketBytes = 1024;

    // A sealed session: its text (the MCP-Session-Id), its short name (the random part, 32 hex
    // digits, for logs and traces), when it was issued (seconds since the epoch), its state.
    struct Ticket {
        std::string text;
        std::string name;
        int64_t issued = 0;
        SessionState state;
    };
    // The ticket of a session opened now by `owner`.
    Ticket seal(const SessionState &state, const std::string &owner,
                std::chrono::system_clock::time_point now) const;
    // A ticket of this payload text (seal's last step; tests seal what they like with it).
    std::string seal_payload(std::string_view payload) const;
    // The ticket `text` when a key of these sealed it for `owner`, no longer ago than
    // `lifetime`; nullopt otherwise (a forged, altered, foreign, expired or malformed ticket).
    std::optional<Ticket> open(std::string_view text, const std::string &owner,
                               std::chrono::system_clock::time_point now,
                               std::chrono::seconds lifetime) const;

  private:
    std::vector<std::string> keys_;
};

// Whether `id` is shaped as a ticket (not whether it is valid).
inline bool looks_like_ticket(std::string_view id) {
    return id.substr(0, SessionKeys::kPrefix.size()) == SessionKeys::kPrefix;
}

}  // namespace pg_mcp::bridge

// The pool's queue serves owners in turn: a deep backlog of one principal delays another's
// request by at most one item, and expiry and requeueing keep the order.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "fair_queue.hpp"

using namespace pg_mcp::bridge;

namespace {

struct Item {
    std::string name;
    std::chrono::steady_clock::time_point queued_at;
};

std::shared_ptr<Item> item(const std::string &name, int age_ms = 0) {
    return std::make_shared<Item>(
        Item{name, std::chrono::steady_clock::now() - std::chrono::milliseconds(age_ms)});
}

std::string drain(FairQueue<Item> &queue) {
    std::string order;
    while (auto next = queue.pop()) order += next->name + " ";
    return order;
}

}  // namespace

TEST(FairQueue, OwnersTakeTurns) {
    FairQueue<Item> queue;
    for (int i = 0; i < 5; ++i) queue.push("busy", item("b" + std::to_string(i)));
    queue.push("quiet", item("q0"));
    queue.push("other", item("o0"));
    EXPECT_EQ(queue.size(), 7u);
    // The quiet owner's single request comes second, not after the busy owner's five.
    EXPECT_EQ(drain(queue), "b0 q0 o0 b1 b2 b3 b4 ");
    EXPECT_TRUE(queue.empty());
}

TEST(FairQueue, RequeuedWorkComesFirstForItsOwner) {
    FairQueue<Item> queue;
    queue.push("a", item("a1"));
    queue.push("b", item("b0"));
    queue.push_front("a", item("a0"));
    EXPECT_EQ(drain(queue), "a0 b0 a1 ");
    queue.push_front("c", item("c0"));  // an owner with nothing queued goes first
    queue.push("a", item("a2"));
    EXPECT_EQ(drain(queue), "c0 a2 ");
}

TEST(FairQueue, ExpiryTakesOldItemsOfEveryOwner) {
    FairQueue<Item> queue;
    queue.push("a", item("a-old", 5000));
    queue.push("a", item("a-new"));
    queue.push("b", item("b-old", 5000));
    auto expired =
        queue.take_older_than(std::chrono::steady_clock::now() - std::chrono::milliseconds(1000));
    ASSERT_EQ(expired.size(), 2u);
    EXPECT_EQ(queue.size(), 1u);
    EXPECT_EQ(drain(queue), "a-new ");
    queue.push("b", item("b1"));
    EXPECT_EQ(queue.take_all().size(), 1u);
    EXPECT_TRUE(queue.empty());
}

TEST(FairQueue, RemovedWorkLeavesTheQueueAtOnce) {
    FairQueue<Item> queue;
    auto a0 = item("a0"), a1 = item("a1"), b0 = item("b0");
    queue.push("a", a0);
    queue.push("a", a1);
    queue.push("b", b0);
    EXPECT_TRUE(queue.remove("a", a0));
    EXPECT_FALSE(queue.remove("a", a0));
    EXPECT_FALSE(queue.remove("c", b0));
    EXPECT_TRUE(queue.remove("b", b0));  // its owner's last: the owner leaves the turn
    EXPECT_EQ(queue.size(), 1u);
    EXPECT_EQ(drain(queue), "a1 ");
    EXPECT_TRUE(queue.empty());
}

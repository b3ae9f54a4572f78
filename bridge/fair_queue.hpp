// Work waiting for a database connection, taken in turn from each owner (a principal, or the
// bridge's own login): one owner's backlog delays another owner's request by at most one item
// per connection, however deep it is. Not thread-safe (the pool's mutex guards it).
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace pg_mcp::bridge {

// Item: anything with a `queued_at` time point.
template <typename Item>
class FairQueue {
  public:
    using Pointer = std::shared_ptr<Item>;

    void push(const std::string &owner, Pointer item) {
        auto &queue = queues_[owner];
        if (queue.empty()) turn_.push_back(owner);
        queue.push_back(std::move(item));
        ++size_;
    }

    // Back at the head of its owner's queue (work a connection could not run after all).
    void push_front(const std::string &owner, Pointer item) {
        auto &queue = queues_[owner];
        if (queue.empty()) turn_.push_front(owner);
        queue.push_front(std::move(item));
        ++size_;
    }

    // The next owner's oldest item; nullptr when empty.
    Pointer pop() {
        if (turn_.empty()) return nullptr;
        std::string owner = std::move(turn_.front());
        turn_.pop_front();
        auto found = queues_.find(owner);
        Pointer item = std::move(found->second.front());
        found->second.pop_front();
        if (found->second.empty())
            queues_.erase(found);
        else
            turn_.push_back(std::move(owner));
        --size_;
        return item;
    }

    // Takes `item` out of its owner's queue (work cancelled while it waits); false when it is
    // not queued.
    bool remove(const std::string &owner, const Pointer &item) {
        auto found = queues_.find(owner);
        if (found == queues_.end()) return false;
        auto &queue = found->second;
        for (auto it = queue.begin(); it != queue.end(); ++it)
            if (*it == item) {
                queue.erase(it);
                --size_;
                if (queue.empty()) {
                    queues_.erase(found);
                    for (auto t = turn_.begin(); t != turn_.end(); ++t)
                        if (*t == owner) {
                            turn_.erase(t);
                            break;
                        }
                }
                return true;
            }
        return false;
    }

    bool empty() const { return size_ == 0; }
    size_t size() const { return size_; }

    // Removes and returns every item queued before `limit`.
    template <typename TimePoint>
    std::vector<Pointer> take_older_than(TimePoint limit) {
        std::vector<Pointer> taken;
        for (auto it = queues_.begin(); it != queues_.end();) {
            auto &queue = it->second;
            while (!queue.empty() && queue.front()->queued_at < limit) {
                taken.push_back(std::move(queue.front()));
                queue.pop_front();
                --size_;
            }
            if (queue.empty()) {
                for (auto t = turn_.begin(); t != turn_.end(); ++t)
                    if (*t == it->first) {
                        turn_.erase(t);
                        break;
                    }
                it = queues_.erase(it);
            } else {
                ++it;
            }
        }
        return taken;
    }

    std::vector<Pointer> take_all() {
        std::vector<Pointer> taken;
        while (Pointer item = pop()) taken.push_back(std::move(item));
        return taken;
    }

  private:
    std::map<std::string, std::deque<Pointer>> queues_;
    std::deque<std::string> turn_;  // owners with items, in the order they are served
    size_t size_ = 0;
};

}  // namespace pg_mcp::bridge

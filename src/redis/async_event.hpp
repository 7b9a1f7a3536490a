// A condition-variable-like wakeup for coroutines on one executor: a waiter
// waits until notified or its deadline; notify_all() wakes every current
// waiter. Waiters re-check their condition after waking (spurious wakeups are
// allowed). Not thread-safe: one executor.
#pragma once

#include <algorithm>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <vector>

namespace sluice::redis {

class async_event {
 public:
  void notify_all() {
    for (auto* t : waiters_) t->cancel();
  }
  boost::asio::awaitable<void> wait_until(std::chrono::steady_clock::time_point deadline) {
    boost::asio::steady_timer t(co_await boost::asio::this_coro::executor);
    t.expires_at(deadline);
    waiters_.push_back(&t);
    (void)co_await t.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &t));
  }

 private:
  std::vector<boost::asio::steady_timer*> waiters_;
};

}  // namespace sluice::redis

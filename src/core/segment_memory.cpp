#include "core/segment_memory.hpp"

#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <bit>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

namespace sluice::core::segment_memory {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool pooled_build = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool pooled_build = false;
#else
constexpr bool pooled_build = true;
#endif
#else
constexpr bool pooled_build = true;
#endif

constexpr std::size_t min_class = 4096;
constexpr std::size_t max_class = 64 * 1024;
constexpr std::size_t classes = 5;  // 4, 8, 16, 32, 64 KiB
constexpr std::size_t region_bytes = 32u << 20;
constexpr std::size_t huge_page = 2u << 20;
// How far ahead of the bump pointer pages are faulted in by the prefaulter.
constexpr std::size_t populate_ahead = 4u << 20;

std::size_t class_of(std::size_t size) {
  return static_cast<std::size_t>(std::countr_zero(std::bit_ceil(size) / min_class));
}

bool pooled(std::size_t size) {
  return pooled_build && size >= min_class && size <= max_class;
}

// Faulting a huge page in costs ~1.7 ms here (zeroing 2 MiB): done by the
// thread that first writes to it, that is a stall of every stream on an I/O
// thread. A prefaulter thread at SCHED_IDLE faults the pages ahead of the
// bump pointer in (MADV_POPULATE_WRITE, which never changes bytes already
// written) when the CPU has nothing else to do; when it is busy, the I/O
// thread faults the page itself, as without the prefaulter. Near the end of
// a region the next one is mapped early, so that its first pages are ready
// too.
struct pool {
  std::mutex mutex;
  std::array<std::vector<char*>, classes> free;  // guarded by mutex
  char* next = nullptr;                          // bump pointer in the current region
  char* end = nullptr;
  char* spare = nullptr;  // the next region, mapped early (or null)
  std::size_t mapped = 0, carved = 0, free_bytes = 0;
  // Prefaulting, guarded by mutex.
  char* requested = nullptr;  // current region: prefaulting asked for up to here
  std::vector<std::pair<char*, char*>> to_populate;  // ranges for the prefaulter
  bool prefaulter_started = false;
  bool prefaulter_failed = false;
  std::condition_variable work;

  char* map_region() {  // with mutex held; throws std::bad_alloc
    // Over-map by a huge page to align the region to one.
    void* p = ::mmap(nullptr, region_bytes + huge_page, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    auto base = reinterpret_cast<std::uintptr_t>(p);
    const std::uintptr_t aligned = (base + huge_page - 1) & ~(huge_page - 1);
    // Unmap the unaligned head and tail.
    if (aligned != base) ::munmap(p, aligned - base);
    const std::uintptr_t tail = aligned + region_bytes;
    const std::uintptr_t map_end = base + region_bytes + huge_page;
    if (map_end != tail) ::munmap(reinterpret_cast<void*>(tail), map_end - tail);
    // Advice only: without THP (or with it off) the region is ordinary pages.
    (void)::madvise(reinterpret_cast<void*>(aligned), region_bytes, MADV_HUGEPAGE);
    mapped += region_bytes;
    return reinterpret_cast<char*>(aligned);
  }

  void request(char* from, char* to) {  // with mutex held
    if (from >= to || prefaulter_failed) return;
    try {
      to_populate.emplace_back(from, to);
      if (!prefaulter_started) {
        prefaulter_started = true;
        std::thread([this] { prefault(); }).detach();
      }
    } catch (...) {
      // No memory or no thread: writers fault pages in themselves.
      return;
    }
    work.notify_one();
  }

  void want_ahead() {  // with mutex held
    // In whole huge pages: the prefaulter is woken once per 2 MiB carved.
    const auto ahead = (reinterpret_cast<std::uintptr_t>(next) + populate_ahead) & ~(huge_page - 1);
    char* target = std::min(end, reinterpret_cast<char*>(ahead));
    if (target > requested) {
      request(requested, target);
      requested = target;
    }
    if (spare == nullptr && static_cast<std::size_t>(end - next) < populate_ahead) {
      try {
        spare = map_region();
      } catch (const std::bad_alloc&) {
        return;  // carve() tries again when it needs the region
      }
      request(spare, spare + populate_ahead);
    }
  }

  void prefault() {
    sched_param param{};
    (void)pthread_setschedparam(pthread_self(), SCHED_IDLE, &param);
    std::unique_lock lock(mutex);
    for (;;) {
      work.wait(lock, [this] { return !to_populate.empty(); });
      const auto [from, to] = to_populate.front();
      to_populate.erase(to_populate.begin());
      lock.unlock();
      const bool ok =
          ::madvise(from, static_cast<std::size_t>(to - from), MADV_POPULATE_WRITE) == 0;
      lock.lock();
      if (!ok) {  // e.g. a kernel without MADV_POPULATE_WRITE (< 5.14)
        prefaulter_failed = true;
        to_populate.clear();
        return;
      }
    }
  }

  void use_next_region() {  // with mutex held; throws std::bad_alloc
    // The rest of the current region is lost (less than one 64 KiB block).
    if (spare != nullptr) {
      next = spare;
      requested = spare + populate_ahead;  // asked for when it was mapped
      spare = nullptr;
    } else {
      next = requested = map_region();
    }
    end = next + region_bytes;
  }

  char* carve(std::size_t bytes) {  // with mutex held
    if (static_cast<std::size_t>(end - next) < bytes) use_next_region();
    char* b = next;
    next += bytes;
    carved += bytes;
    want_ahead();
    return b;
  }
};

pool* the_pool_ptr = nullptr;

pool& the_pool() {
  static pool* p = [] {
    auto* fresh = new pool;  // never destroyed: segments may outlive static destruction
    the_pool_ptr = fresh;
    // A process that forks (tests start servers in children) must not fork
    // while another thread holds the mutex; the child has no prefaulter.
    (void)pthread_atfork([] { the_pool_ptr->mutex.lock(); }, [] { the_pool_ptr->mutex.unlock(); },
                         [] {
                           // The parent's prefaulter may have been waiting on
                           // `work`: start the child's with a fresh one.
                           the_pool_ptr->prefaulter_started = false;
                           the_pool_ptr->to_populate.clear();
                           new (&the_pool_ptr->work) std::condition_variable;
                           the_pool_ptr->mutex.unlock();
                         });
    return fresh;
  }();
  return *p;
}

}  // namespace

std::size_t round_up(std::size_t size) {
  return pooled(size) ? std::bit_ceil(size) : size;
}

char* allocate(std::size_t size) {
  if (!pooled(size)) return new char[size];
  const std::size_t c = class_of(size);
  const std::size_t bytes = min_class << c;
  pool& p = the_pool();
  std::lock_guard lock(p.mutex);
  if (!p.free[c].empty()) {
    char* b = p.free[c].back();
    p.free[c].pop_back();
    p.free_bytes -= bytes;
    return b;
  }
  // Split a free block of a larger class before carving new memory, so that
  // the footprint is bounded by the peak of all classes together (a burst
  // of long streams freed, then many short ones, reuses the same memory).
  for (std::size_t big = c + 1; big < classes; ++big) {
    if (p.free[big].empty()) continue;
    char* b = p.free[big].back();
    const std::size_t pieces = std::size_t{1} << (big - c);
    p.free[c].reserve(p.free[c].size() + pieces - 1);  // may throw: nothing moved yet
    p.free[big].pop_back();
    for (std::size_t i = 1; i < pieces; ++i) p.free[c].push_back(b + i * bytes);
    p.free_bytes -= bytes;
    return b;
  }
  return p.carve(bytes);
}

void release(char* block, std::size_t size) noexcept {
  if (block == nullptr) return;
  if (!pooled(size)) {
    delete[] block;
    return;
  }
  const std::size_t c = class_of(size);
  pool& p = the_pool();
  std::lock_guard lock(p.mutex);
  try {
    p.free[c].push_back(block);
    p.free_bytes += min_class << c;
  } catch (...) {
    // Out of memory for the free list itself: the block is leaked, not reused
    // twice.
  }
}

void prepare() {
  if (!pooled_build) return;
  pool& p = the_pool();
  std::lock_guard lock(p.mutex);
  if (p.next != nullptr) return;
  try {
    p.use_next_region();
  } catch (const std::bad_alloc&) {
    return;  // the first allocation will try again
  }
  p.want_ahead();
}

usage current_usage() {
  pool& p = the_pool();
  std::lock_guard lock(p.mutex);
  return {p.mapped, p.carved, p.free_bytes};
}

}  // namespace sluice::core::segment_memory

// A queue of small trivially copyable records with O(1) indexed access, for
// a stream's event index (see stream_log).
//
// Why not std::vector plus a dead-prefix counter (what stream_log used
// before): a stream of N events grew its vector log2(N) times, copying every
// entry each time and leaving the old blocks behind; on the unpaced tokens
// benchmark the copies and the page faults of the fresh blocks were about a
// tenth of the server's CPU (docs/benchmarks.md). Why not std::deque:
// libstdc++'s blocks are 512 bytes (one allocation per ~20 entries) and its
// map is not shrunk.
//
// Layout: entries live in chunks of `Chunk` records (16 KiB by default, from
// segment_memory: huge pages, like the events' bytes); chunks are never moved
// or copied once full. A stream that stays small never pays for a full chunk:
// the first chunk starts at 8 records and doubles up to `Chunk` (so at most
// 2 x Chunk records are ever copied per stream). pop_front frees a chunk as
// soon as its last record is popped.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/segment_memory.hpp"

namespace sluice::core {

template <typename T, std::size_t Chunk = 16384 / sizeof(T)>
class chunked_index {
  static_assert(std::is_trivially_copyable_v<T>);
  static_assert(Chunk >= 16);

 public:
  chunked_index() = default;
  chunked_index(const chunked_index&) = delete;
  chunked_index& operator=(const chunked_index&) = delete;
  ~chunked_index() { clear(); }

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // i-th record from the front.
  T& operator[](std::size_t i) {
    assert(i < size_);
    const std::size_t pos = head_ + i;
    return chunks_[pos / Chunk][pos % Chunk];
  }
  const T& operator[](std::size_t i) const {
    assert(i < size_);
    const std::size_t pos = head_ + i;
    return chunks_[pos / Chunk][pos % Chunk];
  }

  void push_back(const T& v) {
    const std::size_t pos = head_ + size_;
    if (pos / Chunk == chunks_.size()) {
      const std::size_t cap = chunks_.empty() ? 8 : Chunk;
      chunks_.push_back(nullptr);  // first, so that a throw leaks nothing
      try {
        chunks_.back() = allocate(cap);
      } catch (...) {
        chunks_.pop_back();
        throw;
      }
      if (chunks_.size() == 1) first_capacity_ = cap;
    } else if (chunks_.size() == 1 && pos == first_capacity_) {
      // The first chunk is still small: grow it (only it ever moves).
      const std::size_t cap = std::min(first_capacity_ * 2, Chunk);
      T* bigger = allocate(cap);
      std::memcpy(bigger + head_, chunks_[0] + head_, size_ * sizeof(T));
      release(chunks_[0], first_capacity_);
      chunks_[0] = bigger;
      first_capacity_ = cap;
    }
    chunks_[pos / Chunk][pos % Chunk] = v;
    ++size_;
  }

  // Removes the first `n` records (n <= size()).
  void pop_front(std::size_t n = 1) {
    assert(n <= size_);
    head_ += n;
    size_ -= n;
    const std::size_t dead = std::min(head_ / Chunk, chunks_.size());
    if (dead != 0) {
      for (std::size_t i = 0; i < dead; ++i) release(chunks_[i], Chunk);
      chunks_.erase(chunks_.begin(), chunks_.begin() + static_cast<std::ptrdiff_t>(dead));
      head_ -= dead * Chunk;
    }
    if (size_ == 0) clear();  // restart small
  }

  void clear() {
    for (std::size_t i = 0; i < chunks_.size(); ++i)
      release(chunks_[i], chunks_.size() == 1 ? first_capacity_ : Chunk);
    chunks_.clear();
    chunks_.shrink_to_fit();
    head_ = size_ = 0;
    first_capacity_ = 0;
  }

  // Bytes held (records' chunks and the chunk table), for tests and sizing.
  std::size_t capacity_bytes() const {
    if (chunks_.empty()) return 0;
    const std::size_t records = chunks_.size() == 1 ? first_capacity_ : chunks_.size() * Chunk;
    return records * sizeof(T) + chunks_.capacity() * sizeof(T*);
  }

 private:
  static T* allocate(std::size_t records) {
    return reinterpret_cast<T*>(segment_memory::allocate(records * sizeof(T)));
  }
  static void release(T* chunk, std::size_t records) noexcept {
    segment_memory::release(reinterpret_cast<char*>(chunk), records * sizeof(T));
  }

  std::vector<T*> chunks_;  // owned; all hold Chunk records but a lone first one
  std::size_t head_ = 0;    // position of the front record in chunks_[0]
  std::size_t size_ = 0;
  std::size_t first_capacity_ = 0;  // records allocated in chunks_[0] while it is the only one
};

}  // namespace sluice::core

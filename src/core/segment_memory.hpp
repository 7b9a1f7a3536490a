// Memory for the stream log's segments, on transparent huge pages.
//
// Why: a stream's events are retained, so a busy server keeps taking fresh
// memory, and on a VM a 4 KiB page fault is expensive (measured here: ~10 us
// per page, so ~2.7 ms per MiB retained). On the unpaced tokens benchmark
// the page faults of the log's memory were about a third of the server's CPU
// (docs/benchmarks.md). glibc's malloc puts a worker thread's blocks in a
// per-thread arena that it grows a page at a time with mprotect and never
// backs with huge pages (its glibc.malloc.hugetlb tunable covers only the
// main arena), so the segments get their own allocator:
//
// - Size classes 4, 8, 16, 32 and 64 KiB: the capacities stream_log uses
//   (its segments start at 4 KiB and double; index chunks are 16 KiB). Other
//   sizes go to operator new.
// - Blocks are carved from 32 MiB regions mapped with MADV_HUGEPAGE (only
//   touched pages count; a huge page is faulted once for 2 MiB of events).
// - A freed block goes to its class's free list and is reused by the next
//   allocation of that class, or split for smaller classes before new memory
//   is carved. Memory is not returned to the system: the log is bounded by
//   the retention limits and --memory-budget, and the pool's footprint is at
//   most the peak of what the log held (plus what a large class needs after
//   its memory went to smaller ones).
// - One mutex: taken once per segment (4-64 KiB of events), never per event.
//
// Under AddressSanitizer every block comes from operator new, so overflows
// are still caught.
#pragma once

#include <cstddef>

namespace sluice::core::segment_memory {

// The capacity a request of `size` bytes gets (>= size).
std::size_t round_up(std::size_t size);

// A block of round_up(size) bytes; throws std::bad_alloc when out of memory.
char* allocate(std::size_t size);

// Gives back a block from allocate(size) (same size).
void release(char* block, std::size_t size) noexcept;

// Maps the first region and has its first pages faulted in in the
// background, so that the first streams do not wait for it (servers call it
// at start; optional).
void prepare();

struct usage {
  std::size_t mapped_bytes = 0;  // regions reserved (not all resident)
  std::size_t carved_bytes = 0;  // handed out at least once
  std::size_t free_bytes = 0;    // on free lists
};
usage current_usage();

}  // namespace sluice::core::segment_memory

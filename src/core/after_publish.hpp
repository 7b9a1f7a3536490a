// A thread's after-publish hook: lets the event loop of a thread serve the
// readers that a publish made on that thread woke, right after the publish,
// instead of after every handler already queued on the loop (with a thousand
// busy streams on one thread, that queue is a whole pass over them).
//
// The core knows nothing of what the hook does; the transport sets it on each
// worker thread to write to that worker's ready subscribers (bounded per pass,
// see sse_subscriber::drain_ready). Publishers that may run on such a thread
// call after_publish() once they hold no lock of their own: the hook takes
// stream locks to read and writes to sockets.
#pragma once

namespace sluice::core {

using after_publish_fn = void (*)(void* ctx) noexcept;

// Sets this thread's hook (nullptr clears it).
void set_after_publish_hook(after_publish_fn fn, void* ctx) noexcept;

// Runs this thread's hook, if one is set and it is not already running on
// this thread (a publish from inside the hook does not recurse; the loop's
// own queued pass serves what it woke).
void after_publish() noexcept;

}  // namespace sluice::core

// POST /v1/bench/tokens — a synthetic producer for benchmarks only.
//
// Body {"tokens":T,"bytes":B,"rate":R}: creates a stream and answers with it
// as SSE; T events with data {"seq":n,"ts":<µs since the Unix epoch,
// CLOCK_REALTIME>,"t":"<B bytes>"} at R events/s (0 = as fast as the reader
// takes them: produce a chunk, then wait until the reader is within a chunk of
// the head). The T-th event is the stream's final event.
#pragma once

#include "transport/http_server.hpp"

namespace sluice::app {

void add_bench_routes(transport::http_server& server);

}  // namespace sluice::app

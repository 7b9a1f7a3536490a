// `sluice watch URL|STREAM_ID`: follow one stream with the resumable SSE
// client and print every event as it is dispatched.
#pragma once

namespace CLI {
class App;
}

namespace sluice::app {

// Adds the `watch` subcommand to `app`. It runs from its parse callback: the
// program continues normally (exit 0) when the stream ends, and CLI11_PARSE
// returns the non-zero code (1 failed, 130 interrupted) otherwise.
void add_watch_command(CLI::App& app);

}  // namespace sluice::app

#include "app/agent_setup.hpp"

#include <cstdlib>
#include <filesystem>
#include <spdlog/spdlog.h>
#include <stdexcept>

#include "search/corpus_indexer.hpp"
#include "search/searxng_client.hpp"

#ifdef SLUICE_HAVE_OPENAI
#include "llm/openai/openai_provider.hpp"
#endif

namespace sluice::app {

agent_runtime make_agent_runtime(const agent_options& opts) {
  namespace fs = std::filesystem;
  agent_runtime rt;
  fs::path index = opts.index_path.empty() ? fs::path(SLUICE_DEFAULT_INDEX) : fs::path(opts.index_path);
  // The default corpus is re-indexed at every start (it is small and may have
  // changed); an explicit --index is used as it is when it exists.
  if (opts.index_path.empty() || !fs::exists(index)) {
    if (!fs::is_directory(opts.corpus_dir))
      throw std::runtime_error("corpus folder " + opts.corpus_dir + " does not exist (use --corpus)");
    auto stats = search::build_index(opts.corpus_dir, index);
    if (!stats)
      throw std::runtime_error("indexing " + opts.corpus_dir + " failed: " + stats.error().message());
    spdlog::info("indexed {}: {} documents, {} passages -> {}", opts.corpus_dir, stats->documents,
                 stats->passages, index.string());
  }
  std::unique_ptr<const search::searxng_client> web;
  if (!opts.searxng_url.empty()) {
    try {
      search::searxng_config c;
      c.base_url = opts.searxng_url;
      web = std::make_unique<const search::searxng_client>(std::move(c));
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("--searxng-url: ") + e.what());
    }
    spdlog::info("web search: SearXNG at {}", opts.searxng_url);
  }
  rt.search = std::make_unique<agents::search_service>(index, opts.search_threads, std::move(web),
                                                       opts.search_queue);
  rt.env.search = rt.search.get();
  rt.env.builtin_delta_pause = std::chrono::milliseconds(opts.builtin_delta_ms);
  if (opts.llm == "openai") {
#ifdef SLUICE_HAVE_OPENAI
    llm::openai_config c;
    c.base_url = opts.llm_base_url;
    c.model = opts.llm_model;
    if (const char* key = std::getenv(opts.llm_api_key_env.c_str())) c.api_key = key;
    c.read_timeout = std::chrono::seconds(opts.llm_timeout_s);
    c.max_tokens = opts.llm_max_tokens;
    rt.model = std::make_unique<llm::openai_provider>(c);
    rt.env.model = rt.model.get();
    spdlog::info("model: {} at {}", c.model, c.base_url);
#else
    throw std::runtime_error("this build has no openai provider");
#endif
  }
  return rt;
}

}  // namespace sluice::app

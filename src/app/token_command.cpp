#include "app/token_command.hpp"

#include <charconv>
#include <chrono>
#include <cstdio>
#include <memory>

#include "auth/jwt.hpp"

namespace sluice::app {

std::optional<long long> parse_ttl(std::string_view text) {
  long long n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || n <= 0) return std::nullopt;
  const std::string_view unit(end, static_cast<std::size_t>(text.data() + text.size() - end));
  long long scale = 0;
  if (unit.empty() || unit == "s")
    scale = 1;
  else if (unit == "m")
    scale = 60;
  else if (unit == "h")
    scale = 3600;
  else if (unit == "d")
    scale = 86'400;
  else
    return std::nullopt;
  constexpr long long max_s = 10LL * 366 * 86'400;
  if (n > max_s / scale) return std::nullopt;
  return n * scale;
}

namespace {

struct token_options {
  std::string secret_file, sub, ttl = "1h", audience, issuer;
  std::vector<std::string> publish, subscribe;
  bool run = false, admin = false;
};

}  // namespace

CLI::App* add_token_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<token_options>();
  CLI::App* cmd = app.add_subcommand(
      "token", "Print an HS256 token for `serve --auth jwt --jwt-secret-file F`");
  cmd->add_option("--jwt-secret-file", opts->secret_file, "The server's HS256 secret file")
      ->required();
  cmd->add_option("--sub", opts->sub, "Subject: who the token speaks for (owns what it starts)")
      ->required();
  cmd->add_option("--publish", opts->publish,
                  "Stream-id pattern it may publish to (id, prefix*, or *); repeatable");
  cmd->add_option("--subscribe", opts->subscribe,
                  "Stream-id pattern it may read (id, prefix*, or *); repeatable");
  cmd->add_flag("--run", opts->run, "May start agent runs");
  cmd->add_flag("--admin", opts->admin, "May read /metrics");
  cmd->add_option("--ttl", opts->ttl, "Lifetime: 90s, 15m, 1h, 7d (at most 10 years)")
      ->capture_default_str();
  cmd->add_option("--audience", opts->audience, "aud claim (match the server's --jwt-audience)");
  cmd->add_option("--issuer", opts->issuer, "iss claim (match the server's --jwt-issuer)");
  cmd->callback([opts, &exit_code] {
    const auto ttl = parse_ttl(opts->ttl);
    if (!ttl) throw CLI::ValidationError("--ttl", "expected a duration such as 90s, 15m, 1h or 7d");
    for (const auto* list : {&opts->publish, &opts->subscribe})
      for (const auto& p : *list)
        if (!auth::is_valid_pattern(p))
          throw CLI::ValidationError("pattern", "'" + p +
                                                    "' is not a stream id, a prefix ending in *, "
                                                    "or *");
    if (opts->sub.empty() || opts->sub.size() > 256)
      throw CLI::ValidationError("--sub", "1..256 bytes");
    std::string secret;
    try {
      secret = auth::read_secret_file(opts->secret_file);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sluice token: %s\n", e.what());
      exit_code = 1;
      return;
    }
    auth::token_claims c;
    c.sub = opts->sub;
    c.publish = opts->publish;
    c.subscribe = opts->subscribe;
    c.run = opts->run;
    c.admin = opts->admin;
    c.iat = std::chrono::duration_cast<std::chrono::seconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
    c.exp = c.iat + *ttl;
    c.audience = opts->audience;
    c.issuer = opts->issuer;
    std::printf("%s\n", auth::mint_hs256(secret, c).c_str());
    exit_code = 0;
  });
  return cmd;
}

}  // namespace sluice::app

#include "tls_test_proxy.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <fstream>
#include <memory>
#include <stdexcept>

namespace sluice::test {

namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

namespace {

constexpr auto tuple_awaitable = net::as_tuple(net::use_awaitable);

template <class T, void (*Free)(T*)>
struct openssl_deleter {
  void operator()(T* p) const { Free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, openssl_deleter<EVP_PKEY, EVP_PKEY_free>>;
using x509_ptr = std::unique_ptr<X509, openssl_deleter<X509, X509_free>>;
using bio_ptr = std::unique_ptr<BIO, openssl_deleter<BIO, BIO_free_all>>;
using ext_ptr =
    std::unique_ptr<X509_EXTENSION, openssl_deleter<X509_EXTENSION, X509_EXTENSION_free>>;

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("test certificate: ") + what + " failed");
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(size));
}

// Copies bytes from `from` to `to` until either side fails or ends.
template <class From, class To>
net::awaitable<void> pump(From& from, To& to) {
  std::array<char, 8192> buffer;
  for (;;) {
    auto [rec, n] = co_await from.async_read_some(net::buffer(buffer), tuple_awaitable);
    if (n > 0) {
      auto [wec, written] =
          co_await net::async_write(to, net::buffer(buffer.data(), n), tuple_awaitable);
      (void)written;
      if (wec) co_return;
    }
    if (rec) co_return;
  }
}

}  // namespace

test_certificate make_self_signed_certificate(const std::string& subject_alt_name) {
  pkey_ptr key(EVP_EC_gen("P-256"));
  check(key != nullptr, "key generation");
  x509_ptr cert(X509_new());
  check(cert != nullptr, "X509_new");
  check(X509_set_version(cert.get(), 2) == 1, "X509_set_version");
  check(ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1) == 1, "serial number");
  check(X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) != nullptr, "notBefore");
  check(X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24 * 3600) != nullptr, "notAfter");
  check(X509_set_pubkey(cert.get(), key.get()) == 1, "X509_set_pubkey");
  X509_NAME* name = X509_get_subject_name(cert.get());
  check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>("sluice test"), -1, -1,
                                   0) == 1,
        "subject name");
  check(X509_set_issuer_name(cert.get(), name) == 1, "issuer name");
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, cert.get(), cert.get(), nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair{NID_subject_alt_name, subject_alt_name.c_str()},
                            std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
    ext_ptr ext(X509V3_EXT_conf_nid(nullptr, &v3, nid, value));
    check(ext != nullptr, "extension");
    check(X509_add_ext(cert.get(), ext.get(), -1) == 1, "X509_add_ext");
  }
  check(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0, "X509_sign");

  bio_ptr cert_bio(BIO_new(BIO_s_mem()));
  bio_ptr key_bio(BIO_new(BIO_s_mem()));
  check(cert_bio && key_bio, "BIO_new");
  check(PEM_write_bio_X509(cert_bio.get(), cert.get()) == 1, "PEM_write_bio_X509");
  check(PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) ==
            1,
        "PEM_write_bio_PrivateKey");
  return {bio_text(cert_bio.get()), bio_text(key_bio.get())};
}

temp_file::temp_file(const std::string& contents) {
  static std::atomic<int> counter{0};
  path_ = std::filesystem::temp_directory_path() /
          ("sluice-openai-test-" + std::to_string(::getpid()) + "-" +
           std::to_string(counter.fetch_add(1)) + ".pem");
  std::ofstream out(path_, std::ios::binary);
  out << contents;
  if (!out.flush()) throw std::runtime_error("cannot write " + path_.string());
}

temp_file::~temp_file() {
  std::error_code ignored;
  std::filesystem::remove(path_, ignored);
}

tls_test_proxy::tls_test_proxy(const test_certificate& certificate, unsigned short backend_port)
    : tls_(ssl::context::tls_server),
      acceptor_(ioc_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)),
      backend_port_(backend_port) {
  tls_.use_certificate_chain(net::buffer(certificate.cert_pem));
  tls_.use_private_key(net::buffer(certificate.key_pem), ssl::context::pem);
  port_ = acceptor_.local_endpoint().port();
  net::co_spawn(ioc_, accept_loop(), [](std::exception_ptr e) {
    if (e) ADD_FAILURE() << "TLS proxy accept loop threw";
  });
  thread_ = std::thread([this] { ioc_.run(); });
}

tls_test_proxy::~tls_test_proxy() {
  ioc_.stop();
  thread_.join();
}

net::awaitable<void> tls_test_proxy::accept_loop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor_.async_accept(tuple_awaitable);
    if (ec) co_return;
    net::co_spawn(ioc_, relay(std::move(socket)), [](std::exception_ptr e) {
      if (e) ADD_FAILURE() << "TLS proxy relay threw";
    });
  }
}

net::awaitable<void> tls_test_proxy::relay(tcp::socket client_socket) {
  using namespace net::experimental::awaitable_operators;
  ssl::stream<tcp::socket> client(std::move(client_socket), tls_);
  auto [hec] = co_await client.async_handshake(ssl::stream_base::server, tuple_awaitable);
  if (hec) co_return;  // e.g. the client rejected our certificate
  tcp::socket backend(ioc_);
  auto [cec] = co_await backend.async_connect(
      tcp::endpoint(net::ip::make_address("127.0.0.1"), backend_port_), tuple_awaitable);
  if (cec) co_return;
  // One direction ending cancels the other; then both connections close.
  co_await (pump(client, backend) || pump(backend, client));
  boost::system::error_code ignored;
  backend.shutdown(tcp::socket::shutdown_both, ignored);
  backend.close(ignored);
  client.lowest_layer().close(ignored);
}

}  // namespace sluice::test

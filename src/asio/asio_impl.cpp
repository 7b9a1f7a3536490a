// The one translation unit that compiles Asio and Beast (separate compilation):
// every other file includes only their declarations, so they are built once.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>

// asio_echo: an echo server written with standalone Asio and C++20
// coroutines, a baseline for baton-echo.
//
// Built twice by bench/peers/CMakeLists.txt: asio_epoll (Asio's default
// reactor, epoll) and asio_uring (ASIO_HAS_IO_URING + ASIO_DISABLE_EPOLL,
// so every socket operation goes through io_uring). One thread, one
// io_context, one fixed 16 KiB buffer per connection. Prints
// "listening on HOST:PORT" like the baton apps.
//
//   asio_epoll --listen 127.0.0.1:0
#include <cstdio>
#include <string>

#include "asio.hpp"

namespace {

using asio::ip::tcp;

asio::awaitable<void> Echo(tcp::socket socket) {
  char data[16 * 1024];
  while (true) {
    asio::error_code ec;
    size_t n = co_await socket.async_read_some(
        asio::buffer(data), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    co_await asio::async_write(socket, asio::buffer(data, n),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
  }
}

asio::awaitable<void> Listen(tcp::acceptor acceptor) {
  while (true) {
    asio::error_code ec;
    tcp::socket socket = co_await acceptor.async_accept(
        asio::redirect_error(asio::use_awaitable, ec));
    if (ec) continue;
    socket.set_option(tcp::no_delay(true));
    asio::co_spawn(acceptor.get_executor(), Echo(std::move(socket)),
                   asio::detached);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen_at = "127.0.0.1:0";
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if ((arg == "--listen" || arg == "-listen") && i + 1 < argc) {
      listen_at = argv[++i];
    } else if (arg.rfind("--listen=", 0) == 0) {
      listen_at = arg.substr(9);
    } else {
      std::fprintf(stderr, "usage: %s [--listen HOST:PORT]\n", argv[0]);
      return 2;
    }
  }
  size_t colon = listen_at.rfind(':');
  if (colon == std::string::npos) {
    std::fprintf(stderr, "bad --listen %s\n", listen_at.c_str());
    return 2;
  }
  asio::error_code ec;
  asio::ip::address host =
      asio::ip::make_address(listen_at.substr(0, colon), ec);
  if (ec) {
    std::fprintf(stderr, "bad --listen %s\n", listen_at.c_str());
    return 2;
  }
  unsigned short port =
      static_cast<unsigned short>(std::stoi(listen_at.substr(colon + 1)));
  asio::io_context io(1);
  tcp::acceptor acceptor(io);
  tcp::endpoint endpoint(host, port);
  acceptor.open(endpoint.protocol());
  acceptor.set_option(tcp::acceptor::reuse_address(true));
  acceptor.bind(endpoint, ec);
  if (ec) {
    std::fprintf(stderr, "bind %s: %s\n", listen_at.c_str(),
                 ec.message().c_str());
    return 1;
  }
  acceptor.listen(4096);
  tcp::endpoint bound = acceptor.local_endpoint();
  std::printf("listening on %s:%d\n", bound.address().to_string().c_str(),
              bound.port());
  std::fflush(stdout);
  asio::co_spawn(io, Listen(std::move(acceptor)), asio::detached);
  io.run();
  return 0;
}

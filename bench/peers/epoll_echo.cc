// epoll_echo: a plain single-threaded epoll echo server, the honest baseline
// for baton-echo.
//
// Level-triggered, non-blocking sockets, one fixed 16 KiB buffer per
// connection, nothing allocated per message. A read is echoed with write();
// bytes the kernel does not take at once stay in the connection's buffer and
// EPOLLOUT is armed until they are gone (reading pauses meanwhile, which is
// the back-pressure). Prints "listening on HOST:PORT" like the baton apps.
//
//   epoll_echo --listen 127.0.0.1:0
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

constexpr size_t kBufferSize = 16 * 1024;

struct Conn {
  int fd = -1;
  size_t pending_off = 0;  // unsent bytes are buf[pending_off, pending_end)
  size_t pending_end = 0;
  char buf[kBufferSize];
};

bool ParseHostPort(const std::string& text, sockaddr_in* out) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = text.substr(0, colon);
  *out = {};
  out->sin_family = AF_INET;
  out->sin_port = htons(static_cast<uint16_t>(atoi(text.c_str() + colon + 1)));
  return inet_pton(AF_INET, host.c_str(), &out->sin_addr) == 1;
}

void CloseConn(int epfd, std::vector<std::unique_ptr<Conn>>& conns, int fd) {
  epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nullptr);
  close(fd);
  conns[fd].reset();
}

// Sends what is pending; returns false if the connection broke.
bool Flush(Conn* c) {
  while (c->pending_off < c->pending_end) {
    ssize_t n = send(c->fd, c->buf + c->pending_off,
                     c->pending_end - c->pending_off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      if (errno == EINTR) continue;
      return false;
    }
    c->pending_off += static_cast<size_t>(n);
  }
  c->pending_off = c->pending_end = 0;
  return true;
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
      std::fprintf(stderr, "usage: epoll_echo [--listen HOST:PORT]\n");
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  sockaddr_in addr;
  if (!ParseHostPort(listen_at, &addr)) {
    std::fprintf(stderr, "epoll_echo: bad --listen %s\n", listen_at.c_str());
    return 2;
  }
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(lfd, 4096) != 0) {
    std::fprintf(stderr, "epoll_echo: bind %s: %s\n", listen_at.c_str(),
                 std::strerror(errno));
    return 1;
  }
  socklen_t len = sizeof(addr);
  getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  char host[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &addr.sin_addr, host, sizeof(host));
  std::printf("listening on %s:%d\n", host, ntohs(addr.sin_port));
  std::fflush(stdout);

  int epfd = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = lfd;
  epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
  std::vector<std::unique_ptr<Conn>> conns(1024);
  epoll_event events[256];
  while (true) {
    int n = epoll_wait(epfd, events, 256, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::perror("epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        while (true) {
          int cfd =
              accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (cfd < 0) break;  // EAGAIN, or EMFILE: retried on the next event
          setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
          if (static_cast<size_t>(cfd) >= conns.size()) {
            conns.resize(static_cast<size_t>(cfd) * 2);
          }
          conns[cfd] = std::make_unique<Conn>();
          conns[cfd]->fd = cfd;
          epoll_event cev{};
          cev.events = EPOLLIN | EPOLLRDHUP;
          cev.data.fd = cfd;
          epoll_ctl(epfd, EPOLL_CTL_ADD, cfd, &cev);
        }
        continue;
      }
      Conn* c = conns[fd].get();
      if (c == nullptr) continue;
      if (c->pending_end > 0) {  // waiting for EPOLLOUT
        if (!Flush(c)) {
          CloseConn(epfd, conns, fd);
          continue;
        }
        if (c->pending_end == 0) {
          epoll_event cev{};
          cev.events = EPOLLIN | EPOLLRDHUP;
          cev.data.fd = fd;
          epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &cev);
        }
        continue;
      }
      ssize_t r = recv(fd, c->buf, kBufferSize, 0);
      if (r <= 0) {
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        CloseConn(epfd, conns, fd);
        continue;
      }
      c->pending_off = 0;
      c->pending_end = static_cast<size_t>(r);
      if (!Flush(c)) {
        CloseConn(epfd, conns, fd);
        continue;
      }
      if (c->pending_end > 0) {
        epoll_event cev{};
        cev.events = EPOLLOUT;
        cev.data.fd = fd;
        epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &cev);
      }
    }
  }
}

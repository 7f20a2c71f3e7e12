#include "server/listener_watchdog.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <utility>

namespace mpc {
namespace {

// The HTTP/2 client connection preface and an empty SETTINGS frame (RFC 9113 §3.4).
constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0";
constexpr std::size_t kPrefaceBytes = sizeof(kPreface) - 1;

// A connected socket to host:port, or -1.
int Connect(const std::string& host, int port) {
  sockaddr_storage address{};
  socklen_t length = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<std::uint16_t>(port));
    length = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<std::uint16_t>(port));
    length = sizeof(sockaddr_in6);
  } else {
    return -1;
  }
  const int fd = socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;  // out of descriptors: the listener cannot accept either
  if (connect(fd, reinterpret_cast<const sockaddr*>(&address), length) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

ListenerWatchdog::ListenerWatchdog(const ListenerWatchdogOptions& options,
                                   absl::AnyInvocable<void()> on_failure)
    : options_(options), on_failure_(std::move(on_failure)) {
  thread_ = std::thread([this] { Run(); });
}

ListenerWatchdog::~ListenerWatchdog() {
  stop_.Notify();
  thread_.join();
}

bool ListenerWatchdog::ListenerAnswers(const ListenerWatchdogOptions& options) {
  const int fd = Connect(options.host, options.port);
  if (fd < 0) return false;
  // A TLS server takes the preface for a bad handshake and closes at once; waiting for its
  // handshake timeout instead would keep its error log quiet but make every check slow, so the
  // preface goes to both.
  bool answered = false;
  if (send(fd, kPreface, kPrefaceBytes, MSG_NOSIGNAL) == static_cast<ssize_t>(kPrefaceBytes)) {
    pollfd poll_fd{fd, POLLIN, 0};
    const int timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(options.answer_timeout));
    // Any byte or the server closing counts: only an accepted connection can do either.
    answered = poll(&poll_fd, 1, timeout_ms) == 1 && (poll_fd.revents & (POLLIN | POLLHUP)) != 0;
  }
  close(fd);
  return answered;
}

void ListenerWatchdog::Run() {
  int failed = 0;
  while (!stop_.WaitForNotificationWithTimeout(options_.period)) {
    failed = ListenerAnswers(options_) ? 0 : failed + 1;
    if (failed >= options_.failures) {
      on_failure_();
      return;
    }
  }
}

}  // namespace mpc

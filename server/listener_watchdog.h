#ifndef MPC_SERVER_LISTENER_WATCHDOG_H_
#define MPC_SERVER_LISTENER_WATCHDOG_H_

// Notices that a listening socket no longer accepts connections. gRPC 1.51 (Debian 12) stops
// accepting for good after one accept4() fails with EMFILE (its listener is never re-armed), while
// the connections it already has, health checks over them included, keep working: from outside
// the server looks healthy and serves nobody new. The watchdog connects to the server's own port
// every `period` and sends the HTTP/2 preface; a server that accepts answers (a plaintext one with
// its SETTINGS, a TLS one by closing the connection, whose handshake is garbage to it); one that
// does not leaves the connection in the kernel's backlog, unanswered. After `failures` such checks
// in a row it calls `on_failure` once (mpcd then turns health NOT_SERVING and exits non-zero for
// its supervisor).

#include <string>
#include <thread>

#include "absl/functional/any_invocable.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace mpc {

struct ListenerWatchdogOptions {
  std::string host;  // an address of the listener (IPv4 or IPv6 literal)
  int port = 0;
  absl::Duration period = absl::Seconds(5);
  // How long one check waits for the server's answer.
  absl::Duration answer_timeout = absl::Seconds(5);
  int failures = 3;
};

class ListenerWatchdog {
 public:
  ListenerWatchdog(const ListenerWatchdogOptions& options, absl::AnyInvocable<void()> on_failure);
  // Stops the checks (waits for the one running).
  ~ListenerWatchdog();
  ListenerWatchdog(const ListenerWatchdog&) = delete;
  ListenerWatchdog& operator=(const ListenerWatchdog&) = delete;

  // One check, on the calling thread: true when the listener accepted and answered in time.
  static bool ListenerAnswers(const ListenerWatchdogOptions& options);

 private:
  void Run();

  const ListenerWatchdogOptions options_;
  absl::AnyInvocable<void()> on_failure_;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace mpc

#endif  // MPC_SERVER_LISTENER_WATCHDOG_H_

#ifndef MPC_SERVER_SECURITY_H_
#define MPC_SERVER_SECURITY_H_

// TLS, mutual TLS and the bearer-token check of mpcd (docs/operations.md, "TLS and
// authentication").
//
// With --tls_client_ca, every call on the port (health and reflection included) needs a client
// certificate signed by that CA: the TLS handshake accepts any certificate the client can prove it
// holds, and a processor on the credentials verifies it (chain, dates, clientAuth purpose) before
// any service sees the call, so a client without the right certificate gets UNAUTHENTICATED with
// the reason. The token is checked by MpcService at the start of every handler (for a Control
// stream: when it opens), before the request is validated or queued; the standard health and
// reflection services do not check it (Kubernetes probes carry no token, and reflection serves
// only the public schema of proto/).

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/support/string_ref.h>

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/server_config.h"

namespace mpc {

// The contents behind a SecurityConfig's file names, checked.
struct ServerSecurity {
  // TLS (with or without required client certificates) or plaintext.
  std::shared_ptr<grpc::ServerCredentials> credentials;
  // The bearer token MpcService calls must carry; "" = none required.
  std::string auth_token;
};

// Reads and checks the files: each must be readable, a certificate file must hold a PEM
// certificate, the key must be a PEM private key matching the certificate, the token must be one
// line of printable ASCII without spaces (surrounding whitespace, e.g. a final newline, is
// dropped). Errors are INVALID_ARGUMENT and name the flag ("tls_key: ...").
// `on_refused_certificate` (optional) is called, from gRPC's threads, for every call mutual TLS
// refuses.
absl::StatusOr<ServerSecurity> LoadServerSecurity(
    const SecurityConfig& config, std::function<void()> on_refused_certificate = nullptr);

// One line for the log: "plaintext", "TLS", "mutual TLS"; "+ bearer token" when one is required.
std::string DescribeSecurity(const SecurityConfig& config);

// Compares a call's "authorization: Bearer <token>" metadata with the expected token. The
// comparison is of SHA-256 digests in constant time, so neither the token's bytes nor its length
// leak through timing.
class BearerTokenCheck {
 public:
  using Metadata = std::multimap<grpc::string_ref, grpc::string_ref>;

  // `token` "" = every call passes.
  explicit BearerTokenCheck(const std::string& token);

  bool required() const { return required_; }
  // OK, or UNAUTHENTICATED saying what is missing (never echoing what the client sent).
  absl::Status Check(const Metadata& client_metadata) const;

 private:
  bool required_ = false;
  std::array<unsigned char, 32> expected_digest_{};
};

}  // namespace mpc

#endif  // MPC_SERVER_SECURITY_H_

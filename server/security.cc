#include "server/security.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/auth_metadata_processor.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/process_lifetime.h"
#include "solver/status_macros.h"

namespace mpc {
namespace {

// Before main: every binary with the server links this file (common/process_lifetime.h says why).
[[maybe_unused]] const bool kOpenSslKeptUntilExit = KeepOpenSslUntilExit();

using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;
using X509Ptr = std::unique_ptr<X509, decltype(&X509_free)>;
using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using StorePtr = std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)>;
using StoreContextPtr = std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)>;
using X509StackPtr = std::unique_ptr<STACK_OF(X509), void (*)(STACK_OF(X509)*)>;

absl::StatusOr<std::string> ReadFile(const char* flag, const std::string& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": cannot read ", path, ": is a directory"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": cannot read ", path, ": ", std::strerror(errno)));
  }
  std::string contents((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read ", path));
  return contents;
}

BioPtr MemoryBio(absl::string_view pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
}

// The first certificate in `pem`, or null. OpenSSL's error queue is left empty either way: gRPC
// reads the same thread-local queue during its own handshakes.
X509Ptr FirstCertificate(absl::string_view pem) {
  BioPtr bio = MemoryBio(pem);
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr, &X509_free);
  ERR_clear_error();
  return cert;
}

// The private key in `pem`, or null. An encrypted key is refused instead of prompting for a
// passphrase on the terminal (OpenSSL's default when no callback is given).
KeyPtr PrivateKey(const std::string& pem) {
  pem_password_cb* no_passphrase = [](char*, int, int, void*) { return 0; };
  BioPtr bio = MemoryBio(pem);
  KeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr) : nullptr,
             &EVP_PKEY_free);
  ERR_clear_error();
  return key;
}

absl::StatusOr<std::string> ReadCertificates(const char* flag, const std::string& path) {
  MPC_ASSIGN_OR_RETURN(std::string pem, ReadFile(flag, path));
  if (FirstCertificate(pem) == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": ", path, " holds no PEM certificate (\"BEGIN CERTIFICATE\")"));
  }
  return pem;
}

std::array<unsigned char, 32> Sha256(absl::string_view data) {
  std::array<unsigned char, 32> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data());
  return digest;
}

absl::string_view View(const grpc::string_ref& ref) { return {ref.data(), ref.size()}; }

// Every certificate in `pem`, in order (none: an empty stack).
X509StackPtr Certificates(absl::string_view pem) {
  X509StackPtr stack(sk_X509_new_null(), [](STACK_OF(X509) * certificates) {
    sk_X509_pop_free(certificates, X509_free);
  });
  BioPtr bio = MemoryBio(pem);
  while (X509* certificate = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    sk_X509_push(stack.get(), certificate);
  }
  ERR_clear_error();
  return stack;
}

// When `certificate` stops being valid (0 if unreadable: then it is never trusted from cache).
std::time_t NotAfter(const X509* certificate) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(certificate), &tm) != 1) return 0;
  return timegm(&tm);
}

// Mutual TLS whose verdict reaches the client as a status. The handshake asks for a certificate
// but lets any through (GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY; TLS still proves that
// the client holds the certificate's key); this processor then verifies it against
// --tls_client_ca the way OpenSSL does in a handshake (chain, validity dates, the clientAuth
// purpose) before any service sees the call. A handshake that failed would reach the client as
// UNAVAILABLE, which clients retry as a transient fault and which says nothing of the cause; a
// call refused here is UNAUTHENTICATED with the reason. It runs for every call of every service
// on the port, health and reflection included.
class ClientCertificateProcessor : public grpc::AuthMetadataProcessor {
 public:
  // `ca_pem` holds at least one certificate (ReadCertificates checked); `on_refused` may be null.
  ClientCertificateProcessor(absl::string_view ca_pem, std::function<void()> on_refused)
      : on_refused_(std::move(on_refused)) {
    X509StackPtr authorities = Certificates(ca_pem);
    for (int i = 0; i < sk_X509_num(authorities.get()); ++i) {
      X509_STORE_add_cert(store_.get(), sk_X509_value(authorities.get(), i));
    }
    ERR_clear_error();
  }

  // Verification is CPU work only, and cached: it runs in place on gRPC's thread.
  bool IsBlocking() const override { return false; }

  grpc::Status Process(const InputMetadata& /*auth_metadata*/, grpc::AuthContext* context,
                       OutputMetadata* /*consumed*/, OutputMetadata* /*response*/) override {
    const absl::Status verdict = Check(*context);
    if (verdict.ok()) return grpc::Status::OK;
    if (on_refused_) on_refused_();
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, std::string(verdict.message()));
  }

 private:
  // Verified certificates are remembered (until they expire) so that a connection's calls cost a
  // hash, not a signature check each; the bound keeps many distinct clients from growing it.
  static constexpr std::size_t kMaxRemembered = 1024;

  absl::Status Check(const grpc::AuthContext& context) {
    const std::vector<grpc::string_ref> leaf =
        context.FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
    if (leaf.empty()) {
      return absl::UnauthenticatedError("mutual TLS: no client certificate was presented");
    }
    const std::vector<grpc::string_ref> chain =
        context.FindPropertyValues(GRPC_X509_PEM_CERT_CHAIN_PROPERTY_NAME);
    return Verify(View(leaf.front()), chain.empty() ? absl::string_view() : View(chain.front()));
  }

  absl::Status Verify(absl::string_view leaf_pem, absl::string_view chain_pem) {
    const std::array<unsigned char, 32> digest = Sha256(absl::StrCat(leaf_pem, chain_pem));
    const std::string key(digest.begin(), digest.end());
    const std::time_t now = std::time(nullptr);
    {
      absl::MutexLock lock(&mutex_);
      const auto it = verified_until_.find(key);
      if (it != verified_until_.end() && now < it->second) return absl::OkStatus();
    }
    X509Ptr leaf = FirstCertificate(leaf_pem);
    if (leaf == nullptr) {
      return absl::UnauthenticatedError("mutual TLS: the client certificate is not readable");
    }
    X509StackPtr untrusted = Certificates(chain_pem);
    StoreContextPtr verification(X509_STORE_CTX_new(), &X509_STORE_CTX_free);
    const bool trusted =
        verification != nullptr &&
        X509_STORE_CTX_init(verification.get(), store_.get(), leaf.get(), untrusted.get()) == 1 &&
        X509_STORE_CTX_set_default(verification.get(), "ssl_client") == 1 &&
        X509_verify_cert(verification.get()) == 1;
    const int error = verification != nullptr ? X509_STORE_CTX_get_error(verification.get())
                                              : X509_V_ERR_OUT_OF_MEM;
    // gRPC's handshakes read the same thread-local error queue.
    ERR_clear_error();
    if (!trusted) {
      return absl::UnauthenticatedError(
          absl::StrCat("mutual TLS: the client certificate is not trusted (",
                       X509_verify_cert_error_string(error), ")"));
    }
    absl::MutexLock lock(&mutex_);
    if (verified_until_.size() >= kMaxRemembered) verified_until_.clear();
    verified_until_[key] = NotAfter(leaf.get());
    return absl::OkStatus();
  }

  StorePtr store_{X509_STORE_new(), &X509_STORE_free};
  std::function<void()> on_refused_;
  absl::Mutex mutex_;
  // SHA-256 of a verified certificate and its chain -> when the certificate expires.
  absl::flat_hash_map<std::string, std::time_t> verified_until_ ABSL_GUARDED_BY(mutex_);
};

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> LoadTlsCredentials(
    const SecurityConfig& config, std::function<void()> on_refused_certificate) {
  MPC_ASSIGN_OR_RETURN(std::string cert_chain, ReadCertificates("tls_cert", config.tls_cert_file));
  MPC_ASSIGN_OR_RETURN(std::string private_key, ReadFile("tls_key", config.tls_key_file));
  KeyPtr key = PrivateKey(private_key);
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("tls_key: ", config.tls_key_file, " holds no unencrypted PEM private key"));
  }
  X509Ptr cert = FirstCertificate(cert_chain);
  const bool matches = X509_check_private_key(cert.get(), key.get()) == 1;
  ERR_clear_error();
  if (!matches) {
    return absl::InvalidArgumentError(absl::StrCat("tls_key: ", config.tls_key_file,
                                                   " is not the key of the certificate in ",
                                                   config.tls_cert_file));
  }

  grpc::SslServerCredentialsOptions options(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  options.pem_key_cert_pairs.push_back({std::move(private_key), std::move(cert_chain)});
  if (config.tls_client_ca_file.empty()) return grpc::SslServerCredentials(options);

  // The CA list is still sent in the handshake's certificate request, so a client holding several
  // certificates can pick the right one.
  MPC_ASSIGN_OR_RETURN(options.pem_root_certs,
                       ReadCertificates("tls_client_ca", config.tls_client_ca_file));
  options.client_certificate_request = GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY;
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::SslServerCredentials(options);
  credentials->SetAuthMetadataProcessor(std::make_shared<ClientCertificateProcessor>(
      options.pem_root_certs, std::move(on_refused_certificate)));
  return credentials;
}

absl::StatusOr<std::string> ReadToken(const std::string& path) {
  MPC_ASSIGN_OR_RETURN(std::string contents, ReadFile("auth_token_file", path));
  const std::string token(absl::StripAsciiWhitespace(contents));
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("auth_token_file: ", path, " is empty"));
  }
  for (const char c : token) {
    // What an HTTP/2 header value can carry after "Bearer " without quoting.
    if (c < '!' || c > '~') {
      return absl::InvalidArgumentError(
          absl::StrCat("auth_token_file: ", path,
                       " must hold one token of printable ASCII characters without spaces"));
    }
  }
  return token;
}

}  // namespace

absl::StatusOr<ServerSecurity> LoadServerSecurity(const SecurityConfig& config,
                                                  std::function<void()> on_refused_certificate) {
  ServerSecurity security;
  if (config.tls()) {
    MPC_ASSIGN_OR_RETURN(security.credentials,
                         LoadTlsCredentials(config, std::move(on_refused_certificate)));
  } else {
    security.credentials = grpc::InsecureServerCredentials();
  }
  if (!config.auth_token_file.empty()) {
    MPC_ASSIGN_OR_RETURN(security.auth_token, ReadToken(config.auth_token_file));
  }
  return security;
}

std::string DescribeSecurity(const SecurityConfig& config) {
  std::string transport = !config.tls()                       ? "plaintext"
                          : config.tls_client_ca_file.empty() ? "TLS"
                                                              : "mutual TLS";
  if (config.auth_token_file.empty()) return transport;
  return absl::StrCat(transport, " + bearer token");
}

BearerTokenCheck::BearerTokenCheck(const std::string& token)
    : required_(!token.empty()), expected_digest_(Sha256(token)) {}

absl::Status BearerTokenCheck::Check(const Metadata& client_metadata) const {
  if (!required_) return absl::OkStatus();
  const auto [first, last] = client_metadata.equal_range("authorization");
  if (first == last) {
    return absl::UnauthenticatedError("missing \"authorization: Bearer <token>\" metadata");
  }
  if (std::next(first) != last) {
    return absl::UnauthenticatedError("more than one \"authorization\" metadata entry");
  }
  const absl::string_view value(first->second.data(), first->second.size());
  // The scheme name is case-insensitive (RFC 7235 §2.1).
  constexpr absl::string_view kScheme = "bearer ";
  if (!absl::StartsWithIgnoreCase(value, kScheme)) {
    return absl::UnauthenticatedError("\"authorization\" metadata: expected \"Bearer <token>\"");
  }
  const std::array<unsigned char, 32> digest =
      Sha256(absl::StripAsciiWhitespace(value.substr(kScheme.size())));
  if (CRYPTO_memcmp(digest.data(), expected_digest_.data(), digest.size()) != 0) {
    return absl::UnauthenticatedError("invalid bearer token");
  }
  return absl::OkStatus();
}

}  // namespace mpc

#include "server/security.h"

#include <grpc/grpc_security_constants.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "solver/status_macros.h"

namespace mpc {
namespace {

using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;
using X509Ptr = std::unique_ptr<X509, decltype(&X509_free)>;
using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

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

BioPtr MemoryBio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
}

// The first certificate in `pem`, or null. OpenSSL's error queue is left empty either way: gRPC
// reads the same thread-local queue during its own handshakes.
X509Ptr FirstCertificate(const std::string& pem) {
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

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> LoadTlsCredentials(
    const SecurityConfig& config) {
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
  if (!config.tls_client_ca_file.empty()) {
    MPC_ASSIGN_OR_RETURN(options.pem_root_certs,
                         ReadCertificates("tls_client_ca", config.tls_client_ca_file));
    options.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(options);
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

std::array<unsigned char, 32> Sha256(absl::string_view data) {
  std::array<unsigned char, 32> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data());
  return digest;
}

}  // namespace

absl::StatusOr<ServerSecurity> LoadServerSecurity(const SecurityConfig& config) {
  ServerSecurity security;
  if (config.tls()) {
    MPC_ASSIGN_OR_RETURN(security.credentials, LoadTlsCredentials(config));
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

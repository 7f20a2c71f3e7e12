#ifndef MPC_COMMON_OPENSSL_LIFETIME_H_
#define MPC_COMMON_OPENSSL_LIFETIME_H_

namespace mpc {

// Opts the process out of OpenSSL's atexit cleanup, so that OpenSSL's state lives until the
// process ends. gRPC leaves some of its threads running past main's return (they are never
// joined), and a thread that has used OpenSSL (a TLS handshake, a hashed token or graph) frees
// OpenSSL's per-thread state as it ends; the atexit cleanup frees the same state and assumes every
// thread has stopped, so the two can meet in a double free at exit (ASan caught one in an exiting
// mpcd). Only the first initialisation of OpenSSL decides, so the libraries that use gRPC with
// OpenSSL call this from a static initialiser. Returns whether OpenSSL accepted the option.
bool KeepOpenSslUntilExit();

}  // namespace mpc

#endif  // MPC_COMMON_OPENSSL_LIFETIME_H_

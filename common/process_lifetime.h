#ifndef MPC_COMMON_PROCESS_LIFETIME_H_
#define MPC_COMMON_PROCESS_LIFETIME_H_

// How mpcd and mpcctl end. gRPC leaves some of its threads running past main's return (they are
// never joined, and its last shutdown may run on a thread of its own), and those threads race what
// exit() runs: static destructors and atexit handlers. ASan runs of mpcd and mpcctl caught a
// double free in such a thread at exit, whose report was cut short (the exit's leak check froze
// the thread, and the process exited 0).

namespace mpc {

// Opts the process out of OpenSSL's atexit cleanup, so that OpenSSL's state lives until the
// process ends: a thread that has used OpenSSL (a TLS handshake, a hashed token or graph) frees
// OpenSSL's per-thread state as it ends, and the cleanup frees the same state assuming every
// thread has stopped. Only the first initialisation of OpenSSL decides, so the libraries that use
// gRPC with OpenSSL call this from a static initialiser. Returns whether OpenSSL accepted it.
bool KeepOpenSslUntilExit();

// Ends the process with `code` once main's own objects are gone: flushes stdout and stderr, runs
// LeakSanitizer's check now in sanitizer builds, then exits without static destructors or atexit
// handlers, so that no thread gRPC left running can race them.
[[noreturn]] void ExitWithoutTeardown(int code);

}  // namespace mpc

#endif  // MPC_COMMON_PROCESS_LIFETIME_H_

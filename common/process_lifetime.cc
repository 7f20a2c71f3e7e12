#include "common/process_lifetime.h"

#include <openssl/crypto.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(leak_sanitizer)
#define MPC_LEAK_CHECKED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define MPC_LEAK_CHECKED 1
#endif
#if defined(MPC_LEAK_CHECKED)
#include <sanitizer/lsan_interface.h>
#endif

namespace mpc {

bool KeepOpenSslUntilExit() { return OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr) == 1; }

void ExitWithoutTeardown(int code) {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
#if defined(MPC_LEAK_CHECKED)
  __lsan_do_leak_check();  // what exit() would have run; a leak still fails the process
#endif
  std::_Exit(code);
}

}  // namespace mpc

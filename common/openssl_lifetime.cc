#include "common/openssl_lifetime.h"

#include <openssl/crypto.h>

namespace mpc {

bool KeepOpenSslUntilExit() { return OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr) == 1; }

}  // namespace mpc

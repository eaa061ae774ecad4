// Test-only: the parts of OpenSSL's libcrypto the Linux software keystore uses.
#ifndef EID_COPENSSL_SHIM_H
#define EID_COPENSSL_SHIM_H
#include <openssl/evp.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/obj_mac.h>
#include <openssl/err.h>
#endif

/* OpenSSL's libcrypto (Debian libssl-dev), for verifying plugin signatures (Ed25519). */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/bio.h>
#include <openssl/err.h>

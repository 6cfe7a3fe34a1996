#include "hub/net/tls.h"

#include <openssl/err.h>

namespace rx::hub {
namespace {

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  if (!e) return "unknown TLS error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  ERR_clear_error();
  return buf;
}

}  // namespace

Result<std::unique_ptr<TlsContext>> TlsContext::load(const std::string& cert_file, const std::string& key_file) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) return make_error("tls_failed", "cannot create a TLS context: " + openssl_error());
  std::unique_ptr<TlsContext> c(new TlsContext(ctx));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1)
    return make_error("tls_failed", "cannot load the certificate " + cert_file + ": " + openssl_error());
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    return make_error("tls_failed", "cannot load the key " + key_file + ": " + openssl_error());
  if (SSL_CTX_check_private_key(ctx) != 1)
    return make_error("tls_failed", "the key " + key_file + " does not match the certificate");
  // Only HTTP/1.1 is spoken here: a client offering h2 must not think it got it.
  SSL_CTX_set_alpn_select_cb(
      ctx,
      [](SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen, void*) {
        static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
        unsigned char* selected = nullptr;
        if (SSL_select_next_proto(&selected, outlen, kHttp11, sizeof(kHttp11), in, inlen) != OPENSSL_NPN_NEGOTIATED)
          return SSL_TLSEXT_ERR_NOACK;
        *out = selected;
        return SSL_TLSEXT_ERR_OK;
      },
      nullptr);
  return c;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

TlsSession::TlsSession(const TlsContext& context) : ssl_(SSL_new(context.get())) {
  in_ = BIO_new(BIO_s_mem());
  out_ = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(in_, -1);  // an empty input BIO means "more to come", not EOF
  SSL_set_bio(ssl_, in_, out_);
  SSL_set_accept_state(ssl_);
}

TlsSession::~TlsSession() { SSL_free(ssl_); }

bool TlsSession::established() const { return SSL_is_init_finished(ssl_); }

void TlsSession::drain(std::string& wire) {
  char buf[16 * 1024];
  int n;
  while ((n = BIO_read(out_, buf, sizeof(buf))) > 0) wire.append(buf, size_t(n));
}

TlsSession::Read TlsSession::receive(std::span<const uint8_t> ciphertext, std::string& plain, std::string& wire) {
  if (!ciphertext.empty() && BIO_write(in_, ciphertext.data(), int(ciphertext.size())) != int(ciphertext.size())) {
    error_ = "cannot buffer TLS input";
    return Read::kError;
  }
  if (!SSL_is_init_finished(ssl_)) {
    int r = SSL_do_handshake(ssl_);
    drain(wire);
    if (r != 1) {
      int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return Read::kOk;
      error_ = "TLS handshake failed: " + openssl_error();
      return Read::kError;
    }
  }
  char buf[16 * 1024];
  while (true) {
    int n = SSL_read(ssl_, buf, sizeof(buf));
    if (n > 0) {
      plain.append(buf, size_t(n));
      continue;
    }
    int e = SSL_get_error(ssl_, n);
    drain(wire);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return Read::kOk;
    if (e == SSL_ERROR_ZERO_RETURN) return Read::kClosed;
    error_ = "TLS error: " + openssl_error();
    return Read::kError;
  }
}

void TlsSession::send(std::span<const uint8_t> plain, std::string& wire) {
  // A memory BIO takes everything: SSL_write completes in one call.
  if (!plain.empty()) (void)SSL_write(ssl_, plain.data(), int(plain.size()));
  drain(wire);
}

void TlsSession::shutdown(std::string& wire) {
  if (SSL_is_init_finished(ssl_)) (void)SSL_shutdown(ssl_);
  drain(wire);
}

}  // namespace rx::hub

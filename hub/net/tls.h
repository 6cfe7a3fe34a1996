// TLS for the hub's server sockets: OpenSSL over memory BIOs, so the socket I/O stays on the libuv
// loop and TLS is just a transform of bytes in and bytes out. TlsContext loads the certificate
// once; each connection has a TlsSession.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <span>
#include <string>

#include "protocol/error.h"

namespace rx::hub {

class TlsContext {
 public:
  static Result<std::unique_ptr<TlsContext>> load(const std::string& cert_file, const std::string& key_file);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  SSL_CTX* get() const { return ctx_; }

 private:
  explicit TlsContext(SSL_CTX* ctx) : ctx_(ctx) {}
  SSL_CTX* ctx_;
};

class TlsSession {
 public:
  explicit TlsSession(const TlsContext& context);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  enum class Read { kOk, kClosed, kError };
  // Ciphertext from the socket in; the plaintext it carries is appended to `plain`, and what TLS
  // itself must send (handshake, alerts, tickets) to `wire`. kClosed: the peer sent close_notify.
  Read receive(std::span<const uint8_t> ciphertext, std::string& plain, std::string& wire);
  // Encrypts `plain`; the ciphertext is appended to `wire`.
  void send(std::span<const uint8_t> plain, std::string& wire);
  // close_notify, appended to `wire`.
  void shutdown(std::string& wire);
  bool established() const;
  const std::string& error() const { return error_; }

 private:
  void drain(std::string& wire);
  SSL* ssl_;
  BIO* in_;   // owned by ssl_
  BIO* out_;  // owned by ssl_
  std::string error_;
};

}  // namespace rx::hub

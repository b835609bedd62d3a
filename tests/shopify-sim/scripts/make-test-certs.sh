#!/usr/bin/env bash
# Regenerates the simulator's TEST-ONLY TLS material (a private CA and a certificate for
# *.myshopify.com, localhost and 127.0.0.1), valid for 100 years. The keys are public on purpose:
# they only let clients that explicitly trust certs/ca.pem talk TLS to the simulator.
set -euo pipefail
cd "$(dirname "$0")/../certs"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 36500 \
  -subj "/CN=shopify-sim test CA" -keyout ca.key -out ca.pem \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=*.myshopify.com" \
  -keyout server.key -out server.csr
cat > server.ext <<'EXT'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:*.myshopify.com,DNS:myshopify.com,DNS:localhost,IP:127.0.0.1
EXT
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 36500 \
  -extfile server.ext -out server.pem
# rustls reads PKCS#8 keys.
openssl pkcs8 -topk8 -nocrypt -in server.key -out server.key.pk8 && mv server.key.pk8 server.key
rm -f server.csr server.ext ca.srl ca.key

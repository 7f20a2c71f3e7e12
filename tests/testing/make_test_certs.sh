#!/usr/bin/env bash
# Makes throw-away certificates for the TLS tests with the openssl CLI (P-256 keys, valid 2 days):
#   ca.pem ca.key                      the test CA
#   server.pem server.key              signed by it, for localhost and 127.0.0.1 (serverAuth)
#   client.pem client.key              signed by it (clientAuth)
#   other_ca.pem other_ca.key          an unrelated CA
#   other_client.pem other_client.key  signed by the unrelated CA (clientAuth)
# Usage: make_test_certs.sh OUT_DIR
set -euo pipefail
out=${1:?usage: make_test_certs.sh OUT_DIR}
mkdir -p "$out"
cd "$out"

# An empty request config, so that only the extensions given below end up in the certificates
# (the system openssl.cnf would make every certificate a CA).
printf '[req]\ndistinguished_name = dn\n[dn]\n' > req.cnf

# name common_name [openssl req options...]: a new key and a certificate for it.
issue() {
  local name=$1 common_name=$2
  shift 2
  openssl req -config req.cnf -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$name.key" -out "$name.pem" -days 2 -subj "/CN=$common_name" "$@" 2>/dev/null
}
ca() { issue "$1" "$2" -addext "basicConstraints=critical,CA:TRUE" \
         -addext "keyUsage=critical,keyCertSign,cRLSign"; }
leaf() {  # name issuer common_name usage [extra openssl options]
  local name=$1 issuer=$2 common_name=$3 usage=$4
  shift 4
  issue "$name" "$common_name" -CA "$issuer.pem" -CAkey "$issuer.key" \
    -addext "basicConstraints=critical,CA:FALSE" -addext "extendedKeyUsage=$usage" "$@"
}

ca ca "mpcd test CA"
ca other_ca "unrelated test CA"
leaf server ca localhost serverAuth -addext "subjectAltName=DNS:localhost,IP:127.0.0.1"
leaf client ca "mpcd test client" clientAuth
leaf other_client other_ca "unrelated test client" clientAuth
rm -f req.cnf

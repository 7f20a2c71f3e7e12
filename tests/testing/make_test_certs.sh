#!/usr/bin/env bash
# Makes throw-away certificates for the TLS tests with the openssl CLI (P-256 keys, valid 2 days):
#   ca.pem ca.key                      the test CA
#   server.pem server.key              signed by it, for localhost and 127.0.0.1 (serverAuth)
#   client.pem client.key              signed by it (clientAuth)
#   other_ca.pem other_ca.key          an unrelated CA
#   other_client.pem other_client.key  signed by the unrelated CA (clientAuth)
#   expired_client.pem .key            signed by the test CA (clientAuth), valid only in Jan 2020
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

# A validity period in the past needs `openssl ca` (req and x509 only count days from now), which
# keeps a database: a throw-away one in its own folder.
mkdir -p ca_db
: > ca_db/index.txt
printf '[ca]\ndefault_ca = test_ca\n[test_ca]\ndatabase = ca_db/index.txt\nnew_certs_dir = ca_db\n%s\n' \
  'default_md = sha256
policy = any_name
copy_extensions = copy
rand_serial = yes
[any_name]
commonName = supplied' > ca_db/ca.cnf
openssl req -config req.cnf -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout expired_client.key -out ca_db/expired_client.csr -subj "/CN=expired test client" \
  -addext "basicConstraints=critical,CA:FALSE" -addext "extendedKeyUsage=clientAuth" 2>/dev/null
openssl ca -batch -config ca_db/ca.cnf -cert ca.pem -keyfile ca.key -in ca_db/expired_client.csr \
  -out expired_client.pem -startdate 20200101000000Z -enddate 20200102000000Z -notext 2>/dev/null
rm -rf ca_db req.cnf

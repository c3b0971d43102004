#!/bin/sh
# The PKI team's side of README "Use your enterprise root", run in the
# directory that holds (or will hold) the root:
#   pki-team.sh root                  an offline RSA-4096 root: root.key
#                                     (encrypted with $ROOT_KEY_PASS), root.pem
#   pki-team.sh sign <csr> <cert.pem> the mesh intermediate from meshid's CSR
# TRUST_DOMAIN names the mesh's trust domain (e.g. example.org). The test
# tests/tests/enterprise_root.rs runs this script as it is.
set -eu
conf="$(dirname "$0")/openssl.cnf"
: "${ROOT_KEY_PASS:?set ROOT_KEY_PASS to the root key's passphrase}"
case "${1:-}" in
root)
  openssl req -x509 -new -newkey rsa:4096 -sha256 -days 3650 \
    -config "$conf" -extensions root_ca \
    -passout env:ROOT_KEY_PASS -keyout root.key -out root.pem
  ;;
sign)
  : "${TRUST_DOMAIN:?set TRUST_DOMAIN to the mesh trust domain}"
  openssl x509 -req -in "$2" -CA root.pem -CAkey root.key \
    -passin env:ROOT_KEY_PASS -days 365 -sha256 \
    -copy_extensions copy -extfile "$conf" -extensions mesh_intermediate \
    -out "$3"
  ;;
*)
  echo "usage: $0 root | sign <csr> <cert.pem>" >&2
  exit 2
  ;;
esac

#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Make a private certificate authority and one node certificate for a ctxdask cluster,
# plus the dask configuration that uses them with encryption required.
#
#   cluster/tls/make-certs.sh [DIR] [HOSTNAME_OR_IP ...]
#
# DIR defaults to $CTXDASK_TLS_DIR (~/.config/ctxdask/tls). Copy DIR to every machine
# (scheduler, workers, clients) at the same path and point DASK_CONFIG at
# DIR/dask-tls.yaml, or pass the files to cluster/start-*.sh with CTXDASK_PROTOCOL=tls.
# Keep ca-key.pem off the workers: it can sign new members into the cluster.
set -euo pipefail
dir="${1:-${CTXDASK_TLS_DIR:-$HOME/.config/ctxdask/tls}}"
shift || true
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(localhost 127.0.0.1 "$(hostname -f 2>/dev/null || hostname)")
days="${CTXDASK_TLS_DAYS:-825}"

mkdir -p "$dir"
chmod 700 "$dir"
umask 077

san=""
for n in "${names[@]}"; do
    if [[ "$n" =~ ^[0-9.]+$ || "$n" == *:* ]]; then san+="IP:$n,"; else san+="DNS:$n,"; fi
done
san="${san%,}"

if [ ! -f "$dir/ca.pem" ]; then
    openssl req -x509 -newkey rsa:3072 -nodes -days "$days" -subj "/CN=ctxdask cluster CA" \
        -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi
openssl req -newkey rsa:3072 -nodes -subj "/CN=ctxdask node" \
    -keyout "$dir/node-key.pem" -out "$dir/node.csr" 2>/dev/null
extfile="$(mktemp)"
trap 'rm -f "$extfile" "$dir/node.csr"' EXIT
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n' "$san" >"$extfile"
openssl x509 -req -in "$dir/node.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" -CAcreateserial \
    -days "$days" -extfile "$extfile" -out "$dir/node.pem" 2>/dev/null
openssl verify -CAfile "$dir/ca.pem" "$dir/node.pem" >/dev/null

cat >"$dir/dask-tls.yaml" <<YAML
# dask configuration for a ctxdask cluster with TLS (written by cluster/tls/make-certs.sh)
distributed:
  comm:
    require-encryption: true
    default-scheme: tls
    tls:
      ca-file: $dir/ca.pem
      scheduler: {cert: $dir/node.pem, key: $dir/node-key.pem}
      worker: {cert: $dir/node.pem, key: $dir/node-key.pem}
      client: {cert: $dir/node.pem, key: $dir/node-key.pem}
YAML
echo "CA and node certificate for ${names[*]} in $dir"
echo "use: export DASK_CONFIG=$dir/dask-tls.yaml CTXDASK_PROTOCOL=tls CTXDASK_TLS_DIR=$dir"

#!/bin/bash
# tests/proxy/mkcerts.sh DIR NAME... - a throwaway test PKI for test upstreams.
#
# Writes DIR/ca.pem and DIR/ca-key.pem (P-256, CA:TRUE, keyUsage
# keyCertSign+cRLSign) unless they already exist, then for each NAME a leaf
# DIR/NAME.pem + DIR/NAME-key.pem signed by that CA (P-256, SAN DNS:NAME,
# serverAuth, 30 days).  A NAME that parses as an IPv4/IPv6 literal gets
# SAN IP:NAME instead.  Needs the openssl CLI only.
set -euo pipefail

if [ "$#" -lt 1 ]; then
    echo "usage: $0 DIR NAME..." >&2
    exit 2
fi
dir=$1
shift
mkdir -p "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ ! -s "$dir/ca.pem" ] || [ ! -s "$dir/ca-key.pem" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" -days 30 \
        -subj "/CN=bottled test upstream CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" 2>/dev/null
    chmod 600 "$dir/ca-key.pem"
fi

for name in "$@"; do
    case "$name" in
    */* | '' | .*)
        echo "$0: bad name: $name" >&2
        exit 2
        ;;
    esac
    if [[ "$name" =~ ^[0-9.]+$ || "$name" == *:* ]]; then
        san="IP:$name"
    else
        san="DNS:$name"
    fi
    cat >"$work/ext.cnf" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$san
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EXT
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$dir/$name-key.pem" -out "$work/leaf.csr" -subj "/CN=$name" 2>/dev/null
    openssl x509 -req -in "$work/leaf.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
        -CAcreateserial -CAserial "$work/ca.srl" -days 30 -sha256 \
        -extfile "$work/ext.cnf" -out "$dir/$name.pem" 2>/dev/null
    chmod 600 "$dir/$name-key.pem"
done

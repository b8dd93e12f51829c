#!/usr/bin/env bash
# ca.pem, ca-key.pem and upstream-ca.pem, checked with OpenSSL.
. "$(dirname "$0")/lib.sh"

newcert() { # dir extra-openssl-args...
    local d=$1
    shift
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/k.pem" \
        -out "$d/c.pem" -days 30 -subj /CN=test "$@" 2>/dev/null
}

fresh_cfg
mkdir "$TMP/leaf"
newcert "$TMP/leaf" -addext basicConstraints=critical,CA:FALSE
cp "$TMP/leaf/c.pem" "$GEN/ca.pem"
cp "$TMP/leaf/k.pem" "$GEN/ca-key.pem"
remanifest "$GEN"
check
expect_invalid "a non-CA certificate" "ca.pem: not a CA certificate (basicConstraints CA:TRUE is missing)"

fresh_cfg
mkdir "$TMP/other"
newcert "$TMP/other" -addext basicConstraints=critical,CA:TRUE
cp "$TMP/other/k.pem" "$GEN/ca-key.pem"
remanifest "$GEN"
check
expect_invalid "a key not matching the certificate" \
    "ca-key.pem: the private key does not match the certificate in ca.pem"

fresh_cfg
openssl pkey -in "$TMP/pki/ca-key.pem" -aes256 -passout pass:pw -out "$GEN/ca-key.pem" 2>/dev/null
remanifest "$GEN"
check </dev/null
expect_invalid "an encrypted key (never prompted for)" "ca-key.pem: not an unencrypted PEM private key"

fresh_cfg
echo "not a certificate" >"$GEN/ca.pem"
remanifest "$GEN"
check
expect_invalid "garbage in ca.pem" "ca.pem: not a PEM certificate"
expect_not_in "$TMP/err" "BEGIN" "no key material echoed"

fresh_cfg
cat "$TMP/pki/ca.pem" >>"$GEN/ca.pem"
remanifest "$GEN"
check
expect_invalid "two certificates in ca.pem" "ca.pem: holds more than one certificate"

fresh_cfg
mkdir "$TMP/nosign"
newcert "$TMP/nosign" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,digitalSignature
cp "$TMP/nosign/c.pem" "$GEN/ca.pem"
cp "$TMP/nosign/k.pem" "$GEN/ca-key.pem"
remanifest "$GEN"
check
expect_invalid "a CA without keyCertSign" "keyUsage does not allow certificate signing"

fresh_cfg
echo "nothing here" >"$GEN/upstream-ca.pem"
remanifest "$GEN"
check
expect_invalid "an empty upstream bundle" "upstream-ca.pem: holds no PEM certificate"

fresh_cfg
{ cat "$TMP/pki/ca.pem"; printf -- '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'; } >"$GEN/upstream-ca.pem"
remanifest "$GEN"
check
expect_invalid "a broken second certificate in the bundle" "upstream-ca.pem: certificate 2 cannot be read"

finish

#!/bin/sh
# SPDX-License-Identifier: MIT
# scripts/tls-creds.sh - make a directory of X.509 credentials for `--tls x509 --tls-creds DIR`
# (QEMU's tls-creds-x509 layout): a CA, a server certificate for the receiving host and a client
# certificate for the sending host, all signed by the CA. For tests and trials: in production
# use your own CA and give each host only its own key (recv: server-*, send: client-*).
#   scripts/tls-creds.sh DIR [SERVER_NAME ...]   (names: DNS names or IP addresses;
#                                                  default localhost 127.0.0.1)
set -eu
dir=${1:?usage: tls-creds.sh DIR [SERVER_NAME ...]}
shift
[ $# -gt 0 ] || set -- localhost 127.0.0.1
san=""
for name in "$@"; do
	case $name in
	*[!0-9.:]*) san="$san${san:+,}DNS:$name" ;;
	*) san="$san${san:+,}IP:$name" ;;
	esac
done
mkdir -p "$dir"
umask 077
cd "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
	-subj "/CN=rmig CA" -keyout ca-key.pem -out ca-cert.pem \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
	2>/dev/null
for role in server client; do
	if [ $role = server ]; then
		cn=$1 ext="subjectAltName=$san
extendedKeyUsage=serverAuth"
	else
		cn="rmig client" ext="extendedKeyUsage=clientAuth"
	fi
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$cn" \
		-keyout $role-key.pem -out $role.csr 2>/dev/null
	printf '%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n' \
		"$ext" >$role.ext
	openssl x509 -req -in $role.csr -CA ca-cert.pem -CAkey ca-key.pem -CAcreateserial \
		-days 365 -extfile $role.ext -out $role-cert.pem 2>/dev/null
	rm -f $role.csr $role.ext
done
rm -f ca-cert.srl
echo "tls-creds.sh: $dir: ca-cert.pem, server-cert.pem/-key.pem ($san), client-cert.pem/-key.pem;" \
	"ca-key.pem signs more: keep it off both hosts" >&2

#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/integration/test_cli_tls.sh RMIG TLS_CREDS_SH - `rmig send` and `rmig recv` over tcp:
#  - with a key and no --tls, both report TLS psk and the migration completes, over
#    AES-128-GCM on an x86 CPU with AES instructions and ChaCha20-Poly1305 on one without;
#  - --tls x509 with credentials made now (scripts/tls-creds.sh; no key is committed) completes
#    and both report TLS x509;
#  - a sender with --tls none against the default receiver is refused with an error naming
#    --tls, and the receiver keeps waiting (it is then stopped).
# Every wait is on a line the other process writes (through a FIFO) or on its exit.
set -eu
rmig=$1
tls_creds=$2
. "$(dirname "$0")/cli_lib.sh"
sh "$tls_creds" "$tmp/creds" localhost 127.0.0.1 2>/dev/null

# start_recv NAME ARGS: rmig recv in the background once it listens (rpid, uri), its stderr
# kept in $tmp/NAME-recv.log.
start_recv() {
	cli_recv_start "$1" 4 --ram 16M $2
	cli_drain 4 "$tmp/$1-recv.log"
}

# 1. The default with a key: TLS psk.
start_recv psk ""
RMIG_LOG=info "$rmig" send --uri "$uri" --ram 16M >"$tmp/psk-send.out" 2>"$tmp/psk-send.log" ||
	fail "psk: rmig send failed"
wait "$rpid" || fail "psk: rmig recv failed"
grep -q "TLS psk" "$tmp/psk-send.out" || fail "psk: send does not report TLS psk"
grep -q "TLS psk" "$tmp/psk-recv.out" || fail "psk: recv does not report TLS psk"
grep -q "RAM hash equals" "$tmp/psk-recv.out" || fail "psk: RAM not identical"
# The suite: AES-128-GCM where the CPU has AES and carry-less multiply instructions (both
# ends are this host), ChaCha20-Poly1305 where it has not.
case "$(uname -m)" in
x86_64 | i?86)
	if grep -qw aes /proc/cpuinfo && grep -qw pclmulqdq /proc/cpuinfo; then
		suite=TLS_AES_128_GCM_SHA256
	else
		suite=TLS_CHACHA20_POLY1305_SHA256
	fi
	grep -q "TLS 1.3 ($suite, psk)" "$tmp/psk-send.log" ||
		fail "psk: the sender did not negotiate $suite: $(grep 'TLS 1.3 (' "$tmp/psk-send.log")"
	;;
esac

# 2. x509 from a credentials directory.
start_recv x509 "--tls x509 --tls-creds $tmp/creds"
"$rmig" send --uri "$uri" --ram 16M --tls x509 --tls-creds "$tmp/creds" \
	>"$tmp/x509-send.out" 2>"$tmp/x509-send.log" || fail "x509: rmig send failed"
wait "$rpid" || fail "x509: rmig recv failed"
grep -q "TLS x509" "$tmp/x509-send.out" || fail "x509: send does not report TLS x509"
grep -q "RAM hash equals" "$tmp/x509-recv.out" || fail "x509: RAM not identical"

# 3. A plaintext sender meets the default receiver: refused, and told why.
start_recv mismatch ""
if "$rmig" send --uri "$uri" --ram 16M --tls none >"$tmp/mismatch-send.out" \
	2>"$tmp/mismatch-send.log"; then
	fail "mismatch: a plaintext sender got through"
fi
grep -q -- "--tls must match" "$tmp/mismatch-send.out" "$tmp/mismatch-send.log" ||
	fail "mismatch: the sender's error does not name --tls"
kill -0 "$rpid" 2>/dev/null || fail "mismatch: rmig recv ended"
kill -9 "$rpid"
echo "cli tls: psk and x509 migrations completed, a plaintext sender refused"

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# tests/fuzz/make-protocol-seeds.py - writes the seed corpus of fuzz_protocol (corpus/protocol)
# from the wire layout of engine/protocol.c, stated here independently of its encoders: every
# message type once, valid, and the classic mistakes. Run it again when the protocol changes.
# A seed's first byte is the harness's selector: 0 = a whole message through protocol_parse,
# 1..27 = that type's payload straight to its decoder.
import os
import struct
import sys

MAGIC, VERSION = 0x45474D52, 2
(HELLO, HELLO_ACK, AUTH, REGION_TABLE, REGION_ACK, ROUND, DEVICE_STATE, VERIFY_REQ,
 VERIFY_HASHES, RESUME, RESUMED, ABORT, ROUND_END, ROUND_ACK, POSTCOPY_PAGES, POSTCOPY_BEGIN,
 POSTCOPY_READY, PUSH_REQ, POSTCOPY_DONE, POSTCOPY_END, PULL_REPORT, HEARTBEAT, RECOVER,
 RECOVER_ACK, RECOVER_PAGES, RECOVER_READY, VERIFY_RUNS) = range(1, 28)


def msg(mtype, payload, magic=MAGIC, version=VERSION, length=None, reserved=0):
    if length is None:
        length = 16 + len(payload)
    return struct.pack("<IHHII", magic, version, mtype, length, reserved) + payload


def hello(flags=1, regions=2):
    return struct.pack("<IIII", VERSION, 0, regions, flags) + bytes(range(32))


def region_table(entries, reserved=0):
    return struct.pack("<II", len(entries), reserved) + b"".join(
        struct.pack("<IIQ", *e) for e in entries)


def pull(flags, us=850, nbytes=65536, pulls=5):
    return struct.pack("<IIII", flags, us, nbytes, pulls)


def bitmap(region, first_word, words):
    return struct.pack("<IIQ", region, len(words), first_word) + b"".join(
        struct.pack("<Q", w) for w in words)


def runs(region, entries, reserved=0):
    return struct.pack("<II", region, len(entries)) + b"".join(
        struct.pack("<QII", first, n, reserved) for first, n in entries)


def abort(code, reason):
    return struct.pack("<iI", code, len(reason)) + reason


seeds = {
    # Every type, valid, as a receiver gets it.
    "msg-hello-with-key": msg(HELLO, hello()),
    "msg-hello-ack-key-and-postcopy": msg(HELLO_ACK, struct.pack("<II", 3, 0) + bytes(64)),
    "msg-auth": msg(AUTH, bytes(range(100, 132))),
    "msg-region-table-4k-and-2m-pages": msg(REGION_TABLE,
                                            region_table([(0, 12, 1 << 30), (7, 21, 4 << 21)])),
    "msg-region-ack-pull-measured": msg(REGION_ACK, pull(1)),
    "msg-pull-report-failed": msg(PULL_REPORT, pull(2, 0, 0, 0)),
    "msg-round-3-live": msg(ROUND, struct.pack("<II", 3, 0)),
    "msg-round-paused": msg(ROUND, struct.pack("<II", 9, 1)),
    "msg-round-end": msg(ROUND_END, struct.pack("<IIQ", 3, 0, 262144)),
    "msg-round-ack": msg(ROUND_ACK, struct.pack("<IIQ", 3, 0, 262144)),
    "msg-device-state-chunk": msg(DEVICE_STATE, struct.pack("<QII", 4096, 40, 0) +
                                  b"QEVM\x00\x00\x00\x03" + bytes(32)),
    # the last message: no state, the XXH64 of all of it
    "msg-device-state-last": msg(DEVICE_STATE, struct.pack("<QIIQ", 4136, 8, 1,
                                                           0x0123456789ABCDEF)),
    "msg-verify-request": msg(VERIFY_REQ, struct.pack("<IIQQ", 0, 0, 1024, 8192)),
    "msg-verify-hashes-three": msg(VERIFY_HASHES, struct.pack("<IIQQQQ", 0, 3, 1024, 1,
                                                              0xFFFFFFFFFFFFFFFF, 42)),
    "msg-verify-runs-three": msg(VERIFY_RUNS, runs(0, [(7, 16), (23, 1), (1 << 20, 300)])),
    "msg-resume-all-verified": msg(RESUME, struct.pack("<QQ", 262144, 0)),
    "msg-resumed-eio": msg(RESUMED, struct.pack("<iIQ", -5, 0, 262144)),
    "msg-abort-reason-with-control-bytes": msg(ABORT, abort(-110, b"peer silent\n\x00\x1b[31m\x7f")),
    "msg-postcopy-pages": msg(POSTCOPY_PAGES, bitmap(0, 16, [0xFF00FF00FF00FF00, 1, 0])),
    "msg-push-request": msg(PUSH_REQ, bitmap(7, 0, [1 << 63])),
    "msg-postcopy-begin": msg(POSTCOPY_BEGIN, struct.pack("<Q", 4097)),
    "msg-postcopy-ready-two-regions": msg(POSTCOPY_READY, struct.pack("<IIIIII", 2, 0, 0, 1000,
                                                                       7, 1007)),
    "msg-postcopy-done": msg(POSTCOPY_DONE, struct.pack("<QQQQ", 4000, 97, 97, 123456)),
    "msg-postcopy-end": msg(POSTCOPY_END, b""),
    "msg-recover": msg(RECOVER, struct.pack("<II", 1, 0) + bytes(range(32)) + bytes(range(32, 64))),
    "msg-recover-ack": msg(RECOVER_ACK, struct.pack("<II", 1, 0) + bytes(64)),
    "msg-recover-pages": msg(RECOVER_PAGES, bitmap(0, 2, [0xF0, 0])),
    "msg-recover-ready": msg(RECOVER_READY, struct.pack("<Q", 4)),
    # The header's mistakes.
    "msg-bad-magic": msg(HELLO, hello(), magic=0x45474D53),
    "msg-version-1": msg(HELLO, hello(), version=1),
    "msg-version-3": msg(HELLO, hello(), version=3),
    "msg-length-field-past-the-end": msg(ROUND, struct.pack("<II", 1, 0), length=32),
    "msg-type-28-unknown": msg(28, b""),
    "msg-header-reserved-set": msg(ROUND, struct.pack("<II", 1, 0), reserved=1),
    "msg-postcopy-end-with-payload": msg(POSTCOPY_END, b"\x00"),
    # Payloads straight to their decoder: limits and the mistakes each one names.
    "payload-hello-unknown-flag": bytes([HELLO]) + hello(flags=4),
    "payload-hello-1025-regions": bytes([HELLO]) + hello(regions=1025),
    "payload-region-table-duplicate-id": bytes([REGION_TABLE]) +
    region_table([(3, 12, 4096), (3, 12, 8192)]),
    "payload-region-table-length-not-page-multiple": bytes([REGION_TABLE]) +
    region_table([(1, 21, 4096)]),
    "payload-region-table-count-past-entries": bytes([REGION_TABLE]) +
    struct.pack("<II", 2, 0) + struct.pack("<IIQ", 1, 12, 4096),
    "payload-pull-measured-and-failed": bytes([REGION_ACK]) + pull(3),
    "payload-pull-measured-zero-pulls": bytes([PULL_REPORT]) + pull(1, pulls=0),
    "payload-round-paused-2": bytes([ROUND]) + struct.pack("<II", 1, 2),
    "payload-device-state-last-without-digest": bytes([DEVICE_STATE]) +
    struct.pack("<QII", 4096, 0, 1),
    "payload-device-state-empty-chunk": bytes([DEVICE_STATE]) + struct.pack("<QII", 0, 0, 0),
    "payload-device-state-length-past-end": bytes([DEVICE_STATE]) +
    struct.pack("<QII", 0, 100, 0) + bytes(10),
    "payload-verify-hashes-count-mismatch": bytes([VERIFY_HASHES]) +
    struct.pack("<IIQQ", 0, 2, 0, 5),
    "payload-page-bitmap-last-word-at-limit": bytes([POSTCOPY_PAGES]) +
    bitmap(0, (2**64 - 1) // 64 - 2, [3, 4]),
    "payload-page-bitmap-first-word-past-limit": bytes([PUSH_REQ]) +
    bitmap(0, (2**64 - 1) // 64 - 1, [3, 4]),
    "payload-resume-more-mismatched-than-verified": bytes([RESUME]) + struct.pack("<QQ", 1, 2),
    "payload-resumed-positive-status": bytes([RESUMED]) + struct.pack("<iIQ", 1, 0, 0),
    "payload-abort-code-positive": bytes([ABORT]) + abort(5, b"x"),
    "payload-abort-reason-1024-bytes": bytes([ABORT]) + abort(-1, b"r" * 1024),
    "payload-abort-reason-length-past-end": bytes([ABORT]) + struct.pack("<iI", -1, 9) + b"ab",
    "payload-verify-hashes-trailing-byte": bytes([VERIFY_HASHES]) +
    struct.pack("<IIQQ", 0, 1, 0, 5) + b"\x00",
    "payload-page-bitmap-trailing-byte": bytes([POSTCOPY_PAGES]) + bitmap(0, 0, [1]) + b"\x00",
    "payload-region-table-trailing-byte": bytes([REGION_TABLE]) + region_table([(1, 12, 4096)]) +
    b"\x00",
    "payload-postcopy-ready-trailing-byte": bytes([POSTCOPY_READY]) +
    struct.pack("<IIII", 1, 0, 0, 1000) + b"\x00",
    "payload-device-state-trailing-byte": bytes([DEVICE_STATE]) + struct.pack("<QII", 0, 1, 1) +
    b"ab",
    "payload-abort-trailing-byte": bytes([ABORT]) + abort(-1, b"x") + b"y",
    # One past each limit a decoder enforces.
    "payload-region-table-page-shift-31": bytes([REGION_TABLE]) + region_table([(1, 31, 1 << 31)]),
    "payload-region-table-page-shift-11": bytes([REGION_TABLE]) + region_table([(1, 11, 1 << 11)]),
    "payload-resumed-status-minus-4096": bytes([RESUMED]) + struct.pack("<iIQ", -4096, 0, 0),
    "payload-abort-code-minus-4096": bytes([ABORT]) + abort(-4096, b"x"),
    "payload-abort-reason-1025-bytes": bytes([ABORT]) + abort(-1, b"r" * 1025),
    "payload-hello-ack-reserved-set": bytes([HELLO_ACK]) + struct.pack("<II", 0, 1) + bytes(64),
    "payload-round-end-reserved-set": bytes([ROUND_END]) + struct.pack("<IIQ", 1, 1, 0),
    "payload-verify-request-reserved-set": bytes([VERIFY_REQ]) + struct.pack("<IIQQ", 0, 1, 0, 1),
    "payload-postcopy-ready-zero-entries": bytes([POSTCOPY_READY]) + struct.pack("<II", 0, 0),
    "payload-recover-unknown-flag": bytes([RECOVER]) + struct.pack("<II", 2, 0) + bytes(64),
    "payload-recover-reserved-set": bytes([RECOVER]) + struct.pack("<II", 0, 1) + bytes(64),
    "payload-recover-ack-postcopy-flag": bytes([RECOVER_ACK]) + struct.pack("<II", 2, 0) +
    bytes(64),
    "payload-verify-runs-overlapping": bytes([VERIFY_RUNS]) + runs(0, [(7, 16), (22, 1)]),
    "payload-verify-runs-out-of-order": bytes([VERIFY_RUNS]) + runs(0, [(100, 1), (50, 1)]),
    "payload-verify-runs-empty-run": bytes([VERIFY_RUNS]) + runs(0, [(7, 0)]),
    "payload-verify-runs-reserved-set": bytes([VERIFY_RUNS]) + runs(0, [(7, 1)], reserved=1),
    "payload-verify-runs-no-runs": bytes([VERIFY_RUNS]) + runs(0, []),
    "payload-verify-runs-wraps": bytes([VERIFY_RUNS]) + runs(0, [(2**64 - 3, 8)]),
    "payload-verify-runs-8185-pages": bytes([VERIFY_RUNS]) + runs(0, [(0, 8185)]),
    "payload-verify-runs-8184-pages": bytes([VERIFY_RUNS]) + runs(0, [(0, 4092), (5000, 4092)]),
    "payload-verify-runs-count-past-entries": bytes([VERIFY_RUNS]) +
    struct.pack("<II", 0, 2) + struct.pack("<QII", 1, 1, 0),
    "payload-recover-ready-short": bytes([RECOVER_READY]) + struct.pack("<I", 4),
}

out = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "corpus", "protocol")
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    selector = b"" if name.startswith("payload-") else b"\x00"
    with open(os.path.join(out, name), "wb") as f:
        f.write(selector + data)
print(f"{len(seeds)} seeds in {out}")

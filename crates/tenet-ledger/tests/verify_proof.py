#!/usr/bin/env python3
"""Independent verifier of tenet-ledger proofs and checkpoints, Python standard library only.

It shares no code with the Rust crate and uses different algorithms: proofs are checked by
splitting the path into its "inner" and "border" parts (the transparency-dev formulation),
not with the RFC 9162 loop the crate uses, and Ed25519 is implemented here from the curve
equations (RFC 8032).

Usage: verify_proof.py BUNDLE.json

The bundle is JSON:
  {
    "verifier_key": "<name>+<hash hex>+<base64(0x01 || key)>",
    "checkpoints": ["<signed note>", ...],
    "inclusions": [{"proof": {"index", "tree_size", "leaf_hash", "hashes"},
                    "entry_b64": "..."}, ...],
    "consistencies": [{"old_size", "new_size", "hashes"}, ...]
  }
Every checkpoint must carry a valid signature by the verifier key; every proof's sizes must
be those of a checkpoint, whose root it is checked against. Exit 0 when everything verifies,
1 otherwise (with the reasons on stdout).
"""

import base64
import hashlib
import json
import sys

# ---- Ed25519 (RFC 8032) verification -------------------------------------------------------

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _inv(x):
    return pow(x, P - 2, P)


def _add(a, b):
    # Extended twisted Edwards coordinates (X, Y, Z, T), a = -1.
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % P
    bb = (y1 + x1) * (y2 + x2) % P
    cc = 2 * D * t1 * t2 % P
    dd = 2 * z1 * z2 % P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _mul(scalar, point):
    acc = (0, 1, 1, 0)
    while scalar:
        if scalar & 1:
            acc = _add(acc, point)
        point = _add(point, point)
        scalar >>= 1
    return acc


def _same(a, b):
    return (a[0] * b[2] - b[0] * a[2]) % P == 0 and (a[1] * b[2] - b[1] * a[2]) % P == 0


def _x_from_y(y, odd):
    if y >= P:
        return None
    u = (y * y - 1) % P
    v = (D * y * y + 1) % P
    x2 = u * _inv(v) % P
    if x2 == 0:
        return None if odd else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    if x & 1 != odd:
        x = P - x
    return x


def _decode_point(raw):
    if len(raw) != 32:
        return None
    n = int.from_bytes(raw, "little")
    odd = n >> 255
    y = n & ((1 << 255) - 1)
    x = _x_from_y(y, odd)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


_BY = 4 * _inv(5) % P
BASE = (_x_from_y(_BY, 0), _BY, 1, _x_from_y(_BY, 0) * _BY % P)


def ed25519_verify(public, message, signature):
    if len(public) != 32 or len(signature) != 64:
        return False
    a = _decode_point(public)
    r = _decode_point(signature[:32])
    if a is None or r is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= L:
        return False
    k = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % L
    return _same(_mul(s, BASE), _add(r, _mul(k, a)))


# ---- C2SP signed notes and checkpoints -----------------------------------------------------


class Invalid(Exception):
    pass


def parse_verifier_key(text):
    # The name and hash hold no "+"; the base64 key may.
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise Invalid("verifier key is not <name>+<hash>+<key>")
    name, hash_hex, key_b64 = parts
    key = base64.b64decode(key_b64, validate=True)
    if len(key) != 33 or key[0] != 0x01:
        raise Invalid("verifier key is not an Ed25519 key")
    public = key[1:]
    key_hash = hashlib.sha256(name.encode() + b"\n" + b"\x01" + public).digest()[:4]
    if key_hash.hex() != hash_hex:
        raise Invalid("verifier key hash does not match")
    return name, key_hash, public


def open_checkpoint(note, vkey):
    name, key_hash, public = vkey
    if not note.endswith("\n"):
        raise Invalid("note does not end with a newline")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise Invalid("note has no blank line")
    body, sig_lines = note[: cut + 1], note[cut + 2 :]
    verified = False
    for line in sig_lines.splitlines():
        if not line.startswith("\u2014 "):
            raise Invalid("bad signature line")
        sig_name, _, sig_b64 = line[2:].partition(" ")
        blob = base64.b64decode(sig_b64, validate=True)
        if sig_name == name and blob[:4] == key_hash:
            if not ed25519_verify(public, body.encode(), blob[4:]):
                raise Invalid("checkpoint signature does not verify")
            verified = True
    if not verified:
        raise Invalid("checkpoint is not signed by the verifier key")
    lines = body.split("\n")
    origin, size, root_b64 = lines[0], lines[1], lines[2]
    if not origin or not size.isdigit() or (size != "0" and size.startswith("0")):
        raise Invalid("checkpoint body is malformed")
    root = base64.b64decode(root_b64, validate=True)
    if len(root) != 32:
        raise Invalid("checkpoint root is not 32 bytes")
    return int(size), root


# ---- RFC 6962/9162 proofs, inner/border formulation -----------------------------------------


def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def leaf(entry):
    return hashlib.sha256(b"\x00" + entry).digest()


def inclusion_root(index, size, leaf_hash, path):
    if index >= size:
        raise Invalid("index %d is outside a tree of %d" % (index, size))
    inner = (index ^ (size - 1)).bit_length()
    border = bin(index >> inner).count("1")
    if len(path) != inner + border:
        raise Invalid("inclusion path has %d hashes, want %d" % (len(path), inner + border))
    h = leaf_hash
    for i, sibling in enumerate(path[:inner]):
        h = node(h, sibling) if (index >> i) & 1 == 0 else node(sibling, h)
    for sibling in path[inner:]:
        h = node(sibling, h)
    return h


def check_consistency(size1, size2, root1, root2, path):
    if size1 == 0 or size1 > size2:
        raise Invalid("sizes %d -> %d cannot be proven consistent" % (size1, size2))
    if size1 == size2:
        if path or root1 != root2:
            raise Invalid("equal sizes need an empty proof and equal roots")
        return
    last = size1 - 1
    inner = (last ^ (size2 - 1)).bit_length()
    border = bin(last >> inner).count("1")
    shift = (size1 & -size1).bit_length() - 1
    inner -= shift
    if size1 == 1 << shift:
        seed, rest = root1, path
    else:
        if not path:
            raise Invalid("empty consistency proof")
        seed, rest = path[0], path[1:]
    if len(rest) != inner + border:
        raise Invalid("consistency proof has the wrong length")
    mask = last >> shift
    old, new = seed, seed
    for i, sibling in enumerate(rest[:inner]):
        if (mask >> i) & 1:
            old = node(sibling, old)
            new = node(sibling, new)
        else:
            new = node(new, sibling)
    for sibling in rest[inner:]:
        old = node(sibling, old)
        new = node(sibling, new)
    if old != root1:
        raise Invalid("consistency proof does not lead to the old root")
    if new != root2:
        raise Invalid("consistency proof does not lead to the new root")


def main(argv):
    if len(argv) != 2:
        print(__doc__)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        bundle = json.load(f)
    problems = []
    roots = {}
    vkey = parse_verifier_key(bundle["verifier_key"])
    for n, note in enumerate(bundle.get("checkpoints", [])):
        try:
            size, root = open_checkpoint(note, vkey)
            roots[size] = root
        except Invalid as e:
            problems.append("checkpoint %d: %s" % (n, e))
    for n, item in enumerate(bundle.get("inclusions", [])):
        proof = item["proof"]
        try:
            entry = base64.b64decode(item["entry_b64"])
            leaf_hash = bytes.fromhex(proof["leaf_hash"])
            if leaf(entry) != leaf_hash:
                raise Invalid("entry does not hash to the leaf hash")
            if proof["tree_size"] not in roots:
                raise Invalid("no checkpoint of size %d" % proof["tree_size"])
            path = [bytes.fromhex(h) for h in proof["hashes"]]
            got = inclusion_root(proof["index"], proof["tree_size"], leaf_hash, path)
            if got != roots[proof["tree_size"]]:
                raise Invalid("inclusion proof does not lead to the checkpoint root")
        except Invalid as e:
            problems.append("inclusion %d: %s" % (n, e))
    for n, proof in enumerate(bundle.get("consistencies", [])):
        try:
            old, new = proof["old_size"], proof["new_size"]
            if old not in roots or new not in roots:
                raise Invalid("no checkpoints of sizes %d and %d" % (old, new))
            path = [bytes.fromhex(h) for h in proof["hashes"]]
            check_consistency(old, new, roots[old], roots[new], path)
        except Invalid as e:
            problems.append("consistency %d: %s" % (n, e))
    if problems:
        for p in problems:
            print("FAIL " + p)
        return 1
    print(
        "ok: %d checkpoints, %d inclusion proofs, %d consistency proofs"
        % (len(roots), len(bundle.get("inclusions", [])), len(bundle.get("consistencies", [])))
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

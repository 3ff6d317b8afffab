"""RFC 9162 Merkle tree root over the entries of a JSON-lines export, in Python's standard
library only: the peer for `tenet log verify` (the same recomputation, written the simple
way). Reads `tenet log export --format ocsf` output (the stored bytes of each entry, one per
line), prints the root in hex and the entry count. Usage: merkle_root.py EXPORT.jsonl"""
import hashlib
import sys

def root(leaves):
    # Iterative RFC 9162: a stack of (height, hash); odd nodes are not duplicated.
    stack = []
    for i, leaf in enumerate(leaves):
        node, height = leaf, 0
        n = i
        while n & 1:
            left_height, left = stack.pop()
            node = hashlib.sha256(b"\x01" + left + node).digest()
            height += 1
            n >>= 1
        stack.append((height, node))
    if not stack:
        return hashlib.sha256(b"").digest()
    _, acc = stack.pop()
    while stack:
        _, left = stack.pop()
        acc = hashlib.sha256(b"\x01" + left + acc).digest()
    return acc

def leaves(path):
    with open(path, "rb") as f:
        for line in f:
            yield hashlib.sha256(b"\x00" + line.rstrip(b"\n")).digest()

count = 0
def counted(it):
    global count
    for x in it:
        count += 1
        yield x

r = root(counted(leaves(sys.argv[1])))
print(r.hex(), count)

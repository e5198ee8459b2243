#!/usr/bin/env python3
"""A second reader of hcbackup repositories, written from docs/format.md and
docs/crypto.md alone: it restores a snapshot's files (with their metadata) and
its database dumps from a repository in a local folder, without the program.

The tests run it against repositories the current binary writes and compare
what it restores byte for byte (tests/second_reader.rs); it also checks the
documents' test vectors (docs/vectors.json). When the format changes, the
documents and this file change in the same commit.

Needs Python 3.9+ and the packages `cryptography` (44 or later: AES-GCM and
Argon2id), `blake3`, `zstandard` and `cbor2`. The password comes from
HCBACKUP_PASSWORD.

    hcbread.py snapshots REPO                      one JSON line per snapshot
    hcbread.py restore REPO SNAPSHOT TARGET [--privileged]
    hcbread.py dump REPO SNAPSHOT DB FILE [--globals FILE]
    hcbread.py vectors docs/vectors.json

SNAPSHOT is an id, a unique prefix of one, or `latest`. TARGET must not exist.
"""

import datetime
import json
import os
import re
import stat
import struct
import sys
import time

import blake3
import cbor2
import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

# Object kinds (format.md, "Sealed strings").
DATA, TREE, INDEX, SNAPSHOT, LOCK, HEADER, AUDIT, HOLD = range(1, 9)
HEX64 = re.compile(r"^[0-9a-f]{64}$")
EPOCH_LOOKAHEAD = 4


class Refused(Exception):
    """The repository is not what the documents describe, or was tampered with."""


# ---------------------------------------------------------------- keys (crypto.md)


def argon2id(password, kdf, salt):
    if kdf["algorithm"] != "argon2id":
        raise Refused(f"unknown KDF {kdf['algorithm']!r}")
    if kdf["m_kib"] > 512 * 1024 or kdf["t"] > 8 or kdf["p"] > 4:
        raise Refused(f"a key file asks for a KDF costlier than hcbackup ever writes: {kdf}")
    return Argon2id(
        salt=salt, length=32, iterations=kdf["t"], lanes=kdf["p"], memory_cost=kdf["m_kib"]
    ).derive(password)


def unwrap_key_file(key_file, password, repo_id):
    """The 96-byte master key set a key file wraps, or None for another password."""
    wrapping = argon2id(password, key_file["kdf"], bytes.fromhex(key_file["salt"]))
    data = bytes.fromhex(key_file["data"])
    ad = b"hcbackup keyfile v1" + repo_id
    try:
        master = AESGCM(wrapping).decrypt(data[:12], data[12:], ad)
    except InvalidTag:
        return None
    if len(master) != 96:
        raise Refused("a key file wraps a key set that is not 96 bytes")
    return master


def check_value(master, repo_id, created, epoch):
    """config's key_check: keyed BLAKE3 under a key derived from the whole set."""
    k = blake3.blake3(master, derive_key_context="hcbackup 2026-11-30 repository key check")
    h = blake3.blake3(key=k.digest())
    created = created.encode()
    h.update(repo_id + struct.pack("<I", len(created)) + created + struct.pack("<I", epoch))
    return h.digest()


def epoch_key(enc, epoch):
    if epoch == 0:
        return enc
    return blake3.blake3(
        enc + struct.pack("<I", epoch),
        derive_key_context="hcbackup 2026-11-30 encryption key of an epoch",
    ).digest()


def gear_table(gear_seed):
    xof = blake3.blake3(b"hcbackup fastcdc gear table v1", key=gear_seed).digest(length=2048)
    return list(struct.unpack("<256Q", xof))


def padme(length):
    if length < 2:
        return length
    e = length.bit_length() - 1
    s = e.bit_length()
    mask = (1 << (e - s)) - 1
    return (length + mask) & ~mask


class Keys:
    """The master key set: enc[32] ‖ id key[32] ‖ gear seed[32]."""

    def __init__(self, master, current_epoch=0):
        self.enc, self.id_key, self.gear = master[:32], master[32:64], master[64:96]
        # Current epoch first, then earlier ones, then a few later ones.
        order = [current_epoch] + list(range(current_epoch - 1, -1, -1))
        order += range(current_epoch + 1, current_epoch + 1 + EPOCH_LOOKAHEAD)
        self.ciphers = [AESGCM(epoch_key(self.enc, e)) for e in order]

    def id_of(self, plaintext):
        return blake3.blake3(plaintext, key=self.id_key).digest()

    def open(self, kind, object_id, sealed):
        """Authenticate and decrypt; the padded body (format.md, "Sealed strings")."""
        ad = b"hcb1" + bytes([kind]) + object_id
        for cipher in self.ciphers:
            try:
                return cipher.decrypt(sealed[:12], sealed[12:], ad)
            except InvalidTag:
                continue
        raise Refused(f"object of kind {kind} named {object_id.hex()} does not authenticate")

    def decode(self, kind, object_id, sealed):
        return unpad(self.open(kind, object_id, sealed))


def unpad(body):
    """A sealed body's plaintext: flag, (length,) payload, padding."""
    flag = body[0]
    if flag in (0, 1):  # format 1: the payload runs to the end
        payload = body[1:]
    elif flag in (2, 3):
        (n,) = struct.unpack("<I", body[1:5])
        if 5 + n > len(body):
            raise Refused("a sealed body's length runs past its end")
        payload = body[5 : 5 + n]
    else:
        raise Refused(f"unknown body flag {flag}")
    if flag in (0, 2):
        return payload
    return zstandard.ZstdDecompressor().decompress(payload)


# ---------------------------------------------------------------- the repository


class Repository:
    def __init__(self, root, password):
        self.root = root
        with open(os.path.join(root, "config"), "rb") as f:
            self.config = json.load(f)
        if self.config["version"] not in (1, 2):
            raise Refused(f"repository format {self.config['version']} is not known to this reader")
        self.id = bytes.fromhex(self.config["id"])
        self.keys = self.unlock(password)
        self.blobs = self.read_indexes()

    def names(self, folder):
        path = os.path.join(self.root, folder)
        if not os.path.isdir(path):
            return []
        return sorted(n for n in os.listdir(path) if HEX64.match(n))

    def read(self, *parts):
        with open(os.path.join(self.root, *parts), "rb") as f:
            return f.read()

    def unlock(self, password):
        for name in self.names("keys"):
            key_file = json.loads(self.read("keys", name))
            master = unwrap_key_file(key_file, password, self.id)
            if master is None:
                continue
            if self.config["version"] >= 2:
                check = check_value(
                    master, self.id, self.config["created"], self.config["key_epoch"]
                )
                if check.hex() != self.config["key_check"]:
                    continue  # a key file wrapping someone else's keys
            return Keys(master, self.config.get("key_epoch", 0))
        raise Refused("no key file opens with this password")

    def read_indexes(self):
        """(kind, id) -> (pack id hex, offset, sealed length, plaintext length)."""
        blobs = {}
        for name in self.names("index"):
            plain = self.keys.decode(INDEX, bytes.fromhex(name), self.read("index", name))
            if self.keys.id_of(plain).hex() != name:
                raise Refused(f"index object {name} is not named by its content")
            for pack, size, entries in parse_index(plain):
                for kind, blob_id, offset, sealed_len, plain_len in entries:
                    if offset + sealed_len > size:
                        raise Refused(f"index {name} places a blob outside pack {pack}")
                    blobs.setdefault((kind, blob_id), (pack, offset, sealed_len, plain_len))
        return blobs

    def blob(self, kind, blob_id):
        pack, offset, sealed_len, plain_len = self.blobs[(kind, blob_id)]
        with open(os.path.join(self.root, "packs", pack[:2], pack), "rb") as f:
            f.seek(offset)
            sealed = f.read(sealed_len)
        plain = self.keys.decode(kind, blob_id, sealed)
        if len(plain) != plain_len or self.keys.id_of(plain) != blob_id:
            raise Refused(f"blob {blob_id.hex()} does not match its id")
        return plain

    def tree(self, tree_id):
        return parse_tree(self.blob(TREE, tree_id))

    def snapshots(self):
        out = []
        for name in self.names("snapshots"):
            plain = self.keys.decode(SNAPSHOT, bytes.fromhex(name), self.read("snapshots", name))
            if self.keys.id_of(plain).hex() != name:
                raise Refused(f"snapshot {name} is not named by its content")
            out.append((name, json.loads(plain)))
        return out

    def snapshot(self, wanted):
        found = self.snapshots()
        if wanted == "latest":
            now = (time.time() + 600) * 10**9
            found = [
                s
                for s in found
                if "safety-dump" not in s[1].get("tags", []) and rfc3339_ns(s[1]["time"]) <= now
            ]
            return max(found, key=lambda s: (rfc3339_ns(s[1]["time"]), s[0]))
        matches = [s for s in found if s[0].startswith(wanted)]
        if len(matches) != 1:
            raise Refused(f"{len(matches)} snapshots match {wanted!r}")
        return matches[0]

    def chunks(self, node):
        """A file node's chunk ids: `content`, or the ids its `lists` hold."""
        if "lists" not in node:
            return node.get("content", [])
        ids = []
        for list_id in node["lists"]:
            row = self.blob(TREE, list_id)
            if len(row) % 32:
                raise Refused("a chunk list is not a row of 32-byte ids")
            ids += [row[i : i + 32] for i in range(0, len(row), 32)]
        return ids

    def write_content(self, node, f):
        written = 0
        for chunk_id in self.chunks(node):
            data = self.blob(DATA, chunk_id)
            f.write(data)
            written += len(data)
        if written != node["size"]:
            f.truncate(node["size"])


RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")


def rfc3339_ns(text):
    """An RFC 3339 time as nanoseconds since the epoch (snapshot times are compared as times)."""
    m = RFC3339.match(text)
    if not m:
        raise Refused(f"snapshot time {text!r} is not RFC 3339")
    zone = "+00:00" if m[3] == "Z" else m[3]
    seconds = datetime.datetime.fromisoformat(m[1] + zone).timestamp()
    return int(seconds) * 10**9 + int((m[2] or "").ljust(9, "0"))


def parse_index(b):
    """Yield (pack, size, entries) of an index object, version 1 or 2; the
    condemned packs of version 2 are listed among its packs and stay readable."""
    if b[0] not in (1, 2):
        raise Refused(f"unknown index version {b[0]}")
    at = 1 if b[0] == 1 else 9
    (count,) = struct.unpack_from("<I", b, at)
    at += 4
    packs = []
    for _ in range(count):
        pack, size, n = b[at : at + 32].hex(), *struct.unpack_from("<QI", b, at + 32)
        at += 44
        entries = []
        for _ in range(n):
            kind = b[at]
            blob_id = b[at + 1 : at + 33]
            offset, sealed_len, plain_len = struct.unpack_from("<QII", b, at + 33)
            entries.append((kind, blob_id, offset, sealed_len, plain_len))
            at += 49
        packs.append((pack, size, entries))
    if b[0] == 2:
        (condemned,) = struct.unpack_from("<I", b, at)
        at += 4 + 40 * condemned
        (supersedes,) = struct.unpack_from("<I", b, at)
        at += 4 + 32 * supersedes
    if at != len(b):
        raise Refused("an index object has bytes after its last entry")
    yield from packs


NODE_KINDS = {"file", "dir", "symlink", "fifo", "socket", "chardevice", "blockdevice"}


def parse_tree(b):
    tree = cbor2.loads(b)
    if tree.get("version") != 1:
        raise Refused(f"unknown tree version {tree.get('version')}")
    previous = None
    for node in tree["nodes"]:
        name = node["name"]
        if name in (b"", b".", b"..") or b"/" in name or b"\0" in name:
            raise Refused(f"a tree holds the name {name!r}")
        if previous is not None and name <= previous:
            raise Refused("a tree's names are not strictly increasing")
        if node["kind"] not in NODE_KINDS or node["mode"] & ~0o7777:
            raise Refused(f"entry {name!r} has kind {node['kind']!r}, mode {node['mode']:o}")
        previous = name
    return tree["nodes"]


# ---------------------------------------------------------------- restoring


class Restorer:
    def __init__(self, repo, privileged):
        self.repo = repo
        self.privileged = privileged
        self.as_root = os.geteuid() == 0
        self.links = {}  # hard-link group -> the path restored first

    def mode_of(self, node):
        mode = node["mode"]
        if not self.privileged:
            mode &= ~(0o4000 if node["kind"] == "dir" else 0o6000)
        return mode

    def owner(self, path, node, follow=True):
        if self.as_root:
            os.chown(path, node["uid"], node["gid"], follow_symlinks=follow)

    def times(self, path, node, follow=True):
        ns = node["mtime_ns"]
        os.utime(path, ns=(ns, ns), follow_symlinks=follow)

    def folder(self, path, tree_id):
        for node in self.repo.tree(tree_id):
            self.entry(os.path.join(path, os.fsdecode(node["name"])), node)

    def entry(self, path, node):
        kind = node["kind"]
        if kind == "dir":
            os.mkdir(path, 0o700)
            self.folder(path, node["subtree"])
        elif kind == "file":
            group = node.get("link", 0)
            if group and group in self.links:
                # One file with several names: the first restored has its
                # content and metadata; this name links to it.
                os.link(self.links[group], path)
                return
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as f:
                self.repo.write_content(node, f)
            if group:
                self.links[group] = path
        elif kind == "symlink":
            os.symlink(node["target"], os.fsencode(path))
            self.owner(path, node, follow=False)
            self.times(path, node, follow=False)
            return
        elif kind == "fifo":
            os.mkfifo(path, 0o600)
        elif kind in ("chardevice", "blockdevice"):
            if not self.privileged:
                return
            file_type = stat.S_IFCHR if kind == "chardevice" else stat.S_IFBLK
            os.mknod(path, 0o600 | file_type, node.get("rdev", 0))
        else:  # sockets are recreated by their servers
            return
        # Owner before mode (chown clears set-id bits), times last; a folder's
        # only after its children.
        self.owner(path, node)
        os.chmod(path, self.mode_of(node))
        self.times(path, node)

    def snapshot(self, manifest, target):
        os.mkdir(target, 0o700)
        self.folder(target, bytes.fromhex(manifest["tree"]))


def database_nodes(repo, manifest, db):
    for entry in manifest.get("databases", []):
        if entry["db"] == db and entry["tree"]:
            return {n["name"].decode(): n for n in repo.tree(bytes.fromhex(entry["tree"]))}
    raise Refused(f"the snapshot holds no dump of database {db!r}")


def write_stream(repo, node, path):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        repo.write_content(node, f)


# ---------------------------------------------------------------- test vectors


def check_vectors(path):
    """Recompute every value docs/vectors.json gives from its inputs."""
    v = json.load(open(path))
    h = bytes.fromhex
    failures = []

    def same(what, got, want):
        if got != want:
            failures.append(f"{what}: got {got!r}, want {want!r}")

    repo_id = h(v["config"]["id"])
    kf = v["key_file"]
    same(
        "argon2id output",
        argon2id(v["password"].encode(), kf["kdf"], h(kf["salt"])).hex(),
        v["wrapping_key"],
    )
    master = unwrap_key_file(kf, v["password"].encode(), repo_id)
    same("master key set", master and master.hex(), v["master_key_set"])
    cfg = v["config"]
    same(
        "key_check",
        check_value(master, repo_id, cfg["created"], cfg["key_epoch"]).hex(),
        cfg["key_check"],
    )
    keys = Keys(master)
    same("epoch 1 key", epoch_key(keys.enc, 1).hex(), v["epoch_1_key"])
    table = gear_table(keys.gear)
    same("gear table", [table[i] for i in (0, 1, 255)], v["gear_table"]["words_0_1_255"])
    for want in v["ids"]:
        same("keyed id", keys.id_of(h(want["plaintext"])).hex(), want["id"])
    for length, padded in v["padme"]:
        same(f"padme({length})", padme(length), padded)
    for s in v["sealed"]:
        sealed = h(s["sealed"])
        same("nonce", sealed[:12].hex(), s["nonce"])
        body = keys.open(s["kind"], h(s["id"]), sealed)
        same("body", body.hex(), s["body"])
        same("plaintext", unpad(body).hex(), s["plaintext"])
    t = v["tree"]
    nodes = parse_tree(h(t["cbor"]))
    same("tree id", keys.id_of(h(t["cbor"])).hex(), t["id"])
    same("tree names", [n["name"].hex() for n in nodes], [n["name"] for n in t["nodes"]])
    cl = v["chunk_list"]
    same("chunk list", h(cl["plaintext"]), b"".join(h(i) for i in cl["ids"]))
    same("chunk list id", keys.id_of(h(cl["plaintext"])).hex(), cl["id"])
    pack = h(v["pack"]["file"])
    same("pack name", blake3.blake3(pack).hexdigest(), v["pack"]["name"])
    (header_len,) = struct.unpack("<I", pack[-4:])
    header = keys.decode(HEADER, bytes(32), pack[-4 - header_len : -4])
    want = h(v["pack"]["header"])
    same("pack header", header[: len(want)].hex(), want.hex())
    same("header padding", header[len(want) :].strip(b"\0"), b"")
    same("blobs hash", blake3.blake3(pack[: -4 - header_len]).hexdigest(), header[1:33].hex())
    index = v["index"]
    plain = keys.decode(INDEX, h(index["id"]), h(index["sealed"]))
    same("index plaintext", plain.hex(), index["plaintext"])
    same("index id", keys.id_of(plain).hex(), index["id"])
    v2 = list(parse_index(h(v["index_v2"]["plaintext"])))
    same("index v2 packs", v2, list(parse_index(plain)))
    for failure in failures:
        print(failure, file=sys.stderr)
    if failures:
        raise Refused(f"{len(failures)} test vectors do not match")
    print("all test vectors match")


# ---------------------------------------------------------------- command line


def main(argv):
    password = os.environ.get("HCBACKUP_PASSWORD", "").encode()
    command, args = argv[1], argv[2:]
    if command == "vectors":
        check_vectors(args[0])
    elif command == "snapshots":
        for name, m in Repository(args[0], password).snapshots():
            print(json.dumps({"id": name, "time": m["time"], "paths": m["paths"]}))
    elif command == "restore":
        repo = Repository(args[0], password)
        _, manifest = repo.snapshot(args[1])
        Restorer(repo, "--privileged" in args).snapshot(manifest, args[2])
    elif command == "dump":
        repo = Repository(args[0], password)
        _, manifest = repo.snapshot(args[1])
        nodes = database_nodes(repo, manifest, args[2])
        write_stream(repo, nodes["database.dump"], args[3])
        if "--globals" in args:
            write_stream(repo, nodes["globals.sql"], args[args.index("--globals") + 1])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except Refused as e:
        sys.exit(f"hcbread: {e}")

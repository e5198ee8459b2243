#!/usr/bin/env python3
"""Writes docs/vectors.json and the repository tests/fixtures/vectors from fixed
inputs, following docs/format.md and docs/crypto.md (with fixed nonces and salt,
where hcbackup draws random ones). Run once; the output is committed.

The Rust tests check every value against the program's own code (src/vectors.rs)
and restore the repository with hcbackup (tests/second_reader.rs); hcbread.py
checks them too. Usage: make_vectors.py DOCS_DIR FIXTURE_DIR
"""

import json
import os
import struct
import sys

import blake3
import cbor2
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, os.path.dirname(__file__))
import hcbread  # noqa: E402

PASSWORD = "correct horse battery staple"
REPO_ID = bytes(range(0x00, 0x20))
CREATED = "2026-11-30T12:00:00Z"
MASTER = bytes(range(0x40, 0xA0))  # enc 0x40.., id key 0x60.., gear seed 0x80..
KDF = {"algorithm": "argon2id", "m_kib": 65536, "t": 3, "p": 1}
SALT = bytes(range(0xA0, 0xC0))
KEY_FILE_NAME = bytes(range(0xD0, 0xF0)).hex()


def nonces():
    n = 0
    while True:
        n += 1
        yield b"hcb-vector" + struct.pack(">H", n)


NONCE = nonces()


def body(plaintext, compress):
    if compress:
        payload = zstandard.ZstdCompressor(level=3, write_content_size=True).compress(plaintext)
        flag = 3
    else:
        payload, flag = plaintext, 2
    b = bytes([flag]) + struct.pack("<I", len(payload)) + payload
    return b + bytes(hcbread.padme(len(b)) - len(b))


def seal(key, kind, object_id, plain_body):
    nonce = next(NONCE)
    ad = b"hcb1" + bytes([kind]) + object_id
    return nonce + AESGCM(key).encrypt(nonce, plain_body, ad)


class Writer:
    def __init__(self):
        self.keys = hcbread.Keys(MASTER)
        self.sealed = []

    def object(self, kind, object_id, plaintext, compress, epoch=0):
        b = body(plaintext, compress)
        s = seal(hcbread.epoch_key(self.keys.enc, epoch), kind, object_id, b)
        self.sealed.append(
            {
                "kind": kind,
                "epoch": epoch,
                "id": object_id.hex(),
                "plaintext": plaintext.hex(),
                "nonce": s[:12].hex(),
                "body": b.hex(),
                "sealed": s.hex(),
            }
        )
        return s

    def pack(self, kind, blobs):
        """blobs: [(plaintext, compress)] -> (pack name, file bytes, header, entries)."""
        section, entries = b"", []
        for plaintext, compress in blobs:
            blob_id = self.keys.id_of(plaintext)
            s = self.object(kind, blob_id, plaintext, compress)
            entries.append((kind, blob_id, len(section), len(s), len(plaintext)))
            section += s
        header = bytes([2]) + blake3.blake3(section).digest() + struct.pack("<I", len(entries))
        for k, blob_id, _, sealed_len, plain_len in entries:
            header += bytes([k]) + blob_id + struct.pack("<II", sealed_len, plain_len)
        hb = bytes([2]) + struct.pack("<I", len(header)) + header
        padded = -(-len(hb) // 4096) * 4096
        hb += bytes(hcbread.padme(padded) - len(hb))
        sealed_header = seal(self.keys.enc, hcbread.HEADER, bytes(32), hb)
        data = section + sealed_header + struct.pack("<I", len(sealed_header))
        return blake3.blake3(data).hexdigest(), data, header, entries


def node(name, kind, size=0, mode=0o640, **extra):
    n = {
        "name": name,
        "kind": kind,
        "mode": mode,
        "uid": 1000,
        "gid": 1000,
        "mtime_ns": 1796040000_123456789,
        "size": size,
    }
    n.update(extra)
    return n


def tree(nodes):
    return cbor2.dumps({"version": 1, "nodes": nodes})


def main(docs, fixture):
    w = Writer()
    ids = w.keys.id_of
    record = b"paciente: Maria da Silva\nconsulta: 2026-11-30\n"
    notes = b"retorno em 30 dias; manter a medicacao\n" * 25
    empty = tree([])
    exams = tree(
        [
            node(b"b.txt", "file", len(notes), content=[ids(notes)]),
            node(b"zero.bin", "file", mode=0o600),
        ]
    )
    uploads_nodes = [
        node(b"a.txt", "file", len(record), content=[ids(record)]),
        node(b"empty", "dir", mode=0o750, subtree=ids(empty)),
        node(b"exams", "dir", mode=0o750, subtree=ids(exams)),
        node(b"link", "symlink", mode=0o777, target=b"a.txt"),
    ]
    uploads = tree(uploads_nodes)
    root = tree([node(b"uploads", "dir", mode=0o750, subtree=ids(uploads))])

    data_pack = w.pack(hcbread.DATA, [(record, False), (notes, True)])
    tree_pack = w.pack(hcbread.TREE, [(t, False) for t in (empty, exams, uploads, root)])
    index = b"\x01" + struct.pack("<I", 2)
    for name, data, _, entries in (data_pack, tree_pack):
        index += bytes.fromhex(name) + struct.pack("<QI", len(data), len(entries))
        for kind, blob_id, offset, sealed_len, plain_len in entries:
            index += bytes([kind]) + blob_id + struct.pack("<QII", offset, sealed_len, plain_len)
    index_sealed = w.object(hcbread.INDEX, ids(index), index, False)
    manifest = json.dumps(
        {
            "version": 1,
            "time": "2026-11-30T03:00:00Z",
            "host": "clinic-server",
            "user": "backup",
            "tags": [],
            "paths": ["/srv/clinic/uploads"],
            "names": ["uploads"],
            "tree": ids(root).hex(),
            "summary": {
                "files": 3,
                "dirs": 3,
                "bytes": len(record) + len(notes),
                "bytes_read": len(record) + len(notes),
                "bytes_added": len(record) + len(notes),
                "blobs_added": 6,
                "duration_secs": 0.5,
            },
            "errors": [],
        },
        separators=(",", ":"),
    ).encode()
    manifest_sealed = w.object(hcbread.SNAPSHOT, ids(manifest), manifest, True)
    epoch1 = w.object(hcbread.DATA, ids(record), record, False, epoch=1)

    wrapping = hcbread.argon2id(PASSWORD.encode(), KDF, SALT)
    nonce = next(NONCE)
    key_data = nonce + AESGCM(wrapping).encrypt(nonce, MASTER, b"hcbackup keyfile v1" + REPO_ID)
    key_file = {
        "version": 1,
        "created": CREATED,
        "host": "clinic-server",
        "user": "backup",
        "kdf": KDF,
        "salt": SALT.hex(),
        "data": key_data.hex(),
    }
    config = {
        "version": 2,
        "id": REPO_ID.hex(),
        "created": CREATED,
        "key_check": hcbread.check_value(MASTER, REPO_ID, CREATED, 0).hex(),
        "key_epoch": 0,
    }
    table = hcbread.gear_table(w.keys.gear)
    vectors = {
        "about": "docs/format.md, 'Test vectors': every value here follows from the inputs "
        "(password, config id and created, master_key_set, salt, nonces) by the documents' rules",
        "password": PASSWORD,
        "config": config,
        "key_file_name": KEY_FILE_NAME,
        "key_file": key_file,
        "wrapping_key": wrapping.hex(),
        "master_key_set": MASTER.hex(),
        "epoch_1_key": hcbread.epoch_key(w.keys.enc, 1).hex(),
        "gear_table": {"words_0_1_255": [table[0], table[1], table[255]]},
        "ids": [
            {"plaintext": record.hex(), "id": ids(record).hex()},
            {"plaintext": "", "id": ids(b"").hex()},
        ],
        "padme": [[n, hcbread.padme(n)] for n in (0, 1, 2, 9, 100, 1000, 8197, 1048581)],
        "sealed": w.sealed,
        "tree": {
            "cbor": uploads.hex(),
            "id": ids(uploads).hex(),
            "nodes": [
                {k: (v.hex() if isinstance(v, bytes) else v) for k, v in n.items()}
                | {"content": [c.hex() for c in n.get("content", [])]}
                for n in uploads_nodes
            ],
            "empty_tree_cbor": empty.hex(),
            "empty_tree_id": ids(empty).hex(),
        },
        "chunk_list": {
            "ids": [ids(record).hex(), ids(notes).hex()],
            "plaintext": (ids(record) + ids(notes)).hex(),
            "id": ids(ids(record) + ids(notes)).hex(),
        },
        "pack": {"name": data_pack[0], "file": data_pack[1].hex(), "header": data_pack[2].hex()},
        "index": {"id": ids(index).hex(), "plaintext": index.hex(), "sealed": index_sealed.hex()},
        "snapshot": {"id": ids(manifest).hex(), "json": manifest.decode()},
        "restored": {
            "uploads/a.txt": record.decode(),
            "uploads/exams/b.txt": notes.decode(),
            "uploads/exams/zero.bin": "",
            "uploads/link": "-> a.txt",
            "uploads/empty": "empty folder",
        },
    }
    for n in vectors["tree"]["nodes"]:
        if not n["content"]:
            del n["content"]
    with open(os.path.join(docs, "vectors.json"), "w") as f:
        json.dump(vectors, f, indent=1)
        f.write("\n")
    del epoch1

    def put(path, data):
        full = os.path.join(fixture, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)

    put("config", json.dumps(config, indent=2).encode())
    put(f"keys/{KEY_FILE_NAME}", json.dumps(key_file, indent=2).encode())
    for name, data, _, _ in (data_pack, tree_pack):
        put(f"packs/{name[:2]}/{name}", data)
    put(f"index/{ids(index).hex()}", index_sealed)
    put(f"snapshots/{ids(manifest).hex()}", manifest_sealed)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

//! The documents' test vectors (`docs/vectors.json`, described in docs/format.md,
//! "Test vectors") checked against this program's own code. They were made by
//! `tests/reader/make_vectors.py`, a second implementation written from the
//! documents alone, so every value that matches here is a sentence of the
//! documents both programs read the same way. `tests/fixtures/vectors` holds the
//! same objects as a repository; tests/second_reader.rs restores it.

use serde_json::Value;

use crate::codec;
use crate::crypto::{KeyFile, Kind, MasterKey};
use crate::id::{ChunkId, TreeId};
use crate::model::tree::{Node, NodeKind, Tree};
use crate::model::{index, snapshot::Snapshot};
use crate::pack;
use crate::repo::RepoConfig;

fn vectors() -> Value {
    serde_json::from_str(include_str!("../docs/vectors.json")).expect("docs/vectors.json is JSON")
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("a hex string")).expect("hex")
}

fn id(v: &Value) -> [u8; 32] {
    bytes(v).try_into().expect("32 bytes")
}

fn text(v: &Value) -> &str {
    v.as_str().expect("a string")
}

/// The key file unwrapped with the password: the master key set the vectors give.
fn master_key(v: &Value) -> MasterKey {
    let kf = KeyFile::from_json(&serde_json::to_vec(&v["key_file"]).unwrap()).expect("key file");
    assert!(
        kf.kdf_refused().is_none(),
        "the vector's KDF settings are the defaults"
    );
    let key = kf
        .unwrap_key(text(&v["password"]).as_bytes(), &id(&v["config"]["id"]))
        .expect("the key file opens with the vector's password");
    assert_eq!(hex::encode(&*key.to_bytes()), text(&v["master_key_set"]));
    key
}

#[test]
fn the_key_file_and_config_match_the_master_key_set() {
    let v = vectors();
    let key = master_key(&v);
    let config: RepoConfig = serde_json::from_value(v["config"].clone()).unwrap();
    assert_eq!(config.key_matches(&key), Some(true));
    let again = RepoConfig::new_v2(config.id.clone(), config.created.clone(), &key, 0);
    assert_eq!(again, config);
    // Another password, or the key file presented to another repository, fails.
    let kf = KeyFile::from_json(&serde_json::to_vec(&v["key_file"]).unwrap()).unwrap();
    assert!(kf
        .unwrap_key(b"Correct horse battery staple", &config.id_bytes())
        .is_none());
    assert!(kf
        .unwrap_key(text(&v["password"]).as_bytes(), &[9; 32])
        .is_none());
}

#[test]
fn ids_gear_table_and_padding_match() {
    let v = vectors();
    let key = master_key(&v);
    for i in v["ids"].as_array().unwrap() {
        assert_eq!(
            hex::encode(key.id_of(&bytes(&i["plaintext"]))),
            text(&i["id"])
        );
    }
    let table = key.gear_table();
    let want: Vec<u64> = serde_json::from_value(v["gear_table"]["words_0_1_255"].clone()).unwrap();
    assert_eq!(vec![table[0], table[1], table[255]], want);
    for p in v["padme"].as_array().unwrap() {
        let (n, padded) = (p[0].as_u64().unwrap(), p[1].as_u64().unwrap());
        assert_eq!(codec::padme(n as usize) as u64, padded, "padme({n})");
    }
}

#[test]
fn sealed_objects_open_to_their_plaintext() {
    let v = vectors();
    let key = master_key(&v);
    let sealed = v["sealed"].as_array().unwrap();
    assert!(
        sealed.iter().any(|s| s["epoch"] == 1),
        "one object of epoch 1"
    );
    assert!(
        sealed.iter().any(|s| bytes(&s["body"])[0] == 3),
        "one zstd body"
    );
    for s in sealed {
        let kind = Kind::from_u8(s["kind"].as_u64().unwrap() as u8).unwrap();
        let (oid, plain, bytes_sealed) =
            (id(&s["id"]), bytes(&s["plaintext"]), bytes(&s["sealed"]));
        let got = codec::decode(&key, kind, &oid, &bytes_sealed, 1 << 20).expect("opens");
        assert_eq!(got, plain);
        // Moved to another kind or id, it does not open.
        let other = if kind == Kind::Data {
            Kind::Tree
        } else {
            Kind::Data
        };
        assert!(codec::decode(&key, other, &oid, &bytes_sealed, 1 << 20).is_err());
        assert!(codec::decode(&key, kind, &[0; 32], &bytes_sealed, 1 << 20).is_err());
        // What this program seals for a short plaintext has the same length:
        // raw, padded to Padmé, nonce and tag around it.
        if plain.len() < 64 {
            assert_eq!(
                codec::encode(&key, kind, &oid, &plain).len(),
                bytes_sealed.len()
            );
        }
    }
}

fn node(v: &Value) -> Node {
    let ids = |f: &str| -> Vec<[u8; 32]> {
        v.get(f)
            .and_then(Value::as_array)
            .map(|a| a.iter().map(id).collect())
            .unwrap_or_default()
    };
    Node {
        name: serde_bytes::ByteBuf::from(bytes(&v["name"])),
        kind: serde_json::from_value::<NodeKind>(v["kind"].clone()).unwrap(),
        mode: v["mode"].as_u64().unwrap() as u32,
        uid: v["uid"].as_u64().unwrap() as u32,
        gid: v["gid"].as_u64().unwrap() as u32,
        mtime_ns: v["mtime_ns"].as_i64().unwrap(),
        size: v["size"].as_u64().unwrap(),
        content: ids("content").into_iter().map(ChunkId).collect(),
        lists: ids("lists").into_iter().map(TreeId).collect(),
        subtree: v.get("subtree").map(|s| TreeId(id(s))),
        target: v
            .get("target")
            .map(|t| serde_bytes::ByteBuf::from(bytes(t))),
        rdev: v.get("rdev").and_then(Value::as_u64).unwrap_or(0),
        link: v.get("link").and_then(Value::as_u64).unwrap_or(0),
    }
}

#[test]
fn the_tree_encodes_to_the_same_cbor() {
    let v = vectors();
    let key = master_key(&v);
    let t = &v["tree"];
    let tree = Tree::new(t["nodes"].as_array().unwrap().iter().map(node).collect());
    let cbor = tree.to_bytes();
    assert_eq!(hex::encode(&cbor), text(&t["cbor"]));
    assert_eq!(Tree::from_bytes(&cbor).unwrap(), tree);
    assert_eq!(hex::encode(key.id_of(&cbor)), text(&t["id"]));
    let empty = Tree::new(vec![]).to_bytes();
    assert_eq!(hex::encode(&empty), text(&t["empty_tree_cbor"]));
    assert_eq!(hex::encode(key.id_of(&empty)), text(&t["empty_tree_id"]));
}

#[test]
fn the_pack_index_and_snapshot_decode() {
    let v = vectors();
    let key = master_key(&v);
    let file = bytes(&v["pack"]["file"]);
    assert_eq!(
        blake3::hash(&file).to_hex().as_str(),
        text(&v["pack"]["name"])
    );
    let trailer = file[file.len() - 4..].try_into().unwrap();
    let (start, len) = pack::header_location(file.len() as u64, trailer).unwrap();
    let sealed = &file[start as usize..start as usize + len as usize];
    let plain = codec::decode(&key, Kind::PackHeader, &pack::HEADER_ID, sealed, 1 << 20).unwrap();
    let header = pack::decode_header(&plain).unwrap();
    let blobs_hash = *blake3::hash(&file[..start as usize]).as_bytes();
    assert_eq!(header.blobs_hash, Some(blobs_hash));
    assert_eq!(
        hex::encode(pack::encode_header(&header.entries, &blobs_hash)),
        text(&v["pack"]["header"])
    );
    for e in &header.entries {
        let blob = &file[e.offset as usize..(e.offset + e.length as u64) as usize];
        let data = codec::decode(&key, e.kind, &e.id, blob, 1 << 20).unwrap();
        assert_eq!((data.len() as u32, key.id_of(&data)), (e.raw_length, e.id));
    }

    let cl = &v["chunk_list"];
    let list = crate::model::chunk_list::from_bytes(&bytes(&cl["plaintext"])).unwrap();
    let want: Vec<ChunkId> = cl["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| ChunkId(id(i)))
        .collect();
    assert_eq!(list, want);
    assert_eq!(
        crate::model::chunk_list::to_bytes(&want),
        bytes(&cl["plaintext"])
    );
    assert_eq!(
        hex::encode(key.id_of(&bytes(&cl["plaintext"]))),
        text(&cl["id"])
    );

    let ix = &v["index"];
    let plain = codec::decode(
        &key,
        Kind::Index,
        &id(&ix["id"]),
        &bytes(&ix["sealed"]),
        1 << 20,
    )
    .unwrap();
    assert_eq!(hex::encode(&plain), text(&ix["plaintext"]));
    // Version 1, read as version 2 with no time, marks or replacements.
    let v1 = index::decode(&plain).unwrap();
    assert_eq!(
        (v1.written, v1.condemned.len(), v1.supersedes.len()),
        (0, 0, 0)
    );
    let packs = &v1.packs;
    assert_eq!(hex::encode(packs[0].id.0), text(&v["pack"]["name"]));
    assert_eq!(packs[0].blobs, header.entries);
    // Version 2: the same packs, condemned, replacing the version 1 object.
    let v2 = &v["index_v2"];
    let plain2 = bytes(&v2["plaintext"]);
    let ix = index::decode(&plain2).unwrap();
    assert_eq!(index::encode(&ix), plain2);
    assert_eq!(&ix.packs, packs);
    assert_eq!(ix.written, v2["written"].as_i64().unwrap());
    let c = &v2["condemned"][0];
    assert_eq!(
        ix.condemned,
        [(crate::id::PackId(id(&c[0])), c[1].as_i64().unwrap())]
    );
    assert_eq!(
        ix.supersedes,
        [crate::id::ObjectId(id(&v2["supersedes"][0]))]
    );

    let s = &v["snapshot"];
    let sealed = std::fs::read(fixture(&format!("snapshots/{}", text(&s["id"])))).unwrap();
    let plain = codec::decode(&key, Kind::Snapshot, &id(&s["id"]), &sealed, 1 << 20).unwrap();
    assert_eq!(plain, text(&s["json"]).as_bytes());
    let manifest: Snapshot = serde_json::from_slice(&plain).unwrap();
    assert_eq!(manifest.names, ["uploads"]);
}

fn fixture(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/vectors")
        .join(path)
}

/// tests/fixtures/vectors is the vectors' repository, object for object.
#[test]
fn the_fixture_repository_holds_the_vectors() {
    let v = vectors();
    let json =
        |p: &str| -> Value { serde_json::from_slice(&std::fs::read(fixture(p)).unwrap()).unwrap() };
    assert_eq!(json("config"), v["config"]);
    assert_eq!(
        json(&format!("keys/{}", text(&v["key_file_name"]))),
        v["key_file"]
    );
    let name = text(&v["pack"]["name"]);
    let pack = std::fs::read(fixture(&format!("packs/{}/{name}", &name[..2]))).unwrap();
    assert_eq!(pack, bytes(&v["pack"]["file"]));
    let index = std::fs::read(fixture(&format!("index/{}", text(&v["index"]["id"])))).unwrap();
    assert_eq!(index, bytes(&v["index"]["sealed"]));
}

/// Every hex value docs/format.md shows under "Test vectors" is one of the
/// vectors (or part of one): the page cannot drift from what is checked.
#[test]
fn the_page_shows_the_vectors_as_they_are() {
    let page = include_str!("../docs/format.md");
    let section = &page[page.find("## Test vectors").expect("the section")..];
    let json = include_str!("../docs/vectors.json");
    let mut shown = 0;
    for word in section.split(|c: char| !c.is_ascii_hexdigit()) {
        let digits = word.len() >= 16 && word.len() % 2 == 0;
        if digits && word.chars().any(|c| c.is_ascii_digit()) {
            let w = word.to_ascii_lowercase();
            assert!(
                json.contains(&w),
                "docs/format.md shows {w}, which no vector holds"
            );
            shown += 1;
        }
    }
    assert!(shown >= 12, "only {shown} hex values found in the section");
}

//! Criterion benches of the hot paths: chunking, keyed hashing, and the codec
//! (zstd + AES-256-GCM) on compressible text and on incompressible media.
//! Run: `cargo bench --bench hot_paths`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hcbackup::chunker::{Chunker, FILE_CHUNKS};
use hcbackup::codec;
use hcbackup::crypto::{Kind, MasterKey};

#[path = "../tests/common/data.rs"]
mod data;

fn benches(c: &mut Criterion) {
    let key = MasterKey::generate();
    let media = data::noise(1, 32 << 20);
    let txt = data::text(2, 8 << 20);

    let mut g = c.benchmark_group("chunking");
    g.throughput(Throughput::Bytes(media.len() as u64));
    let chunker = Chunker::new(FILE_CHUNKS, key.gear_table());
    g.bench_function("fastcdc_keyed_gear_1MiB_avg", |b| {
        b.iter(|| chunker.chunk_slice(&media).len())
    });
    g.finish();

    let mut g = c.benchmark_group("hashing");
    let block = &media[..1 << 20];
    g.throughput(Throughput::Bytes(block.len() as u64));
    g.bench_function("keyed_blake3_1MiB", |b| b.iter(|| key.id_of(block)));
    g.finish();

    let mut g = c.benchmark_group("codec");
    for (name, data) in [("text", &txt[..1 << 20]), ("media", &media[..1 << 20])] {
        let id = key.id_of(data);
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_with_input(BenchmarkId::new("encode", name), data, |b, d| {
            b.iter(|| codec::encode(&key, Kind::Data, &id, d))
        });
        let sealed = codec::encode(&key, Kind::Data, &id, data);
        g.bench_with_input(BenchmarkId::new("decode", name), &sealed, |b, s| {
            b.iter(|| codec::decode(&key, Kind::Data, &id, s, data.len()).unwrap())
        });
    }
    g.finish();
}

criterion_group! {
    name = hot;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(3));
    targets = benches
}
criterion_main!(hot);
